#!/usr/bin/env python3
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: Debian's fwknopd 2.6.10 vs the bundled drop-in (scripts/portknock-fwknopd), SPA.

    python3 benchmarks/spa_vs_fwknopd.py [--quick] [--only fwknopd|bundled]   (repo root, as root)

Runs in two network namespaces joined by a veth pair (tests/integration/netns_lab.py:
lab address block 250, removed on exit, also on failure or a signal).  Both daemons, one
after the other, get the same fwknopd.conf and access.conf (``SOURCE ANY``, ``OPEN_PORTS
tcp/2200``, random keys written 0600 and never printed, ``FW_ACCESS_TIMEOUT 3``), on
the server namespace, where port 2200 has a listener and is DROPped otherwise:

1. SPA-to-open latency: from the moment the SPA packet (the collection's codec,
   plugins/module_utils/spa.py) left a fresh source address of the client namespace to the
   moment a TCP connection from that address to port 2200 is accepted (non-blocking connect
   probes, benchmarks/lab_knock_client.probe_until_open), random gaps of 50-300 ms;
2. legit SPA opened while junk UDP (random base64 text of SPA length) hits the SPA port at
   increasing rates up to the sender's maximum (the achieved rate is printed);
3. RSS of the daemon idle and after each flood step;
4. CPU seconds (user + system) of the daemon per 100k packets sent at it.

It prints numbers and ratios; it asserts nothing.  See benchmarks/README.md.
"""

import argparse
import atexit
import base64
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from bench_report import end_on_signals, flood_row, flood_sent, latency_result, listener, say, summary

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(REPO, 'tests', 'integration'))   # the namespace lab and its helpers
from lab_util import stop_process, write_private  # noqa: E402
from netns_lab import netns_pair  # noqa: E402
SPA_PORT = 62201
PROTECTED = 2200
ACCESS_TIMEOUT = 3
FWKNOPD = shutil.which('fwknopd') or '/usr/sbin/fwknopd'
BUNDLED = os.path.join(REPO, 'scripts', 'portknock-fwknopd')



# -- the parts that run inside the client namespace (this script, re-executed) -----------------
def collections_dir(work):
    """A directory holding ansible_collections/portknock/knock -> this repository."""
    base = os.path.join(work, 'collections', 'ansible_collections', 'portknock')
    if not os.path.isdir(base):
        os.makedirs(base)
        os.symlink(REPO, os.path.join(base, 'knock'))
    return os.path.join(work, 'collections')


def client_trials(args):
    """Send one SPA packet per trial from the next source; print [{source, ok, ms}]."""
    sys.path.insert(0, args.collections)
    sys.path.insert(0, HERE)
    from ansible_collections.portknock.knock.plugins.module_utils import spa
    from lab_knock_client import probe_until_open
    with open(args.keys) as handle:
        keys = json.load(handle)
    key, hmac_key = base64.b64decode(keys['key']), base64.b64decode(keys['hmac_key'])
    rng = random.Random(args.seed)
    results = []
    sources = args.sources.split(',')
    for trial in range(args.count):
        source = sources[trial % len(sources)]
        time.sleep(rng.uniform(args.gap_min, args.gap_max))
        data = spa.encode(source, 'tcp/%d' % args.port, key, hmac_key).encode('ascii')
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((source, 0))
            sock.sendto(data, (args.server, args.spa_port))
            sent = time.perf_counter()
        finally:
            sock.close()
        opened = probe_until_open(args.server, args.port, source, sent + args.timeout, 0.00025)
        results.append({'source': source, 'ok': opened is not None,
                        'ms': None if opened is None else round((opened - sent) * 1000.0, 3)})
    print(json.dumps(results))


def client_flood(args):
    """Junk UDP to the SPA port at ``rate`` pps (0: as fast as possible) until the stop file exists."""
    rng = random.Random()
    alphabet = b'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
    junk = [bytes(rng.choice(alphabet) for _ in range(rng.randint(150, 220))) for _ in range(512)]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.source, 0))
    target = (args.server, args.spa_port)
    sent, batch = 0, 32
    start = time.perf_counter()
    deadline = start + args.duration
    next_check = start
    while True:
        now = time.perf_counter()
        if now >= next_check:
            if os.path.exists(args.stop) or now >= deadline:
                break
            next_check = now + 0.05
        if args.rate:
            due = start + sent / float(args.rate)
            if due > now:
                time.sleep(min(0.01, due - now))
                continue
        for i in range(batch):
            try:
                sock.sendto(junk[(sent + i) & 511], target)
            except (BlockingIOError, OSError):
                pass
        sent += batch
    seconds = time.perf_counter() - start
    print(json.dumps({'sent': sent, 'seconds': round(seconds, 3), 'pps': round(sent / seconds, 1)}))


# -- the namespaces and the daemons -------------------------------------------------------------
def proc_stats(pid):
    """(rss KiB, cpu seconds) of ``pid``."""
    with open('/proc/%d/status' % pid) as handle:
        rss = int([line for line in handle if line.startswith('VmRSS')][0].split()[1])
    with open('/proc/%d/stat' % pid) as handle:
        fields = handle.read().rsplit(')', 1)[1].split()
    return rss, (int(fields[11]) + int(fields[12])) / float(os.sysconf('SC_CLK_TCK'))


class DaemonLog(threading.Thread):
    """A daemon's output: the first lines kept (start-up, errors), the rest only counted
    (under a flood a line per refused packet would fill the disk)."""

    def __init__(self, stream, keep=60):
        threading.Thread.__init__(self, daemon=True)
        self.stream, self.keep, self.head, self.lines = stream, keep, [], 0
        self.start()

    def run(self):
        pending = b''
        while True:
            chunk = self.stream.read1(65536) if hasattr(self.stream, 'read1') else self.stream.read(65536)
            if not chunk:
                break
            self.lines += chunk.count(b'\n')
            if len(self.head) < self.keep:
                pending += chunk
                parts = pending.split(b'\n')
                pending = parts.pop()
                self.head.extend(p.decode('utf-8', 'replace') for p in parts[:self.keep - len(self.head)])

    def text(self):
        return '\n'.join(self.head)


class Daemon:
    def __init__(self, name, argv_of, pidfile_name, firewall, flood=True):
        self.name, self.argv_of, self.pidfile_name, self.firewall = name, argv_of, pidfile_name, firewall
        self.flood = flood
        self.proc = None
        self.pid = None

    def start(self, bench):
        run_dir = os.path.join(bench.work, 'run-' + self.name)
        shutil.rmtree(run_dir, ignore_errors=True)
        os.mkdir(run_dir, 0o700)
        conf = write_private(os.path.join(bench.work, 'fwknopd.conf'),
                             'PCAP_INTF %s;\nPCAP_FILTER udp port %d;\nFWKNOP_RUN_DIR %s;\n'
                             'ENABLE_IPT_FORWARDING N;\nENABLE_DIGEST_PERSISTENCE Y;\n'
                             % (bench.server.dev, SPA_PORT, run_dir))
        pidfile = os.path.join(run_dir, self.pidfile_name)
        argv = self.argv_of(conf, bench.access, bench.server.dev, pidfile, os.path.join(run_dir, 'digest.cache'),
                            run_dir)
        bench.server.run('iptables -w -F INPUT; nft delete table inet pkspa 2>/dev/null; ' + self.firewall,
                         check=True)
        self.proc = bench.server.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        bench.children.append(self.proc)
        self.log = DaemonLog(self.proc.stdout)
        self.pid = self.proc.pid      # ip netns exec execs the daemon: the same process
        return self.pid

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)
        if getattr(self, 'log', None):
            self.log.join(5)


def fwknopd_argv(conf, access, dev, pidfile, digest, _run_dir):
    return [FWKNOPD, '-f', '-c', conf, '-a', access, '-i', dev, '-p', pidfile, '-d', digest]


def bundled_argv(door):
    def argv(conf, access, dev, pidfile, digest, run_dir):
        return [sys.executable, BUNDLED, '-f', '-c', conf, '-a', access, '-i', dev, '-p', pidfile, '-d', digest,
                '--state-file', os.path.join(run_dir, 'state.json'), '--counters-file', '',
                '-K', 'tcp/%d=%s' % (PROTECTED, door)]
    return argv


# Port 2200 is DROPped unless the daemon opened it for the source: fwknopd inserts its own
# FWKNOP_INPUT jump and rules; the bundled daemon's kernel doors need the rule that reads them.
FIREWALL_FWKNOPD = 'iptables -w -A INPUT -p tcp --dport %d -j DROP' % PROTECTED
FIREWALL_RECENT = ('iptables -w -A INPUT -p tcp --dport %d -m recent --name pkspa --rcheck --seconds %d -j ACCEPT; '
                   '%s' % (PROTECTED, ACCESS_TIMEOUT, FIREWALL_FWKNOPD))
FIREWALL_NFT = ('nft -f - <<EOF\ntable inet pkspa {\n set allow4 { type ipv4_addr; flags timeout; }\n'
                ' chain input { type filter hook input priority -10; policy accept;\n'
                '  tcp dport %d ip saddr @allow4 accept\n  tcp dport %d drop\n }\n}\nEOF' % (PROTECTED, PROTECTED))


class Bench:
    def __init__(self, server, client, work):
        self.server, self.client, self.work = server, client, work
        self.children = []
        self.collections = collections_dir(work)
        key, hmac_key = os.urandom(32), os.urandom(64)
        self.keys = write_private(os.path.join(work, 'keys.json'), json.dumps(
            {'key': base64.b64encode(key).decode(), 'hmac_key': base64.b64encode(hmac_key).decode()}))
        self.access = write_private(os.path.join(work, 'access.conf'),
                                    'SOURCE ANY\nOPEN_PORTS tcp/%d\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n'
                                    'HMAC_DIGEST_TYPE SHA256\nFW_ACCESS_TIMEOUT %d\n'
                                    % (PROTECTED, base64.b64encode(key).decode(),
                                       base64.b64encode(hmac_key).decode(), ACCESS_TIMEOUT))
        script = os.path.join(work, 'listener.py')
        with open(script, 'w') as handle:
            handle.write(listener(PROTECTED))
        self.children.append(server.spawn([sys.executable, script]))

    def sources(self, count):
        """``count`` addresses of block 250 added to the client's veth (/32), routed back by the server."""
        taken = set([self.server.addr4, self.client.addr4])
        pair = int(self.server.addr4.rsplit('.', 1)[1]) // 4 * 4       # the pair's /30
        free = ['10.231.250.%d' % n for n in range(1, 255) if not pair <= n < pair + 4]
        free = [a for a in free if a not in taken][:count]
        if len(free) < count:
            raise RuntimeError('not enough addresses')
        self.client.run('; '.join('ip addr add %s/32 dev %s' % (a, self.client.dev) for a in free), check=True)
        self.server.run('ip route replace 10.231.250.0/24 dev %s' % self.server.dev, check=True)
        return free

    def trials(self, sources, count, timeout=1.5, gap=(0.05, 0.3)):
        out = self.client.run('%s %s trials --collections %s --keys %s --server %s --port %d --spa-port %d '
                              '--sources %s --count %d --gap-min %s --gap-max %s --timeout %s'
                              % (sys.executable, os.path.abspath(__file__), self.collections, self.keys,
                                 self.server.addr4, PROTECTED, SPA_PORT, ','.join(sources), count, gap[0], gap[1],
                                 timeout), timeout=900)
        lines = out.stdout.strip().splitlines()
        if not lines or not lines[-1].startswith('['):
            raise RuntimeError('client trials failed:\n%s' % out.stdout[-2000:])
        return json.loads(lines[-1])


def wait_ready(bench, source):
    for _attempt in range(30):
        if bench.trials([source], 1, timeout=1.0, gap=(0.2, 0.2))[0]['ok']:
            time.sleep(ACCESS_TIMEOUT + 2.0)   # its door closes
            return True
    return False


def flood_step(bench, daemon, rate, knocks, sources, rows):
    stop = os.path.join(bench.work, 'flood.stop')
    if os.path.exists(stop):
        os.unlink(stop)
    before = proc_stats(daemon.pid)
    proc = bench.client.spawn([sys.executable, os.path.abspath(__file__), 'flood', '--server', bench.server.addr4,
                               '--spa-port', str(SPA_PORT), '--source', bench.client.addr4, '--rate', str(rate),
                               '--duration', '300', '--stop', stop], stdout=subprocess.PIPE,
                              universal_newlines=True)
    bench.children.append(proc)
    try:
        time.sleep(1.0)
        trials = bench.trials(sources, knocks)
    finally:
        open(stop, 'w').close()
        out, _err = proc.communicate(timeout=60)
    flood = flood_sent(out)
    time.sleep(ACCESS_TIMEOUT + 1.5)
    after = proc_stats(daemon.pid)
    row = flood_row(rate, flood, trials, flood['sent'] + len(trials), before, after, 'SPA')
    row['open_ms_p50'] = statistics.median([t['ms'] for t in trials if t['ok']]) if row['ok'] else None
    rows.append(row)
    return row


def measure(bench, daemon, fresh, pool, plan):
    say('== %s' % daemon.name)
    daemon.start(bench)
    try:
        time.sleep(1.0)
        if daemon.proc.poll() is not None:
            raise RuntimeError('%s exited (%s):\n%s' % (daemon.name, daemon.proc.returncode, daemon.log.text()))
        if not wait_ready(bench, pool[0]):
            raise RuntimeError('%s never opened the door:\n%s' % (daemon.name, daemon.log.text()))
        idle = proc_stats(daemon.pid)
        say('  idle RSS %.1f MiB' % (idle[0] / 1024.0))
        result = latency_result(daemon.name, idle[0], bench.trials(fresh, len(fresh)), 'SPA-to-open')
        time.sleep(ACCESS_TIMEOUT + 1.0)
        offset = 1
        for rate in (plan['rates'] if daemon.flood else []):
            sources = [pool[(offset + i) % len(pool)] for i in range(plan['flood_knocks'])]
            offset += plan['flood_knocks']
            flood_step(bench, daemon, rate, plan['flood_knocks'], sources, result['flood'])
        result['log_lines'] = daemon.log.lines
        return result
    finally:
        daemon.stop()


def report(results, plan):
    summary(results, 'fwknopd')
    say('')
    say(json.dumps({'plan': plan, 'results': results}))


PLANS = {
    'full': {'latency_knocks': 40, 'flood_knocks': 20, 'rates': [1000, 5000, 20000, 50000, 0, 0]},
    'quick': {'latency_knocks': 30, 'flood_knocks': 10, 'rates': [5000, 0]},
}


def main():
    if len(sys.argv) > 1 and sys.argv[1] in ('trials', 'flood'):
        sub = argparse.ArgumentParser()
        sub.add_argument('what')
        sub.add_argument('--server', required=True)
        sub.add_argument('--spa-port', type=int, default=SPA_PORT)
        if sys.argv[1] == 'trials':
            for name in ('--collections', '--keys', '--sources'):
                sub.add_argument(name, required=True)
            sub.add_argument('--port', type=int, required=True)
            sub.add_argument('--count', type=int, required=True)
            sub.add_argument('--gap-min', type=float, default=0.05)
            sub.add_argument('--gap-max', type=float, default=0.3)
            sub.add_argument('--timeout', type=float, default=1.5)
            sub.add_argument('--seed', type=int, default=None)
            return client_trials(sub.parse_args())
        sub.add_argument('--source', required=True)
        sub.add_argument('--rate', type=int, default=0)
        sub.add_argument('--duration', type=float, default=60)
        sub.add_argument('--stop', required=True)
        return client_flood(sub.parse_args())

    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--quick', action='store_true', help='fewer flood steps and packets (smoke run)')
    parser.add_argument('--only', action='append', default=[], choices=['fwknopd', 'bundled', 'bundled nft'])
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit('run as root (network namespaces)')
    plan = PLANS['quick' if args.quick else 'full']
    daemons = []
    if not args.only or 'fwknopd' in args.only:
        if not os.path.exists(FWKNOPD):
            raise SystemExit('Debian fwknopd (fwknop-server) is not installed')
        daemons.append(Daemon('fwknopd', fwknopd_argv, 'fwknopd.pid', FIREWALL_FWKNOPD))
    if not args.only or 'bundled' in args.only or 'bundled nft' in args.only:
        if os.path.exists(BUNDLED):
            for daemon in (Daemon('bundled', bundled_argv('recent:pkspa'), 'fwknopd.pid', FIREWALL_RECENT),
                           Daemon('bundled nft', bundled_argv('nft:inet/pkspa/allow4'), 'fwknopd.pid', FIREWALL_NFT,
                                  flood=False)):
                if not args.only or daemon.name in args.only:
                    daemons.append(daemon)
        else:
            say('(no %s yet: the bundled daemon is not measured)' % BUNDLED)

    end_on_signals()
    started = time.monotonic()
    work = tempfile.mkdtemp(prefix='pkbench-spa-')
    os.chmod(work, 0o700)
    atexit.register(shutil.rmtree, work, True)
    bench = None
    try:
        with netns_pair('spab') as (server, client):
            bench = Bench(server, client, work)
            atexit.register(lambda: [p.kill() for p in bench.children if p.poll() is None])
            say('namespaces: server %s (%s), client %s; load average %s' % (
                server.addr4, server.name, client.addr4, ' '.join(open('/proc/loadavg').read().split()[:3])))
            addresses = bench.sources(plan['latency_knocks'] * len(daemons) + 60)
            results = []
            for number, daemon in enumerate(daemons):
                fresh = addresses[number * plan['latency_knocks']:(number + 1) * plan['latency_knocks']]
                pool = addresses[len(daemons) * plan['latency_knocks']:]
                results.append(measure(bench, daemon, fresh, pool, plan))
            report(results, plan)
    finally:
        for daemon in daemons:
            daemon.stop()
        if bench is not None:
            for proc in bench.children:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        say('(%.0f s)' % (time.monotonic() - started))


if __name__ == '__main__':
    main()
