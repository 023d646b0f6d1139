# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""portknock.knock.door_info in this process (tests/unit/plugins/modules/utils.py): the JSON a host sends back.

The host's commands and files are a fake (the fixtures of real doors in
tests/unit/plugins/module_utils/fixtures/door_counters); nothing on this machine is read or run.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.portknock.knock.plugins.module_utils import door_counters
from ansible_collections.portknock.knock.plugins.modules import door_info

from utils import module_result

FIXTURES = os.path.join(os.path.dirname(__file__), '..', 'module_utils', 'fixtures', 'door_counters')
KNOCK_PORTS = ('7313', '4187', '9421')


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


FILES = {
    '/proc/timer_list': 'jiffies: 4296029212\n',
    '/proc/uptime': '4547.92 3262.54\n',
    '/proc/net/xt_recent/PK_ssh_3': fixture('iptables-pk_ssh_3.txt'),
    '/proc/net/xt_recent/PK6_ssh_3': fixture('iptables-pk6_ssh_3.txt'),
}
OUTPUT = {
    'iptables': 'iptables v1.8.9 (nf_tables)\n',
    'iptables-nft-save': fixture('iptables-save4.txt'),
    'ip6tables-nft-save': fixture('iptables-save6.txt'),
}


@pytest.fixture
def fake_host(monkeypatch):
    """The module's commands (run_command, get_bin_path) and file reads go to a fake host."""
    calls = []

    def run_command(self, args, data=None, **kwargs):
        calls.append(list(args))
        name = os.path.basename(args[0])
        if name in OUTPUT:
            return 0, OUTPUT[name], ''
        if args[1:] == ['list', 'tables']:
            return 0, 'table inet portknock_web\n', ''
        if args[1:3] == ['list', 'table']:
            return 0, fixture('nftables-table.txt').replace('portknock_ssh', 'portknock_web'), ''
        return 127, '', 'not on this fake host'

    known = ('iptables', 'iptables-nft-save', 'ip6tables-nft-save', 'nft')
    monkeypatch.setattr(AnsibleModule, 'run_command', run_command)
    monkeypatch.setattr(AnsibleModule, 'get_bin_path',
                        lambda self, name, required=False, opt_dirs=None: '/usr/sbin/' + name if name in known else None)
    monkeypatch.setattr(door_counters, 'read_text', FILES.get)
    original = door_counters.DoorInfo.__init__

    def init(self, *args, **kwargs):
        kwargs['read'] = FILES.get
        original(self, *args, **kwargs)
    monkeypatch.setattr(door_counters.DoorInfo, '__init__', init)
    return calls


@pytest.mark.parametrize('check_mode', [False, True])
def test_counts_of_every_door_found_in_any_mode(fake_host, check_mode):
    result, output, failed = module_result(door_info.main, {}, check_mode=check_mode)
    assert not failed and result['changed'] is False
    doors = dict((d['name'], d) for d in result['doors'])
    assert doors['ssh']['enforcer'] == 'iptables' and doors['web']['enforcer'] == 'nftables'
    for door in doors.values():
        assert door['knocks'] == [3, 2, 2] and door['opens'] == 2 and door['refusals'] == 1
        assert door['connections'] == {'accepted': 1, 'refused': 1}
        assert sorted(s['address'] for s in door['open_sources']) == ['127.0.0.2', '::1']
    assert [e['name'] for e in result['enforcers']] == ['iptables', 'nftables']
    assert all(args[1:2] in (['--version'], ['-c'], ['list']) for args in fake_host)    # reads only


def test_no_knock_port_in_what_the_host_sends_back(fake_host):
    result, output, failed = module_result(door_info.main, {}, verbosity=3)
    assert not failed
    assert not any(port in output for port in KNOCK_PORTS)
    assert '2222' not in output           # the protected port is not returned either (only counts)


def test_only_the_doors_and_enforcers_asked_for(fake_host):
    result, _output, failed = module_result(door_info.main, {'enforcers': ['nftables'], 'doors': ['web']})
    assert not failed
    assert [d['name'] for d in result['doors']] == ['web']
    assert [e['name'] for e in result['enforcers']] == ['nftables']


@pytest.mark.parametrize('args', [{'enforcers': ['pf']}, {'enforcers': 'iptables,pf'}, {'doors': {'a': 1}},
                                  {'frobnicate': True}])
def test_bad_parameters_fail_with_a_message(fake_host, args):
    result, _output, failed = module_result(door_info.main, args)
    assert failed and result['msg']


def test_a_broken_knockd_conf_fails_naming_the_file_without_the_sequence(fake_host, tmp_path):
    conf = tmp_path / 'knockd.conf'
    FILES[str(conf)] = '[ssh]\n    sequence = 17313,24187,bogus\n'
    try:
        result, output, failed = module_result(door_info.main, {'enforcers': ['knockd'], 'knockd_conf': str(conf)})
    finally:
        del FILES[str(conf)]
    assert failed and str(conf) in result['msg']
    assert '17313' not in output and '24187' not in output
