# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lab/labtool/network.py: route parsing, diagnosis and the blackhole guard's commands
(the guards themselves are proven with real routes in tests/integration/test_lab_guards.py)."""

import pytest

from labtool import network


def test_parse_route_get():
    assert network.parse_route_get(0, '[{"dst":"10.231.2.11","dev":"podman1","prefsrc":"10.231.0.1"}]') == 'podman1'
    assert network.parse_route_get(0, '[{"type":"blackhole","dst":"10.231.2.11"}]') is None
    assert network.parse_route_get(2, '') is None          # RTNETLINK: Invalid argument (blackhole)
    assert network.parse_route_get(0, 'not json') is None
    assert network.parse_route_get(0, '[]') is None


def test_blackhole_commands_cover_both_families_with_a_high_metric():
    add = network.blackhole_commands(True)
    assert add == [['ip', '-4', 'route', 'replace', 'blackhole', network.V4_NET, 'metric', str(network.BLACKHOLE_METRIC)],
                   ['ip', '-6', 'route', 'replace', 'blackhole', network.V6_NET, 'metric', str(network.BLACKHOLE_METRIC)]]
    assert [c[3] for c in network.blackhole_commands(False)] == ['del', 'del']
    assert network.BLACKHOLE_METRIC > 1024   # above the kernel's IPv6 (256) and default-route (1024) metrics


def test_diagnose_names_the_cause(monkeypatch):
    monkeypatch.setattr(network, 'addresses', lambda dev: [])
    assert 'bridge podman1 has no address' in network.diagnose('podman1', 'netavark')
    assert 'install netavark' in network.diagnose('podman1', 'cni')
    monkeypatch.setattr(network, 'addresses', lambda dev: None)
    assert 'does not exist' in network.diagnose('podman9', 'netavark')


def test_check_routes_refuses_a_route_elsewhere(monkeypatch):
    monkeypatch.setattr(network, 'route_device', lambda addr: 'eth0')
    monkeypatch.setattr(network, 'addresses', lambda dev: [])
    with pytest.raises(SystemExit) as err:
        network.check_routes('podman1', ['10.231.2.11'], backend='netavark')
    assert 'through eth0' in str(err.value) and 'has no address' in str(err.value)
    monkeypatch.setattr(network, 'route_device', lambda addr: 'podman1')
    network.check_routes('podman1', ['10.231.2.11', 'fd42:706b:6c61::2:b'], backend='netavark')


def test_in_lab_ranges():
    assert network.in_lab_ranges('10.231.250.1') and network.in_lab_ranges('fd42:706b:6c61::fa:1')
    assert not network.in_lab_ranges('192.0.2.2') and not network.in_lab_ranges('10.232.0.1')
