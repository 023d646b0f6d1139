# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad parameters for every module, run in this process (tests/unit/plugins/modules/utils.py).

Each bad value must end the module with fail_json and a message; any other exception is a
traceback.  Nothing may change: a knockd.conf stays byte for byte (and keeps its mode), the
guard directory stays as it was, no firewall command runs and no knock is sent (the
commands and the sender are replaced by recorders, so a bug cannot touch this machine).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
from unittest import mock

import pytest

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.portknock.knock.plugins.module_utils import firewall_snapshot, knock_task
from ansible_collections.portknock.knock.plugins.modules import (
    firewall_guard, knock, knockd_options, knockd_stanza, recent_knock, rollout_stamp)

from test_knockd_secrets import CONF   # a knockd.conf of three stanzas (modules/)
from utils import AnsibleExitJson, AnsibleFailJson, knockd_conf, run_module

HUGE_TEXT = '9' * 5000
# Not here, because AnsibleModule itself fails on them before the module's code runs (its
# invocation log does str() and encode('utf-8') of every parameter, ansible-core 2.19): texts
# with lone surrogates, and int-typed parameters given more than 4300 digits.  The parsers get
# both in test_parsers.py.
# refused by any knock field
BAD_KNOCK = ['', ' ', [], [[7313]], [None], [True], {'port': 7313}, [{'port': 7313, 'x': 1}], 1.5, True,
             '7313;4187', '7313:4187', '7313,0', '7313,70000', '-1', 'abc', '7313:icmp', HUGE_TEXT,
             '1' * 4301, '7313\x00', '٧٣١٣', 'x' * 10000, '7313\n4187:sctp']
BAD_TIMEOUT = [0, -5, '0', 'x', '1.5', 1.5, 1e308, HUGE_TEXT, '1e309', [5], {'a': 5}, '5s', '2147483648']
BAD_TEXT_LINE = ['a\nb', 'a\rb', 'a\x00b', '', '   ', '\n']
BAD_NAME = ['', ' x', 'x ', 'a]b', '[x', 'options', 'a\nb', 'a\x00', 'x' * 200, []]
BAD_CHOICE = ['', 'maybe', 'PRESENT ', 'present\n', 7, [], {}]
BAD_INT = ['x', '1.5', [1], {'a': 1}, '', 'ten', '0x']
BAD_BOOL = ['maybe', 2, [True], {'a': 1}, 'yes please']
BAD_MODE = ['rwx', '0999', '0600\n', 'u+q', '', [], {'a': 1}, 1.5, '0o600x']
BAD_DOOR_NAME = ['', '-x', 'a b', 'ssh\n', 'ssh\x00', 'x' * 21, 'é', [], {}, 'baseline;x']

STANZA = dict(name='delta', sequence='26543,21234:udp', command='/bin/true')
STANZA_CASES = (
    [('sequence', value) for value in BAD_KNOCK + ['7313,' * 40]]
    + [('seq_timeout', value) for value in BAD_TIMEOUT]
    + [('cmd_timeout', value) for value in BAD_TIMEOUT]
    + [('tcpflags', value) for value in ['syn,foo', ['syn', 'bar'], 'syn,syn', ' ack', 'syn,,ack', [1], {'a': 1},
                                         '\x00', HUGE_TEXT, [None], 1.5]]
    + [(key, value) for key in ('start_command', 'stop_command', 'start_command_6', 'stop_command_6', 'target',
                                'one_time_sequences') for value in BAD_TEXT_LINE]
    + [('command', value) for value in BAD_TEXT_LINE[:3]]
    + [('name', value) for value in BAD_NAME]
    + [('state', value) for value in BAD_CHOICE]
    + [('mode', value) for value in BAD_MODE]
    + [('create', value) for value in BAD_BOOL]
    + [('backup', value) for value in BAD_BOOL]
    + [('frobnicate', 1), ('start_command', '/bin/true')]     # unknown option; command and start_command
)
OPTIONS_CASES = (
    [(key, value) for key in ('log_file', 'pid_file', 'interface') for value in BAD_TEXT_LINE[:3] + ['x\ny']]
    + [('use_syslog', value) for value in BAD_BOOL]
    + [('mode', value) for value in BAD_MODE]
    + [('create', value) for value in BAD_BOOL]
    + [('frobnicate', 1)]
)

DOOR = dict(name='ssh', sequence=[7313, '4187:udp', 9421], port=22)
RECENT_CASES = (
    [('sequence', value) for value in BAD_KNOCK]
    + [('name', value) for value in BAD_DOOR_NAME]
    + [('port', value) for value in [0, 70000, 'ssh', [], [0], [22, 'x'], '22,x', HUGE_TEXT, 1.5, True, {'a': 1},
                                     [[22]], 7313, '9421']]   # 7313, 9421: a knock port protected too
    + [('step_timeout', value) for value in BAD_INT + [0, -1, '1e309', 2 ** 40]]
    + [('open_window', value) for value in BAD_INT + [0, -1, '1e309', 2 ** 40]]
    + [('set_size', value) for value in BAD_INT + [0, -1]]
    + [(key, value) for key in ('protocol', 'ip_version', 'backend', 'state') for value in BAD_CHOICE]
    + [('rollback_timeout', value) for value in BAD_INT]
    + [('frobnicate', 1)]
)
KNOCK_CASES = (
    [('sequence', value) for value in BAD_KNOCK]
    + [('delay', value) for value in BAD_INT + [-1, '1e309', 10 ** 9]]
    + [('ip_version', value) for value in BAD_CHOICE]
    + [('frobnicate', 1)]
)
GUARD = dict(name='recent_knock', state='confirmed')
GUARD_CASES = (
    [('name', value) for value in ['', 'a b', 'x\n', '../x', '.', '..', 'a/b', 'x' * 41, '\x00', 'é', []]]
    + [('state', value) for value in BAD_CHOICE]
    + [('token', value) for value in ['', 'x', '0' * 31, '0' * 33, 'G' * 32, '0' * 32 + '\n', []]]
    + [('watchdog', value) for value in BAD_CHOICE]
    + [('services', value) for value in [{'a': 1}]]
    + [('frobnicate', 1)]
    + [('timeout', value) for value in BAD_INT]
)

STAMP_INPUTS = 'ab' * 32
STAMP_CASES = (
    [('state', value) for value in BAD_CHOICE]
    + [('inputs', value) for value in ['', 'x', 'ab' * 31, 'ab' * 33, 'gh' * 32, 'ab' * 32 + 'x', [], HUGE_TEXT]]
    + [('path', value) for value in ['', 'relative/stamp', 'stamp\x00', []]]
    + [(key, value) for key in ('paths', 'globs') for value in [['relative'], ['/a\x00b'], [''], {'a': 1}]]
    + [('services', value) for value in [['-x'], ['a b'], ['x\n'], ['']]]
    + [('packages', value) for value in [['-x'], ['a b'], ['x;y'], ['']]]
    + [('firewall', value) for value in BAD_BOOL]
    + [('frobnicate', 1)]
)


def _ids(cases):
    return ['%s=%s' % (key, ascii(value)[:24]) for key, value in cases]


def _run(tally, target, main, args):
    """Run the module; record the outcome; return the result of fail_json."""
    try:
        run_module(main, args, diff=True, verbosity=4)
    except AnsibleFailJson as exc:
        assert exc.result.get('msg'), exc.result
        assert 'exception' not in exc.result, exc.result
        tally.record(target, 'error')
        return exc.result
    except AnsibleExitJson as exc:
        tally.record(target, 'accepted')
        pytest.fail('accepted: %r' % (exc.result,))
    except Exception:
        tally.record(target, 'traceback')
        raise
    return None


def snapshot(path):
    with open(path, 'rb') as handle:
        return handle.read(), os.stat(path).st_mode


def _check_file(tally, target, path, before, tmp_path):
    if snapshot(path) != before or sorted(os.listdir(str(tmp_path))) != ['knockd.conf']:
        tally.record(target, 'changed')
        pytest.fail('%s changed' % path)


@pytest.mark.parametrize('key, value', STANZA_CASES, ids=_ids(STANZA_CASES))
def test_knockd_stanza(tally, tmp_path, key, value):
    path = knockd_conf(tmp_path, CONF)
    before = snapshot(path)
    _run(tally, 'module knockd_stanza', knockd_stanza.main, dict(STANZA, path=path, **{key: value}))
    _check_file(tally, 'module knockd_stanza', path, before, tmp_path)


@pytest.mark.parametrize('key, value', OPTIONS_CASES, ids=_ids(OPTIONS_CASES))
def test_knockd_options(tally, tmp_path, key, value):
    path = knockd_conf(tmp_path, CONF)
    before = snapshot(path)
    _run(tally, 'module knockd_options', knockd_options.main, dict(path=path, **{key: value}))
    _check_file(tally, 'module knockd_options', path, before, tmp_path)


@pytest.fixture
def no_commands(tally):
    """Record (and refuse) every command a module would run: none may run on bad input."""
    calls = []

    def run_command(self, args, *more, **kwargs):
        calls.append(args)
        return 127, '', 'refused by the test'

    with mock.patch.object(AnsibleModule, 'run_command', run_command), \
            mock.patch.object(AnsibleModule, 'get_bin_path', lambda self, name, *a, **k: '/nonexistent/' + name):
        yield calls


@pytest.mark.parametrize('key, value', RECENT_CASES, ids=_ids(RECENT_CASES))
def test_recent_knock(tally, no_commands, key, value):
    _run(tally, 'module recent_knock', recent_knock.main, dict(DOOR, **{key: value}))
    if no_commands:
        tally.record('module recent_knock', 'changed')
        pytest.fail('commands ran: %r' % no_commands)


@pytest.mark.parametrize('key, value', KNOCK_CASES, ids=_ids(KNOCK_CASES))
def test_knock(tally, key, value):
    sent = []
    with mock.patch.object(knock_task, 'knock', lambda *args, **kwargs: sent.append(args) or '127.0.0.1'):
        _run(tally, 'module knock', knock.main, dict(dict(host='127.0.0.1', sequence='7313,4187'), **{key: value}))
    if sent:
        tally.record('module knock', 'changed')
        pytest.fail('knocked: %r' % sent)


@pytest.mark.parametrize('key, value', GUARD_CASES, ids=_ids(GUARD_CASES))
def test_firewall_guard(tally, tmp_path, no_commands, key, value):
    root = tmp_path / 'guard'
    root.mkdir()
    (root / 'keep').write_text('x')
    args = dict(GUARD, **{key: value})
    if key == 'timeout':
        args['state'] = 'armed'
    with mock.patch.object(firewall_snapshot, 'GUARD_ROOT', str(root)):
        _run(tally, 'module firewall_guard', firewall_guard.main, args)
    if sorted(os.listdir(str(root))) != ['keep'] or no_commands:
        tally.record('module firewall_guard', 'changed')
        pytest.fail('the guard directory changed or commands ran: %r %r' % (os.listdir(str(root)), no_commands))


@pytest.mark.parametrize('key, value', STAMP_CASES, ids=_ids(STAMP_CASES))
def test_rollout_stamp(tally, tmp_path, no_commands, key, value):
    stamp = tmp_path / 'rollout.stamp'
    args = dict(dict(state='present', path=str(stamp), inputs=STAMP_INPUTS, paths=[str(tmp_path)]), **{key: value})
    result = _run(tally, 'module rollout_stamp', rollout_stamp.main, args)
    if key == 'inputs':
        assert str(value) not in (result or {}).get('msg', '') or value == ''   # its length, never the value
    if stamp.exists() or no_commands:
        tally.record('module rollout_stamp', 'changed')
        pytest.fail('the stamp was written or commands ran: %r' % no_commands)
