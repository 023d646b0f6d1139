#!/usr/bin/env python3
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: Debian's knockd 0.8 vs the collection's bundled daemon, on lab hosts.

    python3 benchmarks/daemon_vs_knockd.py [--quick] [--keep-lab]   (repo root, as root)

Brings up its own lab (lab/pklab.py, 3 hosts: server, client, flooder) and
always tears it down.  For each implementation, one after the other on the
same hosts, with the same knockd.conf stanza (start command inserts an ACCEPT
for %IP% on a protected port with a listener, stop command deletes it; the
knock ports and the protected port are DROPped otherwise):

1. knock-to-open latency (last knock sent -> the protected port accepts a new
   connection) over >= 30 knocks, each from a fresh source address, random gaps;
2. legit-knock success rate while SYNs from many spoofed sources hit the knock
   ports at increasing rates (the rate the sender really achieved is reported);
3. RSS of the daemon idle and after each flood step;
4. CPU seconds of the daemon per 100k packets sent at it.

The bundled daemon is also measured with the same rule written so that its
iptables fast path does not take it (``-m tcp`` spelled out: one iptables
process per door, as before the fast path), and with a fail-closed kernel door
(``-K recent:NAME``: no shell command, the kernel list holds the expiry).
It prints numbers; it asserts nothing.  See benchmarks/README.md.
"""

import argparse
import ipaddress
import json
import os
import random
import subprocess
import sys
import time

from bench_report import end_on_signals, flood_row, flood_sent, latency_result, listener, say, summary

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB_PODMAN = os.path.join(REPO, 'lab', 'lab-podman')   # podman with the lab's settings
LAB = 'bench-daemon'
PKLAB = os.path.join(REPO, 'lab', 'pklab.py')
REMOTE = '/opt/pkbench'                       # on the hosts
COLLECTIONS = REMOTE + '/collections'         # holds ansible_collections/portknock/knock
KNOCK_PORTS = (7001, 7003, 7002)
SEQUENCE = ','.join(str(p) for p in KNOCK_PORTS)
PROTECTED = 2200
CMD_TIMEOUT = 2
RECENT = 'pkbench'
SPOOF_PREFIX = '172.31.0.0'                   # private range routed nowhere, no lab host in it
ENV = dict(os.environ)   # podman runs through LAB_PODMAN, which applies the lab's settings

KNOCKD_CONF = """[options]
    Interface = eth0

[bench]
    sequence      = %(seq)s
    seq_timeout   = 5
    tcpflags      = syn
    start_command = /usr/sbin/iptables -I INPUT -s %%IP%% -p tcp --dport %(port)d -j ACCEPT
    cmd_timeout   = %(timeout)d
    stop_command  = /usr/sbin/iptables -D INPUT -s %%IP%% -p tcp --dport %(port)d -j ACCEPT
""" % {'seq': SEQUENCE, 'port': PROTECTED, 'timeout': CMD_TIMEOUT}
# The same rule written with the explicit ``-m tcp`` that iptables adds by itself (``iptables -S``
# shows the same line): the daemon's iptables fast path does not take this form, so the
# daemon runs one iptables process per start and stop, as before the fast path.
KNOCKD_CONF_NO_FAST = KNOCKD_CONF.replace('-p tcp --dport', '-p tcp -m tcp --dport')

LISTENER = listener(PROTECTED)

DAEMON = COLLECTIONS + '/ansible_collections/portknock/knock/scripts/portknock-knockd'
IMPLEMENTATIONS = [
    # name, command line, firewall extra rule, measure flood?
    ('knockd 0.8', ['/usr/sbin/knockd', '-c', '/etc/pkbench/knockd.conf', '-i', 'eth0'], False, True),
    ('daemon', ['/usr/bin/python3', DAEMON, '-c', '/etc/pkbench/knockd.conf', '-i', 'eth0',
                '--state-file', '/run/pkbench/state.json'], False, True),
    ('daemon, no fast path', ['/usr/bin/python3', DAEMON, '-c', '/etc/pkbench/knockd-no-fast.conf', '-i', 'eth0',
                              '--state-file', '/run/pkbench/state.json'], False, False),
    ('daemon -K recent', ['/usr/bin/python3', DAEMON, '-c', '/etc/pkbench/knockd.conf', '-i', 'eth0',
                          '--state-file', '/run/pkbench/state.json', '-K', 'bench=recent:' + RECENT],
     True, False),
]


def run(cmd, check=True, timeout=600, input_text=None):
    result = subprocess.run(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False,
                            universal_newlines=True, timeout=timeout, input=input_text)
    if check and result.returncode != 0:
        raise RuntimeError('command failed (%d): %s\n%s%s' % (
            result.returncode, ' '.join(cmd), result.stdout[-2000:], result.stderr[-2000:]))
    return result


class Host:
    def __init__(self, info):
        self.name = info['name']
        self.container = info['container']
        self.ipv4 = info['ipv4']

    def sh(self, script, check=True, timeout=600):
        return run([LAB_PODMAN, 'exec', self.container, 'sh', '-c', script], check=check, timeout=timeout)

    def popen(self, argv):
        return subprocess.Popen([LAB_PODMAN, 'exec', self.container] + argv, env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)

    def put(self, local, remote):
        self.sh('mkdir -p %s' % os.path.dirname(remote))
        run([LAB_PODMAN, 'cp', local, '%s:%s' % (self.container, remote)])

    def write(self, remote, text):
        run([LAB_PODMAN, 'exec', '-i', self.container, 'sh', '-c',
             'mkdir -p %s && cat > %s' % (os.path.dirname(remote), remote)], input_text=text)


# -- lab ---------------------------------------------------------------------------
class Lab:
    def __init__(self):
        self.up = False

    def __enter__(self):
        self.up = True
        run([sys.executable, PKLAB, 'up', '--lab', LAB, '-n', '3'], timeout=900)
        with open(os.path.join(REPO, '.lab', 'labs', LAB, 'hosts.json')) as handle:
            self.info = json.load(handle)
        self.hosts = [Host(item) for item in self.info['hosts']]
        return self

    def down(self):
        if self.up:
            self.up = False
            run([sys.executable, PKLAB, 'down', '--lab', LAB], check=False, timeout=300)

    def __exit__(self, *exc):
        self.down()


def used_lab_addresses():
    """Every IPv4 address a podman container holds (any lab)."""
    ids = run([LAB_PODMAN, 'ps', '-aq']).stdout.split()
    used = set()
    if ids:
        out = run([LAB_PODMAN, 'inspect', '--format',
                   '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}'] + ids, check=False).stdout
        used.update(out.split())
    return used


def client_addresses(lab, count):
    """``count`` + 1 unused addresses of the lab's /24 (.100 up), verified unused."""
    subnet = ipaddress.ip_network(lab.info['subnet4'])
    used = used_lab_addresses() | set(h.ipv4 for h in lab.hosts)
    free = [str(subnet.network_address + n) for n in range(100, 201)
            if str(subnet.network_address + n) not in used]
    if len(free) < count + 1:
        raise RuntimeError('not enough free addresses in %s' % subnet)
    return free[:count + 1]


# -- setup -------------------------------------------------------------------------
def copy_collection(host):
    base = COLLECTIONS + '/ansible_collections/portknock/knock'
    host.sh('rm -rf %s && mkdir -p %s/plugins' % (COLLECTIONS, base))
    run([LAB_PODMAN, 'cp', os.path.join(REPO, 'plugins', 'module_utils'),
         '%s:%s/plugins/module_utils' % (host.container, base)])
    run([LAB_PODMAN, 'cp', os.path.join(REPO, 'scripts'), '%s:%s/scripts' % (host.container, base)])


def setup_server(server):
    server.sh('DEBIAN_FRONTEND=noninteractive apt-get install -y -q knockd >/dev/null 2>&1 '
              '|| (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q knockd)',
              timeout=600)
    server.sh('systemctl disable --now knockd >/dev/null 2>&1; true')
    copy_collection(server)
    server.write('/etc/pkbench/knockd.conf', KNOCKD_CONF)
    server.write('/etc/pkbench/knockd-no-fast.conf', KNOCKD_CONF_NO_FAST)
    server.write(REMOTE + '/listener.py', LISTENER)
    server.sh('mkdir -p /run/pkbench; '
              'systemd-run --quiet --unit=pkbench-listener --collect /usr/bin/python3 %s/listener.py' % REMOTE)
    server.sh('iptables -A INPUT -p tcp -m recent --name %s --rcheck --seconds %d --dport %d -j ACCEPT; '
              'iptables -A INPUT -p tcp --dport %d -j DROP; '
              'iptables -A INPUT -p tcp -m multiport --dports %s -j DROP'
              % (RECENT, CMD_TIMEOUT, PROTECTED, PROTECTED, SEQUENCE))


def setup_client(client, addresses):
    copy_collection(client)
    client.put(os.path.join(REPO, 'benchmarks', 'lab_knock_client.py'), REMOTE + '/lab_knock_client.py')
    client.sh('; '.join('ip addr add %s/32 dev eth0' % a for a in addresses))


def setup_flooder(flooder):
    flooder.put(os.path.join(REPO, 'benchmarks', 'lab_syn_flood.py'), REMOTE + '/lab_syn_flood.py')


# -- measurements ----------------------------------------------------------------------
def proc_stats(server, pid):
    """(rss KiB, cpu seconds) of ``pid`` on the server."""
    out = server.sh('grep VmRSS /proc/%d/status; cat /proc/%d/stat; getconf CLK_TCK' % (pid, pid)).stdout.split('\n')
    rss = int(out[0].split()[1])
    fields = out[1].rsplit(')', 1)[1].split()
    ticks = int(out[2])
    return rss, (int(fields[11]) + int(fields[12])) / float(ticks)


def knock_trials(client, server, sources, count, timeout=1.5, gap=(0.05, 0.3)):
    out = client.sh('python3 %s/lab_knock_client.py --collections %s --server %s --sequence %s --port %d '
                    '--sources %s --count %d --gap-min %s --gap-max %s --timeout %s'
                    % (REMOTE, COLLECTIONS, server.ipv4, SEQUENCE, PROTECTED, ','.join(sources), count,
                       gap[0], gap[1], timeout), timeout=600).stdout
    return json.loads(out.strip().splitlines()[-1])


class Implementation:
    def __init__(self, name, argv, kernel_door, flood):
        self.name, self.argv, self.kernel_door, self.flood = name, argv, kernel_door, flood
        self.unit = 'pkbench-' + ''.join(c if c.isalnum() else '-' for c in name)
        self.pid = None

    def start(self, server):
        server.sh('systemctl stop %s >/dev/null 2>&1; systemctl reset-failed %s >/dev/null 2>&1; true'
                  % (self.unit, self.unit))
        server.sh('systemd-run --quiet --unit=%s --collect %s' % (self.unit, ' '.join(self.argv)))
        for _attempt in range(50):
            pid = int(server.sh('systemctl show -p MainPID --value %s' % self.unit).stdout.strip() or 0)
            if pid:
                self.pid = pid
                return pid
            time.sleep(0.1)
        raise RuntimeError('%s did not start' % self.name)

    def stop(self, server):
        server.sh('systemctl stop %s >/dev/null 2>&1; true' % self.unit, check=False)


def wait_ready(client, server, source):
    """Knock from ``source`` until the door opens (the daemon is capturing), then let it close."""
    for _attempt in range(20):
        result = knock_trials(client, server, [source], 1, timeout=1.0, gap=(0.2, 0.2))[0]
        if result['ok']:
            time.sleep(CMD_TIMEOUT + 1.5)
            return True
    return False


def flood_step(lab, impl, rate, knocks, sources, stats):
    server, client, flooder = lab.hosts
    flooder.sh('rm -f /tmp/pkbench-flood.stop')
    before = proc_stats(server, impl.pid)
    proc = flooder.popen(['python3', REMOTE + '/lab_syn_flood.py', '--target', server.ipv4,
                          '--ports', SEQUENCE, '--rate', str(rate), '--duration', '120',
                          '--prefix', SPOOF_PREFIX])
    try:
        time.sleep(1.0)   # let the flood reach its rate
        trials = knock_trials(client, server, sources, knocks)
    finally:
        flooder.sh('touch /tmp/pkbench-flood.stop', check=False)
        out, err = proc.communicate(timeout=60)
    flood = flood_sent(out)
    time.sleep(CMD_TIMEOUT + 1.0)       # doors close, the daemon catches up
    after = proc_stats(server, impl.pid)
    row = flood_row(rate, flood, trials, flood['sent'] + 3 * len(trials), before, after, 'knocks')
    stats.append(row)
    return row


def measure(lab, impl, addresses, plan):
    server, client, _flooder = lab.hosts
    ready_source, pool = addresses[0], addresses[1:]
    say('== %s' % impl.name)
    impl.start(server)
    try:
        time.sleep(1.0)
        if not wait_ready(client, server, ready_source):
            raise RuntimeError('%s never opened the door' % impl.name)
        idle = proc_stats(server, impl.pid)
        say('  idle RSS %.1f MiB' % (idle[0] / 1024.0))
        fresh = pool[:plan['latency_knocks']]
        result = latency_result(impl.name, idle[0], knock_trials(client, server, fresh, len(fresh)), 'latency')
        if impl.flood:
            time.sleep(CMD_TIMEOUT + 1.0)
            rotation = pool[len(fresh):] + fresh   # reused only long after their door closed
            offset = 0
            for rate in plan['rates']:
                sources = [rotation[(offset + i) % len(rotation)] for i in range(plan['flood_knocks'])]
                offset += plan['flood_knocks']
                flood_step(lab, impl, rate, plan['flood_knocks'], sources, result['flood'])
        return result
    finally:
        impl.stop(server)


def command_cost(server):
    """Median milliseconds of the stanza's start command, through /bin/sh -c and executed directly."""
    script = (
        'import subprocess, time, statistics\n'
        'add = "/usr/sbin/iptables -I INPUT -s 10.255.0.1 -p tcp --dport %d -j ACCEPT"\n'
        'delete = add.replace(" -I ", " -D ")\n'
        'result = []\n'
        'for argv in (["/bin/sh", "-c", add], add.split()):\n'
        '    times = []\n'
        '    for _ in range(10):\n'
        '        start = time.perf_counter()\n'
        '        subprocess.run(argv)\n'
        '        times.append((time.perf_counter() - start) * 1000)\n'
        '        subprocess.run(delete.split())\n'
        '    result.append(statistics.median(times))\n'
        'print(result[0], result[1])\n' % PROTECTED)
    server.write(REMOTE + '/command_cost.py', script)
    shell, direct = server.sh('python3 %s/command_cost.py' % REMOTE).stdout.split()
    return float(shell), float(direct)


def report(results, plan, cost):
    summary(results, 'knockd 0.8')
    flooded = [r for r in results if r['flood']]
    if len(flooded) >= 2:
        base, new = flooded[:2]
        say('latency ratio %s/%s: p50 x%.1f, p90 x%.1f' % (
            base['name'], new['name'], base['p50'] / new['p50'], base['p90'] / new['p90']))
    say('start command alone: median %.1f ms through sh -c (knockd), %.1f ms executed directly (daemon)' % cost)
    say('')
    say(json.dumps({'plan': plan, 'command_ms': cost, 'results': results}))


PLANS = {
    'full': {'latency_knocks': 40, 'flood_knocks': 20, 'rates': [1000, 5000, 20000, 50000, 100000, 0, 0]},
    'quick': {'latency_knocks': 30, 'flood_knocks': 12, 'rates': [5000, 50000, 0]},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--quick', action='store_true', help='fewer flood steps and knocks (< 3 minutes)')
    parser.add_argument('--keep-lab', action='store_true', help='leave the lab hosts up (debugging)')
    parser.add_argument('--only', action='append', default=[], help='only this implementation (repeatable)')
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit('run as root (rootful podman lab)')
    plan = PLANS['quick' if args.quick else 'full']
    random.seed()

    end_on_signals()
    lab = Lab()
    started = time.monotonic()
    try:
        lab.__enter__()
        server, client, flooder = lab.hosts
        say('lab up: server %s, client %s, flooder %s' % (server.ipv4, client.ipv4, flooder.ipv4))
        addresses = client_addresses(lab, max(plan['latency_knocks'], 40) + 30)
        setup_server(server)
        setup_client(client, addresses)
        setup_flooder(flooder)
        cost = command_cost(server)
        results = []
        for entry in IMPLEMENTATIONS:
            impl = Implementation(*entry)
            if args.only and impl.name not in args.only:
                continue
            results.append(measure(lab, impl, addresses, plan))
        report(results, plan, cost)
    finally:
        if not args.keep_lab:
            lab.down()
        say('(%.0f s)' % (time.monotonic() - started))


if __name__ == '__main__':
    main()
