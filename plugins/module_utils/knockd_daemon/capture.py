# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""Packet capture without libpcap: AF_PACKET sockets, one per interface.

SOCK_DGRAM sockets deliver the network-layer packet whatever the link type
(Ethernet, loopback, PPP, tun), so packet.parse_ip reads them all.  Outgoing
packets are skipped.  The kernel receive buffer is forced to 8 MiB so a burst
does not drop knocks (``receive_buffer``; the SPA drop-in asks for
SPA_RECEIVE_BUFFER).  AF_PACKET sees packets before netfilter, so knocks the
firewall drops are seen too.  Linux only; needs CAP_NET_RAW.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import json
import socket
import struct
import subprocess

from .capture_filter import build_filter, pack_filter

ETH_P_ALL = 0x0003
SO_RCVBUFFORCE = 33
PACKET_OUTGOING = 4
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23
RECEIVE_BUFFER = 8 * 1024 * 1024
# The SPA drop-in's: a junk flood comes in bursts that it decides more slowly than the knock
# daemon parses knocks.  The kernel charges about 1.3 KiB per queued packet of SPA size (the value
# asked for, doubled, holds about 26000 of them at 16 MiB): a burst queues instead of being
# dropped.  Not more: under a flood that never stops, a legit packet waits behind the whole
# queue (26000 junk packets at 10 us each: a quarter of a second) and a deeper queue only
# makes that wait longer, it does not drop fewer packets.
SPA_RECEIVE_BUFFER = 16 * 1024 * 1024
SNAPLEN = 256   # enough for IP + extension headers + TCP/UDP header
SPA_SNAPLEN = 2048   # whole SPA datagrams: up to 1500 bytes of payload (spa.MAX_PACKET_LEN) + headers
SO_ATTACH_FILTER = 26
SO_DETACH_FILTER = 27


class CaptureError(OSError):
    pass


class Capture:
    """AF_PACKET capture on ``interfaces`` (list of names); ``snaplen``: bytes kept of each packet."""

    def __init__(self, interfaces, receive_buffer=RECEIVE_BUFFER, snaplen=SNAPLEN):
        self.interfaces = list(interfaces)
        self.sockets = []
        self.outgoing_filtered = set()   # sockets the kernel keeps outgoing packets from
        self.snaplen = int(snaplen)
        self._buffer = bytearray(self.snaplen)
        try:
            for name in self.interfaces:
                sock, filtered = self._open(name, receive_buffer)
                self.sockets.append(sock)
                if filtered:
                    self.outgoing_filtered.add(sock)
        except OSError:
            self.close()
            raise

    @staticmethod
    def _open(name, receive_buffer):
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        except OSError as error:
            raise CaptureError(error.errno, 'could not open %s: %s' % (name, error.strerror))
        try:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, receive_buffer)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            try:
                sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
                filtered = True
            except OSError:
                filtered = False  # kernel < 4.20: outgoing packets are skipped in read()
            sock.bind((name, ETH_P_ALL))  # Python applies htons() itself
            sock.setblocking(False)
        except OSError as error:
            sock.close()
            raise CaptureError(error.errno, 'could not open %s: %s' % (name, error.strerror))
        return sock, filtered

    def set_ports(self, ports, blocked=()):
        """Let only packets to ``ports`` (plus IPv6 with extension headers) through, none from the
        ``blocked`` addresses (texts; capture_filter caps them); True if attached."""
        instructions = build_filter(ports, blocked)
        attached = True
        for sock in self.sockets:
            if instructions is None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
                except OSError:
                    pass
                attached = False
                continue
            program = ctypes.create_string_buffer(pack_filter(instructions))
            fprog = struct.pack('HL', len(instructions), ctypes.addressof(program))
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
            except OSError:
                attached = False
        return attached

    def fileno_map(self):
        return dict((sock.fileno(), sock) for sock in self.sockets)

    def read(self, sock, limit=256):
        """Up to ``limit`` received network-layer packets waiting on ``sock`` (bytes)."""
        packets = []
        if sock in self.outgoing_filtered:
            # Only incoming packets arrive: recv() gives the bytes in one call.
            recv = sock.recv
            append = packets.append
            snaplen = self.snaplen
            try:
                for _count in range(limit):
                    append(recv(snaplen))
            except (BlockingIOError, InterruptedError):
                pass
            return packets
        buffer = self._buffer
        for _count in range(limit):
            try:
                size, address = sock.recvfrom_into(buffer)
            except (BlockingIOError, InterruptedError):
                break
            if address[2] == PACKET_OUTGOING:
                continue
            packets.append(bytes(buffer[:size]))
        return packets

    def close(self):
        for sock in self.sockets:
            try:
                sock.close()
            except OSError:
                pass
        self.sockets = []


def local_addresses(interfaces=None, run=subprocess.run):
    """Numeric addresses (IPv4 and IPv6) configured on ``interfaces`` (all when None).

    Reads ``ip -j addr``; returns a set (empty if ``ip`` fails).
    """
    try:
        result = run(['ip', '-j', 'addr', 'show'], check=False, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        data = json.loads(result.stdout.decode('utf-8', 'replace') or '[]')
    except (OSError, ValueError):
        return set()
    wanted = set(interfaces) if interfaces else None
    addresses = set()
    for link in data if isinstance(data, list) else []:
        if not isinstance(link, dict):
            continue
        if wanted is not None and link.get('ifname') not in wanted:
            continue
        for info in link.get('addr_info') or []:
            local = info.get('local') if isinstance(info, dict) else None
            if local:
                addresses.add(str(local).split('%', 1)[0])
    return addresses


NETLINK_ROUTE = 0
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100


class AddressWatcher:
    """A netlink socket that becomes readable when an interface address changes.

    The daemon then re-reads the addresses (local_addresses); it also re-reads
    them periodically in case netlink is unavailable.
    """

    def __init__(self):
        self.sock = None
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
            sock.bind((0, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
            sock.setblocking(False)
            self.sock = sock
        except (OSError, AttributeError):
            self.sock = None

    def fileno(self):
        return self.sock.fileno() if self.sock is not None else None

    def drain(self):
        """Consume pending notifications; True if there was at least one."""
        changed = False
        while self.sock is not None:
            try:
                if not self.sock.recv(65536):
                    break
                changed = True
            except (BlockingIOError, InterruptedError):
                break
            except OSError:   # ENOBUFS: notifications lost, re-read anyway
                changed = True
                break
        return changed

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
