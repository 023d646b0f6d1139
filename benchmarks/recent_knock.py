#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark (issue 3): portknock.knock.recent_knock on lab hosts, per backend.

    source tools/bootstrap.sh && python3 benchmarks/recent_knock.py [N ...]   # default: 1 10 50
    source tools/bootstrap.sh && python3 benchmarks/recent_knock.py --doors [N ...]   # default: 10 50

One lab (``bench-recent``, 4 hosts): an iptables-nft host, an nftables host, an
iptables-legacy host (switched with update-alternatives, python3-iptables installed) and a
client.  For each backend and N: wall time of one ansible-playbook run converging N doors
(first run, then the idempotent run); then the time from the last knock to an accepted TCP
connection (a door on port 2022 with a listener; the client knocks with the collection's
sender and retries connect() every 0.2 ms; median and p90 of 15).  The lab is always removed.
Prints numbers; asserts nothing.

``--doors`` (issue 15): module time on the host (the AnsiballZ payload run by the host's
python3, no ssh), per backend and N, first and idempotent run, of ONE call with the ``doors``
list next to N single-door calls (the per-door loop), and the issue's targets met/missed:
10 doors idempotent < 1.5 s, 50 doors < 2 s, first run <= 1.3x the idempotent run.
"""

from __future__ import absolute_import, division, print_function

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tests', 'integration'))
from lab_hosts import STATE, lab  # noqa: E402  (the one lab tool)

BACKENDS = (('iptables-nft', 'iptables'), ('nftables', 'nftables'), ('iptables-legacy', 'iptables'))
LATENCY = r'''
import random, select, socket, sys, time
from ansible_collections.portknock.knock.plugins.module_utils.knock_sender import send_knocks
from ansible_collections.portknock.knock.plugins.module_utils.sequence import parse_sequence
host, runs = sys.argv[1], int(sys.argv[2])
steps = parse_sequence('7301,7303,7302')
out = []
for i in range(runs):
    time.sleep(random.uniform(0.2, 0.6))
    send_knocks(host, steps)
    t0 = time.monotonic()
    while True:
        s = socket.socket(); s.setblocking(False)
        try:
            s.connect((host, 2022))
        except BlockingIOError:
            pass
        _, w, _ = select.select([], [s], [], 0.01)
        if w and s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
            s.close(); break
        s.close()
        if time.monotonic() - t0 > 2:
            break
    out.append((time.monotonic() - t0) * 1000)
    time.sleep(1.2)   # past the open window: the next knock starts closed
print(' '.join('%.3f' % x for x in out))
'''


def playbook(inventory, host, backend, count):
    doors = [dict(name='b%d' % i, sequence=[7000 + 3 * i, 7002 + 3 * i, 7001 + 3 * i], port=10000 + i,
                  open_window=1, step_timeout=5, backend=backend) for i in range(count)]
    with tempfile.NamedTemporaryFile('w', suffix='.yml', delete=False) as handle:
        handle.write(json.dumps([{'hosts': host, 'gather_facts': False, 'tasks': [{
            'portknock.knock.recent_knock': '{{ item }}', 'loop': doors, 'no_log': True}]}]))
    start = time.monotonic()
    res = subprocess.run(['ansible-playbook', '-i', inventory, handle.name], check=False,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    elapsed = time.monotonic() - start
    os.unlink(handle.name)
    if res.returncode != 0:
        print(res.stdout[-3000:])
    return elapsed


def remove_doors(inventory, host, backend, count):
    for i in range(count):
        subprocess.run(['ansible', '-i', inventory, host, '-m', 'portknock.knock.recent_knock',
                        '-a', 'name=b%d state=absent backend=%s' % (i, backend)], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# Runs module calls on the host from an exploded AnsiballZ payload (``explode``/``execute``),
# timing each call; prints the seconds of all calls.
MODULE_TIMER = r'''
import json, os, subprocess, sys, time
payload, calls = sys.argv[1], json.load(sys.stdin)
args_path = os.path.join(os.path.dirname(payload), 'debug_dir', 'args')
with open(args_path) as handle:
    template = json.load(handle)
total = 0.0
for call in calls:
    params = dict(template)
    internal = dict((k, v) for k, v in template['ANSIBLE_MODULE_ARGS'].items() if k.startswith('_ansible'))
    params['ANSIBLE_MODULE_ARGS'] = dict(internal, **call)
    with open(args_path, 'w') as handle:
        json.dump(params, handle)
    start = time.monotonic()
    res = subprocess.run([sys.executable, payload, 'execute'], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    total += time.monotonic() - start
    if b'"failed": true' in res.stdout or res.returncode:
        sys.stderr.write(res.stdout.decode()[-800:] + res.stderr.decode()[-800:])
        sys.exit(1)
print('%.4f' % total)
'''

TARGETS = {10: 1.5, 50: 2.0}
FIRST_RATIO = 1.3


def door_list(count, backend):
    return [dict(name='b%d' % i, sequence=[7000 + 3 * i, 7002 + 3 * i, 7001 + 3 * i], port=10000 + i,
                 open_window=1, step_timeout=5, backend=backend) for i in range(count)]


def payload(inventory, server):
    """Path of a kept AnsiballZ payload of recent_knock on ``server``, exploded."""
    server.run('rm -rf /root/.ansible/tmp/ansible-tmp-*', timeout=60)
    env = dict(os.environ, ANSIBLE_KEEP_REMOTE_FILES='1', ANSIBLE_PIPELINING='False')
    subprocess.run(['ansible', '-i', inventory, server.name, '-m', 'portknock.knock.recent_knock',
                    '-a', 'name=probe state=absent'], check=False, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path = server.run('ls -t /root/.ansible/tmp/ansible-tmp-*/AnsiballZ_recent_knock.py | head -1',
                      timeout=60).stdout.strip()
    server.run('python3 %s explode >/dev/null' % path, check=True, timeout=60)
    return path


def module_time(server, path, calls):
    script = '/tmp/pk_module_timer.py'
    server.run('cat > %s' % script, stdin=MODULE_TIMER, check=True, timeout=60)
    res = server.run('python3 %s %s' % (script, path), stdin=json.dumps(calls), timeout=900)
    try:
        return float(res.stdout.split()[-1])
    except (IndexError, ValueError):
        print(res.stdout[-1500:])
        return float('nan')


def doors_mode(counts):
    load = os.getloadavg()
    print('load average before: %.2f %.2f %.2f (%d CPUs)' % (load + (os.cpu_count(),)), flush=True)
    with lab('bench-recent', 3) as hosts:
        inventory = os.path.join(STATE, 'labs', 'bench-recent', 'inventory.yml')
        legacy = hosts[2]
        legacy.run('apt-get -qq update && apt-get -qq install -y python3-iptables >/dev/null && '
                   'update-alternatives --set iptables /usr/sbin/iptables-legacy && '
                   'update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy', check=False, timeout=300)
        for (label, backend), server in zip(BACKENDS, hosts):
            path = payload(inventory, server)
            for count in counts:
                doors = door_list(count, backend)
                gone = [dict(name=d['name'], state='absent', backend=backend) for d in doors]
                loop_first = module_time(server, path, doors)
                loop_again = module_time(server, path, doors)
                module_time(server, path, [dict(doors=gone)])
                first = module_time(server, path, [dict(doors=doors)])
                again = module_time(server, path, [dict(doors=doors)])
                module_time(server, path, [dict(doors=gone)])
                target = TARGETS.get(count)
                verdict = []
                if target is not None:
                    verdict.append('idempotent < %.1f s %s' % (target, 'met' if again < target else 'MISSED'))
                verdict.append('first <= %.1fx idempotent %s (%.2fx)' % (
                    FIRST_RATIO, 'met' if first <= FIRST_RATIO * again else 'MISSED', first / again if again else 0))
                print('%-16s %3d doors: loop first %6.2f s idempotent %6.2f s | doors first %6.2f s '
                      'idempotent %6.2f s | %s' % (label, count, loop_first, loop_again, first, again,
                                                    '; '.join(verdict)), flush=True)
    load = os.getloadavg()
    print('load average after: %.2f %.2f %.2f' % load, flush=True)


def main():
    if sys.argv[1:2] == ['--doors']:
        doors_mode([int(a) for a in sys.argv[2:]] or [10, 50])
        return
    counts = [int(a) for a in sys.argv[1:]] or [1, 10, 50]
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    with lab('bench-recent', 4) as hosts:
        inventory = os.path.join(STATE, 'labs', 'bench-recent', 'inventory.yml')
        servers, client = hosts[:3], hosts[3]
        legacy = servers[2]
        legacy.run('apt-get -qq update && apt-get -qq install -y python3-iptables >/dev/null && '
                   'update-alternatives --set iptables /usr/sbin/iptables-legacy && '
                   'update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy', check=True, timeout=300)
        client.install_collection()
        for (label, backend), server in zip(BACKENDS, servers):
            for count in counts:
                first = playbook(inventory, server.name, backend, count)
                again = playbook(inventory, server.name, backend, count)
                print('%-16s %3d doors: first run %6.2f s, idempotent run %6.2f s' % (label, count, first, again),
                      flush=True)
                remove_doors(inventory, server.name, backend, count)
            subprocess.run(['ansible', '-i', inventory, server.name, '-m', 'portknock.knock.recent_knock', '-a',
                            'name=lat sequence=7301,7303,7302 port=2022 open_window=1 backend=%s' % backend],
                           check=True, stdout=subprocess.DEVNULL)
            listener = server.spawn('python3 -c "import socket;s=socket.socket();'
                                    's.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);'
                                    's.bind((\'0.0.0.0\',2022));s.listen(64)\nwhile 1: s.accept()[0].close()"')
            try:
                time.sleep(0.5)
                res = client.run('cd /tmp && PYTHONPATH=/opt/pk python3 - %s 15' % server.ipv4, stdin=LATENCY,
                                 timeout=300)
                values = sorted(float(v) for v in res.stdout.split()[-15:])
                print('%-16s last knock -> accepted connection: median %.3f ms, p90 %.3f ms (n=%d)'
                      % (label, statistics.median(values), values[int(len(values) * 0.9) - 1], len(values)), flush=True)
            except ValueError:
                print('%-16s latency run failed: %s' % (label, res.stdout[-500:]))
            finally:
                listener.kill()


if __name__ == '__main__':
    main()
