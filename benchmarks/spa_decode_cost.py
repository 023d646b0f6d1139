#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What one SPA packet costs portknock-fwknopd in-process (no lab, no network, no root).

Times (time.perf_counter) the path a captured packet takes in the bundled SPA daemon, from the
bare IP packet the capture socket gives (packet.parse_ip, fwknopd_main.SpaHandler.on_packet:
spa_receiver.udp_payload, SpaReceiver.decide, counters, the rate-limited refusal line) and
the decision alone (SpaReceiver.decide on the UDP payload), for:

* ``junk``: what benchmarks/spa_vs_fwknopd.py floods with: random base64 text of 150-220
  characters from ONE source address;
* ``crafted``: junk an attacker shapes to get past every check short of the HMAC (the length
  of a real SPA packet, an HMAC that could be base64 of a digest) from ONE source (the
  per-source penalty, when the receiver has one, drops it after a few) and from a new source
  address every packet (what the penalty cannot help with);
* ``legit``: distinct valid SPA packets, each from a fresh source (accepted; in-memory replay
  cache, test mode: nothing opened).

Prints microseconds per packet; asserts nothing.  The keys are random and never printed.

    python3 benchmarks/spa_decode_cost.py                 # 200000 junk packets per case
    python3 benchmarks/spa_decode_cost.py -n 50000 --only junk,crafted
    python3 -m cProfile -s tottime benchmarks/spa_decode_cost.py -n 50000 --only crafted | head -40
    python3 benchmarks/spa_decode_cost.py --rev b387f3b      # the code of a git revision (before/after)

The code measured is this checkout's ``plugins/module_utils`` (imported through a temporary
``ansible_collections/portknock/knock`` link to the repository), not the installed collection;
with ``--rev`` a git revision's (``git archive``).  The best chunk of 5000 packets is shown,
then the median: on a loaded machine compare runs made one after the other.
"""

from __future__ import absolute_import, division, print_function

import argparse
import base64
import inspect
import io
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
B64_ALPHABET = b'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
SERVER = '10.231.250.1'
FLOODER = '10.231.250.2'


def import_collection(rev=None):
    """The checkout's module_utils (or git revision ``rev``'s) as ansible_collections.portknock.knock...."""
    root = tempfile.mkdtemp(prefix='spa-cost-')
    os.makedirs(os.path.join(root, 'ansible_collections', 'portknock'))
    collection = os.path.join(root, 'ansible_collections', 'portknock', 'knock')
    if rev is None:
        os.symlink(REPO, collection)
    else:
        os.makedirs(collection)
        archive = subprocess.run(['git', '-C', REPO, 'archive', rev, 'plugins/module_utils'],
                                 check=True, stdout=subprocess.PIPE).stdout
        subprocess.run(['tar', '-x', '-C', collection], input=archive, check=True)
    sys.path.insert(0, root)
    prefix = 'ansible_collections.portknock.knock.plugins.module_utils'
    modules = {}
    for name in ('spa', 'fwknop_conf', 'knockd_daemon.spa_receiver', 'knockd_daemon.replay_cache',
                 'knockd_daemon.packet', 'knockd_daemon.fwknopd_main', 'knockd_daemon.counters',
                 'knockd_daemon.log'):
        __import__('%s.%s' % (prefix, name))
        modules[name.rsplit('.', 1)[-1]] = sys.modules['%s.%s' % (prefix, name)]
    return root, modules


def udp4(src, payload, sport=40000, dport=62201):
    udp = struct.pack('!HHHH', sport, dport, 8 + len(payload), 0) + payload
    return struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, socket.inet_aton(src),
                       socket.inet_aton(SERVER)) + udp


class StubDaemon:
    """What SpaHandler uses of the daemon: a log (to nowhere), counters (no file), no doors (test mode)."""

    def __init__(self, m):
        self.log = m['log'].KnockdLog(verbose=True, stream=io.StringIO())
        self.counters = m['counters'].DoorCounters(None)
        self.keeper = None


def build(m, key, hmac_key, penalty):
    conf = m['fwknop_conf'].parse_fwknopd_conf('MAX_SPA_PACKET_AGE 120\n', 'fwknopd.conf')
    access = ('SOURCE 10.0.0.0/8, fd42::/16\nOPEN_PORTS tcp/22\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n'
              'FW_ACCESS_TIMEOUT 30\n' % (base64.b64encode(key).decode(), base64.b64encode(hmac_key).decode()))
    stanzas = m['fwknop_conf'].parse_access_conf(access, 'access.conf')
    cache = m['replay_cache'].ReplayCache(None, conf.max_spa_packet_age, max_entries=10 ** 7)
    kwargs = {}
    if 'penalty_failures' in inspect.signature(m['spa_receiver'].SpaReceiver.__init__).parameters:
        if not penalty:
            kwargs['penalty_failures'] = 0     # penalty: the receiver's default
    elif penalty:
        return None
    receiver = m['spa_receiver'].SpaReceiver(conf, stanzas, cache, **kwargs)
    handler = m['fwknopd_main'].SpaHandler(StubDaemon(m), receiver, test_mode=True)
    return receiver, handler


def junk_payloads(rng, count=512):
    return [bytes(rng.choice(B64_ALPHABET) for _n in range(rng.randint(150, 220))) for _n in range(count)]


def crafted_payloads(rng, m, legit_length, count=512):
    """Base64 text as long as a real SPA packet whose last 43 characters could be a SHA-256 HMAC."""
    hmac_len = 43
    result = []
    for _n in range(count):
        # the first character of Rijndael text after the stripped prefix is one of 8 9 + /
        body = bytes([rng.choice(b'89+/')]) + bytes(rng.choice(B64_ALPHABET) for _n in range(legit_length - hmac_len - 1))
        mac = base64.b64encode(bytes(rng.randrange(256) for _n in range(32))).rstrip(b'=')
        result.append(body + mac)
    return result


def sources(count, start=0):
    return ['10.%d.%d.%d' % ((n >> 16) & 255, (n >> 8) & 255, n & 255) for n in range(start + 1, start + count + 1)]


CHUNK = 5000


def timed(step, count):
    """µs per call of ``step(n)`` for n in range(count), in chunks: (best chunk, median chunk).

    The best chunk is what the code costs on this machine; the median shows how much other
    load there was (2 cores shared with other work).
    """
    rates = []
    for first in range(0, count, CHUNK):
        last = min(count, first + CHUNK)
        start = time.perf_counter()
        for n in range(first, last):
            step(n)
        rates.append((time.perf_counter() - start) / (last - first) * 1e6)
    rates.sort()
    return rates[0], rates[len(rates) // 2]


def show(label, full, alone, note):
    print('%-52s %7.2f us/packet from the IP packet (median %7.2f), %7.2f in decide() (median %7.2f)  [%s]'
          % (label, full[0], full[1], alone[0], alone[1], note))
    sys.stdout.flush()


def run(label, handler, receiver, m, payloads, srcs, count):
    """µs per packet: through the handler (from the IP packet) and decide() alone."""
    parse_ip = m['packet'].parse_ip
    frames = [udp4(src, payload) for src, payload in zip(srcs, payloads)]
    n_frames = len(frames)
    reasons = {}
    on_packet = handler.on_packet

    def through_handler(n):
        data = frames[n % n_frames]
        decision = on_packet(data, parse_ip(data), 0.0)
        if n % 97 == 0:
            reasons[decision.reason] = reasons.get(decision.reason, 0) + 1

    full = timed(through_handler, count)
    decide = receiver.decide
    pairs = list(zip(payloads, srcs))
    n_pairs = len(pairs)

    def decide_alone(n):
        payload, src = pairs[n % n_pairs]
        decide(payload, src, 40000, SERVER, 62201)

    alone = timed(decide_alone, count)
    note = 'sampled: ' + ', '.join('%s %d' % (reason or 'accepted', number) for reason, number in sorted(
        reasons.items(), key=lambda item: -item[1]))
    show(label, full, alone, note)


def run_legit(handler, receiver, m, srcs, packets, tag):
    parse_ip = m['packet'].parse_ip
    half = len(packets) // 2
    frames = [udp4(src, payload) for src, payload in zip(srcs[:half], packets[:half])]
    accepted = []
    on_packet, decide = handler.on_packet, receiver.decide

    def through_handler(n):
        data = frames[n]
        accepted.append(on_packet(data, parse_ip(data), 0.0).accepted)

    def decide_alone(n):
        accepted.append(decide(packets[half + n], srcs[half + n], 40000, SERVER, 62201).accepted)

    full = timed(through_handler, half)
    alone = timed(decide_alone, len(packets) - half)
    show('legit SPA, fresh sources (%s)' % tag, full, alone, 'accepted %d of %d' % (sum(accepted), len(packets)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('-n', '--packets', type=int, default=200000, help='packets per junk case (default 200000)')
    parser.add_argument('--legit', type=int, default=5000, help='legit packets (each is encoded first; default 5000)')
    parser.add_argument('--only', default='junk,crafted,legit', help='cases: junk,crafted,legit')
    parser.add_argument('--seed', type=int, default=9421)
    parser.add_argument('--rev', help='measure the plugins/module_utils of this git revision instead of the checkout')
    args = parser.parse_args()
    root, m = import_collection(args.rev)
    try:
        rng = random.Random(args.seed)
        key, hmac_key = os.urandom(32), os.urandom(64)
        legit_length = len(m['spa'].encode(FLOODER, 'tcp/22', key, hmac_key))
        only = set(args.only.split(','))
        cases = []
        if 'junk' in only:
            cases.append(('junk, one source', junk_payloads(rng), None))
        if 'crafted' in only:
            crafted = crafted_payloads(rng, m, legit_length)
            cases.append(('crafted junk, one source', crafted, None))
            cases.append(('crafted junk, a new source per packet', crafted, 'many'))
        print('%s: python %s, %s, load %.2f; legit SPA packets are %d bytes' % (
            args.rev or 'checkout', sys.version.split()[0], time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()),
            os.getloadavg()[0], legit_length))
        for penalty in (False, True):
            built = build(m, key, hmac_key, penalty)
            if built is None:
                print('(this receiver has no per-source penalty)')
                continue
            receiver, handler = built
            tag = 'penalty on' if penalty else 'penalty off'
            for label, payloads, spread in cases:
                if spread == 'many':
                    # a fresh source per packet (frames are built per packet here: fewer of them)
                    count = min(args.packets, 100000)
                    srcs = sources(count, 1000 * 1000 if penalty else 0)
                    payloads = [payloads[n % len(payloads)] for n in range(count)]
                else:
                    count = args.packets
                    srcs = [FLOODER] * len(payloads)
                run('%s (%s)' % (label, tag), handler, receiver, m, payloads, srcs, count)
            if 'legit' in only:
                srcs = sources(args.legit, 2000000 + (args.legit if penalty else 0))
                packets = [m['spa'].encode(src, 'tcp/22', key, hmac_key).encode('ascii') for src in srcs]
                receiver, handler = build(m, key, hmac_key, penalty)       # an empty replay cache
                run_legit(handler, receiver, m, srcs, packets, tag)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
