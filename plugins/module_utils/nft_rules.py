# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A door as a native nftables table (pure: Door in, text out).

Each door owns one table, ``table inet portknock_<name>``, so that applying or
removing a door is one atomic ``nft -f`` transaction that cannot touch anything
else.  The table holds:

* per step k and family, a dynamic set ``step<k>_v4`` / ``step<k>_v6`` of source
  addresses with a timeout (``step_timeout`` for the steps, ``open_window`` for
  the last one, which is the "open" set) and a bounded ``size``;
* one base chain ``input`` hooked on ``input`` at priority ``filter - 10``
  (before the usual filter chains, including iptables-nft's).

The rules have the same meaning as the iptables renderer (recent_rules):
only NEW packets (TCP knocks: bare SYNs) are looked at; the protected ports
accept the sources in the open set and drop the others; a knock on step k moves
a source from set k-1 to set k; a retransmitted knock changes nothing; any
other knock on the door's ports resets the source (and starts at step 1 when it
is the first step's port); knocks are dropped.

nftables semantics to keep in mind: ``accept`` ends only this table's chain;
a later base chain of the host (priority filter) can still drop the packet.
The door therefore closes its ports on any host and opens them where the
host's own filter lets them in (nothing to do on an ACCEPT-policy host).

``table_text`` is written the way ``nft -t list table`` prints it (nftables
1.0.x), so that the live table can be compared with the wanted one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from .door import distinct_steps, families

TABLE_FAMILY = 'inet'
TABLE_PREFIX = 'portknock_'
CHAIN = 'input'
PRIORITY = 'filter - 10'
DEFAULT_SET_SIZE = 65535
ADDRESS = {
    'ipv4': ('ipv4_addr', 'ip saddr', 'v4'),
    'ipv6': ('ipv6_addr', 'ip6 saddr', 'v6'),
}


def table_name(door):
    return TABLE_PREFIX + door.name


def set_name(step_number, family):
    return 'step%d_%s' % (step_number, ADDRESS[family][2])


def set_names(door):
    return tuple(set_name(k, family) for family in families(door)
                 for k in range(1, len(door.sequence) + 1))


def nft_time(seconds):
    """Seconds the way nft prints them: 90 -> '1m30s', 3600 -> '1h'."""
    parts = []
    for unit, size in (('d', 86400), ('h', 3600), ('m', 60), ('s', 1)):
        if seconds >= size:
            parts.append('%d%s' % (seconds // size, unit))
            seconds %= size
    return ''.join(parts) or '0s'


def _new_packet(port, protocol, knock):
    text = '%s dport %d' % (protocol, port)
    if knock and protocol == 'tcp':
        text += ' tcp flags syn / fin,syn,rst,ack'
    return text + ' ct state new'


def chain_rules(door):
    """The rules of the door's base chain, in order, as nft lists them."""
    last = len(door.sequence)
    fams = families(door)
    rules = []
    for port in door.ports:
        match = _new_packet(port, door.protocol, knock=False)
        for family in fams:
            rules.append('%s %s @%s accept' % (match, ADDRESS[family][1], set_name(last, family)))
        if len(fams) == 1:
            rules.append('meta nfproto %s %s drop' % (fams[0], match))
        else:
            rules.append('%s drop' % match)
    for step in distinct_steps(door):
        match = _new_packet(step.port, step.protocol, knock=True)
        numbers = [k for k, other in enumerate(door.sequence, 1) if other == step]
        for family in fams:
            saddr = ADDRESS[family][1]
            for k in sorted((k for k in numbers if k >= 2), reverse=True):
                rules.append('%s %s @%s delete @%s { %s } add @%s { %s } drop' % (
                    match, saddr, set_name(k - 1, family), set_name(k - 1, family), saddr,
                    set_name(k, family), saddr))
            for k in numbers:
                rules.append('%s %s @%s drop' % (match, saddr, set_name(k, family)))
            actions = ['delete @%s { %s }' % (set_name(k, family), saddr) for k in range(1, last + 1)]
            if 1 in numbers:
                actions.append('add @%s { %s }' % (set_name(1, family), saddr))
            rules.append('%s %s drop' % (match, ' '.join(actions)))
    return rules


def table_text(door, set_size=DEFAULT_SET_SIZE):
    """The whole table as ``nft -t list table inet portknock_<name>`` prints it."""
    last = len(door.sequence)
    blocks = []
    for family in families(door):
        for k in range(1, last + 1):
            blocks.append('\n'.join([
                '\tset %s {' % set_name(k, family),
                '\t\ttype %s' % ADDRESS[family][0],
                '\t\tsize %d' % set_size,
                '\t\tflags dynamic,timeout',
                '\t\ttimeout %s' % nft_time(door.open_window if k == last else door.step_timeout),
                '\t}',
            ]))
    chain = ['\tchain %s {' % CHAIN,
             '\t\ttype filter hook input priority %s; policy accept;' % PRIORITY]
    chain.extend('\t\t' + rule for rule in chain_rules(door))
    chain.append('\t}')
    blocks.append('\n'.join(chain))
    return 'table %s %s {\n%s\n}\n' % (TABLE_FAMILY, table_name(door), '\n\n'.join(blocks))


def apply_script(door, present=True, set_size=DEFAULT_SET_SIZE):
    """An ``nft -f`` script that (re)creates or removes the door's table atomically (one transaction)."""
    return replace_table('%s %s' % (TABLE_FAMILY, table_name(door)), table_text(door, set_size) if present else '')


def replace_table(name, text=''):
    """``nft -f`` lines that delete table ``name`` (``inet portknock_ssh``) and load ``text``.

    ``table X`` first makes the ``delete table X`` valid when the table does not exist yet.
    """
    return 'table %s\ndelete table %s\n%s' % (name, name, text)
