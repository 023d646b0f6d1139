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
import time

import pytest
import testinfra

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIO = os.path.dirname(HERE)
REPO = os.path.abspath(os.path.join(SCENARIO, '..', '..'))
STATE = os.environ.get('PKLAB_STATE', os.path.join(REPO, '.lab'))
LAB = 'm-' + os.environ.get('MOLECULE_SCENARIO_NAME', 'recent-knock')
INVENTORY = os.path.join(STATE, 'labs', LAB, 'inventory.yml')
SEED_PORT = {0: 22, 1: 2022, 2: 2022}


def lab_hosts():
    with open(os.path.join(STATE, 'labs', LAB, 'hosts.json')) as fh:
        return json.load(fh)['hosts']


HOSTS = lab_hosts()


def th(index):
    return testinfra.get_host('ansible://%s' % HOSTS[index]['name'], ansible_inventory=INVENTORY)


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


def firewall(index):
    """The whole live firewall of a host, without counters (compare before/after)."""
    h = th(index)
    text = h.check_output('iptables-save; ip6tables-save; nft -s list ruleset')
    return '\n'.join(re.sub(r'\[\d+:\d+\]', '', line) for line in text.splitlines()
                     if not line.startswith('#'))


def playbook(*args, check=True):
    cmd = ['ansible-playbook', '-i', INVENTORY] + list(args)
    env = dict(os.environ, ANSIBLE_PIPELINING='true')
    proc = subprocess.run(cmd, cwd=SCENARIO, capture_output=True, text=True, env=env)
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


@pytest.mark.parametrize('server,fam', CASES, ids=IDS)
def test_seed_recipe(server, fam):
    addr, port = HOSTS[server][fam], SEED_PORT[server]
    client = clients_of(server)[0]
    res = probe(client, [['connect', addr, port]] + knocks(addr, [1600]) + [
        ['connect', addr, port], ['sleep', 6], ['connect', addr, port]])
    assert res == [False, True, False], 'no knock / knock then within 5 s / after 6 s'


@pytest.mark.parametrize('server,fam', CASES, ids=IDS)
def test_three_step_door_only_in_order_in_time_from_one_address(server, fam):
    addr = HOSTS[server][fam]
    a, b = clients_of(server)
    assert probe(a, knocks(addr, [7202, 7201, 7203]) + [['connect', addr, 2023]]) == [False], 'wrong order'
    assert probe(a, knocks(addr, [7201, 7202]) + [['sleep', 4]] + knocks(addr, [7203])
                 + [['connect', addr, 2023]]) == [False], 'too slow'
    probe(b, knocks(addr, [7201]))
    assert probe(a, knocks(addr, [7202, 7203]) + [['connect', addr, 2023]]) == [False], 'another address'
    assert probe(b, [['connect', addr, 2023]]) == [False]
    assert probe(a, knocks(addr, [7201, 7202, 7203]) + [['connect', addr, 2023]]) == [True], 'right order'
    assert probe(b, [['connect', addr, 2023]]) == [False], 'only the knocker is let in'
    assert probe(a, [['connect', addr, 2023]]) == [True]


@pytest.mark.parametrize('server,fam', CASES, ids=IDS)
def test_door_with_udp_step(server, fam):
    addr = HOSTS[server][fam]
    a = clients_of(server)[0]
    assert probe(a, knocks(addr, [7301, 7302, 7303]) + [['connect', addr, 2024]]) == [False], 'TCP on the UDP step'
    assert probe(a, knocks(addr, [7301, 7303, '7302:udp']) + [['connect', addr, 2024]]) == [False], 'wrong order'
    assert probe(a, knocks(addr, [7301, '7302:udp', 7303]) + [['connect', addr, 2024]]) == [True]


def test_check_mode_changes_nothing():
    before = [firewall(i) for i in range(3)]
    extra = json.dumps({'lab_extra_doors': [{'name': 'extra', 'sequence': [7401], 'port': 2025}]})
    proc = playbook('--check', '-e', extra, 'converge.yml')
    assert re.search(r'changed=[1-9]', proc.stdout), 'check mode must report the new door'
    assert [firewall(i) for i in range(3)] == before


def test_absent_leaves_no_trace():
    for index, backend in ((0, 'iptables'), (1, 'nftables'), (2, 'iptables')):
        h = th(index)
        name = h.backend.get_hostname()
        for state in ('present', 'absent'):
            subprocess.run(['ansible', '-i', INVENTORY, name, '-m', 'portknock.knock.recent_knock', '-a',
                            'name=gone sequence=7501,7502 port=2026 backend=%s state=%s' % (backend, state)],
                           check=True, capture_output=True)
        everything = h.check_output('iptables-save; ip6tables-save; nft list ruleset; ls /proc/net/xt_recent/ || true')
        assert 'gone' not in everything


def test_xt_recent_capacity_option_written():
    assert th(0).file('/etc/modprobe.d/portknock-xt_recent.conf').contains('options xt_recent ip_list_tot=1000')
    assert not th(1).file('/etc/modprobe.d/portknock-xt_recent.conf').exists


def test_rollback_of_a_door_that_cuts_the_controller_off():
    """Host 3 (no baseline): a door on ssh itself, the controller cannot knock -> rollback."""
    before = firewall(2)
    name = HOSTS[2]['name']
    proc = playbook('-e', 'lab_rollback_host=%s' % name, 'rollback.yml', check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert 'cut the controller off' in out and 'ROLLED BACK' in out, out[-3000:]
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            after = firewall(2)
            break
        except Exception:   # not reachable yet: the host restores by itself
            time.sleep(2)
    assert 'PK-bad' not in after
    assert after == before


def test_zz_doors_come_back_after_a_restart():
    rules = {0: 'iptables-save -t filter | grep PK- ; ip6tables-save -t filter | grep PK-',
             1: 'nft -t list table inet portknock_seed; nft -t list table inet portknock_baseline',
             2: 'iptables-save -t filter | grep PK- ; ip6tables-save -t filter | grep PK-'}
    before = dict((i, th(i).check_output(rules[i])) for i in range(3))
    for i in range(3):
        subprocess.run(['podman', 'restart', HOSTS[i]['container']], check=True, capture_output=True)
    for i in range(3):
        deadline = time.time() + 90
        while True:
            try:
                th(i).check_output('systemctl is-active portknock-recent-knock.service')
                break
            except Exception:
                assert time.time() < deadline, 'host %d did not come back' % i
                time.sleep(2)
        assert th(i).check_output(rules[i]) == before[i]
    th(0).check_output('systemctl is-active pk-listen.service || true')
    res = probe(1, [['connect', HOSTS[0]['ipv4'], 22]] + knocks(HOSTS[0]['ipv4'], [1600])
                + [['connect', HOSTS[0]['ipv4'], 22]])
    assert res == [False, True]
