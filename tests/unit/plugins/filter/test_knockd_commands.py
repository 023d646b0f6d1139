# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.portknock.knock.plugins.filter.knockd_commands import (
    chain_name, knockd_firewall_chains, knockd_stanza_params)

SEED = {'name': 'opencloseSSH', 'sequence': '3371:tcp,2459:tcp,4126:tcp', 'seq_timeout': 15,
        'tcpflags': 'syn', 'port': 22, 'cmd_timeout': 5}


def test_seed_door_renders_check_before_insert_commands_for_both_families():
    params = knockd_stanza_params(SEED)
    assert params['sequence'] == '3371:tcp,2459:tcp,4126:tcp'
    assert params['tcpflags'] == 'syn'
    assert params['seq_timeout'] == 15 and params['cmd_timeout'] == 5
    assert params['start_command'] == (
        '/usr/sbin/iptables -w -C PK-opencloseSSH-KD -s %IP% -j ACCEPT 2>/dev/null'
        ' || /usr/sbin/iptables -w -I PK-opencloseSSH-KD 1 -s %IP% -j ACCEPT')
    assert params['stop_command'] == '/usr/sbin/iptables -w -D PK-opencloseSSH-KD -s %IP% -j ACCEPT'
    assert params['start_command_6'].startswith('/usr/sbin/ip6tables -w -C PK-opencloseSSH-KD')
    assert params['stop_command_6'] == '/usr/sbin/ip6tables -w -D PK-opencloseSSH-KD -s %IP% -j ACCEPT'


def test_ipv4_only_door_has_no_ipv6_commands_and_its_ipv6_chain_is_removed():
    door = dict(SEED, ip_version='ipv4')
    params = knockd_stanza_params(door)
    assert 'start_command_6' not in params and 'stop_command_6' not in params
    chains = knockd_firewall_chains([door])
    assert [(c['family'], c['state']) for c in chains] == [('ipv4', 'present'), ('ipv6', 'absent')]


def test_without_managed_firewall_commands_insert_into_input_with_the_port_match():
    params = knockd_stanza_params(dict(SEED, port=[22, 2022]), firewall=False)
    assert params['start_command'] == (
        '/usr/sbin/iptables -w -C INPUT -s %IP% -p tcp -m multiport --dports 22,2022 -j ACCEPT 2>/dev/null'
        ' || /usr/sbin/iptables -w -I INPUT 1 -s %IP% -p tcp -m multiport --dports 22,2022 -j ACCEPT')
    assert knockd_firewall_chains([SEED], firewall=False) == []


def test_raw_commands_replace_the_rendered_ones():
    params = knockd_stanza_params({'name': 'raw', 'sequence': [1, 2], 'command': '/bin/true %IP%'})
    assert params == {'name': 'raw', 'state': 'present', 'sequence': [1, 2], 'command': '/bin/true %IP%'}
    assert knockd_firewall_chains([{'name': 'raw', 'sequence': [1, 2], 'command': 'x'}]) == []


def test_absent_door():
    assert knockd_stanza_params({'name': 'old', 'state': 'absent'}) == {'name': 'old', 'state': 'absent'}
    chains = knockd_firewall_chains([{'name': 'old', 'state': 'absent'}])
    assert [(c['chain'], c['state']) for c in chains] == [('PK-old-KD', 'absent')] * 2


def test_chains_jump_for_new_connections_and_end_in_drop_after_allowed_sources():
    chains = knockd_firewall_chains([dict(SEED, protocol='tcp')], always_allow=['10.0.0.1', 'fd00::/64'],
                                    iptables='ipt4', ip6tables='ipt6')
    v4, v6 = chains
    assert v4['binary'] == 'ipt4' and v6['binary'] == 'ipt6'
    assert v4['jump'] == '-p tcp -m multiport --dports 22 -m conntrack --ctstate NEW -j PK-opencloseSSH-KD'
    assert v4['static'] == ['-s 10.0.0.1/32 -m comment --comment pk-static -j ACCEPT',
                            '-m comment --comment pk-static -j DROP']
    assert v6['static'] == ['-s fd00::/64 -m comment --comment pk-static -j ACCEPT',
                            '-m comment --comment pk-static -j DROP']


def test_chain_name_fits_iptables_limit_for_the_longest_door_name():
    assert len(chain_name('a' * 20)) <= 28


@pytest.mark.parametrize('door, message', [
    (dict(SEED, port=70000), '70000'),
    (dict(SEED, protocol='sctp'), 'sctp'),
    (dict(SEED, tcpflags='syn,fin,bogus'), 'bogus'),
    (dict(SEED, seq_timeout=0), '0'),
    (dict(SEED, cmd_timeout=-1), '-1'),
    (dict(SEED, sequence='22:tcp,2459'), '22'),
    (dict(SEED, name='bad name'), 'bad name'),
    (dict(SEED, colour='red'), 'colour'),
    (dict(SEED, state='gone'), 'gone'),
    ({'name': 'noport', 'sequence': [1, 2]}, 'port'),
    ('not a dict', 'dict'),
])
def test_bad_doors_fail_naming_the_value(door, message):
    with pytest.raises(AnsibleFilterError) as exc:
        knockd_stanza_params(door)
    assert message in str(exc.value)


def test_bad_always_allow_source():
    with pytest.raises(AnsibleFilterError, match='nonsense'):
        knockd_firewall_chains([SEED], always_allow=['nonsense'])


def test_filter_names_are_the_functions_names():
    from ansible_collections.portknock.knock.plugins.filter import knockd_commands
    filters = knockd_commands.FilterModule().filters()
    assert sorted(filters) == ['knockd_firewall_chains', 'knockd_stanza_params', 'management_networks']
    assert filters['management_networks'] is knockd_commands.management_networks
