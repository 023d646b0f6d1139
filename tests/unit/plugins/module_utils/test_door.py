# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The door model's checks: sequences a port scan opens (issue 11, item 16), doors that collide (item 17)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import itertools
import random

import pytest

from ansible_collections.portknock.knock.plugins.module_utils.door import (
    SpaDoor, door_collisions, door_from_dict, is_spa, make_door, sequence_order, sequence_warning,
    sequence_warnings_for)
from ansible_collections.portknock.knock.plugins.module_utils.sequence import KnockValueError, parse_sequence


def door(sequence, name='d', port=22):
    return make_door(name, sequence, port)


def scan_opens(sequence, ports):
    """Whether a scan of ``ports`` in that order completes the sequence: TCP and UDP side by
    side, each probe sent up to 11 times (nmap retransmits up to --max-retries 10 to a port that
    does not answer, and a door drops knocks); a knock only counts when it is the next step."""
    wanted = [step.port for step in parse_sequence(sequence)]
    k = 0
    for port in (port for port in ports if port in wanted):
        for _probe in range(11):
            if k < len(wanted) and port == wanted[k]:
                k += 1
    return k == len(wanted)


ASCENDING = [[7000, 8000, 9000], '2222,3333,4444', [1, 2], '1234:udp,2345:tcp,3456:udp',
             [7000, '8000:udp', 9000], [7000, 7000, 8000], [100, 200, 200, 300],
             [{'port': 5000, 'protocol': 'udp'}, {'port': 6000}]]
DESCENDING = [[9000, 8000, 7000], '4444:udp 3333 2222', [65535, 1], [9000, 9000, 7000, '7000:udp']]
SINGLE = [[1600], '1600:udp', [7000, 7000], ['7000:tcp', '7000:udp', 7000]]
SAFE = [[7313, 4187, 9421], '7311,9127,8243', [9000, 7000, 8000], [1, 3, 2], [7000, 9000, 8000, 9000],
        ['7219:udp', '8361', '6203:udp'], [5000, 4000, 6000]]


@pytest.mark.parametrize('sequence', ASCENDING)
def test_ascending(sequence):
    assert sequence_order(door(sequence)) == 'ascending'
    assert scan_opens(sequence, range(1, 65536))


@pytest.mark.parametrize('sequence', DESCENDING)
def test_descending(sequence):
    assert sequence_order(door(sequence)) == 'descending'
    assert scan_opens(sequence, range(65535, 0, -1))


@pytest.mark.parametrize('sequence', SINGLE)
def test_single_port(sequence):
    assert sequence_order(door(sequence)) == 'single'
    # a scan in any order finds it
    ports = list(range(1, 65536))
    random.Random(11).shuffle(ports)
    assert scan_opens(sequence, ports)


@pytest.mark.parametrize('sequence', SAFE)
def test_no_scan_in_order_opens_these(sequence):
    assert sequence_order(door(sequence)) is None
    assert sequence_warning(door(sequence)) is None
    assert sequence_warnings_for('d', sequence) == []
    assert not scan_opens(sequence, range(1, 65536)) and not scan_opens(sequence, range(65535, 0, -1))


def test_the_check_agrees_with_a_scan_for_every_small_sequence():
    """The class: every sequence of 1..4 steps over a few ports, with and without repeats."""
    ports = [7, 19, 23, 41]
    for length in range(1, 5):
        for combo in itertools.product(ports, repeat=length):
            seq = list(combo)
            opened = scan_opens(seq, range(1, 50)) or scan_opens(seq, range(49, 0, -1))
            assert (sequence_order(parse_sequence(seq)) is not None) == opened, seq


@pytest.mark.parametrize('sequence', ASCENDING + DESCENDING + SINGLE)
def test_warning_names_the_door_and_no_knock_port(sequence):
    d = door(sequence, name='admin')
    warning = sequence_warning(d)
    assert warning and "'admin'" in warning
    assert sequence_warnings_for('admin', sequence) == [warning]
    for step in d.sequence:
        assert str(step.port) not in warning


def test_warnings_for_a_sequence_that_does_not_parse_are_none():
    # the module reports the bad value itself; the warning helper never raises
    for bad in (None, '', [], 'x,y', [0], [70000], {'port': 1}, 3.5, [None]):
        assert sequence_warnings_for('d', bad) == []


# --- doors of one host that collide (issue 11, item 17) ---------------------------------------

SSH = dict(name='ssh', sequence=[7313, '4187:udp', 9421], port=22)


def doors(*specs):
    return [make_door(**spec) for spec in specs]


def masked(messages, *ports):
    text = ' '.join(messages)
    return not [port for port in ports if str(port) in text]


@pytest.mark.parametrize('sequence', [[22, 7001, 5003], [7001, 22, 5003], [7001, 5003, 22], ['22:tcp', 5003, 7001],
                                      [{'port': 22}, 7001, 5003], '7001 22 5003', [22, 7001, 22]])
def test_a_knock_step_on_another_doors_protected_port_collides(sequence):
    messages = door_collisions(doors(SSH, dict(name='admin', sequence=sequence, port=2200)))
    assert len(messages) == 1
    assert "door 'admin'" in messages[0] and "door 'ssh'" in messages[0]
    assert masked(messages, 22, 7001, 5003, 2200)


def test_every_protected_port_of_a_door_counts_and_both_directions_are_reported():
    a = dict(name='a', sequence=[8080, 7001, 5003], port=[2200, 443])
    b = dict(name='b', sequence=[5111, 443, 6222], port=[8080, 8443])
    messages = door_collisions(doors(a, b))
    assert len(messages) == 2
    assert "door 'a'" in messages[0] and "door 'b'" in messages[0]
    assert "door 'b'" in messages[1] and "door 'a'" in messages[1]
    assert masked(messages, 8080, 443, 8443, 2200)


def test_protocols_must_match():
    # a UDP knock on 53 does not collide with a TCP door on 53, a TCP knock on a UDP door's port does not either
    assert door_collisions(doors(dict(name='dns', sequence=[7313, 4187, 9421], port=53),
                                 dict(name='b', sequence=['53:udp', 7001, 5003], port=2200))) == []
    assert door_collisions(doors(dict(name='vpn', sequence=[7313, 4187, 9421], port=1194, protocol='udp'),
                                 dict(name='b', sequence=[1194, 7001, 5003], port=2200))) == []
    assert len(door_collisions(doors(dict(name='vpn', sequence=[7313, 4187, 9421], port=1194, protocol='udp'),
                                     dict(name='b', sequence=['1194:udp', 7001, 5003], port=2200)))) == 1


def test_doors_that_do_not_collide():
    assert door_collisions(doors(SSH, dict(name='web', sequence=[8243, 7311, 9127], port=[80, 443]))) == []
    assert door_collisions(doors(SSH)) == []
    assert door_collisions([]) == []
    # sharing a protected port is documented (the first jump decides), not a knock collision
    assert door_collisions(doors(SSH, dict(name='ssh2', sequence=[8243, 7311, 9127], port=22))) == []


@pytest.mark.parametrize('opened', [[22], ['22'], ['22:tcp'], [2022, 22], 22])
def test_a_knock_step_on_a_port_the_host_keeps_open_collides(opened):
    web = dict(name='web', sequence=[8243, 22, 9127], port=443)
    messages = door_collisions(doors(web), {'the management allowlist': opened})
    assert len(messages) == 1 and "door 'web'" in messages[0] and 'the management allowlist' in messages[0]
    assert masked(messages, 22, 8243, 9127, 2022)
    assert door_collisions(doors(web), {'the management allowlist': ['22:udp', 2022]}) == []
    assert door_collisions(doors(web), {'the management allowlist': []}) == []


def test_several_sources_of_open_ports_are_each_named():
    web = dict(name='web', sequence=[8243, 22, 9127], port=443)
    messages = door_collisions(doors(SSH, web), {'the ssh port': [22], 'the allowlist': [9127]})
    assert len(messages) == 3
    assert any("door 'ssh'" in m for m in messages)
    assert any('the ssh port' in m for m in messages) and any('the allowlist' in m for m in messages)


@pytest.mark.parametrize('bad', [[70000], ['x'], [None], [True]])
def test_a_bad_open_port_is_the_projects_error(bad):
    with pytest.raises(KnockValueError):
        door_collisions(doors(SSH), {'the allowlist': bad})


# --- SPA doors (issue 14) ---------------------------------------------------------------------

SPA_KEY = base64.b64encode(b'k' * 32).decode()
SPA_HMAC = base64.b64encode(b'h' * 64).decode()
SPA = {'name': 'ssh_spa', 'kind': 'spa', 'port': 22, 'key_base64': SPA_KEY, 'hmac_key_base64': SPA_HMAC}


def test_spa_door_defaults():
    got = door_from_dict(SPA)
    assert is_spa(got) and isinstance(got, SpaDoor) and got.kind == 'spa'
    assert (got.ports, got.protocol, got.ip_version, got.open_window, got.spa_port, got.hmac_digest_type,
            got.require_source_address, got.source, got.sequence) == (
        (22,), 'tcp', 'both', 30, 62201, 'sha256', False, 'ANY', ())
    assert SPA_KEY not in repr(got) and SPA_HMAC not in repr(got)


def test_spa_door_fields():
    got = door_from_dict(dict(SPA, port=[22, 2222], hmac_digest_type='SHA512', fw_access_timeout=45, spa_port=40111,
                              require_source_address='yes', source='10.231.0.0/16, fd42:706b:6c61::1',
                              ip_version='ipv4'))
    assert (got.ports, got.hmac_digest_type, got.open_window, got.spa_port, got.require_source_address,
            got.source, got.ip_version) == ((22, 2222), 'sha512', 45, 40111, True,
                                            ('10.231.0.0/16', 'fd42:706b:6c61::1/128'), 'ipv4')
    assert door_from_dict(dict(SPA, open_window=45, fw_access_timeout=45)).open_window == 45


@pytest.mark.parametrize('change, message', [
    ({'key_base64': None}, "door 'ssh_spa' is missing key_base64"),
    ({'hmac_key_base64': None}, 'missing hmac_key_base64'),
    ({'key_base64': '!' + SPA_KEY[1:]}, "key_base64 is not base64"),
    ({'key_base64': base64.b64encode(b'k' * 33).decode()}, 'key_base64 must be 1 to 32 bytes long'),
    ({'hmac_key_base64': SPA_HMAC[:-4] + '*==='}, 'hmac_key_base64 is not base64'),
    ({'hmac_digest_type': 'sha999'}, "hmac_digest_type 'sha999' is not one of"),
    ({'sequence': [7313, 4187, 9421]}, 'is kind spa: it has keys, not sequence'),
    ({'open_window': 30, 'fw_access_timeout': 45}, 'open_window 30 and fw_access_timeout 45 differ'),
    ({'spa_port': 0}, "spa_port 0 is out of range"),
    ({'port': 62201, 'protocol': 'udp'}, 'spa_port 62201 is also a protected UDP port'),
    ({'require_source_address': 'maybe'}, "require_source_address 'maybe' is not a boolean"),
    ({'source': '10.0.0.300'}, "source '10.0.0.300' is not an address or network"),
    ({'kind': 'magic'}, "kind 'magic' is not one of knock, spa"),
])
def test_bad_spa_doors_name_the_field_never_the_key(change, message):
    data = dict(SPA)
    data.update(change)
    data = dict((k, v) for k, v in data.items() if v is not None)
    with pytest.raises(KnockValueError) as err:
        door_from_dict(data)
    assert message in str(err.value)
    assert SPA_KEY[1:-2] not in str(err.value) and SPA_HMAC[:-4] not in str(err.value)


def test_a_knock_door_with_spa_fields_is_refused():
    with pytest.raises(KnockValueError, match="door 'ssh' has key_base64: only a door of kind spa has them"):
        door_from_dict({'name': 'ssh', 'sequence': [7313, 4187, 9421], 'port': 22, 'key_base64': SPA_KEY})
    assert door_from_dict({'name': 'ssh', 'kind': 'knock', 'sequence': [7313, 4187, 9421], 'port': 22}).ports == (22,)


def test_spa_doors_have_no_scan_warning_and_collide_by_their_ports():
    spa_door = door_from_dict(SPA)
    assert sequence_warning(spa_door) is None
    knock = make_door('web', [7313, 22, 9421], 443)
    assert any("door 'web' has a knock step on a port that door 'ssh_spa' protects" in m
               for m in door_collisions([spa_door, knock]))
    assert door_collisions([spa_door, make_door('web', [7313, 4187, 9421], 443)]) == []


def test_random_spa_doors_only_ever_raise_the_door_models_error():
    rng = random.Random(1414)
    values = [None, '', 0, -1, 22, 62201, 70000, True, 'yes', 'maybe', [], [22, 2222], {'a': 1}, 'tcp', 'udp', 'icmp',
              'ANY', '10.231.0.0/16', 'x/y', SPA_KEY, SPA_HMAC, '!!', b'bytes', 'sha256', 'sha999', 1.5, 'ipv6']
    fields = ['name', 'port', 'key_base64', 'hmac_key_base64', 'hmac_digest_type', 'open_window', 'fw_access_timeout',
              'protocol', 'ip_version', 'spa_port', 'require_source_address', 'source', 'sequence']
    for dummy in range(600):
        data = dict(SPA)
        for field in rng.sample(fields, rng.randint(1, 4)):
            data[field] = rng.choice(values)
        try:
            got = door_from_dict(data)
        except KnockValueError as exc:
            assert SPA_KEY[:16] not in str(exc) and SPA_HMAC[:16] not in str(exc)
        else:
            assert is_spa(got) and SPA_KEY not in repr(got)
