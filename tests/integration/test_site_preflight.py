# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""site.yml's preflight refuses doors before any host is touched (issue 11, items 16 and 17).

The fleet is one host whose ssh port nothing listens on (127.0.0.1 port 9): the preflight's
checks run on the controller, so a refused door fails there with nothing connected, and a
door list that passes them gets as far as the first task that needs the host, which is then
unreachable.  Real ansible-playbook runs of the repository's site.yml and inventory/.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import subprocess

import pytest

pytestmark = pytest.mark.integration

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
RECAP = re.compile(r'^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', re.M)
HOST = 'preflight-1'
SAFE = {'name': 'ssh', 'sequence': [7313, '4187:udp', 9421], 'port': 22}
PORTS = ('7000', '8000', '9000', '2222', '3333', '4444', '1600')
FIRST_REMOTE_TASK = 'Is the host as its last confirmed rollout left it'   # site.yml's first task that connects


@pytest.fixture
def inventory(tmp_path):
    path = tmp_path / 'fleet.yml'
    path.write_text(json.dumps({'knock_iptables': {'hosts': {HOST: {
        'ansible_host': '127.0.0.1', 'ansible_port': 9, 'ansible_user': 'nobody'}}}}))
    return str(path)


def playbook(inventory, *extra_vars):
    cmd = ['ansible-playbook', '-i', os.path.join(REPO, 'inventory'), '-i', inventory,
           os.path.join(REPO, 'site.yml'), '--check']
    for value in extra_vars:
        cmd += ['-e', json.dumps(value)]
    proc = subprocess.run(cmd, cwd=REPO, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=300,
                          env=dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_TIMEOUT='5'))
    recap = dict((name, dict(ok=int(ok), unreachable=int(unr), failed=int(failed)))
                 for name, ok, _changed, unr, failed in RECAP.findall(proc.stdout))
    return proc, recap[HOST]


def refused_before_any_connection(proc, recap):
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert recap['failed'] == 1 and recap['unreachable'] == 0, (recap, proc.stdout[-3000:])
    assert FIRST_REMOTE_TASK not in proc.stdout
    assert 'Roll out the doors' not in proc.stdout


def passed_preflight_checks(proc, recap):
    # the doors passed; the first task that needs the host finds nothing listening
    assert recap['unreachable'] == 1 and recap['failed'] == 0, (recap, proc.stdout[-3000:])
    assert FIRST_REMOTE_TASK in proc.stdout


def test_the_inventory_doors_pass_without_a_warning(inventory):
    proc, recap = playbook(inventory)
    passed_preflight_checks(proc, recap)
    assert 'knock sequence' not in proc.stdout and 'knock port' not in proc.stdout


@pytest.mark.parametrize('sequence', [[7000, 8000, 9000], '4444,3333:udp,2222', [1600]])
def test_a_door_a_port_scan_opens_is_refused(inventory, sequence):
    proc, recap = playbook(inventory, {'portknock_doors': [SAFE, {'name': 'admin', 'sequence': sequence,
                                                                  'port': 2200}]})
    refused_before_any_connection(proc, recap)
    assert "door 'admin' has a" in proc.stdout and 'allow_monotonic' in proc.stdout
    assert not [port for port in PORTS if port in proc.stdout]


@pytest.mark.parametrize('how', ['door', 'play'])
def test_allow_monotonic_lets_it_through_with_a_warning(inventory, how):
    door = {'name': 'admin', 'sequence': [7000, 8000, 9000], 'port': 2200}
    if how == 'door':
        proc, recap = playbook(inventory, {'portknock_doors': [SAFE, dict(door, allow_monotonic=True)]})
    else:
        proc, recap = playbook(inventory, {'portknock_doors': [SAFE, door]}, {'allow_monotonic': True})
    passed_preflight_checks(proc, recap)
    assert re.search(r"\[WARNING\]: door 'admin' has an\s+ascending knock sequence", proc.stdout), proc.stdout[-3000:]
    assert not [port for port in PORTS if port in proc.stdout]


# --- doors of one host that collide (item 17) --------------------------------------------------

def test_a_knock_step_on_another_doors_port_is_refused_naming_both(inventory):
    proc, recap = playbook(inventory, {'portknock_doors': [SAFE, {'name': 'admin', 'sequence': [22, 7001, 5003],
                                                                  'port': 2200}]})
    refused_before_any_connection(proc, recap)
    assert "door 'admin' has a knock step on a port that door 'ssh' protects" in proc.stdout, proc.stdout[-3000:]
    assert not [port for port in ('7001', '5003', '2200') if port in proc.stdout]


def test_a_knock_step_on_the_ssh_port_ansible_uses_is_refused(inventory):
    # the fleet host's ssh port is 9 (no door protects it): a knock rule there would drop Ansible's connection
    proc, recap = playbook(inventory, {'portknock_doors': [SAFE, {'name': 'web', 'sequence': [8243, 9, 9127],
                                                                  'port': 443}]})
    refused_before_any_connection(proc, recap)
    assert "door 'web' has a knock step on a port that the ssh port Ansible connects to" in proc.stdout


@pytest.mark.parametrize('baseline, networks, refused', [(True, ['10.231.0.1'], True), (False, ['10.231.0.1'], False),
                                                         (True, [], False)])
def test_a_knock_step_on_the_management_allowlist_is_refused(inventory, baseline, networks, refused):
    proc, recap = playbook(inventory, {'portknock_doors': [SAFE, {'name': 'web', 'sequence': [8243, 2022, 9127],
                                                                  'port': 443}],
                                       'recent_knock_baseline': baseline, 'recent_knock_management_networks': networks,
                                       'recent_knock_management_ports': [22, 2022]})
    if refused:
        refused_before_any_connection(proc, recap)
        assert "door 'web' has a knock step on a port that the management allowlist" in proc.stdout
    else:
        passed_preflight_checks(proc, recap)


def test_the_recent_knock_role_refuses_colliding_doors_before_any_change(inventory, tmp_path):
    play = tmp_path / 'role.yml'
    play.write_text(json.dumps([{'hosts': HOST, 'gather_facts': False, 'roles': [{
        'role': 'portknock.knock.recent_knock',
        'vars': {'recent_knock_doors': [dict(SAFE, backend='iptables'),
                                        {'name': 'admin', 'sequence': '5003,22,7001', 'port': 2200}]}}]}]))
    proc = subprocess.run(['ansible-playbook', '-i', inventory, str(play), '--check'], cwd=str(tmp_path), check=False,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=300,
                          env=dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_TIMEOUT='5'))
    recap = dict((name, dict(unreachable=int(unr), failed=int(failed)))
                 for name, _ok, _changed, unr, failed in RECAP.findall(proc.stdout))[HOST]
    refused_before_any_connection(proc, recap)
    assert "door 'admin' has a knock step on a port that door 'ssh' protects" in proc.stdout, proc.stdout[-3000:]
    assert not [port for port in ('7001', '5003', '2200') if port in proc.stdout]
