# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket
import struct

from hypothesis import given, settings, strategies as st

from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.packet import (
    Packet, parse_cooked, parse_ethernet, parse_frame, parse_ip, parse_ipv4, parse_ipv4_general, tcp_flag_names)

SRC4, DST4 = '10.99.4.2', '10.99.4.1'
SRC6, DST6 = 'fd42:99:4::2', 'fd42:99:4::1'


def tcp_header(sport=40000, dport=2222, flags=0x02):
    return struct.pack('!HHIIBBHHH', sport, dport, 1, 0, 5 << 4, flags, 1024, 0, 0)


def udp_header(sport=40000, dport=2222, payload=b'\x00'):
    return struct.pack('!HHHH', sport, dport, 8 + len(payload), 0) + payload


def ipv4(payload, proto=6, src=SRC4, dst=DST4, options=b'', frag=0):
    ihl = 5 + len(options) // 4
    header = struct.pack('!BBHHHBBH4s4s', 0x40 | ihl, 0, ihl * 4 + len(payload), 1, frag, 64, proto, 0,
                         socket.inet_pton(socket.AF_INET, src), socket.inet_pton(socket.AF_INET, dst))
    return header + options + payload


def ipv6(payload, next_header=6, src=SRC6, dst=DST6, ext=b''):
    header = struct.pack('!IHBB16s16s', 0x60000000, len(ext) + len(payload), next_header, 64,
                         socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst))
    return header + ext + payload


def ext_header(next_header, body_len8=0):
    """A hop-by-hop/routing/dest-options header of (body_len8 + 1) * 8 bytes."""
    return struct.pack('!BB', next_header, body_len8) + b'\x01' + b'\x04' + b'\x00' * (4 + 8 * body_len8)


def fragment_header(next_header, offset=0, more=True):
    return struct.pack('!BBHI', next_header, 0, (offset << 3) | (1 if more else 0), 1234)


def ether(payload, ethertype=0x0800, vlan=None):
    head = b'\x02' * 6 + b'\x04' * 6
    if vlan is not None:
        head += struct.pack('!HH', 0x8100, vlan)
    return head + struct.pack('!H', ethertype) + payload


def test_ipv4_tcp_syn():
    assert parse_ethernet(ether(ipv4(tcp_header()))) == Packet(
        SRC4, DST4, 'tcp', 40000, 2222, frozenset(['syn']), 4)


def test_ipv4_udp_with_ip_options_and_vlan():
    frame = ether(ipv4(udp_header(dport=3333), proto=17, options=b'\x01\x01\x01\x00'), vlan=5)
    packet = parse_ethernet(frame)
    assert (packet.proto, packet.dport, packet.flags, packet.family) == ('udp', 3333, frozenset(), 4)


def test_ipv4_fragments():
    first = ipv4(tcp_header(), frag=0x2000)   # MF set, offset 0: parsed
    assert parse_ip(first).dport == 2222
    later = ipv4(tcp_header(), frag=0x2000 | 10)
    assert parse_ip(later) is None


def test_ipv4_other_protocols_and_bad_headers():
    assert parse_ip(ipv4(b'\x08\x00' + b'\x00' * 6, proto=1)) is None
    bad_ihl = bytearray(ipv4(tcp_header()))
    bad_ihl[0] = 0x44
    assert parse_ip(bytes(bad_ihl)) is None
    short_total = bytearray(ipv4(tcp_header()))
    short_total[2:4] = struct.pack('!H', 30)   # total length cuts the TCP header
    assert parse_ip(bytes(short_total)) is None


def test_tcp_flags():
    packet = parse_ip(ipv4(tcp_header(flags=0x3F)))
    assert packet.flags == frozenset(['fin', 'syn', 'rst', 'psh', 'ack', 'urg'])
    assert tcp_flag_names(0x12) == frozenset(['syn', 'ack'])
    assert tcp_flag_names(0xC0) == frozenset()


def test_ipv6_tcp_and_udp():
    assert parse_ethernet(ether(ipv6(tcp_header(dport=4444)), 0x86DD)) == Packet(
        SRC6, DST6, 'tcp', 40000, 4444, frozenset(['syn']), 6)
    assert parse_ip(ipv6(udp_header(), next_header=17)).proto == 'udp'


def test_ipv6_extension_headers():
    ext = ext_header(43) + ext_header(44, 1) + fragment_header(60) + ext_header(6)
    packet = parse_ip(ipv6(tcp_header(dport=5555), next_header=0, ext=ext))
    assert packet.dport == 5555 and packet.family == 6
    ah = struct.pack('!BBH', 17, 4, 0) + b'\x00' * 20   # (4 + 2) * 4 = 24 bytes
    assert parse_ip(ipv6(udp_header(dport=6666), next_header=51, ext=ah)).dport == 6666


def test_ipv6_non_first_fragment_and_no_next_header():
    assert parse_ip(ipv6(tcp_header(), next_header=44, ext=fragment_header(6, offset=3))) is None
    assert parse_ip(ipv6(b'', next_header=59)) is None
    assert parse_ip(ipv6(b'\x80\x00' * 4, next_header=58)) is None


def test_ipv6_extension_header_walk_is_bounded():
    ext = b''.join(ext_header(60) for _index in range(20)) + ext_header(6)
    assert parse_ip(ipv6(tcp_header(), next_header=60, ext=ext)) is None


def test_cooked_and_frame_dispatch():
    cooked = struct.pack('!HHH8sH', 0, 1, 6, b'\x00' * 8, 0x0800) + ipv4(tcp_header())
    assert parse_cooked(cooked).dport == 2222
    assert parse_frame(cooked, 'cooked').dport == 2222
    assert parse_frame(ipv4(tcp_header()), 'raw').dport == 2222
    assert parse_frame(bytearray(ether(ipv4(tcp_header())))).dport == 2222


def test_non_ip_and_empty():
    assert parse_ethernet(ether(b'\x00' * 28, 0x0806)) is None
    for data in (b'', b'\x45', b'\x60' * 39):
        assert parse_ip(data) is None
        assert parse_ethernet(data) is None


VALID = [
    ether(ipv4(tcp_header())),
    ether(ipv4(udp_header(), proto=17, options=b'\x01' * 8), vlan=7),
    ether(ipv6(tcp_header(), next_header=0, ext=ext_header(43) + fragment_header(60) + ext_header(6)), 0x86DD),
    ether(ipv6(udp_header(), next_header=17), 0x86DD),
]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(['ethernet', 'cooked', 'raw']))
def test_random_bytes_never_raise(data, link):
    result = parse_frame(data, link)
    assert result is None or isinstance(result, Packet)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(VALID), st.data())
def test_truncations_never_raise(frame, data):
    cut = data.draw(st.integers(min_value=0, max_value=len(frame)))
    result = parse_ethernet(frame[:cut])
    assert result is None or isinstance(result, Packet)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(VALID), st.lists(st.tuples(st.integers(0, 199), st.integers(0, 255)), max_size=8))
def test_mutations_never_raise(frame, changes):
    mutated = bytearray(frame)
    for position, value in changes:
        if position < len(mutated):
            mutated[position] = value
    result = parse_ethernet(bytes(mutated))
    assert result is None or isinstance(result, Packet)
    if result is not None:
        assert 0 <= result.sport <= 65535 and 0 <= result.dport <= 65535


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0, 43, 44, 51, 60, 59, 58, 6, 17, 255]), st.integers(0, 255)),
                max_size=12), st.binary(max_size=64))
def test_mutated_extension_header_chains_never_raise(chain, tail):
    ext = b''
    for next_header, length in chain:
        ext += struct.pack('!BB', next_header, length) + b'\x00' * 6
    result = parse_ip(ipv6(tail, next_header=chain[0][0] if chain else 6, ext=ext))
    assert result is None or isinstance(result, Packet)


IPV4_PLAIN = [
    ipv4(tcp_header(flags=0x12)),
    ipv4(udp_header(payload=b'abcdefgh'), proto=17),
    ipv4(udp_header(payload=b''), proto=17),
    ipv4(tcp_header(), options=b'\x01' * 4),
]


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(IPV4_PLAIN), st.lists(st.tuples(st.integers(0, 47), st.integers(0, 255)), max_size=6),
       st.integers(0, 48), st.sampled_from([bytes, bytearray, memoryview]))
def test_ipv4_fast_path_same_as_general(packet, changes, cut, kind):
    mutated = bytearray(packet)
    for position, value in changes:
        if position < len(mutated):
            mutated[position] = value
    data = kind(bytes(mutated[:cut]))
    assert parse_ipv4(data) == parse_ipv4_general(data)
    framed = kind(b'\x00' * 14 + bytes(mutated[:cut]))
    assert parse_ipv4(framed, 14) == parse_ipv4_general(framed, 14)
