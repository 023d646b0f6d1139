# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The recent_knock role's baselines fail closed: no protected port is accepted as such,
only what a door marks (nftables doors) or lets in itself (iptables doors' chains)."""

from __future__ import absolute_import, division, print_function

import os
import re

import jinja2
import pytest

from ansible_collections.portknock.knock.plugins.module_utils import nft_rules
from ansible_collections.portknock.knock.plugins.module_utils.door import make_door

TEMPLATES = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'roles', 'recent_knock', 'templates')
DOORS = [dict(name='ssh', sequence=[7313, 4187, 9421], port=22),
         dict(name='web', sequence=[9421], port=[8443, 2222]),
         dict(name='dns', sequence=[4187], port=5353, protocol='udp'),
         dict(name='old', sequence=[7313], port=2022, state='absent')]


def render(name, **variables):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True, keep_trailing_newline=True)
    env.tests['search'] = lambda value, pattern: re.search(pattern, value) is not None
    values = dict(ansible_managed='managed', recent_knock_doors=DOORS, recent_knock_management_ports=[22],
                  recent_knock_management_networks=['10.231.0.1', '10.9.0.0/16', 'fd42:706b:6c61::1'])
    values.update(variables)
    return env.get_template(name).render(**values)


@pytest.mark.parametrize('networks', [[], ['10.231.0.1'], ['fd42:706b:6c61::/64', '10.231.0.1']])
def test_nft_baseline_accepts_marked_packets_not_protected_ports(networks):
    text = render('baseline.nft.j2', recent_knock_management_networks=networks)
    rules = [line.strip() for line in text.splitlines()
             if ('dport' in line or 'mark' in line) and not line.startswith('#')]
    assert rules[-1] == nft_rules.ACCEPT_MARKED
    # the only port accepts are the management allowlist's, from its sources
    assert all(rule.startswith(('ip saddr {', 'ip6 saddr {')) for rule in rules[:-1])
    assert len(rules) == 1 + len(set(':' in n for n in networks))
    # read as the module reads a host's chain: a door behind it opens, no door means closed
    chains = nft_rules.parse_ruleset(text)
    for door in (make_door('ssh', [7313, 4187, 9421], 22), make_door('web', [9421], [8443, 2222]),
                 make_door('dns', [4187], 5353, protocol='udp')):
        assert nft_rules.blocking_chains(chains, door) == []
    unmarked = nft_rules.parse_ruleset(text.replace(nft_rules.ACCEPT_MARKED, ''))
    assert len(nft_rules.blocking_chains(unmarked, make_door('ssh', [7313], 22))) == 1


@pytest.mark.parametrize('family', ['ipv4', 'ipv6'])
def test_iptables_baseline_never_accepts_a_protected_port(family):
    text = render('baseline.rules.j2', family=family)
    rules = [line for line in text.splitlines() if line.startswith('-A ')]
    assert ':INPUT DROP [0:0]' in text
    assert rules[-1] == '-A PK-baseline -m mark --mark 0x%08x/0x%08x -j ACCEPT' % (nft_rules.MARK, nft_rules.MARK)
    for rule in rules:
        if '--dport' in rule:
            assert ' -s ' in rule and '--dport 22 ' in rule       # management allowlist only
    for port in (2222, 8443, 5353, 2022):
        assert '--dport %d ' % port not in text
    sources = [rule.split(' -s ')[1].split()[0] for rule in rules if ' -s ' in rule]
    assert sources == (['10.231.0.1/32', '10.9.0.0/16'] if family == 'ipv4' else ['fd42:706b:6c61::1/128'])
