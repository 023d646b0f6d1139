# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""portknock.knock.audit on a lab fleet with every enforcer: every door passes; a door
broken by an ACCEPT ahead of it fails "closed to stranger" on that host only; --check
only lists the probes; the JUnit file is valid.

Lab: the shared site lab (lab_hosts.site_lab): one host per enforcer (iptables, nftables,
Debian's knockd, the bundled daemon) plus a probe host that knocks from its own address and
plays the stranger from a second one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from lab_hosts import SITE_FLEET as FLEET, SITE_SEQUENCE, on_host

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason='needs root (rootful podman lab)')]

BROKEN = FLEET[0]
KNOCK_PORTS = [str(step).split(':', 1)[0] for step in SITE_SEQUENCE]


@pytest.fixture
def fleet(site_lab):
    return site_lab


def audit(lab, tmp_path, *extra):
    reports = tmp_path / 'reports'
    res, dummy = lab.playbook('portknock.knock.audit', '-e', 'audit_report_dir=%s' % reports, *extra)
    data = json.loads((reports / 'audit.json').read_text()) if (reports / 'audit.json').exists() else None
    return res, data, reports


def test_every_door_passes_on_every_enforcer(fleet, tmp_path):
    res, data, reports = audit(fleet, tmp_path)
    assert res.returncode == 0, res.stdout[-5000:]
    assert data['ok'] and data['failures'] == []
    seen = set((p['host'], p['family']) for p in data['probes'])
    assert seen == set((h, f) for h in FLEET for f in ('ipv4', 'ipv6'))
    enforcers = set(p['enforcer'] for p in data['probes'])
    assert enforcers == {'iptables', 'nftables', 'knockd', 'daemon'}
    for probe in data['probes']:
        by = dict((c['check'], c) for c in probe['checks'])
        # knock doors can be replayed (docs/spa.md): only SPA doors are probed for it
        assert by['replay_stays_closed']['ok'] and by['replay_stays_closed']['skipped']
        assert all(c['ok'] and not c['skipped'] for c in probe['checks'] if c['check'] != 'replay_stays_closed'), probe
        assert by['opens_for_knocker']['seconds'] is not None
    # the sequence is in none of the reports, nor in the output
    for text in (res.stdout, (reports / 'audit.json').read_text(), (reports / 'audit.junit.xml').read_text()):
        assert not any(port in text for port in KNOCK_PORTS)
    # the table a person reads
    assert 'opens' in res.stdout and 'stranger' in res.stdout
    # a valid JUnit file: a suite per host, no failure
    junitparser = pytest.importorskip('junitparser')
    xml = junitparser.JUnitXml.fromfile(str(reports / 'audit.junit.xml'))
    suites = dict((s.name, s) for s in xml)
    assert set(suites) == set(FLEET)
    assert all(s.failures == 0 and s.errors == 0 and s.tests == 14 for s in suites.values())


def test_a_door_with_an_accept_ahead_fails_closed_to_stranger_on_that_host_only(fleet, tmp_path):
    accept = '-p tcp --dport 22 -j ACCEPT'
    try:
        on_host(BROKEN, 'iptables -I INPUT 1 %s && ip6tables -I INPUT 1 %s' % (accept, accept))
        res, data, reports = audit(fleet, tmp_path)
    finally:
        on_host(BROKEN, 'iptables -D INPUT %s; ip6tables -D INPUT %s' % (accept, accept))
    assert res.returncode != 0
    assert '%s: door ssh' % BROKEN in res.stdout and 'closed to stranger failed' in res.stdout, res.stdout[-4000:]
    for probe in data['probes']:
        if probe['host'] == BROKEN:
            by = dict((c['check'], c) for c in probe['checks'])
            assert not by['closed_to_stranger']['ok']
        else:
            assert probe['ok'], probe
    junitparser = pytest.importorskip('junitparser')
    suites = dict((s.name, s) for s in junitparser.JUnitXml.fromfile(str(reports / 'audit.junit.xml')))
    assert suites[BROKEN].failures > 0
    assert all(suites[h].failures == 0 for h in FLEET if h != BROKEN)


def test_check_mode_only_lists_the_probes(fleet, tmp_path):
    before = on_host(BROKEN, 'iptables -nvxL PK-ssh')
    res, data, _reports = audit(fleet, tmp_path, '--check')
    assert res.returncode == 0, res.stdout[-4000:]
    assert data is None   # no report files in check mode
    for host in FLEET:
        assert host in res.stdout
    assert 'skip' in res.stdout
    assert on_host(BROKEN, 'iptables -nvxL PK-ssh') == before   # not a packet sent to the door
