#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark (issue 5): knock-before-connect vs plain ssh, 20-task play on 10 lab hosts.

    source tools/bootstrap.sh && python3 benchmarks/knock_before_connect.py [--rounds N] [--hosts N]

Brings up its own lab (``bench-kbc``) and ALWAYS removes it (try/finally, SIGINT/SIGTERM).
In one run, alternating A/B/A/B... for --rounds rounds:

A. a portknock.knock.recent_knock door on port 22 of every host (ssh closed for everyone
   but knockers), the play runs with the ``portknock.knock.ssh`` connection and
   ``knock_sequence``;
B. the same hosts with the door removed (state absent) and ``ansible.builtin.ssh``.

Each measured play gets a fresh ControlPath directory (no ssh master left over from the
play that switched the door).  Knocks per host in A are read from the door chain's packet
counter of the first knock step (over ``podman exec``, the way back that needs no ssh),
and new ssh connections from the counter of the door's ACCEPT rule.
Prints medians and the ratio; asserts nothing about time.
"""

from __future__ import absolute_import, division, print_function

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB_PODMAN = os.path.join(REPO, 'lab', 'lab-podman')   # podman with the lab's settings
LAB = 'bench-kbc'
PKLAB = os.path.join(REPO, 'lab', 'pklab.py')
STATE = os.environ.get('PKLAB_STATE', os.path.join(REPO, '.lab'))
ENV = dict(os.environ)   # podman runs through LAB_PODMAN, which applies the lab's settings
DOOR = 'kbc'
SEQUENCE = [7101, '7103:udp', 7102]
FIRST_STEP = 7101
TASKS = 20

DOOR_PLAY = """- hosts: all
  gather_facts: false
  tasks:
    - name: Door on ssh ({state})
      portknock.knock.recent_knock:
        name: %s
        sequence: %s
        step_timeout: 10
        open_window: 30
        port: 22
        ip_version: ipv4
        state: "{state}"
""" % (DOOR, json.dumps(SEQUENCE))

BENCH_PLAY = '- hosts: all\n  gather_facts: false\n  tasks:\n' + ''.join(
    '    - name: Task %d\n      ansible.builtin.command: "true"\n      changed_when: false\n' % (k + 1)
    for k in range(TASKS))


def say(message):
    print(message, flush=True)


def run(cmd, check=True, timeout=900, env=None):
    result = subprocess.run(cmd, env=env or ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise RuntimeError('command failed (%d): %s\n%s%s' % (
            result.returncode, ' '.join(cmd), result.stdout[-3000:], result.stderr[-3000:]))
    return result


def _terminate(signum, frame):
    raise SystemExit('signal %d: removing the lab' % signum)


def write_inventory(info, path):
    lines = ['[all:vars]', 'ansible_user=root', 'ansible_python_interpreter=/usr/bin/python3',
             'ansible_ssh_private_key_file=%s' % info['key'],
             "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR'",
             'knock_sequence=%s' % json.dumps([str(step) for step in SEQUENCE]), '[all]']
    lines += ['%s ansible_host=%s container=%s' % (h['name'], h['ipv4'], h['container']) for h in info['hosts']]
    with open(path, 'w') as handle:
        handle.write('\n'.join(lines) + '\n')


def playbook(workdir, inventory, play_text, connection, forks):
    play = os.path.join(workdir, 'play.yml')
    with open(play, 'w') as handle:
        handle.write(play_text)
    control = tempfile.mkdtemp(prefix='cp.', dir=workdir)   # fresh ssh masters for every play
    env = dict(ENV, ANSIBLE_HOST_KEY_CHECKING='False', ANSIBLE_SSH_CONTROL_PATH_DIR=control,
               ANSIBLE_RETRY_FILES_ENABLED='False', ANSIBLE_NOCOLOR='1')
    start = time.monotonic()
    run(['ansible-playbook', '-i', inventory, '-c', connection, '-f', str(forks), play], env=env)
    elapsed = time.monotonic() - start
    for name in os.listdir(control):
        run(['ssh', '-o', 'ControlPath=%s' % os.path.join(control, name), '-O', 'exit', 'x'], check=False, timeout=10)
    return elapsed


def door_counters(container):
    """(knocks at the first step, NEW ssh connections let in) from the door chain's counters."""
    out = run([LAB_PODMAN, 'exec', container, 'iptables', '-nvxL'], timeout=60).stdout
    knocks = accepted = None
    chain = None
    for line in out.splitlines():
        if line.startswith('Chain '):
            chain = line.split()[1]
            continue
        fields = line.split()
        if not chain or not chain.startswith('PK-') or not fields or not fields[0].isdigit():
            continue
        if re.search(r'dpt:%d\b' % FIRST_STEP, line) and 'SET' not in line:
            # counters count matches: a first-step knock matches either the 'already knocked'
            # CHECK rule or the jump to the reset chain (the SET rule sees those again)
            knocks = (knocks or 0) + int(fields[0])
        if accepted is None and 'ACCEPT' in line and re.search(r'dpt:22\b', line):
            accepted = int(fields[0])
    return knocks or 0, accepted or 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=4)
    parser.add_argument('--hosts', type=int, default=10)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    workdir = tempfile.mkdtemp(prefix='pk-kbc.')
    try:
        say('lab: %s with %d hosts' % (LAB, args.hosts))
        run([sys.executable, PKLAB, 'up', '--lab', LAB, '-n', str(args.hosts)])
        with open(os.path.join(STATE, 'labs', LAB, 'hosts.json')) as handle:
            info = json.load(handle)
        inventory = os.path.join(workdir, 'inventory')
        write_inventory(info, inventory)
        containers = [h['container'] for h in info['hosts']]
        # warm-up: python and the module caches on every host, both connection plugins once
        playbook(workdir, inventory, BENCH_PLAY, 'ansible.builtin.ssh', args.hosts)
        times = {'A': [], 'B': []}
        knocks, accepted = [], []
        for number in range(1, args.rounds + 1):
            playbook(workdir, inventory, DOOR_PLAY.format(state='present'), 'portknock.knock.ssh', args.hosts)
            plain = run(['ssh', '-i', info['key'], '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
                         '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=3', '-o', 'ControlPath=none',
                         'root@' + info['hosts'][0]['ipv4'], 'true'], check=False, timeout=30)
            if plain.returncode == 0:
                raise RuntimeError('door is present but plain ssh got in: the benchmark would measure nothing')
            before = [door_counters(c) for c in containers]
            times['A'].append(playbook(workdir, inventory, BENCH_PLAY, 'portknock.knock.ssh', args.hosts))
            after = [door_counters(c) for c in containers]
            knocks.append([a[0] - b[0] for a, b in zip(after, before)])
            accepted.append([a[1] - b[1] for a, b in zip(after, before)])
            playbook(workdir, inventory, DOOR_PLAY.format(state='absent'), 'portknock.knock.ssh', args.hosts)
            times['B'].append(playbook(workdir, inventory, BENCH_PLAY, 'ansible.builtin.ssh', args.hosts))
            say('round %d: A (door + knock) %.2f s, B (door open, builtin ssh) %.2f s; knocks per host %s; '
                'ssh connections let in per host %s' % (number, times['A'][-1], times['B'][-1], knocks[-1], accepted[-1]))
        med_a, med_b = statistics.median(times['A']), statistics.median(times['B'])
        say('')
        say('%d-task play on %d hosts, %d rounds A/B alternating' % (TASKS, args.hosts, args.rounds))
        say('A knock-before-connect (portknock.knock.ssh, door closed): median %.2f s  %s'
            % (med_a, ' '.join('%.2f' % t for t in times['A'])))
        say('B door open, ansible.builtin.ssh:                         median %.2f s  %s'
            % (med_b, ' '.join('%.2f' % t for t in times['B'])))
        say('ratio A/B %.3f (overhead %+.1f %%)' % (med_a / med_b, (med_a / med_b - 1) * 100))
        flat = [k for row in knocks for k in row]
        say('knocks per host per play (first-step SYNs at the door): min %d max %d; new ssh connections let in: '
            'min %d max %d' % (min(flat), max(flat), min(a for row in accepted for a in row),
                               max(a for row in accepted for a in row)))
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        say('removing lab %s' % LAB)
        run([sys.executable, PKLAB, 'down', '--lab', LAB], check=False, timeout=600)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    main()
