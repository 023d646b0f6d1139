# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

import socket

import pytest

from ansible_collections.portknock.knock.plugins.module_utils import knock_sender as ks
from ansible_collections.portknock.knock.plugins.module_utils.sequence import KnockValueError, Step


@pytest.mark.parametrize('value, expected', [
    (None, socket.AF_UNSPEC), ('any', socket.AF_UNSPEC), ('both', socket.AF_UNSPEC), (0, socket.AF_UNSPEC),
    (4, socket.AF_INET), ('4', socket.AF_INET), ('IPv4', socket.AF_INET), (socket.AF_INET, socket.AF_INET),
    (6, socket.AF_INET6), ('ipv6', socket.AF_INET6), (socket.AF_INET6, socket.AF_INET6),
])
def test_parse_family(value, expected):
    assert ks.parse_family(value) == expected


@pytest.mark.parametrize('value', [5, 'ipv5', True, 'both4'])
def test_parse_family_rejects(value):
    with pytest.raises(KnockValueError, match='address family'):
        ks.parse_family(value)


def test_resolve_numeric_addresses_keep_their_family():
    assert ks.resolve('127.0.0.1') == (socket.AF_INET, '127.0.0.1')
    assert ks.resolve('::1') == (socket.AF_INET6, '::1')


def test_resolve_wrong_family_is_a_clear_error():
    with pytest.raises(ks.KnockSendError, match=r"cannot resolve knock host '127.0.0.1' \(IPv6 only\)"):
        ks.resolve('127.0.0.1', 6)


def test_resolve_takes_the_first_getaddrinfo_answer(monkeypatch):
    answers = [(socket.AF_INET6, socket.SOCK_STREAM, 6, '', ('2001:db8::1', 0, 0, 0)),
               (socket.AF_INET, socket.SOCK_STREAM, 6, '', ('198.51.100.1', 0))]
    monkeypatch.setattr(ks.socket, 'getaddrinfo', lambda *a, **k: answers)
    assert ks.resolve('dual.example') == (socket.AF_INET6, '2001:db8::1')


def test_resolve_without_host():
    with pytest.raises(ks.KnockSendError, match='no host'):
        ks.resolve('')


@pytest.fixture
def sent(monkeypatch):
    record = []
    monkeypatch.setattr(ks, 'send_tcp_knock', lambda fam, addr, source=None: record.append(('tcp', fam, addr, source)))
    monkeypatch.setattr(ks, 'send_udp_knock', lambda fam, addr, source=None: record.append(('udp', fam, addr, source)))
    return record


def test_send_knocks_in_order_with_delay_between_only(sent):
    sleeps = []
    steps = ks.send_knocks('198.51.100.7', '7000,9000:udp,8000', delay_ms=25, family=4, source='198.51.100.1',
                           sleep=sleeps.append)
    assert steps == [Step(7000, 'tcp'), Step(9000, 'udp'), Step(8000, 'tcp')]
    assert [(item[0], item[2]) for item in sent] == [('tcp', ('198.51.100.7', 7000)), ('udp', ('198.51.100.7', 9000)),
                                                     ('tcp', ('198.51.100.7', 8000))]
    assert all(item[3] == '198.51.100.1' for item in sent)
    assert sleeps == [0.025, 0.025]


def test_send_knocks_ipv6_sockaddr(sent):
    ks.send_knocks('2001:db8::5', [22], family=6, sleep=lambda s: None)
    assert sent[0][1] == socket.AF_INET6 and sent[0][2][:2] == ('2001:db8::5', 22)


@pytest.mark.parametrize('steps, message', [('', 'empty'), ('70000', 'out of range'), ('80:sctp', 'protocol')])
def test_send_knocks_bad_sequence(sent, steps, message):
    with pytest.raises(ks.KnockSendError, match=message):
        ks.send_knocks('198.51.100.7', steps)
    assert sent == []


@pytest.mark.parametrize('delay', [-1, 'soon', True])
def test_send_knocks_bad_delay(sent, delay):
    with pytest.raises(ks.KnockSendError, match='delay'):
        ks.send_knocks('198.51.100.7', '1', delay_ms=delay)


def test_sockaddr_rejects_names():
    with pytest.raises(ks.KnockSendError, match='not a numeric'):
        ks.sockaddr('example.org', 1)


def test_knock_returns_the_address_it_knocked(sent, monkeypatch):
    monkeypatch.setattr(ks, 'resolve', lambda host, family=None: (socket.AF_INET, '198.51.100.9'))
    assert ks.knock('door.example', [1600], delay_ms=0) == '198.51.100.9'
    assert sent[0][2] == ('198.51.100.9', 1600)


def test_send_errors_never_name_the_step(monkeypatch):
    """A knock that cannot be sent names the host, not the port (a step of a secret sequence)."""
    import socket as socket_module
    from ansible_collections.portknock.knock.plugins.module_utils import knock_sender

    class Failing(object):
        def __init__(self, *args):
            pass

        def setsockopt(self, *args):
            pass

        def setblocking(self, flag):
            pass

        def connect_ex(self, addr):
            return 101   # ENETUNREACH

        def sendto(self, data, addr):
            raise OSError(101, 'Network is unreachable')

        def close(self):
            pass

    monkeypatch.setattr(socket_module, 'socket', Failing)
    for steps in (['7311'], ['9127:udp']):
        try:
            knock_sender.send_knocks('10.231.9.9', steps)
        except knock_sender.KnockSendError as exc:
            assert '10.231.9.9' in str(exc) and '7311' not in str(exc) and '9127' not in str(exc)
        else:
            raise AssertionError('no error')


@pytest.mark.parametrize('address', ['127.0.0.1', '::1'])
def test_route_source_is_the_address_the_kernel_picks(address):
    assert ks.route_source(address) == address


def test_route_source_without_a_route_is_a_clear_error():
    with pytest.raises(ks.KnockSendError, match="'localhost' is not a numeric"):
        ks.route_source('localhost')


def test_send_datagram_is_one_datagram_with_the_payload():
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(('127.0.0.1', 0))
    receiver.settimeout(5)
    try:
        port = receiver.getsockname()[1]
        assert ks.send_datagram('127.0.0.1', port, b'spa-data', source='127.0.0.1') == '127.0.0.1'
        data, sender = receiver.recvfrom(100)
        receiver.settimeout(0.2)
        with pytest.raises(socket.timeout):
            receiver.recvfrom(100)
    finally:
        receiver.close()
    assert (data, sender[0]) == (b'spa-data', '127.0.0.1')
