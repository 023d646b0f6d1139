# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""knockd's output channels: log file format and mode, JSON lines, syslog, verbose/debug."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import json
import os
import re
import stat

import pytest

from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon import log as klog


class FakeSyslog:
    LOG_USER = 8
    LOG_NOTICE = 5

    def __init__(self):
        self.opened = []
        self.lines = []

    def openlog(self, ident, option, facility):
        self.opened.append((ident, option, facility))

    def syslog(self, priority, message):
        self.lines.append((priority, message))


@pytest.fixture
def fake_syslog(monkeypatch):
    fake = FakeSyslog()
    monkeypatch.setattr(klog, 'syslog', fake)
    return fake


def test_logfile_lines_are_knockds_and_the_file_is_0600(tmp_path):
    path = str(tmp_path / 'knockd.log')
    log = klog.KnockdLog()
    assert not log.wanted()
    assert log.open_logfile(path) is None
    assert log.wanted()
    log.logprint('10.231.0.7: ssh: Stage 1\n')
    log.close_logfile()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path) as handle:
        text = handle.read()
    assert re.match(r'\[\d{4}-\d\d-\d\d \d\d:\d\d\] 10\.231\.0\.7: ssh: Stage 1\n\Z', text)


def test_an_existing_world_readable_logfile_loses_its_other_bits(tmp_path):
    path = tmp_path / 'knockd.log'
    path.write_text('')
    os.chmod(str(path), 0o646)
    log = klog.KnockdLog()
    log.open_logfile(str(path))
    log.close_logfile()
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o640


def test_unopenable_logfile_is_a_warning_not_an_exception(tmp_path):
    message = klog.KnockdLog().open_logfile(str(tmp_path / 'missing' / 'knockd.log'))
    assert message.startswith('warning: cannot open logfile:')
    assert klog.KnockdLog().open_logfile(None) is None


def test_json_lines_to_file_and_syslog(tmp_path, fake_syslog):
    path = str(tmp_path / 'knockd.log')
    log = klog.KnockdLog(log_format='json')
    log.open_syslog()
    log.open_syslog()                  # once only
    log.open_logfile(path)
    log.logprint('10.231.0.7: ssh: OPEN SESAME', event='open', door='ssh', source='10.231.0.7', stage=3)
    log.close_logfile()
    assert fake_syslog.opened == [('knockd', 0, FakeSyslog.LOG_USER)]
    with open(path) as handle:
        record = json.loads(handle.read())
    assert record['message'] == '10.231.0.7: ssh: OPEN SESAME' and record['event'] == 'open'
    assert record['stage'] == 3 and re.match(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d([+-]\d\d:\d\d|Z)\Z', record['time'])
    priority, line = fake_syslog.lines[0]
    assert priority == FakeSyslog.LOG_NOTICE and json.loads(line)['door'] == 'ssh'


def test_plain_syslog_gets_the_message_only(fake_syslog):
    log = klog.KnockdLog()
    log.open_syslog()
    log.logprint('hello\n', event='ignored')
    assert fake_syslog.lines == [(FakeSyslog.LOG_NOTICE, 'hello')]


def test_verbose_debug_and_both():
    out = io.StringIO()
    log = klog.KnockdLog(verbose=True, debug=False, stream=out)
    log.vprint('v')
    log.dprint('d')
    log.both('b')
    assert out.getvalue() == 'v\nb\n'
    out = io.StringIO()
    klog.KnockdLog(debug=True, stream=out).dprint('d')
    assert out.getvalue() == 'd\n'


def test_a_closed_stream_does_not_raise():
    out = io.StringIO()
    out.close()
    klog.KnockdLog(verbose=True, stream=out).vprint('x')


def test_error_goes_to_stderr_and_log(capsys, fake_syslog):
    log = klog.KnockdLog()
    log.open_syslog()
    log.error('cannot bind')
    assert capsys.readouterr().err == 'cannot bind\n'
    assert fake_syslog.lines == [(FakeSyslog.LOG_NOTICE, 'cannot bind')]


@pytest.mark.parametrize('message, expected', [
    ('plain\n\n', 'plain'),
    (b'caf\xe9'.decode('utf-8', 'surrogateescape'), 'caf\\xe9'),
    ('\ud800 lone', '\\ud800 lone'),
])
def test_printable(message, expected):
    assert klog.printable(message) == expected
    klog.printable(message).encode('utf-8')
