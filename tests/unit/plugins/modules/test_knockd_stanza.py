# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real runs of knockd_stanza / knockd_options through ``ansible localhost -m`` on temp files."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

from ansible_collections.portknock.knock.plugins.module_utils import knockd_conf
from ansible_collections.portknock.knock.plugins.module_utils.knockd_conf import parse, semantic
from ansible_collections.portknock.knock.plugins.module_utils.sequence import Step

BIN = os.path.dirname(sys.executable)
# the directory holding ansible_collections/ (as imported, e.g. /work/collections)
COLLECTIONS = os.path.abspath(os.path.join(os.path.dirname(knockd_conf.__file__), *(['..'] * 5)))
FIXTURE = os.path.join(os.path.dirname(__file__), '..', 'module_utils', 'fixtures', 'debian-knockd.conf')

pytestmark = pytest.mark.skipif(shutil.which('ansible', path=BIN) is None, reason='ansible CLI not in the venv')

CMD = '/usr/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT'


def run_result(*args, **kwargs):
    """The module result alone."""
    return run(*args, **kwargs)[0]


def run(tmp_path, args, module='knockd_stanza', check=False, diff=False):
    """Run the module for real; return (result dict, stdout)."""
    tree = tmp_path / ('tree-%d' % len(list(tmp_path.iterdir())))
    env = dict(os.environ)
    env.update(PATH=BIN + os.pathsep + env.get('PATH', ''), ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
               ANSIBLE_LOCALHOST_WARNING='0', ANSIBLE_HOME=str(tmp_path / '.ansible'),
               ANSIBLE_NOCOLOR='1')
    command = ['ansible', 'localhost', '-m', 'portknock.knock.' + module, '-a', json.dumps(args),
               '-e', 'ansible_python_interpreter=' + sys.executable, '--tree', str(tree)]
    if check:
        command.append('--check')
    if diff:
        command.append('--diff')
    proc = subprocess.run(command, env=env, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=120)
    with open(str(tree / 'localhost')) as handle:
        result = json.load(handle)
    # --tree drops 'failed'; the exit code of ansible says it
    result['failed'] = proc.returncode != 0
    return result, proc.stdout


def snapshot(path):
    if not os.path.exists(path):
        return None
    st = os.stat(path)
    with open(path, 'rb') as handle:
        return handle.read(), st.st_mtime_ns, stat.S_IMODE(st.st_mode)


@pytest.fixture
def conf(tmp_path):
    path = tmp_path / 'knockd.conf'
    shutil.copy(FIXTURE, str(path))
    os.chmod(str(path), 0o600)
    return str(path)


def door_args(path, **extra):
    args = dict(path=path, name='opencloseSSH', sequence='2222,3333,4444', seq_timeout=15,
                tcpflags=['syn'], start_command=CMD, cmd_timeout=86400,
                stop_command=CMD.replace('-A', '-D'))
    args.update(extra)
    return args


def test_create_new_file_mode_0600_then_idempotent(tmp_path):
    path = str(tmp_path / 'new.conf')
    result = run_result(tmp_path, door_args(path))
    assert result['changed'] is True
    assert 'stanza' in result['changed_keys']
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path) as handle:
        stanza = semantic(parse(handle.read()))['stanzas'][0]
    assert stanza.sequence == (Step(2222, 'tcp'), Step(3333, 'tcp'), Step(4444, 'tcp'))
    assert (stanza.seq_timeout, stanza.cmd_timeout) == (15, 86400)
    before = snapshot(path)
    result = run_result(tmp_path, door_args(path))
    assert result['changed'] is False and result['changed_keys'] == []
    assert snapshot(path) == before


def test_equivalent_values_are_no_change(tmp_path):
    path = str(tmp_path / 'eq.conf')
    with open(path, 'w') as handle:
        handle.write('# mine\n[door]\n  SEQUENCE   = 2222:tcp, 3333:TCP\n  TCPFLAGS = SYN\n'
                     '  Timeout = 15\n  Command = %s\n' % CMD)
    os.chmod(path, 0o600)
    before = snapshot(path)
    result = run_result(tmp_path, dict(path=path, name='door', sequence=[2222, '3333:tcp'],
                                       tcpflags='syn', seq_timeout='15', command=CMD))
    assert result['changed'] is False, result
    assert snapshot(path) == before


def test_update_removes_unset_directives_and_keeps_other_lines(conf, tmp_path):
    old = open(conf).read()
    result = run_result(tmp_path, dict(path=conf, name='closeSSH', sequence='9000,8000,7000',
                                       command='/bin/true'))
    assert result['changed'] is True
    assert sorted(result['changed_keys']) == ['seq_timeout', 'start_command', 'tcpflags']
    new = open(conf).read()
    assert new.replace('\tcommand     = /bin/true\n', '') == old.replace(
        '\tseq_timeout = 5\n\tcommand     = /sbin/iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT\n'
        '\ttcpflags    = syn\n\n[openHTTPS]', '\n[openHTTPS]')


def test_check_mode_predicts_and_changes_nothing(conf, tmp_path):
    before = snapshot(conf)
    result = run_result(tmp_path, door_args(conf), check=True)
    assert result['changed'] is True
    assert snapshot(conf) == before
    missing = str(tmp_path / 'missing.conf')
    result = run_result(tmp_path, door_args(missing), check=True)
    assert result['changed'] is True and not os.path.exists(missing)


def test_diff_shows_full_text_with_path_header(conf, tmp_path):
    result, out = run(tmp_path, door_args(conf), check=True, diff=True)
    assert result['changed'] is True
    assert '--- before: %s' % conf in out and '+++ after: %s' % conf in out
    assert '+[opencloseSSH]' in out
    assert ' \ttcpflags    = syn' in out  # context from the unchanged file
    assert CMD not in out  # no_log commands are masked


def test_absent(conf, tmp_path):
    result = run_result(tmp_path, dict(path=conf, name='openHTTPS', state='absent'))
    assert result['changed'] is True and result['changed_keys'] == ['stanza']
    text = open(conf).read()
    assert '[openHTTPS]' not in text and parse(text).stanza_names() == ['openSSH', 'closeSSH']
    before = snapshot(conf)
    result = run_result(tmp_path, dict(path=conf, name='openHTTPS', state='absent'))
    assert result['changed'] is False and snapshot(conf) == before
    missing = str(tmp_path / 'none.conf')
    result = run_result(tmp_path, dict(path=missing, name='x', state='absent'))
    assert result['changed'] is False and not os.path.exists(missing)


def test_backup(conf, tmp_path):
    old = open(conf, 'rb').read()
    result = run_result(tmp_path, door_args(conf, backup=True))
    assert result['changed'] is True
    assert result['backup_file'] and open(result['backup_file'], 'rb').read() == old


def test_mode_is_enforced(conf, tmp_path):
    os.chmod(conf, 0o644)
    result = run_result(tmp_path, dict(path=conf, name='openSSH', sequence='7000,8000,9000', seq_timeout=5,
                                       tcpflags='syn',
                                       command='/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT'))
    assert result['changed'] is True and result['changed_keys'] == ['mode']
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o600


def test_options_module(conf, tmp_path):
    result = run_result(tmp_path, dict(path=conf, interface='lo', log_file='/var/log/knockd.log'),
                        module='knockd_options')
    assert result['changed'] is True and result['changed_keys'] == ['interface', 'log_file']
    options = semantic(parse(open(conf).read()))['options']
    assert options == {'use_syslog': True, 'log_file': '/var/log/knockd.log', 'pid_file': None,
                       'interface': 'lo'}
    before = snapshot(conf)
    result = run_result(tmp_path, dict(path=conf, interface='lo', use_syslog=True), module='knockd_options')
    assert result['changed'] is False and snapshot(conf) == before


DUPLICATE = '[a]\nsequence = 1000\ncommand = x\n[a]\nsequence = 2000\n'
GARBAGE = '[a]\nsequence = 1000\nthis is not a directive\n'
BAD_PORT = '[a]\nsequence = 1000,99999\n'
UNKNOWN = '[a]\nsequence = 1000\nFrobnicate = yes\n'
BAD_FLAG = '[a]\nsequence = 1000\ntcpflags = syn,xyz\n'

BAD_CASES = [
    # (id, existing file text or None for the Debian one, extra args, fragment of the message)
    ('port-0', None, dict(sequence='7000,0'), "'0'"),
    # not 70000: the file's knock port 7000 is masked (no_log) wherever it appears, inside 70000 too
    ('port-99999', None, dict(sequence='7001,99999'), '99999'),
    ('port-negative', None, dict(sequence='7000,-1'), "'-1'"),
    ('port-abc', None, dict(sequence='7000,abc'), "'abc'"),
    ('protocol-icmp', None, dict(sequence='7000:icmp'), 'icmp'),
    ('tcpflag-foo', None, dict(tcpflags='syn,foo'), 'foo'),
    ('tcpflag-list-bar', None, dict(tcpflags=['syn', 'bar']), 'bar'),
    ('seq-timeout-0', None, dict(seq_timeout=0), 'Seq_Timeout 0'),
    ('seq-timeout-negative', None, dict(seq_timeout=-5), '-5'),
    ('seq-timeout-x', None, dict(seq_timeout='x'), "'x'"),
    ('seq-timeout-float', None, dict(seq_timeout='1.5'), '1.5'),
    ('cmd-timeout-0', None, dict(cmd_timeout=0), 'Cmd_Timeout 0'),
    ('cmd-timeout-soon', None, dict(cmd_timeout='soon'), 'soon'),
    ('empty-sequence', None, dict(sequence=''), 'empty'),
    ('empty-sequence-list', None, dict(sequence=[]), 'empty'),
    ('too-many-steps', None, dict(sequence=','.join(str(1000 + i) for i in range(33))), 'more than 32'),
    ('command-and-start-command', None, dict(command='/bin/true'), 'command|start_command'),
    ('name-options', None, dict(name='options'), "'options'"),
    ('name-bracket', None, dict(name='a]b'), 'a]b'),
    ('command-newline', None, dict(start_command='a\nb'), 'line break'),
    ('bad-mode', None, dict(mode='rwxbogus'), 'rwxbogus'),
    ('existing-duplicate', DUPLICATE, {}, 'defined twice, on lines 1 and 4'),
    ('existing-garbage', GARBAGE, {}, 'this is not a directive'),
    ('existing-bad-port', BAD_PORT, {}, '99999'),
    ('existing-unknown-directive', UNKNOWN, {}, 'Frobnicate'),
    ('existing-bad-flag', BAD_FLAG, {}, 'xyz'),
]


@pytest.mark.parametrize('existing, extra, fragment', [case[1:] for case in BAD_CASES],
                         ids=[case[0] for case in BAD_CASES])
def test_bad_input_fails_and_leaves_file_untouched(conf, tmp_path, existing, extra, fragment):
    if existing is not None:
        with open(conf, 'w') as handle:
            handle.write(existing)
    before = snapshot(conf)
    result = run_result(tmp_path, door_args(conf, **extra))
    assert result.get('failed') is True, result
    assert fragment in result['msg'], result['msg']
    assert snapshot(conf) == before


def test_create_false_missing_file(tmp_path):
    missing = str(tmp_path / 'absent.conf')
    result = run_result(tmp_path, door_args(missing, create=False))
    assert result.get('failed') is True and 'does not exist' in result['msg']
    assert not os.path.exists(missing)
