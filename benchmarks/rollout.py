#!/usr/bin/env python3
"""site.yml against the Galaxy-style baseline, A/B on the same lab hosts, for 10, 20 and 40 hosts.

    python3 benchmarks/rollout.py [--hosts 10,20,40] [--forks 10,40] [--reps 1] [--quick]

Run from the repository root as root after `source tools/bootstrap.sh` (installed collection,
the venv's ansible-playbook).  For each fleet size, --forks value and repetition it runs both
playbooks, alternating which goes first (A/B, then B/A in the next repetition):

- A = `site.yml` (guard, confirm through a new knocking connection, batches portknock_serial),
- B = `benchmarks/baseline/site.yml` (ansible.builtin.iptables + a restored `-m recent` chain,
  knockd template + service; plain ssh, the controller's ssh kept open, no guard).

Before each playbook's first run the lab hosts are made again (`pklab up` replaces a lab of the
same name: new containers from the image), so every first run is a real first run; the
idempotent run follows at once on the same hosts.  Same inventory (inventory/ + the lab's
fleet, tools/site_fleet.py), same forks.  It prints one line per run (wall time, rc, changes,
tasks started, tasks per host, load average), the lab hosts' memory, then a table with the
ratios site/baseline and a linear fit per playbook and forks (wall = fixed + per_host * hosts).
The lab is removed at the end, also on errors and Ctrl-C.  Prints numbers; asserts nothing.
`--quick`: 4 hosts, forks 10, one repetition (a smoke run, about 4 minutes on a quiet machine).
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
STATE = os.environ.get('PKLAB_STATE', os.path.join(REPO, '.lab'))
LAB = 'bench-rollout'
LAB_PODMAN = os.path.join(REPO, 'lab', 'lab-podman')
PLAYBOOKS = {'site': 'site.yml', 'baseline': 'benchmarks/baseline/site.yml'}
RECAP = re.compile(r'^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', re.M)


def sh(cmd, **kw):
    return subprocess.run(cmd, cwd=REPO, check=False, universal_newlines=True, **kw)


def fresh_lab(size):
    """New lab hosts (pklab up replaces the lab's containers) and their fleet inventory."""
    res = sh([sys.executable, os.path.join(REPO, 'lab', 'pklab.py'), 'up', '--lab', LAB, '-n', str(size)],
             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if res.returncode != 0:
        raise SystemExit('pklab up --lab %s -n %d failed:\n%s' % (LAB, size, res.stdout[-2000:]))
    labdir = os.path.join(STATE, 'labs', LAB)
    inventory = os.path.join(labdir, 'fleet.yml')
    res = sh([sys.executable, os.path.join(REPO, 'tools', 'site_fleet.py'), os.path.join(labdir, 'hosts.json'),
              inventory])
    if res.returncode != 0:
        raise SystemExit('tools/site_fleet.py failed')
    with open(os.path.join(labdir, 'hosts.json')) as fh:
        hosts = json.load(fh)['hosts']
    return inventory, hosts


def controller_addresses(host):
    """The controller's source addresses towards the lab (what the baseline keeps ssh open for)."""
    found = []
    for family, address in (('-4', host['ipv4']), ('-6', host['ipv6'])):
        out = sh(['ip', family, '-o', 'route', 'get', address], stdout=subprocess.PIPE).stdout
        match = re.search(r'\bsrc (\S+)', out)
        if match:
            found.append(match.group(1))
    return found


def host_memory_mib(hosts):
    """Mean and largest memory use of the lab containers (podman stats, MiB)."""
    units = {'B': 1.0 / 1048576, 'kB': 1000.0 / 1048576, 'MB': 1e6 / 1048576, 'GB': 1e9 / 1048576}
    res = sh([LAB_PODMAN, 'stats', '--no-stream', '--format', 'json'] + [h['container'] for h in hosts],
             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    values = []
    try:
        for row in json.loads(res.stdout or '[]'):
            match = re.match(r'([0-9.]+)([kMG]?B)', row.get('mem_usage', ''))
            if match:
                values.append(float(match.group(1)) * units[match.group(2)])
    except ValueError:
        pass
    return (sum(values) / len(values), max(values)) if values else (0.0, 0.0)


def run(name, inventory, forks, controller):
    profile = tempfile.NamedTemporaryFile(prefix='pk-profile-', suffix='.json', delete=False)
    profile.close()
    env = dict(os.environ, ANSIBLE_FORKS=str(forks), ANSIBLE_NOCOLOR='1', PK_TASK_PROFILE=profile.name,
               ANSIBLE_CALLBACK_PLUGINS=os.path.join(REPO, 'benchmarks', 'callback_plugins'),
               ANSIBLE_CALLBACKS_ENABLED='pk_task_profile')
    cmd = ['ansible-playbook', '-i', 'inventory/', '-i', inventory, PLAYBOOKS[name]]
    if name == 'baseline':
        cmd += ['-e', json.dumps({'baseline_controller': controller})]
    load = os.getloadavg()[0]
    start = time.monotonic()
    res = sh(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    elapsed = time.monotonic() - start
    recap = RECAP.findall(res.stdout)
    try:
        with open(profile.name) as fh:
            prof = json.load(fh)
    except (OSError, ValueError):
        prof = {'task_starts': 0, 'per_host': {}}
    os.unlink(profile.name)
    per_host = [v['ran'] for v in prof['per_host'].values()]
    if res.returncode != 0:
        print(res.stdout[-3000:], file=sys.stderr)
    return {'wall': elapsed, 'rc': res.returncode, 'changed': sum(int(r[2]) for r in recap),
            'tasks': prof['task_starts'], 'per_host': (sum(per_host) / len(per_host)) if per_host else 0,
            'load': load}


def fit(points):
    """Least squares wall = a + b * hosts over (hosts, wall) points; None with fewer than 2 sizes."""
    xs = sorted(set(p[0] for p in points))
    if len(xs) < 2:
        return None
    n = float(len(points))
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    b = sum((p[0] - mx) * (p[1] - my) for p in points) / sum((p[0] - mx) ** 2 for p in points)
    return my - b * mx, b


def report(sizes, forks_list, results, memory):
    """The table, the lab hosts' memory and the fits (also after an interrupted run: what was measured)."""
    median = lambda v: sorted(v)[len(v) // 2]
    print()
    for size in sorted(memory):
        print('lab host memory, %d hosts: mean %.0f MiB, max %.0f MiB per host (podman stats after a first run)'
              % (size, median([m[0] for m in memory[size]]), max(m[1] for m in memory[size])))
    print()
    print('| hosts | forks | site first (s) | baseline first (s) | first ratio | site idempotent (s) '
          '| baseline idempotent (s) | idempotent ratio | site tasks/host | baseline tasks/host |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for size in sizes:
        for forks in forks_list:
            s = results.get((size, forks, 'site'))
            b = results.get((size, forks, 'baseline'))
            if not s or not b:
                continue
            sf, si = median([r[0]['wall'] for r in s]), median([r[1]['wall'] for r in s])
            bf, bi = median([r[0]['wall'] for r in b]), median([r[1]['wall'] for r in b])
            print('| %d | %d | %.1f | %.1f | x%.2f | %.1f | %.1f | x%.2f | %.1f | %.1f |'
                  % (size, forks, sf, bf, sf / bf, si, bi, si / bi, s[0][0]['per_host'], b[0][0]['per_host']))
    print()
    print('targets: site first <= 1.5x baseline, idempotent <= 1.2x')
    for forks in forks_list:
        for name in ('site', 'baseline'):
            for idx, label in ((0, 'first'), (1, 'idempotent')):
                pts = [(size, r[idx]['wall']) for (size, f, n), runs in results.items() if f == forks and n == name
                       for r in runs]
                line = fit(pts)
                if line:
                    print('fit forks=%d %-8s %-10s wall = %.1f s + %.2f s x hosts' % (forks, name, label, line[0],
                                                                                      line[1]))



def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--hosts', default='10,20,40')
    parser.add_argument('--forks', default='10,40')
    parser.add_argument('--reps', type=int, default=1)
    parser.add_argument('--quick', action='store_true', help='4 hosts, forks 10, one repetition')
    args = parser.parse_args()
    if args.quick:
        args.hosts, args.forks, args.reps = '4', '10', 1
    sizes = [int(n) for n in args.hosts.split(',')]
    forks_list = [int(n) for n in args.forks.split(',')]
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    results = {}   # (size, forks, name) -> list of (first, again)
    memory = {}
    print('rollout A/B: hosts %s, forks %s, %d repetition(s); %d cores, load %.2f at start'
          % (sizes, forks_list, args.reps, os.cpu_count() or 0, os.getloadavg()[0]), flush=True)
    try:
        for size in sizes:
            for forks in forks_list:
                for rep in range(args.reps):
                    order = ['site', 'baseline'] if (rep + sizes.index(size) + forks_list.index(forks)) % 2 == 0 \
                        else ['baseline', 'site']
                    for name in order:
                        inventory, hosts = fresh_lab(size)
                        controller = controller_addresses(hosts[0])
                        first = run(name, inventory, forks, controller)
                        memory.setdefault(size, []).append(host_memory_mib(hosts))
                        again = run(name, inventory, forks, controller)
                        results.setdefault((size, forks, name), []).append((first, again))
                        for label, r in (('first', first), ('idempotent', again)):
                            print('hosts=%-3d forks=%-3d %-8s %-10s %7.1f s  rc %d  changed %-4d tasks %-5d '
                                  'tasks/host %5.1f  load %.1f'
                                  % (size, forks, name, label, r['wall'], r['rc'], r['changed'], r['tasks'],
                                     r['per_host'], r['load']), flush=True)
    finally:
        sh([sys.executable, os.path.join(REPO, 'lab', 'pklab.py'), 'down', '--lab', LAB],
           stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        report(sizes, forks_list, results, memory)


if __name__ == '__main__':
    main()
