"""The recent_knock role on three lab hosts, with real packets between them.

Each host is a server (1: iptables-nft with baseline, door on ssh itself; 2: nftables;
3: iptables-legacy) and a client of the two others.  Tests run once (not per host) and
use every host through testinfra; they run in file order (the reboot and the rollback
tests come last).
"""
import json
import os
import re
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIO = os.path.dirname(HERE)
REPO = os.path.abspath(os.path.join(SCENARIO, '..', '..'))
LAB_PODMAN = os.path.join(REPO, 'lab', 'lab-podman')   # podman with the lab's settings
STATE = os.environ.get('PKLAB_STATE', os.path.join(REPO, '.lab'))
LAB = 'm-' + os.environ.get('MOLECULE_SCENARIO_NAME', 'recent-knock')
INVENTORY = os.path.join(STATE, 'labs', LAB, 'inventory.yml')
SEED_PORT = {0: 22, 1: 2022, 2: 2022}


def lab():
    with open(os.path.join(STATE, 'labs', LAB, 'hosts.json')) as fh:
        return json.load(fh)


LAB_JSON = lab()
HOSTS = LAB_JSON['hosts']
CONTROL_DIR = tempfile.mkdtemp(prefix='pk-rk-ssh-')


class Host(object):
    """Commands on a lab host over plain ssh with a persistent master (an ansible call per
    command costs seconds; this costs milliseconds)."""

    def __init__(self, index):
        self.index = index
        self.addr = HOSTS[index]['ipv4']

    def run(self, cmd, timeout=30):
        args = ['ssh', '-i', LAB_JSON['key'], '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
                '-o', 'LogLevel=ERROR', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=5',
                '-o', 'ControlMaster=auto', '-o', 'ControlPersist=120',
                '-o', 'ControlPath=%s/%%h' % CONTROL_DIR, 'root@' + self.addr, cmd]
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)

    def check_output(self, cmd):
        proc = self.run(cmd)
        assert proc.returncode == 0, 'host %d: %s: rc %d %s' % (self.index + 1, cmd, proc.returncode, proc.stderr)
        return proc.stdout

    def forget(self):
        """Drop the master connection (after a restart or a rollback)."""
        subprocess.run(['ssh', '-o', 'ControlPath=%s/%%h' % CONTROL_DIR, '-O', 'exit', 'root@' + self.addr],
                       capture_output=True, check=False)


def th(index):
    return Host(index)


def probe(client, steps):
    out = th(client).check_output("pkprobe '%s'" % json.dumps(steps))
    return json.loads(out)


def knocks(addr, seq):
    steps = []
    for item in seq:
        port, _, proto = str(item).partition(':')
        steps.append(['knock', addr, int(port), proto or 'tcp'])
    return steps


def clients_of(server):
    return [i for i in range(3) if i != server]


CASES = [(s, fam) for s in range(3) for fam in ('ipv4', 'ipv6')]
IDS = ['%s-%s' % (['iptables-nft', 'nftables', 'iptables-legacy'][s], fam) for s, fam in CASES]


def concurrently(check, cases=None):
    """Run ``check(server, fam)`` for every (server, family) at once: the hosts and families are
    independent doors (own chains/sets, own addresses), only the wall time is shared."""
    cases = cases or CASES
    with ThreadPoolExecutor(len(cases)) as pool:
        futures = [(name, pool.submit(check, *case)) for name, case in zip(IDS, cases)]
    failures = []
    for name, future in futures:
        try:
            future.result()
        except AssertionError as exc:
            failures.append('%s: %s' % (name, exc))
    assert not failures, '\n'.join(failures)


def firewall(index):
    """The whole live firewall of a host, without counters (compare before/after)."""
    text = th(index).check_output('iptables-save; ip6tables-save; nft -s list ruleset')
    # elements of dynamic sets are knocks in flight (they expire), not the firewall
    text = re.sub(r'\n\s*elements = \{[^}]*\}', '', text)
    return '\n'.join(re.sub(r'\[\d+:\d+\]', '', line) for line in text.splitlines()
                     if not line.startswith('#'))


def playbook(*args, check=True):
    cmd = ['ansible-playbook', '-i', INVENTORY] + list(args)
    env = dict(os.environ, ANSIBLE_PIPELINING='true', ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
    proc = subprocess.run(cmd, cwd=SCENARIO, capture_output=True, text=True, env=env, check=False)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return proc


def test_doors_live_where_the_backend_says():
    assert '-A INPUT -j PK-baseline' in th(0).check_output('iptables -S INPUT').splitlines()[1]
    assert 'PK-seed' in th(0).check_output('iptables -S')
    assert 'nf_tables' in th(0).check_output('iptables --version')
    assert 'portknock_seed' in th(1).check_output('nft list tables')
    legacy = th(2)
    assert 'legacy' in legacy.check_output('iptables --version')
    assert 'PK-seed' in legacy.check_output('iptables -S') and 'PK-seed' in legacy.check_output('ip6tables -S')
    assert 'PK-seed' not in legacy.check_output('iptables-nft -S')   # no hidden parallel rule set


def seed_recipe(server, fam):
    addr, port = HOSTS[server][fam], SEED_PORT[server]
    client = clients_of(server)[0]
    res = probe(client, [['connect', addr, port]] + knocks(addr, [1600]) + [
        ['connect', addr, port], ['sleep', 6], ['connect', addr, port]])
    assert res == [False, True, False], 'no knock / knock then within 5 s / after 6 s: %s' % res


def test_seed_recipe():
    """Every backend, IPv4 and IPv6 (the six cases run at once)."""
    concurrently(seed_recipe)


def three_step_door(server, fam):
    addr = HOSTS[server][fam]
    a, b = clients_of(server)
    assert probe(a, knocks(addr, [7203, 7201, 7202]) + [['connect', addr, 2023]]) == [False], 'wrong order'
    assert probe(a, knocks(addr, [7201, 7203]) + [['sleep', 4]] + knocks(addr, [7202])
                 + [['connect', addr, 2023]]) == [False], 'too slow'
    probe(b, knocks(addr, [7201]))
    assert probe(a, knocks(addr, [7203, 7202]) + [['connect', addr, 2023]]) == [False], 'another address'
    assert probe(b, [['connect', addr, 2023]]) == [False]
    assert probe(a, knocks(addr, [7201, 7203, 7202]) + [['connect', addr, 2023]]) == [True], 'right order'
    assert probe(b, [['connect', addr, 2023]]) == [False], 'only the knocker is let in'
    assert probe(a, [['connect', addr, 2023]]) == [True]


def test_three_step_door_only_in_order_in_time_from_one_address():
    concurrently(three_step_door)


def udp_step_door(server, fam):
    addr = HOSTS[server][fam]
    a = clients_of(server)[0]
    assert probe(a, knocks(addr, [7301, 7303, 7302]) + [['connect', addr, 2024]]) == [False], 'TCP on the UDP step'
    assert probe(a, knocks(addr, [7301, 7302, '7303:udp']) + [['connect', addr, 2024]]) == [False], 'wrong order'
    assert probe(a, knocks(addr, [7301, '7303:udp', 7302]) + [['connect', addr, 2024]]) == [True]


def test_door_with_udp_step():
    concurrently(udp_step_door)


def test_check_mode_changes_nothing():
    before = [firewall(i) for i in range(3)]
    extra = json.dumps({'lab_extra_doors': [{'name': 'extra', 'sequence': [7401, 7405, 7403], 'port': 2025}]})
    proc = playbook('--check', '-e', extra, 'converge.yml')
    for host in HOSTS:
        assert re.search(r'%s\s*: ok=\d+\s+changed=[1-9]' % re.escape(host['name']), proc.stdout), \
            'check mode must report the new door on %s' % host['name']
    assert [firewall(i) for i in range(3)] == before


def test_absent_leaves_no_trace():
    backend = "{{ 'nftables' if inventory_hostname is search('-2$') else 'iptables' }}"
    for state in ('present', 'absent'):
        proc = subprocess.run(['ansible', '-i', INVENTORY, 'all', '-m', 'portknock.knock.recent_knock', '-a',
                               'name=gone sequence=7501,7503,7502 port=2026 backend=%s state=%s' % (backend, state)],
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:]
        assert proc.stdout.count('CHANGED') == 3, proc.stdout[-3000:]
    for index in range(3):
        everything = th(index).check_output('iptables-save; ip6tables-save; nft list ruleset; ls /proc/net/xt_recent/ || true')
        assert 'gone' not in everything


def test_xt_recent_capacity_option_written():
    assert 'options xt_recent ip_list_tot=1000' in th(0).check_output('cat /etc/modprobe.d/portknock-xt_recent.conf')
    assert th(1).run('test -e /etc/modprobe.d/portknock-xt_recent.conf').returncode == 1


def test_rollback_through_the_knocking_connection_plugin():
    """Host 3 (no baseline), reached through portknock.knock.ssh: a door on ssh itself whose
    sequence the controller knows is confirmed through a new knock and stays (then removed);
    a door whose sequence the controller gets wrong cuts it off and the host rolls back."""
    before = firewall(2)
    name = HOSTS[2]['name']
    proc = playbook('-e', 'lab_rollback_host=%s' % name, 'rollback.yml', check=False)
    out = proc.stdout + proc.stderr
    th(2).forget()
    assert proc.returncode != 0, out[-3000:]
    assert 'LAB: known door confirmed' in out, out[-4000:]
    assert re.search(r'%s\s*:.* failed=1 ' % re.escape(name), out), out[-3000:]   # only the bad door failed
    assert 'cut the controller off' in out and 'ROLLED BACK' in out, out[-3000:]
    deadline = time.time() + 60
    while True:
        try:
            after = firewall(2)
            break
        except AssertionError:   # not reachable yet: the host restores by itself
            assert time.time() < deadline, 'host 3 unreachable after the rollback'
            time.sleep(2)
    assert 'PK-bad' not in after and 'PK-good' not in after
    assert after == before


def test_zz_doors_come_back_after_a_restart():
    rules = {0: 'iptables-save -t filter | grep PK- ; ip6tables-save -t filter | grep PK-',
             1: 'nft -s -t list table inet portknock_seed; nft -s -t list table inet portknock_baseline',
             2: 'iptables-save -t filter | grep PK- ; ip6tables-save -t filter | grep PK-'}
    before = dict((i, th(i).check_output(rules[i])) for i in range(3))
    restarts = [subprocess.Popen([LAB_PODMAN, 'restart', HOSTS[i]['container']], stdout=subprocess.DEVNULL)
                for i in range(3)]
    assert [p.wait() for p in restarts] == [0, 0, 0]
    for i in range(3):
        th(i).forget()
        deadline = time.time() + 90
        while True:
            try:
                th(i).check_output('systemctl is-active portknock-recent-knock.service')
                break
            except (AssertionError, subprocess.TimeoutExpired):
                assert time.time() < deadline, 'host %d did not come back' % i
                time.sleep(2)
        assert th(i).check_output(rules[i]) == before[i]
    th(0).check_output('systemctl is-active pk-listen.service || true')
    res = probe(1, [['connect', HOSTS[0]['ipv4'], 22]] + knocks(HOSTS[0]['ipv4'], [1600])
                + [['connect', HOSTS[0]['ipv4'], 22]])
    assert res == [False, True]
