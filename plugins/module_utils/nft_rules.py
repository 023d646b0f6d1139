# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
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
So the door fails closed and says what it lets in: its accept also sets bit
``MARK`` of the packet mark, and whatever accepts the protected ports behind
it (the role's baseline, a rule the module inserts into the host's own input
chain with ``integrate_input_chain``) accepts only marked packets.  No door
(table deleted, not loaded at boot, flushed) then means a closed port.

``parse_ruleset`` and ``blocking_chains`` read ``nft -a -t list ruleset`` and
find the host's base chains on the input hook that would drop what the door
accepts (a drop policy, an unconditional drop or reject, a drop of the port),
so that a door that cannot open is reported instead of applied "successfully".

``table_text`` is written the way ``nft -t list table`` prints it (nftables
1.0.x), so that the live table can be compared with the wanted one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import re

from .door import distinct_steps, families

TABLE_FAMILY = 'inet'
TABLE_PREFIX = 'portknock_'
CHAIN = 'input'
PRIORITY = 'filter - 10'
PRIORITY_VALUE = -10
DEFAULT_SET_SIZE = 65535
# The bit of the packet mark a door sets on what it accepts (documented: no other software on the
# host may use it).  Kube-proxy uses 0x4000/0x8000, wg-quick 0xca6c, Tailscale 0xff0000.
MARK = 0x20000000
MARK_SET = 'meta mark set meta mark | 0x%08x' % MARK
MARK_MATCH = 'meta mark & 0x%08x == 0x%08x' % (MARK, MARK)
# What the role's baseline and an integrated host chain accept: the marked packets only.
ACCEPT_MARKED = MARK_MATCH + ' accept'
# The comment of a rule the module manages in a host's own input chain (one per door).
INTEGRATION_COMMENT = 'portknock_%s'
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


_DURATION = re.compile(r'(\d+)(ms|d|h|m|s)')


def nft_seconds(text):
    """What nft prints back as seconds (float): ``1m30s`` -> 90, ``29s500ms`` -> 29.5; None when
    it is not an nft duration (the inverse of ``nft_time``, with nft's milliseconds)."""
    if not text or _DURATION.sub('', text) != '':
        return None
    size = {'d': 86400, 'h': 3600, 'm': 60, 's': 1, 'ms': 0.001}
    return sum(int(n) * size[unit] for n, unit in _DURATION.findall(text))


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
            rules.append('%s %s @%s %s counter accept' % (match, ADDRESS[family][1], set_name(last, family), MARK_SET))
        if len(fams) == 1:
            rules.append('meta nfproto %s %s counter drop' % (fams[0], match))
        else:
            rules.append('%s counter drop' % match)
    for step in distinct_steps(door):
        match = _new_packet(step.port, step.protocol, knock=True)
        numbers = [k for k, other in enumerate(door.sequence, 1) if other == step]
        for family in fams:
            saddr = ADDRESS[family][1]
            for k in sorted((k for k in numbers if k >= 2), reverse=True):
                rules.append('%s %s @%s delete @%s { %s } add @%s { %s } counter drop' % (
                    match, saddr, set_name(k - 1, family), set_name(k - 1, family), saddr,
                    set_name(k, family), saddr))
            for k in numbers:
                rules.append('%s %s @%s counter drop' % (match, saddr, set_name(k, family)))
            actions = ['delete @%s { %s }' % (set_name(k, family), saddr) for k in range(1, last + 1)]
            if 1 in numbers:
                actions.append('add @%s { %s }' % (set_name(1, family), saddr))
            rules.append('%s %s counter drop' % (match, ' '.join(actions)))
    return rules


# a counter statement as nft lists it; group 1: its packets (door_counters reads them)
COUNTER = re.compile(r'\bcounter packets (\d+) bytes \d+')


def stateless(text):
    """nft's listing without the counters' values (``counter packets 3 bytes 180`` -> ``counter``).

    The door's rules count what they see (door_info, metrics); a listing compared with
    ``table_text`` or saved for the next boot must not differ because packets were counted.
    """
    return COUNTER.sub('counter', text)


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


# ---------------------------------------------------------------------------
# The host's own input chains: would they drop what the door accepts?

Chain = collections.namedtuple('Chain', 'family table name type hook priority policy rules')
Rule = collections.namedtuple('Rule', 'text handle comment')
Block = collections.namedtuple('Block', 'chain before_door reason families')

PRIORITY_NAMES = {'raw': -300, 'mangle': -150, 'dstnat': -100, 'filter': 0, 'security': 50, 'srcnat': 100}
INPUT_FAMILIES = {'ip': ('ipv4',), 'ip6': ('ipv6',), 'inet': ('ipv4', 'ipv6')}
PROTOCOL_NUMBERS = {'tcp': '6', 'udp': '17'}
_HANDLE = re.compile(r'\s+# handle (\d+)$')
_BLOCK = re.compile(r'^(table|chain|set|map|flowtable|ct helper|ct timeout|ct expectation|counter|quota|limit|secmark|synproxy)\b(.*)\{$')
_BASE = re.compile(r'^type (\w+) hook (\w+)(?: device \S+)? priority ([^;]+);(?: policy (\w+);)?')
_COMMENT = re.compile(r'\s*\bcomment "((?:[^"\\]|\\.)*)"$')
_STATEMENTS = re.compile(r'\s*\b(?:counter(?: packets \d+ bytes \d+)?|log(?: prefix "(?:[^"\\]|\\.)*"| level \w+| flags \S+| group \d+)*)(?=\s|$)')
_VERDICT = re.compile(r'^(.*?)\s*\b(accept|drop|reject(?: with .*)?|jump \S+|goto \S+|return|continue)$')
_VALUE = r'(\{ [^}]* \}|(?!!=)\S+)'
_CONDITIONS = (
    ('mark', re.compile(re.escape(MARK_MATCH))),
    ('l4', re.compile(r'meta l4proto ' + _VALUE)),
    ('ip4', re.compile(r'ip protocol ' + _VALUE)),
    ('ip6', re.compile(r'ip6 nexthdr ' + _VALUE)),
    ('dport', re.compile(r'(tcp|udp|th) dport ' + _VALUE)),
    ('ct', re.compile(r'ct state ' + _VALUE)),
    ('nfproto', re.compile(r'meta nfproto (ipv4|ipv6)')),
    ('syn', re.compile(r'tcp flags syn / fin,syn,rst,ack')),
)
_NAME = re.compile(r'^[A-Za-z][A-Za-z0-9_.-]*\Z')


def table_listings(ruleset_text):
    """{'<family> <name>': text} of each table in ``nft [-a] -t list ruleset`` output, each as
    ``nft -t list table`` prints it (``# handle N`` comments left out)."""
    tables = {}
    current, lines = None, []
    for line in ruleset_text.splitlines():
        line = _HANDLE.sub('', line)
        if current is None:
            if line.startswith('table ') and line.endswith(' {'):
                current, lines = line[len('table '):-2].strip(), [line]
            continue
        lines.append(line)
        if line == '}':
            tables[current] = '\n'.join(lines) + '\n'
            current = None
    return tables


_TABLE_HEADER = re.compile(r'^table (ip|ip6|inet|arp|bridge|netdev) ([A-Za-z][A-Za-z0-9_.-]*) \{(?:\s+# handle \d+)?$')


def listed_tables(text):
    """['<family> <name>', ...] of the ``table ... {`` headers of nft listing ``text`` (``list
    chains``, ``list ruleset``, ``list table``), in order; None when a header is not one nft reads
    back as it is (a name that would need quoting)."""
    names = []
    for line in text.splitlines():
        if line.startswith('table '):
            match = _TABLE_HEADER.match(line)
            if not match:
                return None
            names.append('%s %s' % match.groups())
    return names


def priority_value(text):
    """``filter - 10`` -> -10, ``-200`` -> -200; None when nft printed something else."""
    match = re.match(r'^\s*(-?\d+|[a-z]+)(?:\s*([+-])\s*(\d+))?\s*$', text)
    if not match:
        return None
    base = match.group(1)
    value = int(base) if base.lstrip('-').isdigit() else PRIORITY_NAMES.get(base)
    if value is None:
        return None
    if match.group(2):
        value += int(match.group(3)) * (1 if match.group(2) == '+' else -1)
    return value


def parse_ruleset(text):
    """The chains of ``nft -a -t list ruleset`` output: {(family, table, chain): Chain}."""
    chains = {}
    table = chain = None
    skip = 0          # depth inside a block that is neither a table nor a chain (sets, maps...)
    for raw in text.splitlines():
        line = raw.strip()
        match = _HANDLE.search(line)
        handle = int(match.group(1)) if match else None
        if match:
            line = line[:match.start()].rstrip()
        if not line or line.startswith('#'):
            continue
        if skip:
            skip += line.count('{') - line.count('}')
            continue
        block = _BLOCK.match(line)
        if block and table is None and block.group(1) == 'table':
            words = block.group(2).split()
            if len(words) == 2:
                table = (words[0], words[1])
            elif len(words) == 1:
                table = ('ip', words[0])
            else:
                skip = 1
            continue
        if block and table is not None and chain is None:
            if block.group(1) == 'chain':
                key = table + (block.group(2).strip(),)
                chain = chains[key] = Chain(table[0], table[1], key[2], None, None, None, None, [])
            else:
                skip = 1
            continue
        if line == '}':
            if chain is not None:
                chain = None
            else:
                table = None
            continue
        if chain is None:
            continue
        base = _BASE.match(line)
        if base and chain.hook is None and not chain.rules:
            key = (chain.family, chain.table, chain.name)
            chain = chains[key] = chain._replace(type=base.group(1), hook=base.group(2),
                                                 priority=priority_value(base.group(3)),
                                                 policy=base.group(4) or 'accept')
            continue
        if line.startswith(('comment ', 'policy ', 'devices ')):
            continue
        comment = _COMMENT.search(line)
        chain.rules.append(Rule(line, handle, comment.group(1) if comment else None))
    return chains


def parse_rule(text):
    """(conditions, verdict) of a rule, or None when it has anything this analysis does not know.

    conditions: [(kind, match)]; verdict: accept, drop, reject..., jump X, goto X, return, continue.
    """
    text = _COMMENT.sub('', text)
    text = _STATEMENTS.sub('', text).strip()
    match = _VERDICT.match(text)
    if not match:
        return None
    rest = match.group(1).strip()
    conditions = []
    while rest:
        for kind, pattern in _CONDITIONS:
            found = pattern.match(rest)
            if found:
                conditions.append((kind, found))
                rest = rest[found.end():].strip()
                break
        else:
            return None
    return conditions, match.group(2)


def _values(text):
    return [item for item in re.split(r'[\s,{}]+', text) if item]


def _port_in(port, text):
    for item in _values(text):
        low, _sep, high = item.partition('-')
        if not low.isdigit() or (high and not high.isdigit()):
            return None
        if int(low) <= port <= int(high or low):
            return True
    return False


def _matches(kind, found, packet):
    """True/False when a condition matches the packet, None when it cannot tell."""
    family, protocol, port, marked = packet
    if kind == 'mark':
        return marked
    if kind in ('l4', 'ip4', 'ip6'):
        if (kind == 'ip4' and family != 'ipv4') or (kind == 'ip6' and family != 'ipv6'):
            return False
        values = _values(found.group(1))
        return protocol in values or PROTOCOL_NUMBERS[protocol] in values
    if kind == 'dport':
        if found.group(1) != 'th' and found.group(1) != protocol:
            return False
        return _port_in(port, found.group(2))
    if kind == 'ct':
        return 'new' in _values(found.group(1))
    if kind == 'nfproto':
        return found.group(1) == family
    return protocol == 'tcp'    # syn: the first packet of a TCP connection is a bare SYN


def _managed(rule):
    return bool(rule.comment) and rule.comment.startswith(INTEGRATION_COMMENT % '')


def _run_chain(chains, chain, packet, depth=0):
    """(verdict, rule) for the packet: accept/drop, or None when it leaves the chain (end, return)."""
    for rule in chain.rules:
        if _managed(rule):
            continue    # the module's own rules: each door wants its own (see integration_wanted)
        parsed = parse_rule(rule.text)
        if parsed is None:
            continue    # conditions this analysis does not know: assume they do not match
        conditions, verdict = parsed
        matched = [_matches(kind, found, packet) for kind, found in conditions]
        if not all(m is True for m in matched):
            continue
        if verdict in ('accept', 'drop'):
            return verdict, rule
        if verdict.startswith('reject'):
            return 'drop', rule
        if verdict == 'return':
            return None, rule
        if verdict.startswith(('jump ', 'goto ')) and depth < 16:
            target = chains.get((chain.family, chain.table, verdict.split()[1]))
            if target is None:
                continue
            result = _run_chain(chains, target, packet, depth + 1)
            if result[0] is not None or verdict.startswith('goto '):
                return result
    return None, None


def door_table(chain):
    """A door's own table (the role's baseline is not one: it is the host's filter)."""
    return (chain.family == TABLE_FAMILY and chain.table.startswith(TABLE_PREFIX)
            and chain.table != TABLE_PREFIX + 'baseline')


def input_chains(chains):
    return [chain for key, chain in sorted(chains.items())
            if chain.hook == 'input' and chain.type == 'filter' and chain.family in INPUT_FAMILIES
            and not door_table(chain)]


def blocking_chains(chains, door):
    """The host's input base chains that would drop a NEW packet the door accepts, as Blocks.

    The packet is the one the door lets in: NEW, to a protected port, from a source in the open
    set, marked with MARK when the chain runs after the door (higher priority).  Rules the
    analysis does not understand are assumed not to match; the module's own integration rules
    (comment ``portknock_<name>``) are left out, so that each door wants its own.
    """
    blocks = []
    for chain in input_chains(chains):
        before = chain.priority is None or chain.priority <= PRIORITY_VALUE
        reason, fams = None, []
        for family in families(door):
            if family not in INPUT_FAMILIES[chain.family]:
                continue
            for port in door.ports:
                verdict, rule = _run_chain(chains, chain, (family, door.protocol, port, not before))
                if verdict is None and chain.policy == 'drop':
                    verdict = 'drop'
                if verdict == 'drop':
                    if reason is None:
                        reason = ('its policy drop' if rule is None
                                  else 'a rule that drops it (handle %s)' % rule.handle)
                    if family not in fams:
                        fams.append(family)
        if fams:
            blocks.append(Block(chain, before, reason, tuple(fams)))
    return blocks


def chain_label(chain):
    return '%s %s %s' % (chain.family, chain.table, chain.name)


def integration_rule(door):
    """The rule a door inserts at the top of a host's input chain (integrate_input_chain)."""
    return '%s comment "%s"' % (ACCEPT_MARKED, INTEGRATION_COMMENT % door.name)


def integration_live(chains, door):
    """The door's own rules in the host's chains: [(chain, 'label: rule', handle)]."""
    found = []
    for key, chain in sorted(chains.items()):
        for rule in chain.rules:
            if rule.comment == INTEGRATION_COMMENT % door.name:
                found.append((chain, '%s: %s' % (chain_label(chain), rule.text), rule.handle))
    return found


def integration_wanted(blocks, door):
    """[(chain, 'label: rule')] for the blocking chains the door can integrate into (after it)."""
    return [(block.chain, '%s: %s' % (chain_label(block.chain), integration_rule(door)))
            for block in blocks if not block.before_door]


def _fix_for(chain):
    fix = 'nft insert rule %s %s' % (chain_label(chain), ACCEPT_MARKED)
    if chain.family in ('ip', 'ip6') and chain.table == 'filter' and chain.name == 'INPUT':
        fix += " (iptables-nft's own table: or %s -I INPUT -m mark --mark 0x%08x/0x%08x -j ACCEPT)" % (
            'iptables' if chain.family == 'ip' else 'ip6tables', MARK, MARK)
    return fix


def cannot_open_message(door, blocks, integrate):
    """Why the door cannot open on this host and what to do, or None when it can (after integration)."""
    problems, fixes = [], []
    for block in blocks:
        what = 'base chain %s (hook input, priority %s, policy %s) drops what the door lets in (%s) with %s' % (
            chain_label(block.chain), block.chain.priority, block.chain.policy,
            '/'.join('IPv4' if f == 'ipv4' else 'IPv6' for f in block.families), block.reason)
        if block.before_door:
            problems.append(what + ', and it runs before the door (priority %s), so no mark can help'
                            % PRIORITY)
            fixes.append('accept %s port %s in %s itself, or give that chain a priority above %s'
                         % (door.protocol, ','.join(str(p) for p in door.ports), chain_label(block.chain), PRIORITY))
        elif not integrate:
            problems.append(what)
            fixes.append(_fix_for(block.chain))
    if not problems:
        return None
    text = ('the nftables door %s cannot open on this host (an accept in one base chain does not override a '
            'drop in another): %s. The door marks what it lets in (bit 0x%08x of the packet mark); add: %s'
            % (door.name, '; '.join(problems), MARK, '; '.join(fixes)))
    if not integrate and not any(block.before_door for block in blocks):
        text += ('. Or set integrate_input_chain: true and the module inserts "%s" at the top of each such chain '
                 '(and removes it with state=absent)' % integration_rule(door))
    return text


def host_script(deletes, inserts):
    """``nft -f`` lines: delete the door's old rules (chain, handle), insert the wanted ones (chain, rule)."""
    lines = []
    for chain, handle in deletes:
        lines.append('delete rule %s handle %d' % (chain_label(chain), handle))
    for chain, rule in inserts:
        lines.append('insert rule %s %s' % (chain_label(chain), rule))
    return ''.join(line + '\n' for line in lines)


def integrable(chain):
    return bool(_NAME.match(chain.table) and _NAME.match(chain.name))
