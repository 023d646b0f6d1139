# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket
import struct

from hypothesis import given, settings, strategies as st

from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon import capture_filter as cf
from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.packet import parse_ip


def run_bpf(program, data):
    """A tiny classic-BPF interpreter for the opcodes build_filter uses (kernel semantics)."""
    acc = x = 0
    pc = 0
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        if code == cf.LD_B_ABS:
            if k >= len(data):
                return 0
            acc = data[k]
        elif code == cf.LD_W_ABS:
            if k + 4 > len(data):
                return 0
            acc = struct.unpack_from('!I', data, k)[0]
        elif code == cf.JA:
            pc += k
        elif code == cf.LD_H_ABS:
            if k + 2 > len(data):
                return 0
            acc = struct.unpack_from('!H', data, k)[0]
        elif code == cf.LD_H_IND:
            if x + k + 2 > len(data):
                return 0
            acc = struct.unpack_from('!H', data, x + k)[0]
        elif code == cf.LDX_B_MSH:
            if k >= len(data):
                return 0
            x = 4 * (data[k] & 0x0F)
        elif code == cf.ALU_AND_K:
            acc &= k
        elif code == cf.JEQ_K:
            pc += jt if acc == k else jf
        elif code == cf.JSET_K:
            pc += jt if acc & k else jf
        elif code == cf.RET_K:
            return k
        else:
            raise AssertionError('unexpected opcode %#x' % code)


def v4(proto, dport, frag=0, ihl=5, src='10.0.0.2'):
    l4 = struct.pack('!HH', 40000, dport) + b'\x00' * 16
    return struct.pack('!BBHHHBBH4s4s', 0x40 | ihl, 0, 20 + 4 * (ihl - 5) + len(l4), 1, frag, 64, proto, 0,
                       socket.inet_aton(src), socket.inet_aton('10.0.0.1')) + b'\x01' * 4 * (ihl - 5) + l4


def v6(next_header, dport, ext=b'', src='::'):
    l4 = struct.pack('!HH', 40000, dport) + b'\x00' * 16
    return struct.pack('!IHBB16s16s', 0x60000000, len(ext) + len(l4), next_header, 64,
                       socket.inet_pton(socket.AF_INET6, src), b'\x00' * 16) + ext + l4


PROGRAM = cf.build_filter([2222, 3333, 4444, 5001])
BLOCKING = cf.build_filter([2222, 3333, 4444, 5001], ['10.0.0.2', '::'])


def test_keeps_knock_ports_only():
    assert run_bpf(PROGRAM, v4(6, 2222))
    assert run_bpf(PROGRAM, v4(17, 5001))
    assert run_bpf(PROGRAM, v4(6, 4444, ihl=7))
    assert not run_bpf(PROGRAM, v4(6, 22))
    assert not run_bpf(PROGRAM, v4(1, 2222))
    assert not run_bpf(PROGRAM, v4(6, 2222, frag=5))
    assert run_bpf(PROGRAM, v6(6, 3333))
    assert not run_bpf(PROGRAM, v6(17, 53))
    assert not run_bpf(PROGRAM, v6(58, 2222))
    assert run_bpf(PROGRAM, v6(0, 80, ext=b'\x06\x00' + b'\x00' * 6))   # ext headers: userspace decides
    assert not run_bpf(PROGRAM, b'\x00' * 40)


def test_blocked_sources_are_dropped_in_the_kernel_and_no_one_else():
    blocked = ['10.0.0.%d' % n for n in range(3, 3 + cf.MAX_BLOCKED4)] + ['not an address', '10.0.0.3']
    blocked += ['fd00::%x' % n for n in range(1, 1 + cf.MAX_BLOCKED6)]
    program = cf.build_filter(range(1000, 1000 + cf.MAX_FILTER_PORTS), blocked + ['10.9.9.9', 'fd00::ffff'])
    for port in (1000, 1000 + cf.MAX_FILTER_PORTS - 1):
        assert run_bpf(program, v4(17, port))                       # 10.0.0.2: not blocked
        assert run_bpf(program, v4(17, port, src='10.0.0.%d' % (3 + cf.MAX_BLOCKED4)))
        assert run_bpf(program, v6(17, port, src='fd00::%x' % (1 + cf.MAX_BLOCKED6)))
        assert run_bpf(program, v6(17, port, src='fd01::1'))        # same last word, other prefix
        assert run_bpf(program, v6(17, port, src='fe00::1'))
        assert not run_bpf(program, v4(17, 999))
        for source in blocked[:cf.MAX_BLOCKED4]:
            assert not run_bpf(program, v4(17, port, src=source)), source
        for source in blocked[-cf.MAX_BLOCKED6:]:
            assert not run_bpf(program, v6(17, port, src=source)), source
            assert not run_bpf(program, v6(0, port, ext=b'\x11\x00' + b'\x00' * 6, src=source))
        assert run_bpf(program, v4(17, port, src='10.9.9.9'))       # beyond the cap: the daemon decides
        assert run_bpf(program, v6(17, port, src='fd00::ffff'))
    assert len(program) < 4096
    assert cf.build_filter([2222], []) == cf.build_filter([2222])
    only6 = cf.build_filter([2222], ['fd00::1'])
    assert run_bpf(only6, v4(6, 2222, src='0.0.0.0')) and not run_bpf(only6, v6(6, 2222, src='fd00::1'))


def test_too_many_ports_means_no_filter():
    assert cf.build_filter(range(1000, 1000 + cf.MAX_FILTER_PORTS + 1)) is None
    assert len(cf.build_filter(range(1000, 1000 + cf.MAX_FILTER_PORTS))) < 4096
    assert len(cf.pack_filter(PROGRAM)) == 8 * len(PROGRAM)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=80))
def test_filter_never_drops_what_the_parser_would_accept(data):
    packet = parse_ip(data)
    if packet is not None and packet.dport in (2222, 3333, 4444, 5001):
        assert run_bpf(PROGRAM, data)
        assert bool(run_bpf(BLOCKING, data)) == (packet.src not in ('10.0.0.2', '::'))
