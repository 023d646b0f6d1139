# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The site door filters: site.yml's preflight refuses doors a port scan opens (issue 11, item 16) and doors that collide (item 17)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.portknock.knock.plugins.filter.doors import (
    door_collisions, door_kind, door_knock_sequence, door_preflight, door_spa_settings, fwknop_access_stanzas,
    knockd_doors, recent_knock_doors)

SAFE = {'name': 'ssh', 'sequence': [7313, '4187:udp', 9421], 'port': 22}
MONOTONIC = [[7000, 8000, 9000], '2222,3333,4444', [9000, '8000:udp', 7000], [1600], [7000, 7000, 8000],
             ['7000:udp', 7000]]


def test_a_safe_door_passes_without_warning():
    assert door_preflight([SAFE]) == []
    assert door_preflight([SAFE, dict(SAFE, name='web', port=443, sequence='8243,7311,9127')], True) == []


@pytest.mark.parametrize('sequence', MONOTONIC)
def test_a_door_a_scan_opens_is_refused_naming_it_and_no_knock_port(sequence):
    doors = [SAFE, {'name': 'admin', 'sequence': sequence, 'port': 2200}]
    with pytest.raises(AnsibleFilterError) as err:
        door_preflight(doors)
    text = str(err.value)
    assert "'admin'" in text and "'ssh'" not in text and 'allow_monotonic' in text
    for port in ('7000', '8000', '9000', '2222', '3333', '4444', '1600'):
        assert port not in text


@pytest.mark.parametrize('sequence', MONOTONIC)
@pytest.mark.parametrize('how', ['door', 'play', 'door as string'])
def test_allow_monotonic_turns_the_error_into_a_warning(sequence, how):
    door = {'name': 'admin', 'sequence': sequence, 'port': 2200}
    if how == 'door':
        warnings = door_preflight([SAFE, dict(door, allow_monotonic=True)])
    elif how == 'play':
        warnings = door_preflight([SAFE, door], True)
    else:
        warnings = door_preflight([SAFE, dict(door, allow_monotonic='yes')], 'no')
    assert len(warnings) == 1 and "'admin'" in warnings[0] and 'allow_monotonic' in warnings[0]


def test_allow_monotonic_on_one_door_does_not_allow_another():
    doors = [{'name': 'a', 'sequence': [1, 2, 3], 'port': 22, 'allow_monotonic': True},
             {'name': 'b', 'sequence': [3, 2, 1], 'port': 80}]
    with pytest.raises(AnsibleFilterError, match="'b'") as err:
        door_preflight(doors)
    assert "'a'" not in str(err.value)


def test_every_refused_door_is_named():
    doors = [{'name': 'a', 'sequence': [1, 2, 3], 'port': 22}, {'name': 'b', 'sequence': [3, 2, 1], 'port': 80}]
    with pytest.raises(AnsibleFilterError) as err:
        door_preflight(doors)
    assert "'a'" in str(err.value) and "'b'" in str(err.value)


def test_absent_doors_are_not_checked():
    assert door_preflight([SAFE, {'name': 'old', 'sequence': [1, 2, 3], 'port': 80, 'state': 'absent'}]) == []


@pytest.mark.parametrize('value', ['maybe', 2, [True]])
def test_allow_monotonic_must_be_a_boolean(value):
    with pytest.raises(AnsibleFilterError, match='allow_monotonic'):
        door_preflight([dict(SAFE, allow_monotonic=value)])
    with pytest.raises(AnsibleFilterError, match='allow_monotonic'):
        door_preflight([SAFE], value)


def test_allow_monotonic_is_a_site_key_the_role_doors_do_not_get():
    door = dict(SAFE, allow_monotonic=True)
    assert 'allow_monotonic' not in recent_knock_doors([door])[0]
    assert 'allow_monotonic' not in knockd_doors([door])[0]


def test_invalid_doors_still_get_their_own_error():
    with pytest.raises(AnsibleFilterError, match='colour'):
        door_preflight([dict(SAFE, colour='red')])
    with pytest.raises(AnsibleFilterError, match='70000'):
        door_preflight([dict(SAFE, port=70000)])


# --- doors of one host that collide (issue 11, item 17) ---------------------------------------

ADMIN_ON_SSH = {'name': 'admin', 'sequence': [22, 7001, 5003], 'port': 2200}


def test_preflight_refuses_a_knock_step_on_another_doors_port_naming_both():
    with pytest.raises(AnsibleFilterError) as err:
        door_preflight([SAFE, ADMIN_ON_SSH])
    text = str(err.value)
    assert "door 'admin'" in text and "door 'ssh'" in text and 'nothing was changed' in text
    assert not [port for port in ('22', '7001', '5003', '2200') if port in text]
    # allow_monotonic is no way around a collision
    with pytest.raises(AnsibleFilterError, match="door 'ssh'"):
        door_preflight([SAFE, dict(ADMIN_ON_SSH, allow_monotonic=True)], True)


def test_preflight_refuses_a_knock_step_on_a_port_the_host_keeps_open():
    web = {'name': 'web', 'sequence': [8243, 22, 9127], 'port': 443}
    with pytest.raises(AnsibleFilterError, match="door 'web' .*the ssh port"):
        door_preflight([web], False, {'the ssh port': [22]})
    with pytest.raises(AnsibleFilterError, match="door 'web' .*the allowlist"):
        door_preflight([web], False, {'the allowlist': ['22'], 'the ssh port': [2022]})
    assert door_preflight([web], False, {'the ssh port': [2022], 'the allowlist': []}) == []


def test_both_errors_are_reported_at_once():
    with pytest.raises(AnsibleFilterError) as err:
        door_preflight([SAFE, ADMIN_ON_SSH, {'name': 'up', 'sequence': [7000, 8000, 9000], 'port': 80}])
    assert "door 'up'" in str(err.value) and "door 'admin'" in str(err.value)


def test_role_doors_extra_keys_and_absent_doors():
    role_doors = [dict(SAFE, backend='nftables', set_size=100),
                  dict(ADMIN_ON_SSH, backend='iptables'),
                  {'name': 'old', 'state': 'absent'},
                  {'name': 'gone', 'sequence': [22, 5001, 5003], 'port': 80, 'state': 'absent'}]
    messages = door_collisions(role_doors)
    assert len(messages) == 1 and "door 'admin'" in messages[0] and "door 'ssh'" in messages[0]
    assert door_collisions(role_doors[:1] + role_doors[2:]) == []


def test_collision_filter_errors():
    with pytest.raises(AnsibleFilterError, match='open_ports must be a dict'):
        door_collisions([SAFE], [22])
    with pytest.raises(AnsibleFilterError, match='open_ports: .*70000'):
        door_collisions([SAFE], {'x': [70000]})
    with pytest.raises(AnsibleFilterError, match='must be a dict'):
        door_collisions(['ssh'])
    with pytest.raises(AnsibleFilterError, match="door 'bad'"):
        door_collisions([{'name': 'bad', 'sequence': [1, 3, 2]}])


# --- SPA doors (issue 14) ---------------------------------------------------------------------

SPA_KEY = base64.b64encode(b'k' * 32).decode()
SPA_HMAC = base64.b64encode(b'h' * 64).decode()
SPA_DOOR = {'name': 'ssh_spa', 'kind': 'spa', 'port': 22, 'key_base64': SPA_KEY, 'hmac_key_base64': SPA_HMAC,
            'open_window': 45, 'require_source_address': True}
WEB = {'name': 'web', 'sequence': [7313, '4187:udp', 9421], 'port': 443}


@pytest.mark.parametrize('make', [recent_knock_doors, knockd_doors])
def test_kernel_and_knockd_enforcers_refuse_spa_doors_by_name_or_skip_them(make):
    with pytest.raises(AnsibleFilterError) as err:
        make([WEB, SPA_DOOR])
    assert "door 'ssh_spa' is kind spa" in str(err.value) and 'cannot enforce an SPA door' in str(err.value)
    assert SPA_KEY not in str(err.value)
    args = ('auto', 'skip') if make is recent_knock_doors else ('skip',)
    assert [door['name'] for door in make([WEB, SPA_DOOR], *args)] == ['web']
    with pytest.raises(AnsibleFilterError, match="spa_doors 'maybe' is not one of refuse, skip"):
        make([WEB], *(args[:-1] + ('maybe',)))


def test_door_knock_sequence_skips_spa_doors():
    assert door_knock_sequence([SPA_DOOR], 22) == []
    assert door_knock_sequence([SPA_DOOR, dict(WEB, port=22)], 22) == ['7313:tcp', '4187:udp', '9421:tcp']


def test_door_spa_settings_and_kind():
    assert door_spa_settings([WEB, SPA_DOOR], 22) == {
        'knock_spa_key': SPA_KEY, 'knock_spa_hmac_key': SPA_HMAC, 'knock_spa_hmac_digest_type': 'sha256',
        'knock_spa_port': 62201, 'knock_spa_access': 'tcp/22'}
    assert door_spa_settings([WEB, SPA_DOOR], 443) == {}
    assert door_spa_settings([dict(WEB, port=22), SPA_DOOR], 22) == {}   # the first door protecting 22 wins
    assert (door_kind([WEB, SPA_DOOR], 22), door_kind([WEB, SPA_DOOR], 443), door_kind([WEB], 22)) == ('spa', 'knock', '')


def test_fwknop_access_stanzas():
    admin = dict(SPA_DOOR, name='admin', port=[2222, 2223], state='absent', hmac_digest_type='sha512',
                 source='10.231.0.0/16')
    stanzas = fwknop_access_stanzas([WEB, SPA_DOOR, admin])
    assert stanzas == [
        dict(name='ssh_spa', source='ANY', open_ports='tcp/22', key_base64=SPA_KEY, hmac_key_base64=SPA_HMAC,
             hmac_digest_type='SHA256', fw_access_timeout=45, require_source_address=True, spa_port=62201,
             ip_version='both', state='present'),
        dict(name='admin', source='10.231.0.0/16', open_ports='tcp/2222, tcp/2223', key_base64=SPA_KEY,
             hmac_key_base64=SPA_HMAC, hmac_digest_type='SHA512', fw_access_timeout=45, require_source_address=True,
             spa_port=62201, ip_version='both', state='absent')]
    assert fwknop_access_stanzas([SPA_DOOR], '10.231.0.9')[0]['source'] == '10.231.0.9/32'
    with pytest.raises(AnsibleFilterError, match="door 'ssh_spa': key_base64 is not base64"):
        fwknop_access_stanzas([dict(SPA_DOOR, key_base64='!' + SPA_KEY[1:])])


def test_preflight_passes_spa_doors_and_collisions_see_their_ports():
    assert door_preflight([WEB, SPA_DOOR]) == []
    with pytest.raises(AnsibleFilterError, match="door 'web' has a knock step on a port that door 'ssh_spa' protects"):
        door_preflight([dict(WEB, sequence=[7313, 22, 9421]), SPA_DOOR])


def test_filter_names_are_the_functions_names():
    from ansible_collections.portknock.knock.plugins.filter import doors
    filters = doors.FilterModule().filters()
    assert sorted(filters) == ['door_collisions', 'door_kind', 'door_knock_sequence', 'door_preflight',
                               'door_spa_settings', 'fwknop_access_stanzas', 'knockd_doors', 'recent_knock_doors']
    assert filters['door_kind'] is doors.door_kind
