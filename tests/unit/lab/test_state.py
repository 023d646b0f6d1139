# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lab/labtool/state.py: the state directory, write() and the lock that serialises pklab calls."""

import fcntl
import os
import stat
import subprocess
import sys

import pytest

from labtool import state

LAB = os.path.join(state.REPO, 'lab')


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_write_round_trip_creates_the_directories(tmp_path):
    path = str(tmp_path / 'a' / 'b' / 'hosts.yml')
    state.write(path, 'all:\n  hosts: {}\n')
    with open(path) as fh:
        assert fh.read() == 'all:\n  hosts: {}\n'
    assert mode_of(path) == 0o644


def test_write_sets_the_mode_also_on_an_existing_file(tmp_path):
    path = str(tmp_path / 'key')
    state.write(path, 'first\n')
    state.write(path, 'second\n', mode=0o600)   # a private key must not stay world-readable
    with open(path) as fh:
        assert fh.read() == 'second\n'          # replaced, not appended
    assert mode_of(path) == 0o600


def test_write_truncates_a_longer_old_text(tmp_path):
    path = str(tmp_path / 'f')
    state.write(path, 'x' * 100)
    state.write(path, 'y')
    assert open(path).read() == 'y'


def test_state_dir_defaults_to_dot_lab_and_honours_pklab_state(tmp_path):
    code = 'from labtool import state; print(state.STATE)'
    env = dict(os.environ, PYTHONPATH=LAB)
    env.pop('PKLAB_STATE', None)
    default = subprocess.run([sys.executable, '-c', code], env=env, stdout=subprocess.PIPE,
                             universal_newlines=True, check=True).stdout.strip()
    assert default == os.path.join(state.REPO, '.lab')
    env['PKLAB_STATE'] = str(tmp_path)
    chosen = subprocess.run([sys.executable, '-c', code], env=env, stdout=subprocess.PIPE,
                            universal_newlines=True, check=True).stdout.strip()
    assert chosen == str(tmp_path)


def test_lock_is_exclusive_while_held(tmp_path, monkeypatch):
    base = tmp_path / 'state'
    monkeypatch.setattr(state, 'STATE', str(base))
    with state.Lock():
        assert (base / '.lock').exists()          # the state dir is created on the way
        with open(str(base / '.lock'), 'w') as other:   # another pklab call's own open file
            for wanted in (fcntl.LOCK_EX, fcntl.LOCK_SH):         # exclusive: not even a shared lock
                with pytest.raises(BlockingIOError):
                    fcntl.flock(other, wanted | fcntl.LOCK_NB)
    with open(str(base / '.lock'), 'w') as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)   # released on exit
        fcntl.flock(other, fcntl.LOCK_UN)


def test_lock_is_released_when_the_body_raises(tmp_path, monkeypatch):
    monkeypatch.setattr(state, 'STATE', str(tmp_path))
    with pytest.raises(RuntimeError):
        with state.Lock():
            raise RuntimeError('boom')
    with open(str(tmp_path / '.lock'), 'w') as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
