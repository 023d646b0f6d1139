# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""knockd_stanza's list form (``stanzas``, issue 15): every stanza of the host in one write.

The module runs in this process (tests/unit/plugins/modules/utils.py) with the real
exit_json/fail_json: what is checked is what a host sends back.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import stat

import pytest

from ansible_collections.portknock.knock.plugins.module_utils.knockd_conf import parse, semantic, value_ports
from ansible_collections.portknock.knock.plugins.modules import knockd_stanza

from utils import knockd_conf, module_result

CMD = '/usr/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT'
CONF = """\
# managed by hand before
[options]
\tUseSyslog

[openSSH]
\tsequence    = 17313,24187,19421
\tcommand     = /bin/true

# the web door
[web]
\tsequence = 28111:udp,23777
\tcommand  = /bin/true
"""
FILE_PORTS = ['17313', '24187', '19421', '28111', '23777']


def doors(count=6):
    """``count`` present stanzas with non-monotonic sequences, ports 3xxxx (distinct, none ascending)."""
    return [dict(name='door%d' % i, sequence=[31000 + 7 * i, 30000 + 11 * i, 32000 + 5 * i],
                 seq_timeout=5 + i, tcpflags=['syn'], start_command=CMD, cmd_timeout=30,
                 stop_command=CMD.replace('-A', '-D')) for i in range(count)]


def ports_of(stanzas):
    return sorted(set(port for s in stanzas for port in value_ports(s.get('sequence'))))


def leaks(text, ports):
    return sorted(port for port in ports if re.search(r'(?<![0-9])%s(?![0-9])' % port, text))


def snapshot(path):
    st = os.stat(path)
    with open(path, 'rb') as handle:
        return handle.read(), st.st_mtime_ns, st.st_ino, stat.S_IMODE(st.st_mode)


@pytest.fixture
def conf(tmp_path):
    return knockd_conf(tmp_path, CONF)


def run(path, stanzas, **kwargs):
    args = dict(path=path, stanzas=stanzas)
    args.update(kwargs.pop('args', {}))
    kwargs.setdefault('verbosity', 4)
    return module_result(knockd_stanza.main, args, **kwargs)


@pytest.mark.parametrize('check, diff', [(False, False), (False, True), (True, True)])
def test_one_write_of_every_stanza_then_idempotent(conf, check, diff):
    stanzas = [dict(name='openSSH', state='absent')] + doors(6)
    before = snapshot(conf)
    result, output, failed = run(conf, stanzas, check_mode=check, diff=diff)
    assert not failed, result
    assert result['changed'] is True
    assert result['stanzas'] == ['openSSH'] + ['door%d' % i for i in range(6)]
    assert sorted(result['changed_stanzas']) == ['door%d' % i for i in range(6)] + ['openSSH']
    assert result['changed_stanzas']['openSSH'] == ['stanza']
    assert ('diff' in result) == diff
    assert leaks(output, FILE_PORTS + ports_of(stanzas)) == []
    if check:
        assert snapshot(conf) == before
        assert '[door5]' in result['diff']['after']
        return
    after = snapshot(conf)
    assert after[3] == 0o600 and after[2] != before[2]      # mode kept, replaced by a rename
    with open(conf) as handle:
        text = handle.read()
    assert text.startswith('# managed by hand before\n[options]\n\tUseSyslog\n')
    assert '[openSSH]' not in text and '# the web door\n[web]' in text
    assert list(parse(text).stanza_names()) == ['web'] + ['door%d' % i for i in range(6)]
    assert dict((st.name, st) for st in semantic(parse(text))['stanzas'])['door3'].seq_timeout == 8
    again, output, failed = run(conf, stanzas, diff=diff)
    assert not failed and again['changed'] is False and again['changed_stanzas'] == {}
    assert snapshot(conf) == after
    assert leaks(output, FILE_PORTS + ports_of(stanzas)) == []


def test_list_form_equals_one_call_per_stanza(tmp_path):
    """The same file as the single-stanza form applied stanza after stanza."""
    stanzas = [dict(name='web', state='absent')] + doors(4) + [dict(doors(5)[4], name='door1', seq_timeout=9)]
    stanzas = stanzas[:2] + stanzas[3:]   # door1 given once, its own values
    one, many = str(tmp_path / 'one.conf'), str(tmp_path / 'many.conf')
    for path in (one, many):
        with open(path, 'w') as handle:
            handle.write(CONF)
    assert not run(one, stanzas)[2]
    for stanza in stanzas:
        assert not module_result(knockd_stanza.main, dict(stanza, path=many))[2]
    with open(one) as a, open(many) as b:
        assert a.read() == b.read()


def test_single_stanza_form_unchanged(conf):
    result, _output, failed = module_result(knockd_stanza.main, dict(doors(1)[0], path=conf))
    assert not failed and result['changed'] is True and result['stanza'] == 'door0'
    assert result['changed_keys'] == ['cmd_timeout', 'seq_timeout', 'sequence', 'stanza', 'start_command',
                                      'stop_command', 'tcpflags']
    assert 'stanzas' not in result and 'changed_stanzas' not in result


def test_exclusive_removes_unlisted_stanzas(conf):
    result, _output, failed = run(conf, doors(2), args=dict(exclusive=True))
    assert not failed and result['changed'] is True
    assert result['changed_stanzas']['openSSH'] == ['stanza'] and result['changed_stanzas']['web'] == ['stanza']
    with open(conf) as handle:
        text = handle.read()
    assert parse(text).stanza_names() == ['door0', 'door1'] and '[options]' in text
    assert run(conf, doors(2), args=dict(exclusive=True))[0]['changed'] is False


def test_absent_listed_missing_is_no_change(conf):
    result, _output, failed = run(conf, [dict(name='nosuch', state='absent')])
    assert not failed and result['changed'] is False


# a bad value in the 5th stanza (index 4): (id, fields replaced, text the message names)
BAD_FIFTH = [
    ('seq-timeout', dict(seq_timeout='soon'), "'soon'"),
    ('cmd-timeout-0', dict(cmd_timeout=0), 'Cmd_Timeout 0'),
    ('tcpflag', dict(tcpflags='syn,foo'), 'foo'),
    ('protocol', dict(sequence=[31028, '30044:icmp', 32020]), 'icmp'),
    ('port-out-of-range', dict(sequence='31028,99999,32020'), '99999'),
    ('port-word', dict(sequence='31028,abc,32020'), "'abc'"),
    ('too-many-steps', dict(sequence=[20000 + 37 * i for i in range(33)]), 'more than 32'),
    ('empty-sequence', dict(sequence=''), 'empty'),
    ('command-line-break', dict(start_command='a\nb'), 'line break'),
    ('target', dict(target='knock.example.net'), 'knock.example.net'),
    ('name-bracket', dict(name='a]b'), 'a]b'),
    ('name-options', dict(name='options'), "'options'"),
    ('command-and-start-command', dict(command='/bin/true'), 'command|start_command'),
    ('no-sequence', dict(sequence=None), 'sequence, one_time_sequences'),
    ('no-command', dict(start_command=None, stop_command=None), 'start_command, command'),
    ('duplicate-name', dict(name='door1'), "'door1' is already stanza 3 (door1)"),
]


@pytest.mark.parametrize('fields, fragment', [case[1:] for case in BAD_FIFTH], ids=[case[0] for case in BAD_FIFTH])
@pytest.mark.parametrize('check', [False, True], ids=['run', 'check'])
def test_bad_fifth_stanza_writes_nothing_and_names_it(conf, fields, fragment, check):
    stanzas = [dict(name='openSSH', state='absent')] + doors(6)
    fifth = dict(stanzas[4])
    fifth.update(fields)
    stanzas[4] = dict((key, value) for key, value in fifth.items() if value is not None)
    before = snapshot(conf)
    result, output, failed = run(conf, stanzas, check_mode=check, diff=True)
    assert failed, result
    assert result['msg'].startswith('stanza 5 (%s): ' % stanzas[4]['name']), result['msg']
    assert fragment in result['msg'], result['msg']
    assert 'file left untouched' in result['msg']
    assert 'diff' not in result
    assert snapshot(conf) == before
    # no port of the given sequences nor of the file, except the bad one the message must name
    named = re.findall(r'[0-9]+', fragment)
    assert leaks(output, [p for p in FILE_PORTS + ports_of(stanzas) if p not in named]) == []


def test_bad_port_is_named_only_when_it_is_no_port(conf):
    """A valid port next to the bad value stays masked: the message names the stanza, not the sequence."""
    stanzas = doors(6)
    stanzas[4] = dict(stanzas[4], sequence='31028,30044:icmp,32020')
    result, output, failed = run(conf, stanzas)
    assert failed and result['msg'].startswith('stanza 5 (door4): ')
    assert leaks(output, ['31028', '30044', '32020'] + FILE_PORTS) == []


@pytest.mark.parametrize('args, fragment', [
    (dict(name='x', stanzas=[]), 'mutually exclusive: name|stanzas'),
    (dict(stanzas=[dict(name='a', state='absent')], seq_timeout=5), 'seq_timeout belong(s) in each stanza'),
    (dict(name='x', state='absent', exclusive=True), 'exclusive needs stanzas'),
    (dict(stanzas=[dict(state='absent')]), 'name'),
    (dict(stanzas=[dict(name='a', frobnicate=1)]), 'frobnicate'),
    (dict(), 'one of the following is required: name, stanzas'),
])
def test_bad_forms(conf, args, fragment):
    before = snapshot(conf)
    result, _output, failed = module_result(knockd_stanza.main, dict(args, path=conf))
    assert failed and fragment in result['msg'], result['msg']
    assert snapshot(conf) == before


def test_monotonic_sequence_warns_naming_the_stanza(conf, monkeypatch):
    warned = []   # ansible-core dedups warnings within a process: the calls are checked
    monkeypatch.setattr(knockd_stanza.AnsibleModule, 'warn', lambda self, text, *a, **k: warned.append(text))
    stanzas = doors(2) + [dict(name='scan', sequence=[30001, 30002, 30003], command='/bin/true')]
    result, output, failed = run(conf, stanzas)
    assert not failed, result
    assert [text for text in warned if "'scan'" in text]
    assert not [text for text in warned if "'door0'" in text or "'door1'" in text]
    assert leaks(output + ' '.join(warned), ['30001', '30002', '30003']) == []


def test_invalid_existing_file_untouched(tmp_path):
    text = '[a]\n\tsequence = 17313,24187\n[a]\n\tsequence = 19421\n'
    path = knockd_conf(tmp_path, text, mode=None)
    result, output, failed = run(path, doors(3), diff=True)
    assert failed and 'file left untouched' in result['msg']
    assert leaks(output, ['17313', '24187', '19421'] + ports_of(doors(3))) == []
    with open(path) as handle:
        assert handle.read() == text
