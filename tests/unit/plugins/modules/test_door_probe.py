# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""modules/door_probe.py in-process: check mode lists the probes and sends nothing; the report
keeps door names and ports but never a sequence; bad input gets a clear error."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.portknock.knock.plugins.modules import door_probe
from ansible_collections.portknock.knock.plugins.module_utils import door_probe as probe_utils

from utils import module_result

DOORS = [{'name': 'ssh', 'sequence': [8361, '7219:udp', 9203], 'port': 22, 'step_timeout': 5, 'open_window': 30,
          'ip_version': 'both', 'state': 'present'},
         {'name': 'web', 'sequence': '4431,1443,2281', 'port': 443, 'ip_version': 'ipv4'},
         {'name': 'gone', 'sequence': [5111, 6222], 'port': 2200, 'state': 'absent'}]
ARGS = {'host': 'web1', 'addresses': ['10.231.2.11', 'fd42:706b:6c61::2:b'], 'doors': DOORS,
        'enforcer': 'nftables', 'stranger_source': {'ipv4': '10.231.2.200', 'ipv6': 'fd42:706b:6c61::2:c8'}}
SECRETS = ('7219', '8361', '9203', '4431', '1443', '2281', '5111', '6222')


@pytest.fixture(autouse=True)
def no_packets(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError('check mode sent a packet')
    monkeypatch.setattr(probe_utils, 'send_knocks', refuse)
    monkeypatch.setattr(probe_utils, 'tcp_connects', refuse)


def test_check_mode_lists_every_probe_and_no_sequence():
    result, output, failed = module_result(door_probe.main, ARGS, check_mode=True, verbosity=4)
    assert not failed and not result['changed']
    seen = sorted((p['door'], p['family'], p['port']) for p in result['probes'])
    assert seen == [('ssh', 'ipv4', 22), ('ssh', 'ipv6', 22), ('web', 'ipv4', 443)]   # absent door not probed
    for secret in SECRETS:
        assert secret not in output


@pytest.mark.parametrize('change, message', [
    ({'stranger_source': {'ipv4': '10.231.2.200'}}, 'stranger_source has no ipv6 address'),
    ({'knocker_source': {'ipv4': '10.231.2.200'}}, 'both 10.231.2.200'),
    ({'doors': [dict(DOORS[0], sequence='7219;9203')]}, 'door ssh:'),
    ({'doors': [dict(DOORS[0], ip_version='ipv5')]}, 'ipv5'),
])
def test_bad_input_is_a_clear_error(change, message):
    args = dict(ARGS, **change)
    result, output, failed = module_result(door_probe.main, args, check_mode=True)
    assert failed and message in result['msg'], result
    assert '7219' not in output and '9203' not in output


SPA_KEY, SPA_HMAC_KEY = 'a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U=', 'aG1hY2htYWNobWFjaG1hY2htYWNobWFjaG1hY2htYWNobWFjaG1hY2htYWM='
SPA_DOOR = {'name': 'ssh', 'kind': 'spa', 'port': 22, 'key_base64': SPA_KEY, 'hmac_key_base64': SPA_HMAC_KEY,
            'hmac_digest_type': 'sha256', 'open_window': 30, 'ip_version': 'both', 'state': 'present'}


def test_an_spa_door_is_planned_and_its_keys_never_shown():
    args = dict(ARGS, doors=[SPA_DOOR], enforcer='fwknop')
    result, output, failed = module_result(door_probe.main, args, check_mode=True, verbosity=4)
    assert not failed, result
    assert sorted((p['door'], p['family']) for p in result['probes']) == [('ssh', 'ipv4'), ('ssh', 'ipv6')]
    assert SPA_KEY not in output and SPA_HMAC_KEY not in output


def test_a_bad_spa_door_is_a_clear_error_without_its_keys():
    args = dict(ARGS, doors=[dict(SPA_DOOR, hmac_key_base64='not base64!', sequence=None)])
    result, output, failed = module_result(door_probe.main, args, check_mode=True)
    assert failed and 'hmac_key_base64' in result['msg'], result
    assert SPA_KEY not in output


def test_a_probe_that_breaks_is_a_failed_probe_not_a_missing_one(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError('boom')
    monkeypatch.setattr(door_probe, 'probe_door', broken)
    result, output, failed = module_result(door_probe.main, dict(ARGS, doors=DOORS[:1]))
    assert not failed and result['audit_ok'] is False
    assert len(result['probes']) == 2        # both families reported, each failed
    assert all(p['checks'][0]['detail'] == 'the probe failed: RuntimeError' for p in result['probes'])
