# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""knockd_conf.parse() accepts/rejects the same files as the real knockd 0.8.

Each file is given to ``knockd -D -c FILE -i lo``: a knockd still running after
a second accepted the configuration (it is then killed); one that exited
rejected it.  knockd only sniffs ``lo`` here; no command in these files can run
because no knock is sent.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import subprocess
import time

import pytest

from ansible_collections.portknock.knock.plugins.module_utils.knockd_conf import KnockdConfError, parse

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which('knockd') is None or os.geteuid() != 0,
                       reason='needs root and the knockd binary'),
]

FIXTURE = os.path.join(os.path.dirname(__file__), '..', 'unit', 'plugins', 'module_utils', 'fixtures',
                       'debian-knockd.conf')
with open(FIXTURE) as _handle:
    DEBIAN = _handle.read()

SEED = ('[opencloseSSH]\n        sequence      = 2222:tcp,3333:tcp,4444:tcp\n        seq_timeout   = 15\n'
        '        tcpflags      = syn\n        start_command = /bin/true %IP%\n        cmd_timeout   = 86400\n'
        '        stop_command  = /bin/true %IP%\n')

# (id, text, knockd and parse() both accept?)
SAME_DECISION = [
    ('debian', DEBIAN, True),
    ('seed', SEED, True),
    ('case-aliases-crlf', '[options]\r\n  usesyslog\r\n[Door]\r\n  SEQUENCE=7000:UDP,8000\r\n  Timeout = 3\r\n'
                          '  COMMAND = /bin/true\r\n  command_6 = /bin/true\r\n  Stop_Command_6=/bin/true\r\n', True),
    ('no-start-command', '[d]\nsequence = 7000\n', True),
    ('usesyslog-in-door', '[d]\nsequence = 7000\nUseSyslog\ncommand = /bin/true\n', True),
    ('spaces-in-sequence', '[d]\nsequence = 7000, 8000 :udp ,9000: tcp\ncommand = /bin/true\n', True),
    ('tcpflags-negated', '[d]\nsequence = 7000\ntcpflags = syn,!ack,!FIN\ncommand = /bin/true\n', True),
    ('comments-blank', '# top\n\n[d]\n   # indented comment\nsequence = 7000\n\n', True),
    ('unknown-directive', '[d]\nsequence = 7000\nfoo = bar\n', False),
    ('garbage-line', '[d]\nsequence = 7000\nnot a directive\n', False),
    ('directive-before-section', 'sequence = 7000\n[d]\nsequence = 7000\n', False),
    ('port-70000', '[d]\nsequence = 7000,70000\n', False),
    ('protocol-icmp', '[d]\nsequence = 7000:icmp\n', False),
    ('tcpflag-foo', '[d]\nsequence = 7000\ntcpflags = syn,foo\n', False),
    ('tcpflag-space', '[d]\nsequence = 7000\ntcpflags = syn, ack\n', False),
    ('empty-section-name', '[]\nsequence = 7000\n', False),
    ('no-sequence', '[d]\ncommand = /bin/true\n', False),
    ('sequence-in-options', '[options]\nsequence = 7000\n', False),
    ('usesyslog-with-value', '[options]\nUseSyslog = yes\n', False),
    ('options-is-case-sensitive', '[Options]\nLogFile = /tmp/x\n', False),
    ('too-many-steps', '[d]\nsequence = %s\n' % ','.join(str(7000 + i) for i in range(33)), False),
]

# Deliberate differences: knockd (atoi) accepts these, parse() rejects them.
STRICTER = [
    ('port-0', '[d]\nsequence = 7000,0\n'),
    ('seq-timeout-abc', '[d]\nsequence = 7000\nseq_timeout = abc\n'),
    ('duplicate-section', '[d]\nsequence = 7000\n[d]\nsequence = 8000\n'),
]


def knockd_accepts(path, log):
    """Run knockd on ``path`` for about a second; True if it is still running (config accepted)."""
    with open(log, 'wb') as out:
        proc = subprocess.Popen(['knockd', '-D', '-c', path, '-i', 'lo'], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 1.0
        while time.time() < deadline:
            if proc.poll() is not None:
                return False
            time.sleep(0.05)
        return proc.poll() is None
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def parse_accepts(text):
    try:
        parse(text)
    except KnockdConfError:
        return False
    return True


@pytest.mark.parametrize('text, accepted', [case[1:] for case in SAME_DECISION],
                         ids=[case[0] for case in SAME_DECISION])
def test_same_decision_as_knockd(tmp_path, text, accepted):
    path = str(tmp_path / 'knockd.conf')
    with open(path, 'w', newline='') as handle:
        handle.write(text)
    log = str(tmp_path / 'knockd.log')
    knockd = knockd_accepts(path, log)
    assert knockd is accepted, open(log).read()
    assert parse_accepts(text) is accepted


@pytest.mark.parametrize('text', [case[1] for case in STRICTER], ids=[case[0] for case in STRICTER])
def test_parse_is_deliberately_stricter(tmp_path, text):
    path = str(tmp_path / 'knockd.conf')
    with open(path, 'w') as handle:
        handle.write(text)
    log = str(tmp_path / 'knockd.log')
    assert knockd_accepts(path, log) is True, open(log).read()
    assert parse_accepts(text) is False
