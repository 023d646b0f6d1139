# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""Classic BPF program for the capture socket: only knock candidates reach Python.

Like knockd's pcap filter, built from the destination ports of the stanzas'
sequences.  Offsets are relative to the network header (AF_PACKET SOCK_DGRAM).
Kept: IPv4 TCP/UDP first fragments to one of the ports; IPv6 TCP/UDP to one of
the ports; IPv6 packets with extension headers (packet.py walks them).
Dropped: everything else, and every packet from a ``blocked`` source address
(the SPA drop-in's penalized flooders: dropped in the kernel, they cost the
daemon nothing; at most MAX_BLOCKED4 IPv4 and MAX_BLOCKED6 IPv6 addresses, the
rest are left to the daemon).  Pure: returns the instructions; capture.py
attaches them.  Returns None (no filter) when there are too many ports for the
8-bit jump offsets of classic BPF.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket
import struct

MAX_FILTER_PORTS = 100
MAX_BLOCKED4 = 128      # one instruction each
MAX_BLOCKED6 = 24       # eight each: every jump to the shared drop stays within 255
SNAP = 0xFFFF

LD_W_ABS, LD_B_ABS, LD_H_ABS, LD_H_IND, LDX_B_MSH = 0x20, 0x30, 0x28, 0x48, 0xB1
ALU_AND_K, JA, JEQ_K, JSET_K, RET_K = 0x54, 0x05, 0x15, 0x45, 0x06


def _assemble(program):
    """program: list of (label or None, code, jt, jf, k); jt/jf are labels or 0, and so is
    the k of a JA (its 32-bit offset)."""
    labels = dict((item[0], index) for index, item in enumerate(program) if item[0])
    result = []
    for index, (_label, code, jt, jf, k) in enumerate(program):
        offsets = []
        for target in (jt, jf):
            offset = labels[target] - index - 1 if isinstance(target, str) else target
            if not 0 <= offset <= 255:
                raise ValueError('BPF jump too far')
            offsets.append(offset)
        if code == JA and isinstance(k, str):
            k = labels[k] - index - 1
        result.append((code, offsets[0], offsets[1], k))
    return result


def _words(blocked, family, limit):
    """The packed addresses of ``family`` among ``blocked`` (texts), at most ``limit``, as
    tuples of big-endian 32-bit words; texts that are not addresses are skipped."""
    found = []
    for text in blocked:
        if len(found) >= limit:
            break
        try:
            packed = socket.inet_pton(family, str(text))
        except (OSError, ValueError, UnicodeError):
            continue
        words = struct.unpack('!%dI' % (len(packed) // 4), packed)
        if words not in found:
            found.append(words)
    return found


def _block4(addresses):
    """Drop IPv4 packets whose source (offset 12) is one of ``addresses``."""
    if not addresses:
        return []
    block = [(None, LD_W_ABS, 0, 0, 12)]
    for number, (word,) in enumerate(addresses):
        last = number == len(addresses) - 1
        block.append((None, JEQ_K, 'blocked4', 'pass4' if last else 0, word))
    return block + [('blocked4', RET_K, 0, 0, 0)]


def _block6(addresses):
    """Drop IPv6 packets whose source (offsets 8-23) is one of ``addresses``."""
    if not addresses:
        return []
    block = []
    for number, words in enumerate(addresses):
        following = 'pass6' if number == len(addresses) - 1 else 'b6_%d' % (number + 1)
        for index, word in enumerate(words):
            label = 'b6_%d' % number if index == 0 else None
            block.append((label, LD_W_ABS, 0, 0, 8 + 4 * index))
            block.append((None, JEQ_K, 'blocked6' if index == 3 else 0, following, word))
    return block + [('blocked6', RET_K, 0, 0, 0)]


def _port_block(ports, drop):
    block = []
    for port in ports:
        block.append((None, JEQ_K, 0, 1, port))
        block.append((None, RET_K, 0, 0, SNAP))
    block.append((drop, RET_K, 0, 0, 0))
    return block


def build_filter(ports, blocked=()):
    """Instructions (code, jt, jf, k) keeping packets to ``ports`` (ints) that do not come
    from a ``blocked`` address (texts), or None."""
    ports = sorted(set(int(port) for port in ports))
    if len(ports) > MAX_FILTER_PORTS:
        return None
    blocked = list(blocked)
    program = [
        (None, LD_B_ABS, 0, 0, 0),
        (None, ALU_AND_K, 0, 0, 0xF0),
        (None, JEQ_K, 0, 1, 0x60),
        (None, JA, 0, 0, 'v6'),
        (None, JEQ_K, 1, 0, 0x40),
        (None, RET_K, 0, 0, 0),
    ] + _block4(_words(blocked, socket.AF_INET, MAX_BLOCKED4)) + [
        ('pass4', LD_B_ABS, 0, 0, 9),
        (None, JEQ_K, 1, 0, 6),
        (None, JEQ_K, 0, 'drop4', 17),
        (None, LD_H_ABS, 0, 0, 6),
        (None, JSET_K, 'drop4', 0, 0x1FFF),
        (None, LDX_B_MSH, 0, 0, 0),
        (None, LD_H_IND, 0, 0, 2),
    ] + _port_block(ports, 'drop4') + [
        ('v6', LD_B_ABS, 0, 0, 0),     # a no-op when nothing is blocked: 'v6' needs an instruction
    ] + _block6(_words(blocked, socket.AF_INET6, MAX_BLOCKED6)) + [
        ('pass6', LD_B_ABS, 0, 0, 6),
        (None, JEQ_K, 'ports6', 0, 6),
        (None, JEQ_K, 'ports6', 0, 17),
        (None, JEQ_K, 'drop6', 0, 58),
        (None, JEQ_K, 'drop6', 0, 59),
        (None, RET_K, 0, 0, SNAP),
        ('ports6', LD_H_ABS, 0, 0, 42),
    ] + _port_block(ports, 'drop6')
    return _assemble(program)


def pack_filter(instructions):
    """The bytes of a struct sock_filter array."""
    return b''.join(struct.pack('HBBI', code, jt, jf, k) for code, jt, jf, k in instructions)
