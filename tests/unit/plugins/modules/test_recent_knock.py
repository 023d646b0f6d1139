# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The recent_knock module in-process (run_module) on an in-memory host: the single-door form and
``doors`` (one transaction per family per backend, check, diff, masking, collisions, duplicates)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.portknock.knock.plugins.modules import recent_knock

from fake_firewall import FakeFirewall
from utils import module_result

DOORS = [dict(name='admin', sequence=[7313, 4187, 9421], port=22),
         dict(name='web', sequence='8243:udp,7311,9127', port=[8443, 8080], backend='nftables'),
         dict(name='dns', sequence=[6221, 5113, 6917], port=53, protocol='udp', ip_version='ipv4')]
SECRET = ('7313', '4187', '9421', '8243', '7311', '9127', '6221', '5113', '6917')


@pytest.fixture
def host(monkeypatch):
    fake = FakeFirewall()
    monkeypatch.setattr(recent_knock.AnsibleModule, 'get_bin_path', lambda self, name, *a, **k: fake.which(name))
    monkeypatch.setattr(recent_knock.AnsibleModule, 'run_command',
                        lambda self, args, data=None, check_rc=False, **k: fake.run(args, data))
    return fake


def run(args, **kwargs):
    return module_result(recent_knock.main, args, **kwargs)


def test_doors_first_run_then_idempotent(host):
    result, output, failed = run(dict(doors=DOORS, backend='iptables'), diff=True)
    assert not failed and result['changed'], result
    assert host.restores() == ['iptables-nft-restore', 'ip6tables-nft-restore'] and len(host.nft_writes()) == 1
    assert [d['name'] for d in result['doors']] == ['admin', 'web', 'dns']
    assert [d['backend'] for d in result['doors']] == ['iptables', 'nftables', 'iptables']
    assert result['doors'][2]['rules']['ipv6'] == [] and 'lists' in result['doors'][0]
    assert '# door admin (iptables)' in result['diff']['after']
    for port in SECRET:
        assert port not in output
    host.calls[:] = []
    result, output, failed = run(dict(doors=DOORS, backend='iptables'))
    assert not failed and not result['changed'] and host.restores() == [] and host.nft_writes() == []


def test_doors_check_mode_writes_nothing(host):
    result, output, failed = run(dict(doors=DOORS), check_mode=True, diff=True)
    assert not failed and result['changed'] and result['diff']['after']
    assert host.restores() == [] and host.nft_writes() == []


def test_doors_absent_element_removes_it_everywhere(host):
    run(dict(doors=DOORS))
    doors = [DOORS[0], dict(name='web', state='absent'), DOORS[2]]
    result, output, failed = run(dict(doors=doors))
    assert not failed and result['changed'] and not host.tables
    assert 'lists' not in result['doors'][1]


def test_single_door_form_keeps_its_result_shape(host):
    result, output, failed = run(dict(name='admin', sequence=[7313, 4187, 9421], port=22, backend='nftables'))
    assert not failed and result['changed'] and result['backend'] == 'nftables'
    assert result['table'] == 'inet portknock_admin' and 'doors' not in result and 'name' not in result
    assert list(host.tables) == ['inet portknock_admin']


@pytest.mark.parametrize('args,needle', [
    (dict(doors=DOORS + [dict(DOORS[0], port=2222)]), "'admin' appears more than once"),
    (dict(doors=[DOORS[0], dict(name='x', sequence=[5003, 22, 4001], port=8000)]), "door 'x' has a knock step"),
    (dict(doors=[dict(name='x')]), "door 'x': state is present"),
    (dict(doors=[]), 'empty list'),
    (dict(doors=DOORS, name='admin'), 'mutually exclusive'),
    (dict(port=22), 'one of the following is required'),
    (dict(name='admin', port=22), 'missing: sequence'),
])
def test_bad_calls_fail_before_anything_changes(host, args, needle):
    result, output, failed = run(args)
    assert failed and needle in result['msg'], result
    assert host.restores() == [] and host.nft_writes() == []
    for port in SECRET:
        assert port not in result['msg']


def test_monotonic_door_in_the_list_warns(host, monkeypatch):
    warned = []
    monkeypatch.setattr(recent_knock.AnsibleModule, 'warn', lambda self, text, *a, **k: warned.append(text))
    doors = [DOORS[0], dict(name='scan', sequence=[5001, 5002, 5003], port=8001)]
    result, output, failed = run(dict(doors=doors))
    assert not failed
    assert [text for text in warned if "door 'scan' has an ascending" in text]
    assert not [text for text in warned if "'admin'" in text]
    for port in ('5001', '5002', '5003'):
        assert not [text for text in warned if port in text]


def test_failure_part_of_the_way_is_changed(host):
    host.reject.add('ip6tables-nft-restore')
    result, output, failed = run(dict(doors=DOORS, backend='iptables'))
    assert failed and result['changed'] is True and 'WAS changed' in result['msg']
    for port in SECRET:
        assert port not in output
