# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import os

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.portknock.knock.plugins.module_utils.knockd_conf import (
    KnockdConfError, format_value, normalize_value, parse, render_line, semantic)
from ansible_collections.portknock.knock.plugins.module_utils.sequence import (
    KnockValueError, Step, TcpFlag)

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')

SEED = """[opencloseSSH]
        sequence      = 2222:tcp,3333:tcp,4444:tcp
        seq_timeout   = 15
        tcpflags      = syn
        start_command = /usr/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
        cmd_timeout   = 86400
        stop_command  = /usr/sbin/iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
"""


def debian_text():
    with open(os.path.join(FIXTURES, 'debian-knockd.conf'), 'rb') as handle:
        return handle.read().decode('utf-8')


def changed_lines(before, after):
    """Lines removed/added between two texts (a unified line diff without context)."""
    return [line for line in difflib.ndiff(before.splitlines(True), after.splitlines(True))
            if line[:1] in '+-']


def test_debian_round_trip_byte_for_byte():
    text = debian_text()
    assert parse(text).render() == text


def test_debian_semantic():
    result = semantic(parse(debian_text()))
    assert result['options'] == {'use_syslog': True, 'log_file': None, 'pid_file': None, 'interface': None}
    names = [s.name for s in result['stanzas']]
    assert names == ['openSSH', 'closeSSH', 'openHTTPS']
    open_ssh = result['stanzas'][0]
    assert open_ssh.sequence == (Step(7000, 'tcp'), Step(8000, 'tcp'), Step(9000, 'tcp'))
    assert open_ssh.seq_timeout == 5
    assert open_ssh.cmd_timeout == 10  # knockd default
    assert open_ssh.tcpflags == (TcpFlag('syn', False),)
    assert open_ssh.start_command.startswith('/sbin/iptables -A INPUT')  # via the Command alias
    assert open_ssh.stop_command is None


def test_edit_one_stanza_changes_only_its_line():
    text = debian_text()
    conf = parse(text)
    assert conf.set_stanza('closeSSH', {'seq_timeout': 7}) == ['seq_timeout']
    after = conf.render()
    assert changed_lines(text, after) == ['- \tseq_timeout = 5\n', '+ \tseq_timeout = 7\n']
    # an equivalent value is no change at all
    assert parse(after).set_stanza('closeSSH', {'sequence': [9000, 8000, 7000], 'tcpflags': ['SYN']}) == []


def test_add_key_appends_before_trailing_blank_and_keeps_style():
    text = debian_text()
    conf = parse(text)
    assert conf.set_stanza('openSSH', {'cmd_timeout': '30'}) == ['cmd_timeout']
    after = conf.render()
    assert changed_lines(text, after) == ['+ \tcmd_timeout = 30\n']
    assert '\ttcpflags    = syn\n\tcmd_timeout = 30\n\n[closeSSH]' in after


def test_remove_and_add_stanza():
    text = debian_text()
    conf = parse(text)
    assert conf.remove_stanza('closeSSH') is True
    assert conf.remove_stanza('closeSSH') is False
    assert conf.stanza_names() == ['openSSH', 'openHTTPS']
    assert '[closeSSH]' not in conf.render() and 'dport 22 -j ACCEPT' in conf.render()
    changed = conf.set_stanza('new', {'sequence': '1,2:udp', 'start_command': 'true'})
    assert changed == ['sequence', 'stanza', 'start_command']
    assert conf.render().endswith('syn\n\n[new]\n\tsequence = 1:tcp,2:udp\n\tstart_command = true\n')
    parse(conf.render())


def test_remove_stanza_keeps_comment_of_next_stanza():
    text = '[a]\nsequence = 1\n\n# door b\n[b]\nsequence = 2\n'
    conf = parse(text)
    conf.remove_stanza('a')
    assert conf.render() == '# door b\n[b]\nsequence = 2\n'


def test_set_value_keeps_key_spelling_indent_and_crlf():
    text = '[door]\r\n  COMMAND=old\r\n  Sequence   =  1,2\r\n'
    conf = parse(text)
    assert conf.set_stanza('door', {'start_command': 'new'}) == ['start_command']
    assert conf.render() == '[door]\r\n  COMMAND=new\r\n  Sequence   =  1,2\r\n'


def test_no_trailing_newline_kept_and_fixed_on_append():
    text = '[door]\nsequence = 1'
    assert parse(text).render() == text
    conf = parse(text)
    conf.set_stanza('door', {'target': '10.99.1.1'})
    # the new key copies the file's style (lower-case keys, no indent)
    assert conf.render() == '[door]\nsequence = 1\ntarget = 10.99.1.1\n'


def test_seed_stanza_parses():
    stanza = semantic(parse(SEED))['stanzas'][0]
    assert stanza.name == 'opencloseSSH'
    assert stanza.sequence == (Step(2222, 'tcp'), Step(3333, 'tcp'), Step(4444, 'tcp'))
    assert (stanza.seq_timeout, stanza.cmd_timeout) == (15, 86400)
    assert stanza.stop_command.startswith('/usr/sbin/iptables -D')
    assert parse(SEED).render() == SEED


def test_case_insensitive_keys_and_aliases():
    text = ('[options]\nuSeSySlOg\nLOGFILE = /var/log/k.log\n'
            '[d]\nSEQUENCE=1:UDP\nTimeout = 3\nCommand_6 = six\nCOMMAND = four\nSTOP_command = stop\n')
    result = semantic(parse(text))
    assert result['options']['use_syslog'] is True
    assert result['options']['log_file'] == '/var/log/k.log'
    stanza = result['stanzas'][0]
    assert stanza.sequence == (Step(1, 'udp'),)
    assert stanza.seq_timeout == 3
    assert stanza.start_command == 'four' and stanza.start_command_6 == 'six'
    assert stanza.stop_command == 'stop'


def test_last_duplicate_key_wins_and_set_collapses_duplicates():
    conf = parse('[d]\nsequence = 1\ncommand = a\nstart_command = b\n')
    assert conf.get_stanza('d')['start_command'] == 'b'
    assert conf.set_stanza('d', {'start_command': 'b'}) == ['start_command']
    assert conf.render() == '[d]\nsequence = 1\nstart_command = b\n'


def test_options_set_and_create():
    conf = parse('# hello\n[d]\nsequence = 1\n')
    assert conf.set_options({'use_syslog': True, 'interface': 'lo'}) == ['interface', 'use_syslog']
    assert conf.render() == '# hello\n[options]\nUseSyslog\ninterface = lo\n\n[d]\nsequence = 1\n'
    assert conf.set_options({'use_syslog': True, 'interface': 'lo'}) == []
    assert conf.set_options({'interface': None}) == ['interface']


@pytest.mark.parametrize('text, fragment', [
    ('[d]\nsequence = 1\n\n\nSeq_Timeout = abc\n', "line 5: Seq_Timeout 'abc' is not a number of seconds"),
    ('[d]\nsequence = 1\ncmd_timeout = 0\n', "line 3: cmd_timeout '0' must be greater than 0"),
    ('[d]\nsequence = 1,70000\n', "line 2: knock port '70000' is out of range"),
    ('[d]\nsequence = 1:icmp\n', "line 2: knock protocol 'icmp'"),
    ('[d]\nsequence = 1\ntcpflags = syn,foo\n', "line 3: TCP flag 'foo'"),
    ('[d]\nsequence = 1\ntcpflags = syn, ack\n', "' ack'"),
    ('[d]\nsequence = 1\n[d]\nsequence = 2\n', 'section [d] is defined twice, on lines 1 and 3'),
    ('[d]\nsequence = 1\nbogus = 1\n', "line 3: unknown directive 'bogus'"),
    ('[d]\nsequence = 1\ngarbage line\n', "line 3: syntax error: 'garbage line'"),
    ('[options]\nLogFile = /x\nSequence = 1\n', "line 3: unknown directive 'Sequence' in [options]"),
    ('sequence = 1\n[d]\n', 'line 1: all directives must belong to a section'),
    ('[]\n', "line 1: bad section name '[]'"),
    ('[d]\ncommand = x\n', 'line 1: section [d] has an empty knock sequence'),
    ('[d]\nsequence = %s\n' % ','.join(['1'] * 33), 'more than 32 steps'),
])
def test_errors_name_line_and_value(text, fragment):
    with pytest.raises(KnockdConfError) as error:
        parse(text)
    assert fragment in str(error.value)
    assert isinstance(error.value, KnockValueError)


def test_lenient_parse_never_raises():
    text = 'garbage\n[]\n[d]\nfoo\n'
    assert parse(text, validate=False).render() == text


def test_value_helpers():
    assert format_value('sequence', [2222, '3333:udp']) == '2222:tcp,3333:udp'
    assert format_value('tcpflags', ['SYN', '!ack']) == 'syn,!ack'
    assert format_value('seq_timeout', '15') == '15'
    assert normalize_value('tcpflags', 'ack,syn') == normalize_value('tcpflags', ['syn', 'ack'])
    assert normalize_value('sequence', '2222:tcp, 3333') == normalize_value('sequence', [2222, 3333])
    assert render_line('seq_timeout', '5', '\t', '=', '\r\n') == '\tSeq_Timeout=5\r\n'
    assert render_line('use_syslog', None) == '    UseSyslog\n'
    with pytest.raises(KnockValueError, match='line break'):
        format_value('start_command', 'a\nb')
    with pytest.raises(KnockValueError, match="'options'"):
        parse('').set_stanza('options', {'sequence': '1'})


# ---- property: render(parse(x)) == x --------------------------------------
_blank = st.sampled_from(['', ' ', '\t', '  \t'])
_eol = st.sampled_from(['\n', '\r\n'])
_key = st.sampled_from(['sequence', 'SEQUENCE', 'Seq_Timeout', 'timeout', 'TCPFlags', 'command',
                        'Start_Command_6', 'cmd_timeout', 'Stop_Command', 'target'])
_value = st.text(alphabet='abc019:,/%= -!#[]', max_size=20)
_line = st.one_of(
    st.builds(lambda i, k, s, v, e: i + k + s + v + e, _blank, _key,
              st.sampled_from(['=', ' = ', '\t=  ', '    =']), _value, _eol),
    st.builds(lambda i, c, e: i + '#' + c + e, _blank, st.text(max_size=15), _eol),
    st.builds(lambda i, e: i + e, _blank, _eol),
    st.builds(lambda i, n, e: i + '[' + n + ']' + e, _blank, st.text(alphabet='abcXYZ_ -', max_size=8), _eol),
    st.text(max_size=30).map(lambda t: t + '\n'),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_line, max_size=25), st.booleans())
def test_property_round_trip(lines, drop_final_newline):
    text = ''.join(lines)
    if drop_final_newline:
        text = text.rstrip('\n')
    conf = parse(text, validate=False)
    assert conf.render() == text
    try:
        strict = parse(text)
    except KnockdConfError:
        return
    assert strict.render() == text


def test_spaces_around_the_protocol_colon_read_as_knockd_does():
    """knockd 0.8 accepts ``7311, 9127 :udp ,8243: tcp`` (tests/integration/test_knockd_conf_vs_knockd.py)."""
    stanza = semantic(parse('[d]\nsequence = 7311, 9127 :udp ,8243: tcp\ncommand = /bin/true\n'))['stanzas'][0]
    assert stanza.sequence == (Step(7311, 'tcp'), Step(9127, 'udp'), Step(8243, 'tcp'))
