#!/usr/bin/env python3
"""Wall time of the fleet rollout (site.yml) for 5, 10 and 20 lab hosts.

    python3 benchmarks/rollout.py [--hosts 5,10,20] [--forks 5,20]

Run from the repository root as root after `source tools/bootstrap.sh` (it needs the installed
collection and the venv's ansible-playbook).  For each fleet size it builds a fresh lab, runs
site.yml once (first run: packages, doors, daemons) and again (idempotent run) with each
--forks value, and prints the times, the time per host and the growth against the smallest
fleet.  Each lab is removed at the end, also on errors and Ctrl-C.  Prints numbers; asserts
nothing about time.
"""

import argparse
import os
import signal
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
STATE = os.environ.get('PKLAB_STATE', os.path.join(REPO, '.lab'))
LAB = 'bench-rollout'


def sh(cmd, **kw):
    return subprocess.run(cmd, cwd=REPO, check=False, universal_newlines=True, **kw)


def lab(*args):
    res = sh([sys.executable, os.path.join(REPO, 'lab', 'pklab.py')] + list(args), stdout=subprocess.PIPE)
    if res.returncode != 0:
        raise SystemExit('pklab %s failed' % ' '.join(args))


def rollout(inventory, forks):
    start = time.monotonic()
    res = sh(['ansible-playbook', '-i', 'inventory/', '-i', inventory, 'site.yml'],
             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
             env=dict(os.environ, ANSIBLE_FORKS=str(forks), ANSIBLE_NOCOLOR='1'))
    elapsed = time.monotonic() - start
    changed = sum(int(part.split('=')[1]) for line in res.stdout.splitlines() if ' : ok=' in line
                  for part in line.split() if part.startswith('changed='))
    return elapsed, res.returncode, changed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--hosts', default='5,10,20')
    parser.add_argument('--forks', default='5,20')
    args = parser.parse_args()
    sizes = [int(n) for n in args.hosts.split(',')]
    forks_list = [int(n) for n in args.forks.split(',')]
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    rows = []
    try:
        for size in sizes:
            for forks in forks_list:
                lab('up', '--lab', LAB, '-n', str(size))
                inventory = os.path.join(STATE, 'labs', LAB, 'fleet.yml')
                sh([sys.executable, os.path.join(REPO, 'tools', 'site_fleet.py'),
                    os.path.join(STATE, 'labs', LAB, 'hosts.json'), inventory])
                first = rollout(inventory, forks)
                again = rollout(inventory, forks)
                rows.append((size, forks, first, again))
                print('hosts=%-3d forks=%-3d first %.1f s (rc %d, changed %d)   idempotent %.1f s (rc %d, changed %d)'
                      % (size, forks, first[0], first[1], first[2], again[0], again[1], again[2]), flush=True)
    finally:
        sh([sys.executable, os.path.join(REPO, 'lab', 'pklab.py'), 'down', '--lab', LAB])
    print()
    print('%-6s %-6s %-12s %-12s %-14s %-14s %s' % ('hosts', 'forks', 'first (s)', 'again (s)', 'first/host', 'again/host',
                                                    'first vs smallest'))
    base = dict((forks, first[0]) for size, forks, first, again in rows if size == sizes[0])
    for size, forks, first, again in rows:
        print('%-6d %-6d %-12.1f %-12.1f %-14.2f %-14.2f x%.2f' % (size, forks, first[0], again[0], first[0] / size,
                                                                   again[0] / size, first[0] / base[forks]))


if __name__ == '__main__':
    main()
