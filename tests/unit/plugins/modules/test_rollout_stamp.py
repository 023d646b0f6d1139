# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""portknock.knock.rollout_stamp in this process (tests/unit/plugins/modules/utils.py): the JSON a host sends back.

The host's commands are a fake (run_command, get_bin_path); its files are a tmp tree.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat

import pytest

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.portknock.knock.plugins.module_utils import rollout_stamp as rs
from ansible_collections.portknock.knock.plugins.modules import rollout_stamp

from utils import module_result

INPUTS = '5e' * 32
KNOCK_PORTS = ('7313', '4187', '9421')
SAVE = ('*filter\n:INPUT ACCEPT [10:900]\n:PK-ssh - [0:0]\n:PK-ssh-KD - [0:0]\n-A INPUT -j PK-ssh\n'
        '-A PK-ssh -p tcp -m tcp --dport 7313 -j DROP\n-A PK-ssh-KD -s 10.0.0.7/32 -j ACCEPT\n'
        '-A PK-ssh-KD -m comment --comment pk-static -j DROP\nCOMMIT\n')
TABLE = ('table inet portknock_web {\n\tset step1_v4 {\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout 5s\n'
         '\t}\n\n\tchain input {\n\t\ttype filter hook input priority filter - 10; policy accept;\n'
         '\t\ttcp dport 9421 ct state new add @step1_v4 { ip saddr } counter packets 3 bytes 180 drop\n\t}\n}\n')


class FakeHost(object):
    def __init__(self):
        self.bins = ['iptables-nft-save', 'ip6tables-nft-save', 'iptables-legacy-save', 'nft', 'systemctl',
                     'service', 'dpkg-query']
        self.output = {'iptables-nft-save': (0, SAVE), 'ip6tables-nft-save': (0, SAVE.replace('7313', '4187')),
                       'nft': (0, TABLE), 'dpkg-query': (1, 'knockd 0.8-2+b4 ii \n'),
                       'systemctl': (0, 'ActiveState=active\nUnitFileState=enabled\nLoadState=loaded\n')}
        self.calls = []


@pytest.fixture
def host(monkeypatch, tmp_path):
    fake = FakeHost()

    def run_command(self, args, data=None, **kwargs):
        fake.calls.append(list(args))
        name = os.path.basename(args[0])
        rc, out = fake.output.get(name, (127, ''))
        return rc, out, 'stderr of %s' % name

    monkeypatch.setattr(AnsibleModule, 'run_command', run_command)
    monkeypatch.setattr(AnsibleModule, 'get_bin_path',
                        lambda self, name, required=False, opt_dirs=None: '/usr/sbin/' + name if name in fake.bins else None)
    monkeypatch.setattr(rs, 'legacy_tables_now', lambda names_file: [])
    systemd = tmp_path / 'run-systemd'
    systemd.mkdir()
    monkeypatch.setattr(rs, 'SYSTEMD_RUN_DIR', str(systemd))
    fake.conf = tmp_path / 'knockd.conf'
    fake.conf.write_text('[ssh]\nsequence = %s\n' % ','.join(KNOCK_PORTS))
    fake.stamp = tmp_path / 'lib' / 'rollout.stamp'
    return fake


def args(host, **extra):
    found = dict(path=str(host.stamp), inputs=INPUTS, paths=[str(host.conf)], services=['knockd'],
                 packages=['knockd', 'nftables'])
    found.update(extra)
    return found


def run(host, check_mode=False, diff=False, **extra):
    return module_result(rollout_stamp.main, args(host, **extra), check_mode=check_mode, diff=diff)


@pytest.mark.parametrize('check_mode', [False, True])
def test_check_without_a_stamp(host, check_mode):
    result, output, failed = run(host, check_mode=check_mode)
    assert not failed and result['changed'] is False and result['current'] is False
    assert result['reasons'] == ['no stamp'] and len(result['fingerprint']) == 64
    assert not host.stamp.exists()
    assert not any(port in output for port in KNOCK_PORTS)


def test_one_command_each(host):
    run(host)
    tools = sorted(os.path.basename(call[0]) for call in host.calls)
    assert tools == ['dpkg-query', 'ip6tables-nft-save', 'iptables-nft-save', 'nft', 'systemctl']


def test_present_then_check_is_current(host):
    result, output, failed = run(host, state='present')
    assert not failed and result['changed'] is True and 'diff' not in result
    assert stat.S_IMODE(os.stat(str(host.stamp)).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(str(host.stamp.parent)).st_mode) == 0o700
    assert not any(port in host.stamp.read_text() for port in KNOCK_PORTS)
    fingerprint = result['fingerprint']
    result, _output, failed = run(host, state='present')
    assert not failed and result['changed'] is False and result['fingerprint'] == fingerprint
    result, _output, failed = run(host)
    assert not failed and result['current'] is True and result['reasons'] == [] and result['changed'] is False
    assert result['stamp_path'] == str(host.stamp) and 'state' not in result and 'mode' not in result


def test_a_knocker_does_not_make_the_host_stale_a_drift_does(host):
    run(host, state='present')
    host.output['iptables-nft-save'] = (0, SAVE.replace('10.0.0.7', '10.0.0.8'))
    host.output['nft'] = (0, TABLE.replace('timeout 5s\n', 'timeout 5s\n\t\telements = { 10.1.1.1 expires 2s }\n')
                          .replace('packets 3 bytes 180', 'packets 4 bytes 240'))
    assert run(host)[0]['current'] is True
    host.output['systemctl'] = (0, 'ActiveState=failed\nUnitFileState=enabled\nLoadState=loaded\n')
    host.output['nft'] = (0, TABLE.replace('9421', '9422'))
    host.conf.write_text('[ssh]\nsequence = 9421,4187,7313\n')
    result, output, _failed = run(host)
    assert result['current'] is False
    assert result['reasons'] == ['state differs: %s' % host.conf, 'state differs: firewall nft inet portknock_web',
                                 'state differs: service knockd']
    assert not any(port in output for port in KNOCK_PORTS + ('9422',))


def test_missing_tools_do_not_fail_and_differ(host):
    run(host, state='present')
    host.bins = []
    result, _output, failed = run(host)
    assert not failed and result['current'] is False
    assert 'state differs: firewall nft' in result['reasons'] and 'state differs: package knockd' in result['reasons']


def test_present_in_check_mode_predicts(host):
    result, _output, failed = run(host, state='present', check_mode=True)
    assert not failed and result['changed'] is True and not host.stamp.parent.exists()
    run(host, state='present')
    result, _output, _failed = run(host, state='present', check_mode=True)
    assert result['changed'] is False


def test_diff_shows_digests_only(host):
    result, output, _failed = run(host, state='present', diff=True)
    assert result['diff']['before'] == ''
    # the inputs digest is no_log (a digest of secrets among others): masked as Ansible masks it
    assert result['diff']['after'] == 'inputs: ********\nfingerprint: %s\n' % result['fingerprint']
    assert INPUTS not in output
    host.conf.write_text('changed 7313\n')
    result, output, _failed = run(host, state='present', diff=True, inputs='ab' * 32)
    assert result['changed'] is True
    assert result['diff']['before'].startswith('inputs: %s\n' % INPUTS)
    assert result['diff']['after'].startswith('inputs: ********\n')
    assert not any(port in output for port in KNOCK_PORTS)


def test_absent(host):
    run(host, state='present')
    result, _output, failed = run(host, state='absent', check_mode=True)
    assert not failed and result['changed'] is True and host.stamp.exists()
    result, _output, failed = module_result(rollout_stamp.main, dict(state='absent', path=str(host.stamp)), diff=True)
    assert not failed and result['changed'] is True and not host.stamp.exists()
    assert result['diff']['after'] == '' and result['diff']['before'].startswith('inputs: ')
    result, _output, failed = module_result(rollout_stamp.main, dict(state='absent', path=str(host.stamp)))
    assert not failed and result['changed'] is False


@pytest.mark.parametrize('extra, words', [
    (dict(inputs='not a digest 7313'), 'inputs must be a sha256'),
    (dict(inputs='ab' * 31), 'inputs must be a sha256'),
    (dict(inputs=None), 'inputs'),
    (dict(inputs=None, state='present'), 'inputs'),
    (dict(paths=['relative/file']), "'relative/file'"),
    (dict(globs=['*.conf']), "'*.conf'"),
    (dict(services=['--now']), "'--now'"),
    (dict(packages=['a;b']), "'a;b'"),
    (dict(state='maybe'), 'state'),
    (dict(firewall='perhaps'), 'firewall'),
    (dict(path='rollout.stamp'), 'path'),
])
def test_bad_input_is_a_message(host, extra, words):
    result, output, failed = run(host, **extra)
    assert failed and words in result['msg'] and 'exception' not in result
    assert '7313' not in result['msg']
    assert host.calls == [] and not host.stamp.exists()


def test_a_stamp_path_that_is_a_directory(host):
    host.stamp.mkdir(parents=True)
    result, _output, failed = run(host, state='present')
    assert failed and 'is a directory' in result['msg'] and 'exception' not in result


def test_the_stamp_holds_digests_only(host):
    run(host, state='present')
    stamp = json.loads(host.stamp.read_text())
    assert sorted(stamp['parts']) == sorted([str(host.conf), 'service knockd', 'package knockd', 'package nftables',
                                             'firewall ipv4 nft', 'firewall ipv6 nft', 'firewall ipv4 legacy',
                                             'firewall ipv6 legacy', 'firewall nft', 'firewall nft inet portknock_web'])
    assert all(len(value) == 64 for value in stamp['parts'].values())
