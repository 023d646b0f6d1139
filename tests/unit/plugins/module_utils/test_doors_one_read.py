# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Many doors, few reads (issue 15): one parse of each iptables-save for every door, nftables
read table by table in one ``nft -i``; the calls a 50-door run makes do not grow with the doors."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.portknock.knock.plugins.module_utils import nft_rules
from ansible_collections.portknock.knock.plugins.module_utils import recent_knock_backends as rkb
from ansible_collections.portknock.knock.plugins.module_utils import recent_rules

from fake_firewall import FakeFirewall


def requests(count, backend, state='present'):
    return [rkb.request_from(dict(name='d%d' % i, sequence=[7313 + 7 * i, 4187 + 5 * i, 9421 + 3 * i],
                                  port=20000 + i, state=state, backend=backend, step_timeout=10, open_window=30))
            for i in range(count)]


def converge(host, reqs, check_mode=False):
    run = rkb.Converger(reqs, host.run, host.which, check_mode=check_mode)
    run.converge(multi=True)
    return run


def reads(host):
    """The read calls the host saw, as (tool, args)."""
    out = []
    for args, _data in host.calls:
        tool = args[0].rsplit('/', 1)[-1]
        if args[1:] != ['--version'] and (tool.endswith('-save') or (tool == 'nft' and args[1:] != ['-f', '-'])):
            out.append((tool, ' '.join(args[1:])))
    return out


SAVE = '''*nat
:PREROUTING ACCEPT [0:0]
-A PREROUTING -j PK-d1
COMMIT
*filter
:INPUT DROP [0:0]
:PK-d0 - [0:0]
:PK-d0-R - [0:0]
:PK-d1-R - [0:0]
:OTHER - [0:0]
-A INPUT -j PK-d0
-A INPUT -i lo -j ACCEPT
-A INPUT -j PK-d0
-A INPUT -j PK-d2
-A PK-d0 -p tcp -m tcp --dport 22 -j DROP
-A OTHER -j PK-d0
-A PK-d0-R -j RETURN
-A PK-d0 -p udp -j DROP
-A PK-d1-R -m recent --remove --name PK_d1_1 --mask 255.255.255.255 --rsource
COMMIT
'''


def test_live_states_is_live_state_of_each_door():
    doors = [r.door for r in requests(4, 'iptables')] + [rkb.door_for_removal('OTHER')]
    many = recent_rules.live_states(SAVE, doors)
    assert many == dict((door.name, recent_rules.live_state(SAVE, door)) for door in doors)
    # what live_state has always said: jumps (twice: twice), -N of the existing chains, the rules in table order
    assert many['d0'] == ['-A INPUT -j PK-d0', '-A INPUT -j PK-d0', '-N PK-d0', '-N PK-d0-R',
                          '-A PK-d0 -p tcp -m tcp --dport 22 -j DROP', '-A PK-d0-R -j RETURN', '-A PK-d0 -p udp -j DROP']
    assert many['d2'] == ['-A INPUT -j PK-d2'] and many['d3'] == []


@pytest.mark.parametrize('backend', ['iptables', 'nftables'])
def test_fifty_doors_read_as_few_times_as_one(backend):
    host = FakeFirewall()
    if backend == 'nftables':
        idempotent = [('nft', '-a list chains'), ('nft', '-a -t -i')]
    else:
        idempotent = [('iptables-nft-save', '-t filter'), ('ip6tables-nft-save', '-t filter')]
    for reqs in (requests(1, backend), requests(50, backend)):
        host.calls[:] = []
        assert converge(host, reqs).changed       # first run: read, apply, read back once
        first = reads(host)
        assert len(first) <= 2 * len(idempotent) and set(first) <= set(idempotent)
        host.calls[:] = []
        assert not converge(host, reqs).changed   # idempotent: one read
        again = reads(host)
        assert again == idempotent
    assert not [call for call in first + again if 'ruleset' in call[1]]


def test_nft_reads_every_door_table_it_has_on_the_host():
    host = FakeFirewall()
    converge(host, requests(5, 'nftables'))
    scripts = [data for args, data in host.calls if args[1:] == ['-a', '-t', '-i']]
    assert scripts[-1] == ''.join('list table inet portknock_d%d\n' % i for i in range(5))


@pytest.mark.parametrize('text, names', [
    ('', []),
    ('table inet portknock_a { # handle 3\n\tchain input { # handle 1\n\t}\n}\ntable ip filter {\n}\n',
     ['inet portknock_a', 'ip filter']),
    ('table netdev ingress.x-1 {\n}\n', ['netdev ingress.x-1']),
    ('table inet "odd name" {\n}\n', None),         # nft would need it quoted back: read the whole ruleset
    ('table inet a;b {\n}\n', None),
    ('table weird x {\n}\n', None),
])
def test_listed_tables(text, names):
    assert nft_rules.listed_tables(text) == names
