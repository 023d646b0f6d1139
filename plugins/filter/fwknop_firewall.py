# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter of the fwknop role: its closing chain, as a chain list for ``portknock-firewall chains``.

Chain ``PK-FWKNOP`` (IPv4 and IPv6), jumped from the END of ``INPUT`` (fwknopd inserts its own
``FWKNOP_INPUT`` jump at the top, ahead of it): every SPA-protected port is closed to new
connections.  For the bundled daemon the chain first accepts, on each port, the addresses the
daemon wrote to its kernel door (the ``-m recent`` lists ``<name>_<proto>_<port>`` for IPv4 and
``<name>6_<proto>_<port>`` for IPv6: the families must not share a list, recent_rules.py says
why) for ``seconds``.  The rules are written as ``iptables-save`` prints them, so that the applier
(module_utils/host_firewall.py) finds an unchanged chain unchanged.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible.errors import AnsibleFilterError
from ansible_collections.portknock.knock.plugins.filter.knockd_commands import STATIC_TAG, check_binary

CHAIN = 'PK-FWKNOP'
IMPLEMENTATIONS = ('debian', 'python')
MASKS = {'ipv4': '255.255.255.255', 'ipv6': 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'}
_PORT_RE = re.compile(r'^(tcp|udp)/([0-9]{1,5})$')
_NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_.-]{0,40}$')


def _port(item):
    match = _PORT_RE.match(str(item).strip().lower())
    if not match or not 1 <= int(match.group(2)) <= 65535:
        raise AnsibleFilterError('fwknop_firewall_chains: %r is not tcp/PORT or udp/PORT' % (item,))
    return match.group(1), int(match.group(2))


def recent_list(recent_name, family, proto, number):
    """The bundled daemon's kernel door list for one port and family (``-K`` of the role)."""
    return '%s%s_%s_%d' % (recent_name, '6' if family == 'ipv6' else '', proto, number)


def fwknop_kernel_doors(ports, recent_name='PKFWKNOP'):
    """The bundled daemon's ``-K`` options: ``PROTO/PORT=recent:V4LIST/V6LIST`` per port."""
    out = []
    for proto, number in sorted(set(_port(item) for item in ports or []), key=lambda p: (p[1], p[0])):
        out.append('%s/%d=recent:%s/%s' % (proto, number, recent_list(recent_name, 'ipv4', proto, number),
                                           recent_list(recent_name, 'ipv6', proto, number)))
    return out


def fwknop_firewall_chains(ports, implementation='debian', recent_name='PKFWKNOP', seconds=30,
                           iptables='/usr/sbin/iptables', ip6tables='/usr/sbin/ip6tables'):
    """The role's chain list: one entry per family; ``state: absent`` when no port is protected."""
    if implementation not in IMPLEMENTATIONS:
        raise AnsibleFilterError('fwknop_firewall_chains: implementation %r is not one of %s'
                                 % (implementation, ', '.join(IMPLEMENTATIONS)))
    if implementation == 'python' and not _NAME_RE.match(str(recent_name)):
        raise AnsibleFilterError('fwknop_firewall_chains: recent list name %r is not a name' % (recent_name,))
    try:
        seconds = int(seconds)
    except (TypeError, ValueError):
        seconds = 0
    if implementation == 'python' and seconds < 1:
        raise AnsibleFilterError('fwknop_firewall_chains: seconds must be a whole number > 0')
    wanted = sorted(set(_port(item) for item in ports or []), key=lambda p: (p[1], p[0]))
    binaries = {'ipv4': check_binary(iptables, 'iptables'), 'ipv6': check_binary(ip6tables, 'ip6tables')}
    tag = '-m comment --comment %s' % STATIC_TAG
    chains = []
    for family in ('ipv4', 'ipv6'):
        entry = {'chain': CHAIN, 'family': family, 'binary': binaries[family], 'state': 'absent'}
        if wanted:
            static = []
            for proto, number in wanted:
                match = '-p %s -m %s --dport %d' % (proto, proto, number)
                if implementation == 'python':
                    static.append('%s -m recent --rcheck --seconds %d --name %s --mask %s --rsource %s -j ACCEPT'
                                  % (match, seconds, recent_list(recent_name, family, proto, number), MASKS[family], tag))
                static.append('%s -m conntrack --ctstate NEW %s -j DROP' % (match, tag))
            entry.update(state='present', jump='-j %s' % CHAIN, position='last', static=static)
        chains.append(entry)
    return chains


class FilterModule(object):
    def filters(self):
        return dict((f.__name__, f) for f in (fwknop_firewall_chains, fwknop_kernel_doors))
