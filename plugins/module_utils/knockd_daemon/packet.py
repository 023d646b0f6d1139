# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""Pure packet parser of the knock daemon: frame bytes -> Packet or None.

Understands Ethernet (with 802.1Q/802.1ad tags), Linux "cooked" (SLL) frames,
bare IP packets (what an AF_PACKET SOCK_DGRAM socket delivers), IPv4 (with
header options; non-first fragments are ignored) and IPv6 with its extension
headers (hop-by-hop, routing, fragment, destination options, AH; bounded
walk), carrying TCP or UDP.  Anything else, and any malformed or truncated
input, gives None: these functions never raise on bytes from the wire.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import socket
import struct

Packet = collections.namedtuple('Packet', [
    'src',      # str, numeric source address
    'dst',      # str, numeric destination address
    'proto',    # 'tcp' or 'udp'
    'sport',    # int
    'dport',    # int
    'flags',    # frozenset of TCP flag names ('syn', 'ack', ...); empty for UDP
    'family',   # 4 or 6
])

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
IPPROTO_TCP = 6
IPPROTO_UDP = 17

# IPv6 extension headers we walk through, and how many we accept in a row.
IPV6_HOPOPTS, IPV6_ROUTING, IPV6_FRAGMENT, IPV6_AH, IPV6_DSTOPTS = 0, 43, 44, 51, 60
MAX_IPV6_EXTENSION_HEADERS = 8

# knockd's flags, in the bit order of the TCP header.
_FLAG_BITS = (('fin', 0x01), ('syn', 0x02), ('rst', 0x04), ('psh', 0x08), ('ack', 0x10), ('urg', 0x20))
_FLAG_SETS = tuple(frozenset(name for name, bit in _FLAG_BITS if value & bit) for value in range(64))

_U16 = struct.Struct('!H')
_PORTS = struct.Struct('!HH')
# IPv4 header without options followed by the first 14 bytes of a TCP/UDP header:
# total length, fragment field, protocol, source, destination, ports, TCP flags byte.
_V4_PLAIN = struct.Struct('!2xH2xH1xB2x4s4sHH9xB')
_AF_INET = socket.AF_INET
_inet_ntop = socket.inet_ntop
_NO_FLAGS = frozenset()


def tcp_flag_names(bits):
    """The frozenset of knockd flag names set in a TCP flags byte."""
    return _FLAG_SETS[bits & 0x3F]


def _transport(data, offset, proto, src, dst, family):
    if proto == IPPROTO_TCP:
        if len(data) < offset + 20:
            return None
        sport, dport = _PORTS.unpack_from(data, offset)
        return Packet(src, dst, 'tcp', sport, dport, _FLAG_SETS[data[offset + 13] & 0x3F], family)
    if proto == IPPROTO_UDP:
        if len(data) < offset + 8:
            return None
        sport, dport = _PORTS.unpack_from(data, offset)
        return Packet(src, dst, 'udp', sport, dport, frozenset(), family)
    return None


def parse_ipv4(data, offset=0):
    """Parse an IPv4 packet starting at ``offset``."""
    size = len(data)
    if size >= offset + 34 and data[offset] == 0x45:  # _V4_PLAIN.size
        # Fast path (the flood case): no IP options, one unpack.
        total_length, fragment, proto, src, dst, sport, dport, flags = _V4_PLAIN.unpack_from(data, offset)
        if total_length < 20 or fragment & 0x1FFF:
            return None
        end = min(size, offset + total_length)
        if proto == IPPROTO_TCP:
            if end < offset + 40:
                return None
            return Packet(_inet_ntop(_AF_INET, src), _inet_ntop(_AF_INET, dst), 'tcp', sport, dport,
                          _FLAG_SETS[flags & 0x3F], 4)
        if proto == IPPROTO_UDP and end >= offset + 28:
            return Packet(_inet_ntop(_AF_INET, src), _inet_ntop(_AF_INET, dst), 'udp', sport, dport,
                          _NO_FLAGS, 4)
        return None
    return parse_ipv4_general(data, offset)


def parse_ipv4_general(data, offset=0):
    """Parse any IPv4 packet (options, short UDP); parse_ipv4 gives the same result, faster."""
    if len(data) < offset + 20:
        return None
    first = data[offset]
    if first >> 4 != 4:
        return None
    header_length = (first & 0x0F) * 4
    if header_length < 20 or len(data) < offset + header_length:
        return None
    total_length = _U16.unpack_from(data, offset + 2)[0]
    if total_length < header_length:
        return None
    fragment = _U16.unpack_from(data, offset + 6)[0]
    if fragment & 0x1FFF:
        return None  # not the first fragment: no transport header here
    end = min(len(data), offset + total_length)
    src = socket.inet_ntop(socket.AF_INET, bytes(data[offset + 12:offset + 16]))
    dst = socket.inet_ntop(socket.AF_INET, bytes(data[offset + 16:offset + 20]))
    return _transport(data[:end], offset + header_length, data[offset + 9], src, dst, 4)


def parse_ipv6(data, offset=0):
    """Parse an IPv6 packet starting at ``offset``, walking extension headers."""
    if len(data) < offset + 40:
        return None
    if data[offset] >> 4 != 6:
        return None
    payload_length = _U16.unpack_from(data, offset + 4)[0]
    next_header = data[offset + 6]
    src = socket.inet_ntop(socket.AF_INET6, bytes(data[offset + 8:offset + 24]))
    dst = socket.inet_ntop(socket.AF_INET6, bytes(data[offset + 24:offset + 40]))
    end = len(data)
    if payload_length:  # 0 means a jumbogram: trust the captured length
        end = min(end, offset + 40 + payload_length)
    data = data[:end]
    position = offset + 40
    for _count in range(MAX_IPV6_EXTENSION_HEADERS + 1):
        if next_header in (IPPROTO_TCP, IPPROTO_UDP):
            return _transport(data, position, next_header, src, dst, 6)
        if len(data) < position + 8:
            return None
        if next_header in (IPV6_HOPOPTS, IPV6_ROUTING, IPV6_DSTOPTS):
            length = (data[position + 1] + 1) * 8
        elif next_header == IPV6_FRAGMENT:
            if _U16.unpack_from(data, position + 2)[0] & 0xFFF8:
                return None  # not the first fragment
            length = 8
        elif next_header == IPV6_AH:
            length = (data[position + 1] + 2) * 4
        else:
            return None  # ICMPv6, no next header (59), ESP, unknown
        next_header = data[position]
        position += length
    return None


def parse_ip(data, offset=0):
    """Parse a bare IPv4 or IPv6 packet (AF_PACKET SOCK_DGRAM, DLT_RAW)."""
    if len(data) <= offset:
        return None
    version = data[offset] >> 4
    if version == 4:
        return parse_ipv4(data, offset)
    if version == 6:
        return parse_ipv6(data, offset)
    return None


def _by_ethertype(data, ethertype, offset):
    if ethertype == ETH_P_IP:
        return parse_ipv4(data, offset)
    if ethertype == ETH_P_IPV6:
        return parse_ipv6(data, offset)
    return None


def parse_ethernet(frame):
    """Parse an Ethernet II frame (loopback frames too), skipping VLAN tags."""
    if len(frame) < 14:
        return None
    ethertype = _U16.unpack_from(frame, 12)[0]
    offset = 14
    for _tag in range(2):
        if ethertype not in (ETH_P_8021Q, ETH_P_8021AD):
            break
        if len(frame) < offset + 4:
            return None
        ethertype = _U16.unpack_from(frame, offset + 2)[0]
        offset += 4
    return _by_ethertype(frame, ethertype, offset)


def parse_cooked(frame):
    """Parse a Linux cooked capture (SLL, DLT_LINUX_SLL) frame."""
    if len(frame) < 16:
        return None
    return _by_ethertype(frame, _U16.unpack_from(frame, 14)[0], 16)


LINK_PARSERS = {
    'ethernet': parse_ethernet,
    'cooked': parse_cooked,
    'raw': parse_ip,
}


def parse_frame(frame, link='ethernet'):
    """Parse ``frame`` of link type ``link`` ('ethernet', 'cooked' or 'raw').

    Returns a Packet or None; never raises on any bytes-like input.
    """
    try:
        return LINK_PARSERS[link](memoryview(frame).cast('B') if not isinstance(frame, bytes) else frame)
    except (ValueError, TypeError, IndexError, struct.error):  # pragma: no cover - belt and braces
        return None
