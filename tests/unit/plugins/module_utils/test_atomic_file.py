# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one atomic write of the host side: 0600 from creation, fsynced, renamed, the old file kept on failure."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import stat

import pytest

from ansible_collections.portknock.knock.plugins.module_utils import atomic_file as af


def test_write_atomic_is_0600_from_creation_and_fsyncs_file_and_directory(tmp_path, monkeypatch):
    opened, synced = [], []
    real_open, real_fsync = os.open, os.fsync

    def record_open(path, flags, mode=0o777):
        fd = real_open(path, flags, mode)
        opened.append((path, flags, mode, fd))
        return fd

    def record_fsync(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        return real_fsync(fd)

    monkeypatch.setattr(os, 'open', record_open)
    monkeypatch.setattr(os, 'fsync', record_fsync)
    old = os.umask(0)
    try:
        target = tmp_path / 'rules.v4'
        assert af.write_atomic(str(target), u'*filter\nCOMMIT\n') is True
    finally:
        os.umask(old)
    created = [entry for entry in opened if entry[1] & os.O_CREAT]
    assert len(created) == 1 and created[0][2] == 0o600 and created[0][1] & os.O_EXCL
    assert os.path.dirname(created[0][0]) == str(tmp_path)     # same directory: rename is atomic
    assert stat.S_IMODE(os.stat(str(target)).st_mode) == 0o600
    assert synced == [False, True]                               # the file, then its directory
    assert os.listdir(str(tmp_path)) == ['rules.v4']
    del synced[:]
    assert af.write_atomic(str(target), u'*filter\nCOMMIT\n') is False and synced == []


def test_write_atomic_replaces_a_wider_file_and_keeps_the_old_one_on_failure(tmp_path, monkeypatch):
    target = tmp_path / 'rules.nft'
    target.write_text(u'old\n')
    os.chmod(str(target), 0o644)
    assert af.write_atomic(str(target), u'new\n')
    assert stat.S_IMODE(os.stat(str(target)).st_mode) == 0o600 and target.read_text() == u'new\n'

    def broken_fsync(fd):
        raise OSError(5, 'Input/output error')
    monkeypatch.setattr(os, 'fsync', broken_fsync)
    with pytest.raises(OSError):
        af.write_atomic(str(target), u'newer\n')
    assert target.read_text() == u'new\n' and os.listdir(str(tmp_path)) == ['rules.nft']


def test_write_atomic_takes_over_a_temporary_file_left_by_a_dead_process_of_its_pid(tmp_path):
    target = tmp_path / 'state.json'
    stale = tmp_path / ('.state.json.%d.tmp' % os.getpid())
    stale.write_text(u'half written')
    assert af.write_atomic(str(target), u'{"version": 2}\n') is True
    assert target.read_text() == u'{"version": 2}\n' and os.listdir(str(tmp_path)) == ['state.json']
