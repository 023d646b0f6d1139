# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad input for the shared parsers: the sequence model, the door model, knockd.conf, the daemon's loader.

Each gets generated values of every kind (None, bools, floats with inf/nan, huge ints,
unicode with surrogates and NUL, bytes, nested lists and dicts) and must either accept the
value or raise the project's own error (KnockValueError and its subclasses; the daemon's
ConfigError) with a message; anything else is a traceback.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from ansible_collections.portknock.knock.plugins.module_utils import knock_task
from ansible_collections.portknock.knock.plugins.module_utils.door import door_from_dict, make_door
from ansible_collections.portknock.knock.plugins.module_utils import fwknop_conf
from ansible_collections.portknock.knock.plugins.module_utils.knockd_conf import (
    KnockdConfError, format_value, parse, semantic)
from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.main import Config, ConfigError
from ansible_collections.portknock.knock.plugins.module_utils.sequence import (
    KnockValueError, parse_sequence, parse_step, parse_tcpflags, parse_timeout)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

HUGE = 10 ** 5000
scalars = st.one_of(
    st.none(), st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-2 ** 70, max_value=2 ** 70),
    st.sampled_from([0, -1, 65536, 70000, 2 ** 31, 2 ** 64, 1e309, float('nan')]),
    st.integers(min_value=0, max_value=2).map(lambda n: (-1) ** n * 10 ** (4400 + n)),   # int() refuses their text
    st.text(st.characters(codec=None, categories=None), max_size=30),     # surrogates, NUL, any unicode
    st.sampled_from(['', ' ', '9' * 5000, '1' * 4301, '7000\n', '7000\x00', '\udc80', '٧٠٠٠', '7000:icmp',
                     '7000:', ':udp', '7000::udp', '7313;4187', '7313:4187', '+7313', '0x1f', '1e3', '1_000']),
    st.binary(max_size=10),
)
values = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4),
    st.dictionaries(st.one_of(st.sampled_from(['port', 'protocol', 'name']), scalars.filter(
        lambda value: isinstance(value, (str, int, bool, type(None))))), children, max_size=3),
), max_leaves=8)

OWN_ERRORS = (KnockValueError,)


def attempt(tally, target, call, *args, **kwargs):
    """Run ``call``; record and return its outcome; a foreign exception fails the test."""
    try:
        call(*args, **kwargs)
    except OWN_ERRORS as exc:
        assert str(exc), 'an error without a message'
        tally.record(target, 'error')
        return 'error'
    except Exception:
        tally.record(target, 'traceback')
        raise
    tally.record(target, 'accepted')
    return 'accepted'


@SETTINGS
@given(values)
@example(HUGE)
@example([HUGE])
@example([[7313, 4187]])
@example({'port': 7313, 1: 2})
@example([{'port': HUGE}])
def test_parse_sequence(tally, value):
    attempt(tally, 'sequence.parse_sequence', parse_sequence, value)
    attempt(tally, 'sequence.parse_step', parse_step, value)


@SETTINGS
@given(values)
def test_sequence_fields(tally, value):
    attempt(tally, 'sequence.parse_tcpflags', parse_tcpflags, value)
    attempt(tally, 'sequence.parse_timeout', parse_timeout, value)


FIELDS = ('name', 'sequence', 'port', 'step_timeout', 'open_window', 'protocol', 'ip_version', 'tcpflags')
GOOD = dict(name='ssh', sequence=[7313, '4187:udp', 9421], port=22, step_timeout=5, open_window=30,
            protocol='tcp', ip_version='both', tcpflags='syn')


@SETTINGS
@given(st.sampled_from(FIELDS), values)
@example('sequence', HUGE)
@example('step_timeout', '9' * 5000)
@example('open_window', 1e309)
@example('name', 'ssh\n')
@example('name', HUGE)
def test_make_door_one_bad_field(tally, field, value):
    kwargs = dict(GOOD)
    kwargs[field] = value
    attempt(tally, 'door.make_door', make_door, **kwargs)
    attempt(tally, 'door.door_from_dict', door_from_dict, kwargs)


@SETTINGS
@given(values)
def test_door_from_anything(tally, value):
    attempt(tally, 'door.door_from_dict', door_from_dict, value)


# ---- knockd.conf ----------------------------------------------------------------------------

KEYS = ['Sequence', 'sequence', 'Seq_Timeout', 'Cmd_Timeout', 'TCPFlags', 'Start_Command', 'Command',
        'Target', 'One_Time_Sequences', 'Timeout', 'Frobnicate', 'LogFile', 'Interface', 'PidFile']
conf_values = st.one_of(
    st.text(st.characters(codec=None, categories=None, exclude_characters='\n'), max_size=20),
    st.sampled_from(['7313,4187:udp,9421', '9' * 5000, '1e309', '0', '-5', '7313 4187', '7313;4187',
                     'syn,!ack', ' ack', 'syn,,ack', '7313,' * 40, '\udcff\udcfe', '\x00', '1' * 4301]),
)
lines = st.one_of(
    st.builds(lambda key, sep, value: '%s%s%s' % (key, sep, value), st.sampled_from(KEYS),
              st.sampled_from(['=', ' = ', '\t=\t', '==']), conf_values),
    st.sampled_from(['[options]', '[door]', '[other]', '[]', '[', ']', 'UseSyslog', '# comment', '', '\r',
                     '[door', 'garbage']),
    st.text(st.characters(codec=None, categories=None, exclude_characters='\n'), max_size=15),
)
conf_texts = st.lists(lines, max_size=12).map('\n'.join)


def load(text):
    conf = parse(text)
    assert conf.render() == text
    semantic(conf)


@SETTINGS
@given(conf_texts)
@example('[d]\nsequence = 7313\nseq_timeout = %s\n' % ('9' * 5000))
@example('[d]\nsequence = 7313,%s\n' % ('1' * 4301))
@example('[d]\nsequence = 7313\ncmd_timeout = 1e309\n')
def test_knockd_conf_parse(tally, text):
    attempt(tally, 'knockd_conf.parse', load, text)
    raw = parse(text, validate=False)     # never raises on text
    assert raw.render() == text


@SETTINGS
@given(st.sampled_from(['sequence', 'seq_timeout', 'cmd_timeout', 'tcpflags', 'start_command', 'target']),
       values)
def test_knockd_conf_values(tally, key, value):
    attempt(tally, 'knockd_conf.format_value', format_value, key, value)


@pytest.mark.parametrize('value', [None, b'[d]\nsequence = 1\n', 7313, ['[d]'], {'a': 1}])
def test_knockd_conf_parse_not_text(tally, value):
    assert attempt(tally, 'knockd_conf.parse', parse, value) == 'error'


FWKNOP_LINES = st.one_of(
    st.builds(lambda key, sep, value: '%s%s%s' % (key, sep, value),
              st.sampled_from(sorted(fwknop_conf.ACCESS_KEYS | fwknop_conf.FWKNOPD_KEYS) + ['source', '%include']),
              st.sampled_from([' ', '\t', '  ', ';', ' ;']), conf_values),
    st.sampled_from(['SOURCE ANY', 'KEY_BASE64 a2V5a2V5a2V5', 'HMAC_KEY_BASE64 aG1hY2htYWM', '# c', '', '\r',
                     'OPEN_PORTS tcp/22', 'PCAP_FILTER udp port 62201', 'SOURCE ::/0, 10.0.0.0/255.0.0.0']),
    st.text(st.characters(codec=None, categories=None, exclude_characters='\n'), max_size=15),
)


@SETTINGS
@given(st.one_of(st.lists(FWKNOP_LINES, max_size=12).map('\n'.join), st.binary(max_size=60), values))
def test_fwknop_conf_parse(tally, text):
    """fwknopd.conf / access.conf (module_utils/fwknop_conf.py): semantic and round trip."""
    attempt(tally, 'fwknop_conf.parse_access_conf', fwknop_conf.parse_access_conf, text)
    attempt(tally, 'fwknop_conf.parse_fwknopd_conf', fwknop_conf.parse_fwknopd_conf, text)
    if attempt(tally, 'fwknop_conf.AccessConf', fwknop_conf.AccessConf, text) == 'accepted' and isinstance(text, str):
        assert fwknop_conf.AccessConf(text).render() == text


@SETTINGS
@given(st.sampled_from(sorted(fwknop_conf.ACCESS_KEYS - {'SOURCE'})), values)
def test_fwknop_conf_set_stanza_values(tally, key, value):
    conf = fwknop_conf.AccessConf('SOURCE ANY\nKEY_BASE64 a2V5a2V5a2V5\n')
    attempt(tally, 'fwknop_conf.AccessConf.set_stanza', conf.set_stanza, 'ANY', {key: value})
    attempt(tally, 'fwknop_conf.parse_open_ports', fwknop_conf.parse_open_ports, value)
    attempt(tally, 'fwknop_conf.parse_source', fwknop_conf.parse_source, value)


def _load_config(tally, tmp_path_factory, data):
    path = os.path.join(str(tmp_path_factory.mktemp('conf')), 'knockd.conf')
    with open(path, 'wb') as handle:
        handle.write(data)
    try:
        Config(path)
    except ConfigError as exc:
        assert str(exc)
        tally.record('daemon Config (load)', 'error')
    except Exception:
        tally.record('daemon Config (load)', 'traceback')
        raise
    else:
        tally.record('daemon Config (load)', 'accepted')


@SETTINGS
@given(conf_texts.map(lambda text: text.encode('utf-8', 'replace')))
@example(b'[d]\nsequence = 7313\nseq_timeout = ' + b'9' * 5000 + b'\n')
def test_daemon_config_load(tally, tmp_path_factory, data):
    _load_config(tally, tmp_path_factory, data)


@SETTINGS
@given(st.one_of(conf_texts.map(lambda text: text.encode('utf-8', 'surrogatepass')),
                 st.binary(max_size=200).map(lambda data: b'[d]\nsequence = 7313\n' + data)))
@example(b'[d]\nsequence = 7313,4187\n\xff\xfe\n')
def test_daemon_config_load_not_utf8(tally, tmp_path_factory, data):
    """Bytes that are not UTF-8, which the modules keep (surrogateescape): issue 11, item 9."""
    _load_config(tally, tmp_path_factory, data)


# ---- messages never quote the other steps of a string-form sequence (issue 11, item 2) --------

# (not 65535: messages say 'out of range (1-65535)')
five_digit_ports = st.lists(st.integers(min_value=10000, max_value=65000), min_size=3, max_size=6, unique=True)
GLUE = [';', '|', '/', '.', ':', '-', '_', '+', '~', '\t;', '', 'x', ':tcp', '\x00', 'é']


def leaked(message, ports):
    return [port for port in ports if str(port) in message]


def bad_sequences(ports, glue, where, conf=False):
    """String-form sequences of ``ports`` where two neighbours are glued into one bad step."""
    tokens = [str(port) for port in ports]
    where = where % (len(tokens) - 1)
    tokens[where:where + 2] = [tokens[where] + glue + tokens[where + 1]]
    yield ','.join(tokens)
    if not conf:
        yield ' '.join(tokens)
        yield tokens      # the list form with one bad string item
    else:
        # knockd.conf splits on commas only: a space inside a step is a bad step there
        tokens = [str(port) for port in ports]
        tokens[where:where + 2] = [tokens[where] + ' ' + tokens[where + 1]]
        yield ','.join(tokens)


@SETTINGS
@given(five_digit_ports, st.sampled_from(GLUE), st.integers(min_value=0, max_value=10))
def test_errors_do_not_quote_other_steps(tally, ports, glue, where):
    for sequence in bad_sequences(ports, glue, where):
        with pytest.raises(KnockValueError) as error:
            parse_sequence(sequence)
        assert leaked(str(error.value), ports) == [], str(error.value)
        with pytest.raises(knock_task.KnockTaskError) as error:
            knock_task.run_knock_task(dict(host='127.0.0.1', sequence=sequence), check_mode=True)
        assert leaked(str(error.value), ports) == [], str(error.value)
        tally.record('messages: string sequences', 'error')
    for sequence in bad_sequences(ports, glue, where, conf=True):
        text = '[door]\n\tsequence = %s\n\tcommand = /bin/true\n' % sequence
        with pytest.raises(KnockdConfError) as error:
            parse(text)
        assert leaked(str(error.value), ports) == [], str(error.value)
        tally.record('messages: knockd.conf', 'error')


def test_errors_still_name_a_single_bad_step():
    for sequence, fragment in [('7313,70000,4187', "'70000'"), ('7313,abc', "'abc'"), ('7313:icmp', "'icmp'"),
                               ('7313,0', "'0'"), ('7313;4187', "';'"), (['7313', '4187:tcp:udp'], "':'")]:
        with pytest.raises(KnockValueError) as error:
            parse_sequence(sequence)
        assert fragment in str(error.value)
        assert re.search(r'knock (step|port|protocol)', str(error.value))
