"""The knockd role with real packets between lab hosts.

m-knockd-1 runs Debian's knockd with the seed's [opencloseSSH] door (ssh, cmd_timeout 5 s);
m-knockd-2 knocks with Debian's `knock` and the collection's client (`pk-knock`);
m-knockd-3 is another address that only ever knocks the wrong order.
Every test acts from the client's side, so it runs once (for m-knockd-2).
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
REPO = os.path.dirname(os.path.dirname(SCENARIO))
STATE = os.environ.get('PKLAB_STATE', os.path.join(REPO, '.lab'))
LAB = 'm-' + os.environ.get('MOLECULE_SCENARIO_NAME', 'knockd')
DOOR = 'opencloseSSH'
CHAIN = 'PK-%s-KD' % DOOR
SEQUENCE = '2222 3333 4444'
CMD_TIMEOUT = 5
SEQ_TIMEOUT = 15


def lab():
    with open(os.path.join(STATE, 'labs', LAB, 'hosts.json')) as fh:
        return dict((h['name'], h) for h in json.load(fh)['hosts'])


HOSTS = lab()
SERVER, CLIENT, OTHER = (HOSTS['%s-%d' % (LAB, i)] for i in (1, 2, 3))


def inventory():
    return os.environ.get('MOLECULE_INVENTORY_FILE')


def get(name):
    return testinfra.get_host('ansible://' + name, ansible_inventory=inventory())


@pytest.fixture
def client(host):
    if host.backend.get_hostname() != CLIENT['name']:
        pytest.skip('acts from the client only')
    return host


@pytest.fixture
def server():
    return get(SERVER['name'])


@pytest.fixture
def other():
    return get(OTHER['name'])


def reaches(probe, family='ipv4', port=22):
    return probe.run('nc -%s -z -w 2 %s %d' % (family[-1], SERVER[family], port)).rc == 0


def knocker_rules(server, family='ipv4'):
    binary = 'iptables' if family == 'ipv4' else 'ip6tables'
    rules = server.check_output('%s -w -S %s' % (binary, CHAIN))
    return [line for line in rules.splitlines() if line.startswith('-A') and 'pk-static' not in line]


def wait_closed(client, family='ipv4'):
    time.sleep(CMD_TIMEOUT + 2)
    assert not reaches(client, family), 'door still open after cmd_timeout'


def test_config_is_private_and_has_the_seed_door(client, server):
    conf = server.file('/etc/knockd.conf')
    assert conf.mode == 0o600
    text = conf.content_string
    assert re.search(r'Sequence = 2222:tcp,3333:tcp,4444:tcp\n\s*Seq_Timeout = 15\n\s*TCPFlags = syn', text)
    assert 'Cmd_Timeout = %d' % CMD_TIMEOUT in text
    assert '[openSSH]' not in text                       # Debian's well-known example door
    assert '[rawDoor]' in text and 'Start_Command = /usr/bin/logger -t rawDoor %IP%' in text
    assert server.service('knockd').is_running and server.service('knockd').is_enabled
    assert 'START_KNOCKD=1' in server.file('/etc/default/knockd').content_string


def test_absent_door_removed_stanza_and_chains(client, server):
    assert '[retiredDoor]' not in server.file('/etc/knockd.conf').content_string
    for binary in ('iptables', 'ip6tables'):
        assert 'PK-retiredDoor-KD' not in server.check_output('%s -w -S' % binary)


def test_ssh_closed_to_non_knockers_but_not_to_the_controller(client, other):
    assert not reaches(client)
    assert not reaches(client, 'ipv6')
    assert not reaches(other)
    # the controller (molecule) keeps its ssh: knockd_always_allow
    assert subprocess.call(['nc', '-z', '-w', '2', SERVER['ipv4'], '22']) == 0


def test_debian_knock_opens_for_the_knocker_only_then_closes(client, server, other):
    assert client.run('knock %s %s' % (SERVER['ipv4'], SEQUENCE)).rc == 0
    time.sleep(0.5)
    assert reaches(client)
    assert not reaches(other)
    assert knocker_rules(server) == ['-A %s -s %s/32 -j ACCEPT' % (CHAIN, CLIENT['ipv4'])]
    wait_closed(client)
    assert knocker_rules(server) == []


def test_knocking_twice_adds_no_duplicate_rule(client, server):
    for _ in range(2):
        assert client.run('knock %s %s' % (SERVER['ipv4'], SEQUENCE)).rc == 0
        time.sleep(0.5)
    assert reaches(client)
    assert len(knocker_rules(server)) == 1
    wait_closed(client)
    assert knocker_rules(server) == []


def test_restart_forgets_knockers_and_never_opens_the_door(client, server):
    """Restarting knockd drops the knockers' rules, and the chain keeps its closing DROP
    throughout (sampled while knockd restarts: a flushed chain would be an open door)."""
    assert client.run('knock %s %s' % (SERVER['ipv4'], SEQUENCE)).rc == 0
    time.sleep(0.5)
    assert len(knocker_rules(server)) == 1
    sampled = server.check_output(
        "( for i in $(seq 300); do iptables -w -S %s | tail -n 1; done ) > /tmp/pk-samples & "
        "for i in 1 2 3; do systemctl restart knockd; done; wait; "
        "echo $(wc -l < /tmp/pk-samples) $(grep -c -v -e '--comment pk-static -j DROP$' /tmp/pk-samples); "
        "rm -f /tmp/pk-samples" % CHAIN)
    total, open_samples = (int(n) for n in sampled.split())
    assert total == 300 and open_samples == 0, sampled
    assert server.service('knockd').is_running
    assert knocker_rules(server) == []
    assert not reaches(client)


def test_ipv6_knock_opens_ipv6(client, server):
    assert client.run('knock -6 %s %s' % (SERVER['ipv6'], SEQUENCE)).rc == 0
    time.sleep(0.5)
    assert reaches(client, 'ipv6')
    assert knocker_rules(server, 'ipv6') == ['-A %s -s %s/128 -j ACCEPT' % (CHAIN, CLIENT['ipv6'])]
    wait_closed(client, 'ipv6')


def test_collection_client_opens_then_closes(client, server):
    out = client.run('pk-knock %s %s' % (SERVER['ipv4'], SEQUENCE))
    assert out.rc == 0, out.stderr
    time.sleep(0.5)
    assert reaches(client)
    wait_closed(client)


def test_collection_knock_module_delegated_to_the_client_opens(client):
    run = subprocess.run(
        ['ansible-playbook', '-i', inventory(), os.path.join(SCENARIO, 'knock_module.yml')],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert run.returncode == 0, run.stdout[-3000:]
    wait_closed(client)


def test_wrong_order_does_not_open(client, other):
    # from the third address: a fresh source, so no earlier attempt of the client interferes
    assert other.run('knock %s 4444 3333 2222' % SERVER['ipv4']).rc == 0
    time.sleep(0.5)
    assert not reaches(other)
    assert other.run('knock %s 2222 4444 3333' % SERVER['ipv4']).rc == 0
    time.sleep(0.5)
    assert not reaches(other)


def test_check_mode_changes_nothing(client):
    env = dict(os.environ)
    run = subprocess.run(
        ['ansible-playbook', '-i', inventory(), '--check', os.path.join(SCENARIO, 'converge.yml')],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, env=env)
    assert run.returncode == 0, run.stdout[-3000:]
    recap = run.stdout[run.stdout.rindex('PLAY RECAP'):]
    assert re.findall(r'changed=(\d+)', recap) and set(re.findall(r'changed=(\d+)', recap)) == {'0'}, recap


@pytest.mark.parametrize('extra, message', [
    ({'knockd_implementation': 'bsd'}, 'knockd_implementation'),
    ({'knockd_doors': [{'sequence': [1, 3, 2], 'port': 22}]}, 'name'),
    ({'knockd_doors': [{'name': 'bad', 'sequence': [1, 3, 2], 'port': 70000}]}, '70000'),
    ({'knockd_doors': [{'name': 'bad', 'sequence': [1, 3, 2], 'port': 22, 'colour': 'red'}]}, 'colour'),
])
def test_bad_role_input_fails_and_changes_nothing(client, server, extra, message):
    before = server.check_output('sha256sum /etc/knockd.conf /etc/portknock/knockd-chains.json')
    run = subprocess.run(
        ['ansible-playbook', '-i', inventory(), '-e', json.dumps(extra), os.path.join(SCENARIO, 'bad_input.yml')],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert run.returncode != 0
    assert message in run.stdout, run.stdout[-3000:]
    assert server.check_output('sha256sum /etc/knockd.conf /etc/portknock/knockd-chains.json') == before


def converge_server(*extra):
    run = subprocess.run(
        ['ansible-playbook', '-i', inventory(), '-l', SERVER['name'], os.path.join(SCENARIO, 'converge.yml')] + list(extra),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert run.returncode == 0, run.stdout[-3000:]
    return run.stdout


def test_switch_to_the_bundled_daemon_and_back_keeps_the_doors(client, server):
    """Last test: the same knockd.conf serves both implementations; no door is lost."""
    conf = server.file('/etc/knockd.conf').content_string
    converge_server('-e', 'knockd_implementation=python')
    assert server.service('portknock-knockd').is_running and server.service('portknock-knockd').is_enabled
    assert not server.service('knockd').is_running and not server.service('knockd').is_enabled
    assert server.file('/etc/knockd.conf').content_string == conf
    assert not reaches(client)
    assert client.run('knock %s %s' % (SERVER['ipv4'], SEQUENCE)).rc == 0
    time.sleep(0.5)
    assert reaches(client)
    assert knocker_rules(server) == ['-A %s -s %s/32 -j ACCEPT' % (CHAIN, CLIENT['ipv4'])]
    wait_closed(client)

    converge_server()
    assert server.service('knockd').is_running and server.service('knockd').is_enabled
    assert not server.service('portknock-knockd').is_running and not server.service('portknock-knockd').is_enabled
    assert server.file('/etc/knockd.conf').content_string == conf
    assert client.run('pk-knock %s %s' % (SERVER['ipv4'], SEQUENCE)).rc == 0
    time.sleep(0.5)
    assert reaches(client)
    wait_closed(client)
