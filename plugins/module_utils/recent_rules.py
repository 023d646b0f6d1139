# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""A door as iptables ``-m recent`` rules (pure: Door in, text out).

What a door owns, per address family (``iptables`` / ``ip6tables``, table ``filter``):

* chain ``PK-<name>``: the door itself;
* chain ``PK-<name>-R``: the reset chain (forgets a source's progress);
* one jump ``-A INPUT -j PK-<name>`` (inserted at the top of INPUT, exactly once);
* the xt_recent lists ``PK_<name>_1`` .. ``PK_<name>_<n>`` for IPv4 and
  ``PK6_<name>_1`` .. ``PK6_<name>_<n>`` for IPv6 (one per step, the last one
  is the "open" list).  They disappear from ``/proc/net/xt_recent`` when no
  rule refers to them any more.  IPv4 and IPv6 rules must NOT share a list:
  lists live in one name space per network namespace and the kernel keeps the
  ``--mask`` of the rule that created the list, so an ip6tables rule on a list
  created by an iptables rule masks IPv6 sources to their first 32 bits (seen
  on Linux 6.x: a knock from fd42:99:2::3 opened the door for fd42:99:2::2).

Semantics of ``PK-<name>`` (every rule only looks at NEW packets, TCP knocks only
at SYNs; everything else returns to INPUT untouched):

* protected port, source in the open list for less than ``open_window`` s: ACCEPT;
* protected port, any other NEW packet: DROP (the door closes the port even on
  a host whose INPUT policy is ACCEPT);
* knock on the port of step k (k >= 2), source in list k-1 for less than
  ``step_timeout`` s: move the source from list k-1 to list k, DROP;
* the same knock again while the source is already in list k (a retransmitted
  SYN): DROP, nothing changes;
* any other knock on one of the door's ports: forget the source (reset chain),
  and if it is the port of step 1, start again at list 1; DROP.

All rules are written the way ``iptables-save`` prints them, so the live rules
of a door can be compared with the wanted ones line by line, order included.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections

from .door import CHAIN_PREFIX, distinct_steps, families

TABLE = 'filter'
HOOK_CHAIN = 'INPUT'
LIST_PREFIX = {'ipv4': 'PK_', 'ipv6': 'PK6_'}
MASKS = {
    'ipv4': '255.255.255.255',
    'ipv6': 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
}
FAMILIES = ('ipv4', 'ipv6')


def chain_name(door):
    """The door's own chain, jumped from INPUT."""
    return CHAIN_PREFIX + door.name


def reset_chain_name(door):
    """The chain that removes a source from all of the door's lists."""
    return CHAIN_PREFIX + door.name + '-R'


def owned_chains(door):
    return (chain_name(door), reset_chain_name(door))


def list_name(door, step_number, family='ipv4'):
    """xt_recent list of step ``step_number`` (1-based) in ``family``; the last one is the open list."""
    return '%s%s_%d' % (LIST_PREFIX[family], door.name, step_number)


def list_names(door):
    """The door's lists in the families it covers, IPv4 first, step 1 first."""
    return tuple(list_name(door, k, family) for family in families(door)
                 for k in range(1, len(door.sequence) + 1))


def jump_rule(door):
    return '-A %s -j %s' % (HOOK_CHAIN, chain_name(door))


def _recent(door, family, step_number, action, seconds=None):
    text = '-m recent --%s' % action
    if seconds is not None:
        text += ' --seconds %d' % seconds
    return text + ' --name %s --mask %s --rsource' % (list_name(door, step_number, family), MASKS[family])


def _new_packet(port, protocol, knock):
    """Match NEW packets to port; a TCP knock must be a bare SYN."""
    text = '-p %s -m %s --dport %d' % (protocol, protocol, port)
    if knock and protocol == 'tcp':
        text += ' --tcp-flags FIN,SYN,RST,ACK SYN'
    return text + ' -m conntrack --ctstate NEW'


def chain_rules(door, family):
    """The ``-A`` lines of the door's two chains, as iptables-save prints them."""
    main = chain_name(door)
    reset = reset_chain_name(door)
    last = len(door.sequence)
    rules = []
    for port in door.ports:
        match = _new_packet(port, door.protocol, knock=False)
        rules.append('-A %s %s %s -j ACCEPT' % (main, match, _recent(door, family, last, 'rcheck', door.open_window)))
        rules.append('-A %s %s -j DROP' % (main, match))
    for step in distinct_steps(door):
        match = _new_packet(step.port, step.protocol, knock=True)
        numbers = [k for k, other in enumerate(door.sequence, 1) if other == step]
        for k in sorted((k for k in numbers if k >= 2), reverse=True):
            rules.append('-A %s %s %s %s %s -j DROP' % (
                main, match,
                _recent(door, family, k - 1, 'rcheck', door.step_timeout),
                _recent(door, family, k - 1, 'remove'),
                _recent(door, family, k, 'set')))
        for k in numbers:
            seconds = door.open_window if k == last else door.step_timeout
            rules.append('-A %s %s %s -j DROP' % (main, match, _recent(door, family, k, 'rcheck', seconds)))
        rules.append('-A %s %s -j %s' % (main, match, reset))
        if 1 in numbers:
            rules.append('-A %s %s %s -j DROP' % (main, match, _recent(door, family, 1, 'set')))
        else:
            rules.append('-A %s %s -j DROP' % (main, match))
    for k in range(1, last + 1):
        rules.append('-A %s %s' % (reset, _recent(door, family, k, 'remove')))
    return rules


def wanted_state(door, family, present=True):
    """The lines that describe the door in one family (see ``live_state``)."""
    if not present or family not in families(door):
        return []
    lines = [jump_rule(door)]
    for chain in owned_chains(door):
        lines.append('-N %s' % chain)
    return lines + chain_rules(door, family)


SaveTable = collections.namedtuple('SaveTable', [
    'found',      # the table's ``*name`` header was seen
    'committed',  # and its COMMIT
    'policies',   # {built-in chain: policy}
    'chains',     # names of the declared chains (``:NAME ...``), in order
    'rules',      # the ``-A`` lines, in table order
    'unknown',    # numbers (1-based) of the table's other lines: a damaged file
])


def parse_save(save_text, table=TABLE):
    """One table of ``iptables-save`` output (or of an ``iptables-restore`` file).

    Lines are stripped; blank lines, comments and other tables are skipped.
    """
    found = committed = in_table = False
    policies, chains, rules, unknown = {}, [], [], []
    for number, raw in enumerate(save_text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith('#'):
            continue
        if line.startswith('*'):
            in_table = line[1:] == table
            found = found or in_table
            continue
        if not in_table:
            continue
        if line == 'COMMIT':
            committed, in_table = True, False
        elif line.startswith(':') and len(line) > 1:
            parts = line[1:].split()
            chains.append(parts[0])
            if len(parts) > 1 and parts[1] != '-':
                policies[parts[0]] = parts[1]
        elif line.startswith('-A ') and len(line.split()) > 2:
            rules.append(line)
        else:
            unknown.append(number)
    return SaveTable(found, committed, policies, chains, rules, unknown)


def rule_chain(line):
    """The chain of an ``-A CHAIN ...`` line."""
    return line.split()[1]


def live_state(save_text, door):
    """The door's lines found in ``iptables-save`` output, in the form of ``wanted_state``.

    Jumps to the door's chain from INPUT first (one line per jump found),
    then ``-N`` for each owned chain that exists, then the owned chains'
    rules in table order.  Other tables, chains and rules are ignored.
    """
    return live_states(save_text, [door])[door.name]


def live_states(save_text, doors):
    """{door name: ``live_state``} of every door of ``doors``, the save text parsed once (one
    ``iptables-save`` read for many doors: not one parse per door)."""
    table = parse_save(save_text)
    declared = set(table.chains)
    same_lines, by_chain = collections.defaultdict(int), collections.defaultdict(list)
    for position, line in enumerate(table.rules):
        same_lines[line] += 1
        by_chain[rule_chain(line)].append((position, line))
    states = {}
    for door in doors:
        chains = owned_chains(door)
        jump = jump_rule(door)
        owned = sorted(item for chain in set(chains) for item in by_chain.get(chain, []))   # table order
        states[door.name] = ([jump] * same_lines.get(jump, 0)
                             + ['-N %s' % chain for chain in chains if chain in declared]
                             + [line for _position, line in owned])
    return states


def restore_script(door, family, live_lines, present=True):
    """An ``iptables-restore --noflush`` script taking the live lines to the wanted ones.

    Empty string when nothing has to change.  Declaring a chain with ``:``
    under ``--noflush`` creates it or flushes it, so the chains are rebuilt
    whole inside one transaction.
    """
    wanted = wanted_state(door, family, present)
    if wanted == list(live_lines):
        return ''
    jump = jump_rule(door)
    live_jumps = [line for line in live_lines if line == jump]
    live_chains = [line[3:] for line in live_lines if line.startswith('-N ')]
    out = ['*%s' % TABLE]
    if wanted:
        for chain in owned_chains(door):
            out.append(':%s - [0:0]' % chain)
        out.extend(chain_rules(door, family))
        if not live_jumps:
            out.append('-I %s 1 -j %s' % (HOOK_CHAIN, chain_name(door)))
        out.extend('-D %s -j %s' % (HOOK_CHAIN, chain_name(door)) for _extra in live_jumps[1:])
    else:
        out.extend('-D %s -j %s' % (HOOK_CHAIN, chain_name(door)) for _jump in live_jumps)
        for chain in live_chains:
            out.append('-F %s' % chain)
        for chain in live_chains:
            out.append('-X %s' % chain)
    out.append('COMMIT')
    return '\n'.join(out) + '\n'


def merge_restore_scripts(scripts):
    """One ``iptables-restore`` transaction (one ``*filter`` .. ``COMMIT``) from several doors'
    ``restore_script`` texts, in the order given; empty scripts are left out."""
    body = []
    for script in scripts:
        lines = script.splitlines()
        if not lines:
            continue
        if lines[0] != '*%s' % TABLE or lines[-1] != 'COMMIT':
            raise ValueError('not a restore script of table %s' % TABLE)
        body.extend(lines[1:-1])
    if not body:
        return ''
    return '\n'.join(['*%s' % TABLE] + body + ['COMMIT']) + '\n'
