#!/usr/bin/python3
"""Lab probe (test helper): run knock/sleep/connect steps from this host, print JSON results.

pkprobe '[["knock", "10.0.0.1", 1600, "tcp"], ["sleep", 0.2], ["connect", "10.0.0.1", 22]]'
A TCP knock is one SYN (non-blocking connect, then close: no retransmission); a UDP knock
is one datagram; connect is a full handshake within 1 s (True) or not (False).
"""
import json
import socket
import struct
import sys
import time


def family(addr):
    return socket.AF_INET6 if ':' in addr else socket.AF_INET


def knock(addr, port, proto='tcp'):
    if proto == 'udp':
        sock = socket.socket(family(addr), socket.SOCK_DGRAM)
        sock.sendto(b'\x00', (addr, port))
        sock.close()
        return None
    sock = socket.socket(family(addr), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    sock.setblocking(False)
    sock.connect_ex((addr, port))
    sock.close()
    time.sleep(0.1)
    return None


def connect(addr, port):
    try:
        sock = socket.create_connection((addr, port), timeout=1)
    except OSError:
        return False
    sock.close()
    return True


results = []
for step in json.loads(sys.argv[1]):
    if step[0] == 'knock':
        knock(*step[1:])
    elif step[0] == 'sleep':
        time.sleep(step[1])
    elif step[0] == 'connect':
        results.append(connect(*step[1:]))
print(json.dumps(results))
