"""The lab gives each host its own firewall and a network between hosts."""
import json
import os

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
STATE = os.environ.get('PKLAB_STATE', os.path.join(REPO, '.lab'))
LAB = 'm-' + os.environ.get('MOLECULE_SCENARIO_NAME', 'lab')
PROBE = '-A INPUT -s {src}/32 -p tcp -m tcp --dport 22 -m comment --comment pklab-probe -j DROP'


def lab_hosts():
    with open(os.path.join(STATE, 'labs', LAB, 'hosts.json')) as fh:
        return json.load(fh)['hosts']


def me_and_other(host):
    hosts = lab_hosts()
    names = [h['name'] for h in hosts]
    me = names.index(host.backend.get_hostname())
    return me, hosts


def test_each_host_has_its_own_firewall(host):
    me, hosts = me_and_other(host)
    rules = host.check_output('iptables -S INPUT')
    if me == 0:
        assert PROBE.format(src=hosts[1]['ipv4']) in rules
    else:
        assert 'pklab-probe' not in rules


def test_drop_on_one_host_does_not_affect_the_other(host):
    me, hosts = me_and_other(host)
    for proto in ('ipv4', 'ipv6'):
        probe = host.run('nc -z -w 2 %s 22' % hosts[1 - me][proto])
        if me == 1 and proto == 'ipv4':   # host 2 -> host 1: dropped by host 1's own rule
            assert probe.rc != 0
        else:                             # no such rule on host 2, and none for IPv6
            assert probe.rc == 0, (proto, probe.stderr)


def test_package_came_through_the_proxy(host):
    assert host.package('tcpdump').is_installed
