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


def test_seed_recipe_table():
    door = make_door('ssh', [1600], 22, open_window=5)
    assert nr.table_name(door) == 'portknock_ssh'
    assert nr.chain_rules(door) == [
        'tcp dport 22 ct state new ip saddr @step1_v4 accept',
        'tcp dport 22 ct state new ip6 saddr @step1_v6 accept',
        'tcp dport 22 ct state new drop',
        'tcp dport 1600 %s ip saddr @step1_v4 drop' % SYN,
        'tcp dport 1600 %s delete @step1_v4 { ip saddr } add @step1_v4 { ip saddr } drop' % SYN,
        'tcp dport 1600 %s ip6 saddr @step1_v6 drop' % SYN,
        'tcp dport 1600 %s delete @step1_v6 { ip6 saddr } add @step1_v6 { ip6 saddr } drop' % SYN,
    ]


def test_sets_have_step_and_open_timeouts_and_size():
    door = make_door('d', [7000, 8000], 22, step_timeout=3, open_window=120, ip_version='ipv4')
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
    assert 'meta nfproto ipv6 tcp dport 22 ct state new drop' in rules
    assert all(' ip saddr' not in rule for rule in rules)


def test_steps_advance_and_reset():
    door = make_door('d', [7000, '8000:udp', 7000], 22, ip_version='ipv4')
    rules = nr.chain_rules(door)
    p7000 = [r for r in rules if 'dport 7000' in r]
    assert p7000[0] == ('tcp dport 7000 %s ip saddr @step2_v4 delete @step2_v4 { ip saddr } '
                        'add @step3_v4 { ip saddr } drop' % SYN)
    assert p7000[1].endswith('ip saddr @step1_v4 drop')
    assert p7000[2].endswith('ip saddr @step3_v4 drop')
    assert p7000[3] == ('tcp dport 7000 %s delete @step1_v4 { ip saddr } delete @step2_v4 { ip saddr } '
                        'delete @step3_v4 { ip saddr } add @step1_v4 { ip saddr } drop' % SYN)
    udp = [r for r in rules if 'dport 8000' in r]
    assert udp[0].startswith('udp dport 8000 ct state new ip saddr @step1_v4 delete @step1_v4')
    assert udp[-1] == ('udp dport 8000 ct state new delete @step1_v4 { ip saddr } delete @step2_v4 { ip saddr } '
                       'delete @step3_v4 { ip saddr } drop')


def test_apply_script_is_one_transaction():
    door = make_door('ssh', [1600], 22)
    script = nr.apply_script(door)
    assert script.startswith('table inet portknock_ssh\ndelete table inet portknock_ssh\ntable inet portknock_ssh {\n')
    assert nr.apply_script(door, present=False) == 'table inet portknock_ssh\ndelete table inet portknock_ssh\n'


def test_set_names():
    door = make_door('d', [1, 2], 22)
    assert nr.set_names(door) == ('step1_v4', 'step2_v4', 'step1_v6', 'step2_v6')
