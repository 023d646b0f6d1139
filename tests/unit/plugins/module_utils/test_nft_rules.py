# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nftables renderer: one inet table per door, in nft's own listing form."""

from __future__ import absolute_import, division, print_function

import pytest

from ansible_collections.portknock.knock.plugins.module_utils.door import make_door
from ansible_collections.portknock.knock.plugins.module_utils import nft_rules as nr

SYN = 'tcp flags syn / fin,syn,rst,ack ct state new'


@pytest.mark.parametrize('seconds, text', [(5, '5s'), (60, '1m'), (90, '1m30s'), (3600, '1h'),
                                           (86400 + 61, '1d1m1s')])
def test_nft_time(seconds, text):
    assert nr.nft_time(seconds) == text
    assert nr.nft_seconds(text) == seconds


@pytest.mark.parametrize('text, seconds', [('1m30s', 90), ('29s492ms', 29.492), ('1d', 86400), ('', None), ('5x', None)])
def test_nft_seconds(text, seconds):
    assert nr.nft_seconds(text) == seconds


def test_one_counter_pattern_reads_packets_and_is_stripped():
    rule = 'tcp dport 22 ct state new counter packets 7 bytes 420 drop'
    assert nr.COUNTER.search(rule).group(1) == '7'
    assert nr.stateless(rule) == 'tcp dport 22 ct state new counter drop'


def test_seed_recipe_table():
    door = make_door('ssh', [1600], 22, open_window=5)
    assert nr.table_name(door) == 'portknock_ssh'
    assert nr.chain_rules(door) == [
        'tcp dport 22 ct state new ip saddr @step1_v4 meta mark set meta mark | 0x20000000 counter accept',
        'tcp dport 22 ct state new ip6 saddr @step1_v6 meta mark set meta mark | 0x20000000 counter accept',
        'tcp dport 22 ct state new counter drop',
        'tcp dport 1600 %s ip saddr @step1_v4 counter drop' % SYN,
        'tcp dport 1600 %s delete @step1_v4 { ip saddr } add @step1_v4 { ip saddr } counter drop' % SYN,
        'tcp dport 1600 %s ip6 saddr @step1_v6 counter drop' % SYN,
        'tcp dport 1600 %s delete @step1_v6 { ip6 saddr } add @step1_v6 { ip6 saddr } counter drop' % SYN,
    ]


def test_sets_have_step_and_open_timeouts_and_size():
    door = make_door('d', [7000, 9000, 8000], 22, step_timeout=3, open_window=120, ip_version='ipv4')
    text = nr.table_text(door, set_size=4096)
    assert text.startswith('table inet portknock_d {\n\tset step1_v4 {\n\t\ttype ipv4_addr\n\t\tsize 4096\n'
                           '\t\tflags dynamic,timeout\n\t\ttimeout 3s\n\t}\n\n\tset step2_v4 {')
    assert '\t\ttimeout 2m\n' in text
    assert 'ipv6_addr' not in text
    assert '\t\ttype filter hook input priority filter - 10; policy accept;\n' in text
    assert text.endswith('\t}\n}\n')


def test_single_family_door_drops_only_its_family():
    door = make_door('d', [7000], 22, ip_version='ipv6')
    rules = nr.chain_rules(door)
    assert 'meta nfproto ipv6 tcp dport 22 ct state new counter drop' in rules
    assert all(' ip saddr' not in rule for rule in rules)


def test_steps_advance_and_reset():
    door = make_door('d', [7000, '8000:udp', 7000], 22, ip_version='ipv4')
    rules = nr.chain_rules(door)
    p7000 = [r for r in rules if 'dport 7000' in r]
    assert p7000[0] == ('tcp dport 7000 %s ip saddr @step2_v4 delete @step2_v4 { ip saddr } '
                        'add @step3_v4 { ip saddr } counter drop' % SYN)
    assert p7000[1].endswith('ip saddr @step1_v4 counter drop')
    assert p7000[2].endswith('ip saddr @step3_v4 counter drop')
    assert p7000[3] == ('tcp dport 7000 %s delete @step1_v4 { ip saddr } delete @step2_v4 { ip saddr } '
                        'delete @step3_v4 { ip saddr } add @step1_v4 { ip saddr } counter drop' % SYN)
    udp = [r for r in rules if 'dport 8000' in r]
    assert udp[0].startswith('udp dport 8000 ct state new ip saddr @step1_v4 delete @step1_v4')
    assert udp[-1] == ('udp dport 8000 ct state new delete @step1_v4 { ip saddr } delete @step2_v4 { ip saddr } '
                       'delete @step3_v4 { ip saddr } counter drop')


def test_apply_script_is_one_transaction():
    door = make_door('ssh', [1600], 22)
    script = nr.apply_script(door)
    assert script.startswith('table inet portknock_ssh\ndelete table inet portknock_ssh\ntable inet portknock_ssh {\n')
    assert nr.apply_script(door, present=False) == 'table inet portknock_ssh\ndelete table inet portknock_ssh\n'


def test_set_names():
    door = make_door('d', [1, 2], 22)
    assert nr.set_names(door) == ('step1_v4', 'step2_v4', 'step1_v6', 'step2_v6')


def test_every_accept_of_the_door_marks_and_nothing_else_does():
    """Fail closed: what the door lets in carries the mark that the host's filter accepts."""
    for door in (make_door('d', [7313, '4187:udp', 9421], [22, 2222], ip_version='ipv4'),
                 make_door('e', [1600], 2022, protocol='udp'), make_door('f', [7313, 4187], 22)):
        rules = nr.chain_rules(door)
        accepts = [rule for rule in rules if rule.endswith(' accept')]
        assert len(accepts) == len(door.ports) * (1 if door.ip_version != 'both' else 2)
        assert all(rule.endswith(' %s counter accept' % nr.MARK_SET) for rule in accepts)
        assert all('mark' not in rule for rule in rules if not rule.endswith(' accept'))
    assert nr.ACCEPT_MARKED == 'meta mark & 0x20000000 == 0x20000000 accept'


def test_every_rule_of_the_door_counts_and_a_listing_with_counted_packets_is_the_same_door():
    """door_info reads the counters; idempotence compares the listing without their values."""
    door = make_door('d', [7313, '4187:udp', 9421], [22, 2222])
    rules = nr.chain_rules(door)
    assert all(rule.endswith((' counter drop', ' counter accept')) for rule in rules)
    listed = nr.table_text(door).replace(' counter ', ' counter packets 17 bytes 1020 ')
    assert listed != nr.table_text(door)
    assert nr.stateless(listed) == nr.table_text(door)


# ---- the host's own input chains (nft -a -t list ruleset, as nftables 1.0.6 prints it) ----

# The seed's baseline (iptables INPUT policy DROP) on iptables-nft; ip6 with a port-only accept.
IPTABLES_NFT = '''# Warning: table ip filter is managed by iptables-nft, do not touch!
table ip filter { # handle 1
\tchain INPUT { # handle 1
\t\ttype filter hook input priority filter; policy drop;
\t\tcounter packets 0 bytes 0 jump PK-baseline # handle 3
\t}

\tchain PK-baseline { # handle 2
\t\tiifname "lo" counter packets 0 bytes 0 accept # handle 4
\t\tct state related,established counter packets 0 bytes 0 accept # handle 5
\t\tmeta l4proto icmp counter packets 0 bytes 0 accept # handle 6
\t\tip saddr 10.231.0.1 tcp dport 22 counter packets 0 bytes 0 accept # handle 7
\t}
}
# Warning: table ip6 filter is managed by iptables-nft, do not touch!
table ip6 filter { # handle 2
\tchain INPUT { # handle 1
\t\ttype filter hook input priority filter; policy drop;
\t\ttcp dport 2222 counter packets 0 bytes 0 accept # handle 2
\t\ttcp flags syn / fin,syn,rst,ack tcp dport 80 ct state new counter packets 0 bytes 0 accept # handle 3
\t}
}
'''

# A Debian /etc/nftables.conf with policy drop, and a chain before the door with a jump.
DEBIAN = '''table inet filter { # handle 1
\tchain input { # handle 1
\t\ttype filter hook input priority filter; policy drop;
\t\tct state established,related accept # handle 3
\t\tiif "lo" accept # handle 4
\t\tmeta l4proto ipv6-icmp accept # handle 5
\t\tip saddr 10.231.0.1 tcp dport 22 accept # handle 6
\t\ttcp dport { 80, 443, 8000-8100 } ct state new accept # handle 8
\t\tudp dport 53 accept # handle 9
\t\tlog prefix "dropped: " counter packets 0 bytes 0 reject with icmpx admin-prohibited # handle 10
\t}

\tchain forward { # handle 2
\t\ttype filter hook forward priority filter; policy drop;
\t}
}
'''
EARLY = '''table inet early { # handle 2
\tset s { # handle 3
\t\ttype ipv4_addr
\t}

\tchain pre { # handle 1
\t\ttype filter hook input priority -200; policy accept;
\t\ttcp dport != 22 accept # handle 4
\t\ttcp dport 22 jump sub # handle 5
\t}

\tchain sub { # handle 2
\t\tip saddr @s return # handle 6
\t\tdrop # handle 7
\t}
}
'''

SSH = make_door('ssh', [7313, 4187, 9421], 22)


def _table(door, extra=''):
    """The door's own table as nft -a lists it (with handles)."""
    lines = nr.table_text(door).splitlines()
    return '\n'.join(line + (' # handle 9' if line.endswith('{') else '') for line in lines) + '\n' + extra


def blocked(text, door=SSH):
    return [(nr.chain_label(b.chain), b.before_door, b.families)
            for b in nr.blocking_chains(nr.parse_ruleset(text), door)]


@pytest.mark.parametrize('text, value', [('filter', 0), ('filter - 10', -10), ('filter + 5', 5), ('-200', -200),
                                         ('raw', -300), ('mangle - 1', -151), ('security', 50), ('nonsense', None)])
def test_priority_value(text, value):
    assert nr.priority_value(text) == value


def test_parse_ruleset_reads_chains_rules_handles_and_skips_sets():
    chains = nr.parse_ruleset(IPTABLES_NFT + DEBIAN + EARLY)
    assert sorted(chains) == [('inet', 'early', 'pre'), ('inet', 'early', 'sub'), ('inet', 'filter', 'forward'),
                              ('inet', 'filter', 'input'), ('ip', 'filter', 'INPUT'), ('ip', 'filter', 'PK-baseline'),
                              ('ip6', 'filter', 'INPUT')]
    inp = chains[('ip', 'filter', 'INPUT')]
    assert (inp.type, inp.hook, inp.priority, inp.policy) == ('filter', 'input', 0, 'drop')
    assert inp.rules == [nr.Rule('counter packets 0 bytes 0 jump PK-baseline', 3, None)]
    assert chains[('inet', 'early', 'pre')].priority == -200
    assert chains[('ip', 'filter', 'PK-baseline')].hook is None
    assert [r.handle for r in chains[('inet', 'early', 'sub')].rules] == [6, 7]


def test_seed_baseline_on_iptables_nft_blocks_both_families():
    assert blocked(IPTABLES_NFT) == [('ip filter INPUT', False, ('ipv4',)),
                                     ('ip6 filter INPUT', False, ('ipv6',))]
    # ports the host's own chain accepts are not blocked (the door still closes them)
    assert blocked(IPTABLES_NFT, make_door('web', [7313], 2222)) == [('ip filter INPUT', False, ('ipv4',))]
    assert blocked(IPTABLES_NFT, make_door('web', [7313], 80, ip_version='ipv6')) == []
    assert blocked(IPTABLES_NFT, make_door('web', [7313], 80, protocol='udp', ip_version='ipv6')) == \
        [('ip6 filter INPUT', False, ('ipv6',))]


def test_debian_policy_drop_and_reject_rule():
    assert blocked(DEBIAN) == [('inet filter input', False, ('ipv4', 'ipv6'))]
    block = nr.blocking_chains(nr.parse_ruleset(DEBIAN), SSH)[0]
    assert block.reason == 'a rule that drops it (handle 10)'     # the final reject, before the policy
    assert blocked(DEBIAN, make_door('web', [7313], [8050])) == []
    assert blocked(DEBIAN, make_door('dns', [7313], 53, protocol='udp')) == []
    assert blocked(DEBIAN, make_door('dns', [7313], 53)) == [('inet filter input', False, ('ipv4', 'ipv6'))]


def test_chain_before_the_door_cannot_be_helped_by_the_mark():
    assert blocked(EARLY) == [('inet early pre', True, ('ipv4', 'ipv6'))]       # jump sub -> drop
    assert blocked(EARLY, make_door('x', [7313], 2022)) == []                     # dport != 22: unknown, accept
    message = nr.cannot_open_message(SSH, nr.blocking_chains(nr.parse_ruleset(EARLY), SSH), True)
    assert 'runs before the door' in message and 'integrate_input_chain: true' not in message


@pytest.mark.parametrize('rules, is_blocked', [
    ('', False),                                            # policy accept, nothing else
    ('drop', True),
    ('counter packets 3 bytes 120 drop', True),
    ('reject', True),
    ('reject with tcp reset', True),
    ('tcp dport 22 drop', True),
    ('tcp dport { 21-23 } ct state new drop', True),
    ('meta l4proto tcp tcp dport 22 drop', True),
    ('ip protocol tcp drop', True),                         # only IPv4
    ('th dport 22 drop', True),
    ('tcp dport 23 drop', False),
    ('udp dport 22 drop', False),
    ('ct state invalid drop', False),
    ('ip saddr 10.0.0.0/8 drop', False),                    # unknown matches: assumed not to match
    ('tcp dport 22 accept\ndrop', False),
    ('accept\ndrop', False),
    ('meta mark & 0x20000000 == 0x20000000 accept\ndrop', False),      # the role's baseline, integrated
    ('meta mark & 0x20000000 == 0x20000000 accept comment "portknock_other"\ndrop', True),   # managed: per door
    ('tcp dport 22 goto x', True),
    ('jump x\naccept', True),
    ('return\ndrop', False),
])
def test_rule_classes(rules, is_blocked):
    text = ('table inet host {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n'
            + ''.join('\t\t%s # handle %d\n' % (rule, n) for n, rule in enumerate(rules.splitlines(), 10) if rule)
            + '\t}\n\n\tchain x {\n\t\tdrop # handle 2\n\t}\n}\n')
    assert bool(blocked(text)) is is_blocked, blocked(text)


def test_family_of_the_chain_and_of_the_door():
    v6 = make_door('v6', [7313], 22, ip_version='ipv6')
    text = 'table ip host {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t}\n}\n'
    assert blocked(text, v6) == []
    assert blocked(text.replace('ip host', 'ip6 host'), v6) == [('ip6 host input', False, ('ipv6',))]
    # meta nfproto and ip6 nexthdr only match their family
    text = ('table inet host {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n'
            '\t\tmeta nfproto ipv6 tcp dport 22 drop\n\t\tip6 nexthdr tcp drop\n\t}\n}\n')
    assert blocked(text) == [('inet host input', False, ('ipv6',))]


def test_door_tables_are_not_the_hosts_filter_but_the_baseline_is():
    other = make_door('other', [4187], 22)
    assert blocked(_table(SSH) + _table(other)) == []
    baseline = ('table inet portknock_baseline {\n\tchain input {\n\t\ttype filter hook input priority filter; '
                'policy drop;\n\t\t%s\n\t}\n}\n')
    assert blocked(baseline % 'tcp dport { 22 } accept') == []
    assert blocked(baseline % nr.ACCEPT_MARKED) == []
    assert blocked(baseline % 'ct state established,related accept') == [
        ('inet portknock_baseline input', False, ('ipv4', 'ipv6'))]


def test_message_says_what_to_add_without_secrets():
    blocks = nr.blocking_chains(nr.parse_ruleset(IPTABLES_NFT), SSH)
    message = nr.cannot_open_message(SSH, blocks, False)
    assert 'cannot open' in message and 'ip filter INPUT' in message and 'ip6 filter INPUT' in message
    assert 'nft insert rule ip filter INPUT meta mark & 0x20000000 == 0x20000000 accept' in message
    assert 'iptables -I INPUT -m mark --mark 0x20000000/0x20000000 -j ACCEPT' in message
    assert 'ip6tables -I INPUT' in message and 'integrate_input_chain: true' in message
    for step in SSH.sequence:
        assert str(step.port) not in message
    assert nr.cannot_open_message(SSH, blocks, True) is None
    assert nr.cannot_open_message(SSH, [], False) is None


def test_integration_rules_live_wanted_and_script():
    blocks = nr.blocking_chains(nr.parse_ruleset(DEBIAN), SSH)
    wanted = nr.integration_wanted(blocks, SSH)
    assert [text for _chain, text in wanted] == [
        'inet filter input: meta mark & 0x20000000 == 0x20000000 accept comment "portknock_ssh"']
    integrated = DEBIAN.replace('policy drop;\n', 'policy drop;\n\t\t%s # handle 42\n' % nr.integration_rule(SSH), 1)
    chains = nr.parse_ruleset(integrated)
    live = nr.integration_live(chains, SSH)
    assert [(text, handle) for _chain, text, handle in live] == [(wanted[0][1], 42)]
    assert nr.integration_live(chains, make_door('other', [4187], 2022)) == []
    # the door's own rule does not hide the chain from it: wanted stays the same (idempotent)
    assert [text for _chain, text in nr.integration_wanted(nr.blocking_chains(chains, SSH), SSH)] == \
        [text for _chain, text in wanted]
    script = nr.host_script([(live[0][0], 42)], [(wanted[0][0], nr.integration_rule(SSH))])
    assert script == ('delete rule inet filter input handle 42\n'
                      'insert rule inet filter input meta mark & 0x20000000 == 0x20000000 accept '
                      'comment "portknock_ssh"\n')


@pytest.mark.parametrize('text', ['', 'garbage {', '}\n}\n', 'table inet x {\n\tchain c {\n\t\ttype nonsense\n',
                                  'table {\n', '\x00\xff', 'chain c {\n\t\tdrop\n}\n'])
def test_parse_ruleset_never_raises(text):
    chains = nr.parse_ruleset(text)
    nr.blocking_chains(chains, SSH)
