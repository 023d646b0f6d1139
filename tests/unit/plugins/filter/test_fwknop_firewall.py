# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""filter/fwknop_firewall.py: the fwknop role's closing chain, and what the one applier makes of it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.portknock.knock.plugins.filter.fwknop_firewall import fwknop_firewall_chains, fwknop_kernel_doors
from ansible_collections.portknock.knock.plugins.module_utils.host_firewall import chains_input

EMPTY = '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n'


def test_debian_closes_every_port_after_fwknopds_own_jump():
    chains = fwknop_firewall_chains(['tcp/22', 'udp/5353', 'tcp/22'])
    assert [c['family'] for c in chains] == ['ipv4', 'ipv6']
    v4 = chains[0]
    assert v4['state'] == 'present' and v4['position'] == 'last' and v4['jump'] == '-j PK-FWKNOP'
    assert v4['static'] == ['-p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -m comment --comment pk-static -j DROP',
                            '-p udp -m udp --dport 5353 -m conntrack --ctstate NEW -m comment --comment pk-static -j DROP']


def test_python_accepts_the_daemons_recent_list_first_with_the_mask_iptables_save_prints():
    v4, v6 = fwknop_firewall_chains(['tcp/22'], 'python', 'PKFWKNOP', 45)
    assert v4['static'][0] == ('-p tcp -m tcp --dport 22 -m recent --rcheck --seconds 45 --name PKFWKNOP_tcp_22 '
                               '--mask 255.255.255.255 --rsource -m comment --comment pk-static -j ACCEPT')
    # IPv6 has a list of its own: the kernel keeps the mask of the rule that made a list
    assert '--name PKFWKNOP6_tcp_22 --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff' in v6['static'][0]
    assert fwknop_kernel_doors(['udp/53', 'tcp/22']) == ['tcp/22=recent:PKFWKNOP_tcp_22/PKFWKNOP6_tcp_22',
                                                         'udp/53=recent:PKFWKNOP_udp_53/PKFWKNOP6_udp_53']
    assert v4['static'][1].endswith('-j DROP')


def test_the_applier_appends_the_jump_and_then_sees_nothing_to_do():
    v4 = fwknop_firewall_chains(['tcp/22'], 'python', 'PKFWKNOP', 30)[0]
    script = chains_input([v4], EMPTY)
    assert '-A INPUT -j PK-FWKNOP' in script and '-I INPUT' not in script
    running = EMPTY.replace('COMMIT\n', ':PK-FWKNOP - [0:0]\n' + ''.join(
        '-A PK-FWKNOP %s\n' % rule for rule in v4['static']) + '-A INPUT -j PK-FWKNOP\nCOMMIT\n')
    assert chains_input([v4], running) == ''


def test_no_port_removes_the_chain():
    chains = fwknop_firewall_chains([])
    assert all(c['state'] == 'absent' for c in chains)
    running = EMPTY.replace('COMMIT\n', ':PK-FWKNOP - [0:0]\n-A INPUT -j PK-FWKNOP\nCOMMIT\n')
    script = chains_input(chains[:1], running)
    assert '-D INPUT -j PK-FWKNOP' in script and '-X PK-FWKNOP' in script


@pytest.mark.parametrize('args, message', [
    ((['tcp/22;'],), "'tcp/22;'"),
    ((['sctp/22'],), 'sctp/22'),
    ((['tcp/70000'],), 'tcp/70000'),
    ((['tcp/22'], 'openbsd'), 'openbsd'),
    ((['tcp/22'], 'python', 'a name; rm'), 'a name; rm'),
    ((['tcp/22'], 'python', 'PK', 'soon'), 'seconds'),
    ((['tcp/22'], 'debian', 'PK', 30, '/usr/sbin/iptables -j ACCEPT'), 'iptables'),
])
def test_bad_input_is_a_clear_error(args, message):
    with pytest.raises(AnsibleFilterError) as exc:
        fwknop_firewall_chains(*args)
    assert message in str(exc.value)
