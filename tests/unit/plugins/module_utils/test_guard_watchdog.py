# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils/guard_watchdog.py: the helper script the watchdog runs on the host, and how the
watchdog is started and stopped (commands answered by a fake module: nothing is started here)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.portknock.knock.plugins.module_utils import firewall_snapshot as fs
from ansible_collections.portknock.knock.plugins.module_utils import guard_watchdog


def test_the_helper_on_the_host_runs_the_restore_engine_from_its_own_copy(tmp_path):
    import subprocess
    import sys
    root = tmp_path / 'guard'
    helper = guard_watchdog.write_helper(str(root))
    assert helper == str(root / guard_watchdog.HELPER) and os.stat(helper).st_mode & 0o777 == 0o700
    package = root / guard_watchdog.HELPER_DIR / guard_watchdog.HELPER_PACKAGE
    assert sorted(os.listdir(str(package))) == ['__init__.py', 'atomic_file.py', 'firewall_snapshot.py']
    assert os.stat(str(root / guard_watchdog.HELPER_DIR)).st_mode & 0o777 == 0o700
    assert not fs.NAME_RE.match(guard_watchdog.HELPER_DIR)          # never taken for a guard's snapshot
    env = dict(os.environ, PYTHONPATH='')                            # the host has no collection
    done = subprocess.run([sys.executable, '-I', helper, 'restore', str(root / 'g')], cwd='/', env=env, check=False,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert done.returncode == 0 and 'nothing to do' in done.stdout and done.stderr == ''
    assert guard_watchdog.write_helper(str(root)) == helper        # again: the same files, nothing rewritten
    usage = subprocess.run([sys.executable, '-I', helper], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=60, check=False)
    assert usage.returncode == 2 and 'usage: firewall_snapshot.py' in usage.stderr


class FakeModule(object):
    """get_bin_path finds ``found``; run_command records its argv and answers ``answer``."""

    def __init__(self, answer=(0, '', ''), found=('systemd-run',)):
        self.answer, self.found, self.ran = answer, found, []

    def get_bin_path(self, name, required=False):
        return '/usr/bin/' + name if name in self.found else None

    def run_command(self, args, **kwargs):
        self.ran.append(list(args))
        return self.answer


def test_the_systemd_watchdog_is_a_transient_timer_named_after_the_guard(tmp_path):
    module = FakeModule()
    directory = str(tmp_path / 'g')
    started = guard_watchdog.start_watchdog(module, 'g', str(tmp_path), '/h.py', directory, 30, 'systemd', 'ab' * 16)
    assert started == dict(watchdog='systemd', unit='portknock-guard-g.timer')
    args = module.ran[0]
    assert args[:5] == ['/usr/bin/systemd-run', '--unit', guard_watchdog.unit_name('g'), '--on-active', '30s']
    assert args[-4:] == ['/h.py', 'restore', directory, 'ab' * 16]


FAILED_STARTS = [('systemd', (1, '', 'unit exists\n'), 'systemd-run failed: unit exists'),
                 ('process', (0, 'not a pid\n', ''), 'could not start the watchdog process')]


@pytest.mark.parametrize('kind, answer, says', FAILED_STARTS)
def test_a_failed_start_says_why(tmp_path, kind, answer, says):
    with pytest.raises(fs.SnapshotError) as raised:
        guard_watchdog.start_watchdog(FakeModule(answer), 'g', str(tmp_path), '/h.py', str(tmp_path / 'g'), 30, kind, 'x')
    assert says in str(raised.value)
    assert not os.path.exists(str(tmp_path / ('g.' + guard_watchdog.PIDFILE)))


def test_the_process_watchdog_pid_is_kept_and_stop_kills_only_the_helper(tmp_path):
    module = FakeModule((0, '%d\n' % os.getpid(), ''), found=())
    root = str(tmp_path)
    started = guard_watchdog.start_watchdog(module, 'g', root, '/h.py', fs.snapshot_dir('g', root), 30, 'process', 'x')
    assert started == dict(watchdog='process', pid=os.getpid())
    assert module.ran[0][-4:] == ['spawn', '30', fs.snapshot_dir('g', root), 'x']
    pidfile = os.path.join(root, 'g.' + guard_watchdog.PIDFILE)
    with open(pidfile) as handle:
        assert handle.read() == str(os.getpid())
    guard_watchdog.stop_watchdog(module, 'g', root)     # this process is not g's helper: not killed
    assert not os.path.exists(pidfile) and module.ran == module.ran[:1]
    guard_watchdog.stop_watchdog(module, 'g', root)     # nothing to stop: nothing happens


def test_stop_stops_the_timer_and_its_service_where_systemd_runs(tmp_path, monkeypatch):
    isdir = os.path.isdir
    monkeypatch.setattr(os.path, 'isdir', lambda path: path == '/run/systemd/system' or isdir(path))
    module = FakeModule(found=('systemctl', 'systemd-run'))
    assert guard_watchdog.systemd_available(module) and not guard_watchdog.systemd_available(FakeModule(found=()))
    guard_watchdog.stop_watchdog(module, 'g', str(tmp_path))
    units = ['portknock-guard-g.timer', 'portknock-guard-g.service']
    assert module.ran == [['/usr/bin/systemctl', verb, unit] for unit in units for verb in ('stop', 'reset-failed')]
