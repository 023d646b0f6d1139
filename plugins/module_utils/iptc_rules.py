# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""Write a door's iptables lines to the LEGACY x_tables with python-iptables.

python-iptables (Debian ``python3-iptables``, ``import iptc``) binds libiptc, which
only sees the legacy tables: call this only on a host whose ``iptables`` is the
legacy variant (iptables_backend decides).  The lines are the ones recent_rules
renders (``-A CHAIN -p .. -m MATCH --opt val .. -j TARGET``); they are turned
into iptc rules option by option, so there is one source of truth for the
rules.  All changes of a table go in one ``commit()`` (one atomic replace of the
table by the kernel).  libiptc does not take the xtables lock, so this module
takes it itself (``/run/xtables.lock``, the lock iptables-legacy uses).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shlex

try:
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

XTABLES_LOCK = os.environ.get('XTABLES_LOCKFILE', '/run/xtables.lock')


def import_iptc():
    """The ``iptc`` module, or None when python-iptables is not installed."""
    try:
        import iptc  # pylint: disable=import-error
    except Exception:  # ImportError, or libiptc/libxtables missing
        return None
    return iptc


def split_rule(line):
    """``-A CHAIN args..`` -> (chain, protocol, [(kind, name, [(option, [values])])]).

    kind is 'match' or 'target'.  Pure; used to build iptc rules.
    """
    # recent_rules writes no quotes: a plain split then (shlex costs a tenth of a 50-door write)
    tokens = shlex.split(line) if any(c in line for c in '"\'\\') else line.split()
    if len(tokens) < 2 or tokens[0] != '-A':
        raise ValueError('not an append rule: %r' % line)
    chain = tokens[1]
    protocol = None
    parts = []
    i = 2
    while i < len(tokens):
        token = tokens[i]
        if token in ('-p', '-m', '-j'):
            if i + 1 >= len(tokens):
                raise ValueError('%s without a value in %r' % (token, line))
            value = tokens[i + 1]
            i += 2
            if token == '-p':
                protocol = value
            else:
                parts.append(('match' if token == '-m' else 'target', value, []))
            continue
        if not token.startswith('--') or not parts:
            raise ValueError('unexpected %r in %r' % (token, line))
        values = []
        i += 1
        while i < len(tokens) and not tokens[i].startswith('-'):
            values.append(tokens[i])
            i += 1
        parts[-1][2].append((token[2:], values))
    return chain, protocol, parts


def build_rule(iptc, family, line):
    chain, protocol, parts = split_rule(line)
    rule = iptc.Rule() if family == 'ipv4' else iptc.Rule6()
    if protocol:
        rule.protocol = protocol
    has_target = False
    for kind, name, options in parts:
        if kind == 'match':
            ext = rule.create_match(name)
        else:
            ext = rule.create_target(name)
            has_target = True
        for option, values in options:
            value = values if len(values) > 1 else (values[0] if values else '')
            ext.set_parameter(option.replace('-', '_'), value)
    if not has_target:
        rule.create_target('')
    return chain, rule


def _table(iptc, family):
    if family == 'ipv4':
        return iptc.Table(iptc.Table.FILTER)
    return iptc.Table6(iptc.Table6.FILTER)


def _is_jump(rule):
    """A bare jump (no match, protocol, address or interface), as recent_rules.jump_rule writes it."""
    return not rule.matches and rule.protocol in (None, '', 'ip', 'all') and not _has_address(rule)


def _has_address(rule):
    for attr in ('src', 'dst'):
        value = getattr(rule, attr, None)
        if value and not value.startswith(('0.0.0.0/', '::/')):
            return True
    return bool(getattr(rule, 'in_interface', None) or getattr(rule, 'out_interface', None))


def write_door(iptc, family, hook_chain, chains, rule_lines, jump_target, present):
    """Replace one door's chains and jump in one commit of the legacy filter table (``write_doors``)."""
    write_doors(iptc, family, hook_chain, [(chains, rule_lines, jump_target, present)])


def write_doors(iptc, family, hook_chain, doors):
    """Replace the chains and jumps of every door of ``doors`` in ONE commit of the legacy filter
    table (one refresh, one atomic replace of the table by the kernel).

    ``doors`` is a list of ``(chains, rule_lines, jump_target, present)``.  present: create/flush
    ``chains``, append ``rule_lines``, make sure ``hook_chain`` jumps to ``jump_target`` exactly
    once (a missing jump is inserted first: the doors' missing jumps read in list order, the first
    door's on top).  absent: remove the jumps, flush and delete ``chains``.
    """
    lock = None
    if fcntl is not None:
        lock = open(XTABLES_LOCK, 'a')
        fcntl.flock(lock, fcntl.LOCK_EX)
    table = _table(iptc, family)
    try:
        table.autocommit = False
        table.refresh()
        hook = iptc.Chain(table, hook_chain)
        targets = set(jump_target for _c, _r, jump_target, _p in doors)
        jumps = dict((target, []) for target in targets)
        for rule in hook.rules:      # read once: each door's jumps as the table had them
            if rule.target is not None and rule.target.name in targets and _is_jump(rule):
                jumps[rule.target.name].append(rule)
        existing = set(chain.name for chain in table.chains)
        # -I INPUT 1 puts each jump on top: the last door's first, so the list's first ends on top
        for chains, rule_lines, jump_target, present in reversed(doors):
            _write_one(iptc, family, table, hook, existing, jumps[jump_target], chains, rule_lines,
                       jump_target, present)
        table.commit()
    except Exception:
        table.refresh()  # drop what was not committed
        raise
    finally:
        table.autocommit = True
        if lock is not None:
            lock.close()


def _write_one(iptc, family, table, hook, existing, jumps, chains, rule_lines, jump_target, present):
    """One door of ``write_doors``: ``existing`` are the table's chain names, ``jumps`` the door's
    jumps in ``hook`` as read before the first door (``existing`` is kept up to date)."""
    if present:
        for name in chains:
            if name in existing:
                iptc.Chain(table, name).flush()
            else:
                table.create_chain(name)
                existing.add(name)
        for line in rule_lines:
            name, rule = build_rule(iptc, family, line)
            iptc.Chain(table, name).append_rule(rule)
        if not jumps:
            rule = iptc.Rule() if family == 'ipv4' else iptc.Rule6()
            rule.create_target(jump_target)
            hook.insert_rule(rule, 0)
        for rule in jumps[1:]:
            hook.delete_rule(rule)
    else:
        for rule in jumps:
            hook.delete_rule(rule)
        owned = [name for name in chains if name in existing]
        for name in owned:
            iptc.Chain(table, name).flush()
        for name in owned:
            table.delete_chain(name)
            existing.discard(name)
