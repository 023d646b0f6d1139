#!/usr/bin/env python3
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SYN flood sender for the daemon benchmark (runs on a lab host, needs CAP_NET_RAW).

Sends TCP SYNs with spoofed source addresses (SOURCES distinct addresses in a
private range no lab host uses) to the knock ports of ``--target``, at
``--rate`` packets per second (0 = as fast as this sender can), until
``--stop-file`` exists or ``--duration`` seconds passed.  Source number i
always knocks port ``ports[i % len(ports)]`` with a fixed source port, so the
flood is a flood of knocks (a third of the sources start attempts) and not a
random walk that completes sequences by chance.

Prints one JSON line: {"sent": N, "seconds": S, "pps": N/S, "errors": E}.
Standard library only.
"""

import argparse
import json
import os
import socket
import struct
import time


def checksum(data):
    if len(data) % 2:
        data += b'\0'
    total = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def syn_packet(src, dst, sport, dport, ident):
    src_b, dst_b = socket.inet_aton(src), socket.inet_aton(dst)
    tcp = struct.pack('!HHIIBBHHH', sport, dport, ident * 7919, 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = src_b + dst_b + struct.pack('!BBH', 0, socket.IPPROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack('!H', checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 40, ident & 0xFFFF, 0, 64, socket.IPPROTO_TCP, 0, src_b, dst_b)
    ip = ip[:10] + struct.pack('!H', checksum(ip)) + ip[12:]
    return ip + tcp


def build(target, ports, prefix, sources):
    base = struct.unpack('!I', socket.inet_aton(prefix))[0]
    packets = []
    for i in range(sources):
        src = socket.inet_ntoa(struct.pack('!I', base + i))
        packets.append(syn_packet(src, target, 1024 + (i * 7) % 60000, ports[i % len(ports)], i))
    return packets


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--target', required=True)
    parser.add_argument('--ports', required=True, help='comma list of TCP ports')
    parser.add_argument('--rate', type=float, default=0, help='packets/s, 0 = maximum')
    parser.add_argument('--duration', type=float, default=60)
    parser.add_argument('--stop-file', default='/tmp/pkbench-flood.stop')
    parser.add_argument('--prefix', default='172.31.0.0', help='first spoofed source address')
    parser.add_argument('--sources', type=int, default=65536)
    args = parser.parse_args()
    ports = [int(p) for p in args.ports.split(',')]
    packets = build(args.target, ports, args.prefix, args.sources)
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
    send = sock.sendto
    addr = (args.target, 0)
    count = len(packets)
    sent = errors = index = 0
    batch = 64
    start = time.monotonic()
    end = start + args.duration
    next_check = start
    stop_file = args.stop_file
    exists = os.path.exists
    while True:
        now = time.monotonic()
        if now >= next_check:
            if now >= end or exists(stop_file):
                break
            next_check = now + 0.05
        if args.rate > 0:
            due = int((now - start) * args.rate) - sent
            if due <= 0:
                time.sleep(0.0005)
                continue
            todo = min(due, 1024)
        else:
            todo = batch
        for _packet in range(todo):
            try:
                send(packets[index], addr)
                sent += 1
            except OSError:   # ENOBUFS: the sender is saturated
                errors += 1
            index += 1
            if index == count:
                index = 0
    seconds = time.monotonic() - start
    print(json.dumps({'sent': sent, 'seconds': round(seconds, 3), 'pps': round(sent / seconds, 1),
                      'errors': errors}))


if __name__ == '__main__':
    main()
