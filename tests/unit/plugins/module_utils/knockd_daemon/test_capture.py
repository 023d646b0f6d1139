# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Capture with fake AF_PACKET sockets; local addresses from a faked ``ip -j addr``."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import socket
import subprocess

import pytest

from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon import capture as cap


class FakeSocket:
    def __init__(self, ignore_outgoing=True, rcvbufforce=True, bind_error=None, packets=()):
        self.options = []
        self.bound = None
        self.closed = False
        self.ignore_outgoing = ignore_outgoing
        self.rcvbufforce = rcvbufforce
        self.bind_error = bind_error
        self.packets = list(packets)   # (bytes, packet type)

    def setsockopt(self, level, name, value):
        if name == cap.PACKET_IGNORE_OUTGOING and not self.ignore_outgoing:
            raise OSError(errno.ENOPROTOOPT, 'Protocol not available')
        if name == cap.SO_RCVBUFFORCE and not self.rcvbufforce:
            raise OSError(errno.EPERM, 'Operation not permitted')
        self.options.append((level, name, value))

    def bind(self, address):
        if self.bind_error:
            raise OSError(self.bind_error, 'No such device')
        self.bound = address

    def setblocking(self, flag):
        self.blocking = flag

    def close(self):
        self.closed = True

    def fileno(self):
        return 40 + id(self) % 7

    def recv(self, size):
        if not self.packets:
            raise BlockingIOError()
        return self.packets.pop(0)[0][:size]

    def recvfrom_into(self, buffer):
        if not self.packets:
            raise BlockingIOError()
        data, kind = self.packets.pop(0)
        buffer[:len(data)] = data
        return len(data), ('eth0', 0x800, kind, 1, b'')


def install(monkeypatch, *sockets):
    made = list(sockets)
    opened = []

    def factory(family, kind, proto):
        assert (family, kind, proto) == (socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(cap.ETH_P_ALL))
        opened.append(made[len(opened)])
        return opened[-1]
    monkeypatch.setattr(cap.socket, 'socket', factory)
    return opened


def test_one_socket_per_interface_with_a_forced_buffer(monkeypatch):
    first, second = FakeSocket(), FakeSocket(ignore_outgoing=False, rcvbufforce=False)
    install(monkeypatch, first, second)
    capture = cap.Capture(['eth0', 'lo'])
    assert capture.sockets == [first, second]
    assert first.bound == ('eth0', cap.ETH_P_ALL) and second.bound == ('lo', cap.ETH_P_ALL)
    assert (socket.SOL_SOCKET, cap.SO_RCVBUFFORCE, cap.RECEIVE_BUFFER) in first.options
    assert (socket.SOL_SOCKET, socket.SO_RCVBUF, cap.RECEIVE_BUFFER) in second.options
    assert capture.outgoing_filtered == {first}
    capture.close()
    assert first.closed and second.closed and capture.sockets == []


def test_the_buffer_is_a_parameter_the_knock_daemon_keeps_its_own(monkeypatch):
    sock = FakeSocket()
    install(monkeypatch, sock)
    cap.Capture(['eth0'], receive_buffer=cap.SPA_RECEIVE_BUFFER, snaplen=cap.SPA_SNAPLEN).close()
    assert (socket.SOL_SOCKET, cap.SO_RCVBUFFORCE, cap.SPA_RECEIVE_BUFFER) in sock.options
    assert cap.SPA_RECEIVE_BUFFER > cap.RECEIVE_BUFFER == 8 * 1024 * 1024
    assert cap.Capture.__init__.__defaults__[0] == cap.RECEIVE_BUFFER


def test_an_interface_that_fails_closes_the_others(monkeypatch):
    good, bad = FakeSocket(), FakeSocket(bind_error=errno.ENODEV)
    install(monkeypatch, good, bad)
    with pytest.raises(cap.CaptureError, match='could not open nope0: No such device'):
        cap.Capture(['eth0', 'nope0'])
    assert good.closed and bad.closed


def test_read_skips_outgoing_packets_when_the_kernel_does_not(monkeypatch):
    sock = FakeSocket(ignore_outgoing=False, packets=[(b'in-1', 0), (b'out', cap.PACKET_OUTGOING), (b'in-2', 0)])
    install(monkeypatch, sock)
    capture = cap.Capture(['eth0'])
    assert capture.read(sock) == [b'in-1', b'in-2']
    assert capture.read(sock) == []


def test_read_with_kernel_filtering_honours_the_limit(monkeypatch):
    sock = FakeSocket(packets=[(b'p%d' % n, 0) for n in range(5)])
    install(monkeypatch, sock)
    capture = cap.Capture(['eth0'])
    assert capture.read(sock, limit=3) == [b'p0', b'p1', b'p2']
    assert capture.read(sock) == [b'p3', b'p4']


def test_set_ports_attaches_a_filter_and_detaches_for_none(monkeypatch):
    sock = FakeSocket()
    install(monkeypatch, sock)
    capture = cap.Capture(['eth0'])
    assert capture.set_ports([7313, 4187]) is True
    assert [name for level, name, value in sock.options][-1] == cap.SO_ATTACH_FILTER
    too_many = list(range(1, cap.build_filter.__globals__['MAX_FILTER_PORTS'] + 2))
    assert capture.set_ports(too_many) is False     # no filter: every packet, filter detached
    assert [name for level, name, value in sock.options][-1] == cap.SO_DETACH_FILTER


def fake_ip(stdout, error=None):
    def run(argv, **kwargs):
        assert argv == ['ip', '-j', 'addr', 'show']
        if error:
            raise error
        return subprocess.CompletedProcess(argv, 0, stdout, b'')
    return run


IP_JSON = json.dumps([
    {'ifname': 'lo', 'addr_info': [{'local': '127.0.0.1'}, {'local': '::1'}]},
    {'ifname': 'eth0', 'addr_info': [{'local': '10.231.0.7'}, {'local': 'fe80::1%eth0'}, {'family': 'x'}]},
    'garbage', {'ifname': 'eth1'},
]).encode()


def test_local_addresses():
    assert cap.local_addresses(run=fake_ip(IP_JSON)) == {'127.0.0.1', '::1', '10.231.0.7', 'fe80::1'}
    assert cap.local_addresses(['eth0'], run=fake_ip(IP_JSON)) == {'10.231.0.7', 'fe80::1'}


@pytest.mark.parametrize('stdout, error', [(b'not json', None), (b'', None), (b'{}', None),
                                           (b'', OSError(errno.ENOENT, 'no ip'))])
def test_local_addresses_fail_soft(stdout, error):
    assert cap.local_addresses(run=fake_ip(stdout, error)) == set()


class FakeNetlink:
    def __init__(self, results):
        self.results = list(results)
        self.closed = False

    def recv(self, size):
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    def fileno(self):
        return 99

    def close(self):
        self.closed = True


@pytest.mark.parametrize('results, changed', [
    ([BlockingIOError()], False), ([b'x', b'y', BlockingIOError()], True),
    ([OSError(errno.ENOBUFS, 'No buffer space')], True), ([b''], False),
])
def test_address_watcher_drain(results, changed):
    watcher = cap.AddressWatcher.__new__(cap.AddressWatcher)
    watcher.sock = FakeNetlink(results)
    assert watcher.drain() is changed
    assert watcher.fileno() == 99
    sock = watcher.sock
    watcher.close()
    assert sock.closed and watcher.fileno() is None and watcher.drain() is False
