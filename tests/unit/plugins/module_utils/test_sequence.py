# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The sequence model: the one parser of knock steps, sequences, TCP flags, timeouts, ports."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.portknock.knock.plugins.module_utils import sequence as sq
from ansible_collections.portknock.knock.plugins.module_utils.sequence import KnockValueError, Step, TcpFlag


@pytest.mark.parametrize('value, expected', [
    (7313, Step(7313, 'tcp')), ('7313', Step(7313, 'tcp')), (' 4187:udp ', Step(4187, 'udp')),
    ('9421:TCP', Step(9421, 'tcp')), (dict(port='9421', protocol='udp'), Step(9421, 'udp')),
    (dict(port=1), Step(1, 'tcp')), ('65535', Step(65535, 'tcp')), ('007313', Step(7313, 'tcp')),
    (Step(4187, 'udp'), Step(4187, 'udp')),
])
def test_parse_step(value, expected):
    assert sq.parse_step(value) == expected


def test_default_protocol_applies_to_bare_ports_only():
    assert sq.parse_step('7313', default_protocol='udp') == Step(7313, 'udp')
    assert sq.parse_step('7313:tcp', default_protocol='udp') == Step(7313, 'tcp')


@pytest.mark.parametrize('value, message', [
    ('0', "knock port '0' is out of range"),
    (65536, 'knock port 65536 is out of range'),
    ('abc', "knock port 'abc' is not a port number"),
    ('7313:icmp', "knock protocol 'icmp' is not one of tcp, udp"),
    (dict(protocol='tcp'), 'has no port'),
    (dict(port=7313, proto='udp'), "unknown keys: 'proto'"),
    (True, 'must be a port'),
    (7.5, 'must be a port'),
    (None, 'must be a port'),
])
def test_parse_step_errors_name_the_value(value, message):
    with pytest.raises(KnockValueError, match=message):
        sq.parse_step(value)


@pytest.mark.parametrize('text', ['7313;4187', '7313 4187', '7313:4187', '7313/udp'])
def test_a_step_holding_several_steps_never_quotes_its_digits(text):
    with pytest.raises(KnockValueError) as info:
        sq.parse_step(text, position=2)
    assert 'knock step 2' in str(info.value)
    assert '7313' not in str(info.value) and '4187' not in str(info.value)


def test_many_digits_run_together_are_not_quoted():
    with pytest.raises(KnockValueError) as info:
        sq.parse_port('731341879421')
    assert 'of 12 digits' in str(info.value) and '7313' not in str(info.value)


def test_huge_numbers_do_not_raise_anything_else():
    with pytest.raises(KnockValueError, match='digits or more'):
        sq.parse_port(10 ** 5000)
    with pytest.raises(KnockValueError, match='out of range'):
        sq.parse_port('9' * 5000)


@pytest.mark.parametrize('value', ['7313,4187:udp,9421', ' 7313  4187:udp\t9421 ', '7313,,4187:udp, 9421',
                                   [7313, '4187:udp', dict(port=9421)], (7313, '4187:udp', '9421:tcp')])
def test_parse_sequence_forms(value):
    assert sq.parse_sequence(value) == (Step(7313, 'tcp'), Step(4187, 'udp'), Step(9421, 'tcp'))


def test_parse_sequence_single_int_and_round_trip():
    assert sq.parse_sequence(7313) == (Step(7313, 'tcp'),)
    steps = sq.parse_sequence('7313,4187:udp,9421')
    assert sq.format_sequence(steps) == '7313:tcp,4187:udp,9421:tcp'
    assert sq.parse_sequence(sq.format_sequence(steps)) == steps


@pytest.mark.parametrize('value, message', [
    (None, 'knock sequence is empty'), ('', 'knock sequence is empty'), (' , ', 'knock sequence is empty'),
    ([], 'knock sequence is empty'), (dict(port=7313), 'must be a list or a string, not dict'),
    (True, 'must be a list or a string, not bool'), ('7313,0,9421', "knock port '0' is out of range"),
    ([7313, 'x;y'], 'knock step 2 is not a port'),
])
def test_parse_sequence_errors(value, message):
    with pytest.raises(KnockValueError, match=message):
        sq.parse_sequence(value)


def test_tcpflags():
    assert sq.parse_tcpflags(None) == ()
    assert sq.parse_tcpflags('syn, !ACK') == (TcpFlag('syn', False), TcpFlag('ack', True))
    assert sq.parse_tcpflags(['fin', ' ', 'urg']) == (TcpFlag('fin', False), TcpFlag('urg', False))
    assert sq.format_tcpflags(sq.parse_tcpflags('syn,!ack')) == 'syn,!ack'


@pytest.mark.parametrize('value, message', [
    ('syn,bogus', "TCP flag 'bogus' is not one of"), ('syn,!syn', "'syn' is given more than once"),
    ([1], 'TCP flag 1 is not one of'), (5, 'must be a list or a string'),
])
def test_tcpflags_errors(value, message):
    with pytest.raises(KnockValueError, match=message):
        sq.parse_tcpflags(value)


@pytest.mark.parametrize('value, expected', [(1, 1), ('30', 30), (' 15 ', 15), (sq.MAX_TIMEOUT, sq.MAX_TIMEOUT)])
def test_timeout(value, expected):
    assert sq.parse_timeout(value) == expected


@pytest.mark.parametrize('value, message', [
    (0, 'must be greater than 0'), (-5, 'must be greater than 0'), ('0', 'must be greater than 0'),
    (sq.MAX_TIMEOUT + 1, 'is greater than'), ('1.5', 'is not a number of seconds'),
    (True, 'is not a number of seconds'), (2.0, 'is not a number of seconds'), ('9' * 100, 'is greater than'),
])
def test_timeout_errors(value, message):
    with pytest.raises(KnockValueError, match=message):
        sq.parse_timeout(value, 'seq_timeout')


def test_ports_dedup_in_order_and_errors():
    assert sq.parse_ports('22, 443,22') == (22, 443)
    assert sq.parse_ports([443, '22']) == (443, 22)
    assert sq.parse_ports(22) == (22,)
    with pytest.raises(KnockValueError, match='port list is empty'):
        sq.parse_ports([])
    with pytest.raises(KnockValueError, match='more than there are ports'):
        sq.parse_ports([22] * 70000)


def test_show_is_bounded_and_never_raises():
    class Odd(object):
        def __repr__(self):
            raise RuntimeError('no')
    assert sq.show('x' * 100).endswith('...') and len(sq.show('x' * 100)) == sq.SHOW_LIMIT + 3
    assert sq.show(Odd()) == '<Odd>'
    assert sq.as_text(7313) == '7313'
