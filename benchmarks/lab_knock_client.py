#!/usr/bin/env python3
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Knock client of the daemon benchmark (runs on a lab host).

Knocks with the collection's one sender (plugins/module_utils/knock_sender.py,
imported from a copied collection tree given by --collections), each trial from
the next address of --sources (bound, so every trial comes from its own
address), with random gaps, then measures knock-to-open: from the moment the
last knock left to the moment the protected port accepts a new connection,
probed with non-blocking connects: each SYN waits --probe-interval (default 0.25 ms)
for an answer, then a new socket sends a new SYN (the measurement is at most that late).

Prints one JSON line: a list of {"source", "ok", "ms"} per trial.
"""

import argparse
import errno
import json
import random
import select
import socket
import struct
import sys
import time


def probe_until_open(server, port, source, deadline, interval=0.00025):
    """Time (perf_counter) when a connection from ``source`` was accepted, or None.

    A SYN the firewall drops gets no answer: after ``interval`` s the socket is closed
    (which sends nothing in SYN_SENT) and a new one sends a new SYN.
    """
    linger = struct.pack('ii', 1, 0)
    while time.perf_counter() < deadline:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            sock.bind((source, 0))
            sock.setblocking(False)
            err = sock.connect_ex((server, port))
            if err == 0:
                return time.perf_counter()
            if err not in (errno.EINPROGRESS, errno.EALREADY, errno.EAGAIN):
                time.sleep(interval)
                continue
            _r, writable, _x = select.select([], [sock], [], interval)
            if writable:
                when = time.perf_counter()
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    return when
                time.sleep(interval)   # refused: not open yet for us
        finally:
            sock.close()   # closing in SYN_SENT sends nothing
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--collections', required=True, help='directory holding ansible_collections/')
    parser.add_argument('--server', required=True)
    parser.add_argument('--sequence', required=True)
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--sources', required=True, help='comma list of local addresses, used in turn')
    parser.add_argument('--count', type=int, required=True)
    parser.add_argument('--gap-min', type=float, default=0.05)
    parser.add_argument('--gap-max', type=float, default=0.3)
    parser.add_argument('--timeout', type=float, default=1.5)
    parser.add_argument('--probe-interval', type=float, default=0.25, help='ms a probe SYN waits for an answer')
    parser.add_argument('--seed', type=int, default=None)
    args = parser.parse_args()
    sys.path.insert(0, args.collections)
    from ansible_collections.portknock.knock.plugins.module_utils.knock_sender import send_knocks

    rng = random.Random(args.seed)
    sources = args.sources.split(',')
    results = []
    for trial in range(args.count):
        source = sources[trial % len(sources)]
        time.sleep(rng.uniform(args.gap_min, args.gap_max))
        send_knocks(args.server, args.sequence, source=source)
        sent = time.perf_counter()
        opened = probe_until_open(args.server, args.port, source, sent + args.timeout, args.probe_interval / 1000.0)
        results.append({'source': source, 'ok': opened is not None,
                        'ms': None if opened is None else round((opened - sent) * 1000.0, 3)})
    print(json.dumps(results))


if __name__ == '__main__':
    main()
