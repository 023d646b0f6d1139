# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role inputs that reach rule syntax or shell commands are checked first (issue 11, item 15)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest
import yaml

from ansible.errors import AnsibleFilterError
from ansible_collections.portknock.knock.plugins.filter import knockd_commands
from ansible_collections.portknock.knock.plugins.filter.knockd_commands import (
    knockd_firewall_chains, knockd_stanza_params, management_networks)

ROLES = os.path.join(os.path.dirname(knockd_commands.__file__), '..', '..', 'roles')
DOOR = dict(name='ssh', sequence=[7313, 4187, 9421], port=22)

INJECTIONS = ['10.0.0.1\n-I INPUT 1 -j ACCEPT', '10.0.0.1 -j ACCEPT', '-j ACCEPT', '10.0.0.0/8 ', ' 10.0.0.1',
              '10.0.0.1;reboot', '10.0.0.1}', 'fd00::1 } accept; tcp dport 22 accept #', '0.0.0.0/0\n', '',
              'example.org', '10.0.0.1/33', '10.0.0.1\x00', 7, None, ['10.0.0.1']]


@pytest.mark.parametrize('value', INJECTIONS, ids=[ascii(v) for v in INJECTIONS])
def test_management_networks_refuses_anything_but_networks(value):
    with pytest.raises(AnsibleFilterError) as error:
        management_networks(['10.1.2.3', value])
    assert 'recent_knock_management_networks' in str(error.value) and repr(value) in str(error.value)
    with pytest.raises(AnsibleFilterError) as error:
        knockd_firewall_chains([DOOR], True, [value])
    assert 'knockd_always_allow' in str(error.value)


def test_management_networks_accepts_networks():
    nets = ['10.1.2.3', '10.0.0.0/8', 'fd42:706b:6c61::/64', 'fd42:706b:6c61::10', '10.1.2.3/32']
    assert management_networks(nets) == nets
    assert management_networks([]) == [] and management_networks(None) == []


BAD_BINARIES = ['/usr/sbin/iptables -t nat', '/usr/sbin/iptables\n/bin/sh', '-iptables', '/sbin/ipt$(id)',
                '/sbin/iptables;reboot', "/sbin/ip'tables", '/sbin/iptables -j ACCEPT', '', '/x/-j', 7, None]


@pytest.mark.parametrize('value', BAD_BINARIES, ids=[ascii(v) for v in BAD_BINARIES])
def test_binaries_are_one_safe_path(value):
    for call in (lambda: knockd_stanza_params(DOOR, True, value, '/usr/sbin/ip6tables'),
                 lambda: knockd_stanza_params(DOOR, True, '/usr/sbin/iptables', value),
                 lambda: knockd_firewall_chains([DOOR], True, [], value),
                 lambda: knockd_firewall_chains([], True, [], '/usr/sbin/iptables', value)):
        with pytest.raises(AnsibleFilterError) as error:
            call()
        assert repr(value) in str(error.value) and 'knockd_ip' in str(error.value)


def test_good_binaries():
    params = knockd_stanza_params(DOOR, True, '/usr/sbin/iptables-nft', '/usr/local/sbin/ip6tables')
    assert params['start_command'].startswith('/usr/sbin/iptables-nft -w -C PK-ssh-KD')


def test_recent_knock_role_checks_the_networks_before_rendering():
    with open(os.path.join(ROLES, 'recent_knock', 'tasks', 'main.yml')) as handle:
        tasks = yaml.safe_load(handle)
    names = [task['name'] for task in tasks]
    check = [i for i, task in enumerate(tasks) if 'portknock.knock.management_networks' in str(task)]
    baseline = [i for i, name in enumerate(names) if 'baseline' in name.lower() and 'include_tasks' in str(tasks[i])]
    assert check and baseline and check[0] < baseline[0]
