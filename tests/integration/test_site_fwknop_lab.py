# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""site.yml rolls an SPA door out to a knock_fwknop host (issue 14), as tools/site.sh does.

Lab `it-spa-site`: one fleet host in group knock_fwknop (tools/site_fleet.py --fwknop-hosts 1,
inventory/group_vars/knock_fwknop.yml: the bundled drop-in, managed over IPv6) and a probe.
- the rollout passes the same guard and confirm-through-a-new-connection as the other
  enforcers: the confirming connection gets in only by its SPA packet (the port is closed);
- port 22 is then closed to the probe, which sends no SPA packet;
- a second run, at -vvv, reports changed=0 and shows neither key;
- the audit proves the door from the probe over IPv4 and IPv6: wrong keys stay closed, the
  knocker's packet opens, the same packet sent again does not.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess

import pytest

from lab_hosts import RECAP, REPO, STATE, lab, on_host, write_fleet

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason='needs root (rootful podman lab)')]

LAB = 'it-spa-site'
HOST = LAB + '-1'
WINDOW = 10   # short: the audit waits for the door to close again


class Secrets(list):
    """The lab's SPA keys: pytest shows fixture values when a test fails, never these."""

    def __repr__(self):
        return '<%d keys, not shown>' % len(self)


@pytest.fixture(scope='module')
def fleet():
    with lab(LAB, 2) as hosts:
        labdir = os.path.join(STATE, 'labs', LAB)
        # the door of group_vars/knock_fwknop.yml with a shorter window (a host variable wins)
        door = {'name': 'ssh', 'kind': 'spa', 'port': 22, 'key_base64': '{{ portknock_spa_key }}',
                'hmac_key_base64': '{{ portknock_spa_hmac_key }}', 'open_window': WINDOW, 'ip_version': 'both'}
        inventory = write_fleet(LAB, os.path.join(labdir, 'fleet.yml'), '--fwknop-hosts', '1',
                                '--set=%s:portknock_doors=%s' % (HOST, json.dumps([door])))
        with open(os.path.join(labdir, 'spa-keys.json')) as handle:
            keys = Secrets(json.load(handle).values())
        yield hosts, inventory, keys


def playbook(inventory, playbook, *extra):
    proc = subprocess.run(['ansible-playbook', '-i', os.path.join(REPO, 'inventory'), '-i', inventory, playbook]
                          + list(extra), cwd=REPO, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, env=dict(os.environ, ANSIBLE_NOCOLOR='1'))
    recap = dict((name, dict(ok=int(ok), changed=int(changed), unreachable=int(u), failed=int(f)))
                 for name, ok, changed, u, f in RECAP.findall(proc.stdout))
    return proc, recap


def probe_connects(hosts, address):
    """True if the probe (no SPA packet sent) gets a TCP connection to ``address``:22."""
    probe = hosts[-1]
    out = on_host(probe.name, 'nc -z -w 2 %s 22 && echo OPEN || echo CLOSED' % address)
    return 'OPEN' in out


def test_site_rolls_out_the_spa_door_with_the_guard_and_a_confirming_spa_connection(fleet):
    hosts, inventory, keys = fleet
    with open(inventory) as handle:
        group = json.load(handle)['all']['children']['portknock_fleet']['children']
    assert list(group) == ['knock_fwknop'] and list(group['knock_fwknop']['hosts']) == [HOST]
    assert oct(os.stat(inventory).st_mode & 0o777) == '0o600'       # it holds the keys
    proc, recap = playbook(inventory, 'site.yml')
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert recap[HOST]['failed'] == 0 and recap[HOST]['unreachable'] == 0 and recap[HOST]['changed'] > 0, recap
    assert 'Confirm' in proc.stdout or 'confirm' in proc.stdout
    chain = on_host(HOST, 'iptables -S PK-FWKNOP; ip6tables -S PK-FWKNOP', check=True)
    assert chain.count('-j DROP') == 2 and chain.count('-m recent') == 2, chain
    assert 'portknock-fwknopd' in on_host(HOST, 'systemctl is-active portknock-fwknopd && echo portknock-fwknopd')
    # the probe sends no SPA packet: closed to it on both families
    assert not probe_connects(hosts, hosts[0].ipv4)
    assert not probe_connects(hosts, hosts[0].ipv6)
    for key in keys:
        assert key not in proc.stdout


def test_a_second_run_changes_nothing_and_shows_no_key(fleet):
    hosts, inventory, keys = fleet
    proc, recap = playbook(inventory, 'site.yml', '-vvv')
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert recap[HOST]['changed'] == 0, [line for line in proc.stdout.splitlines() if line.startswith('changed:')]
    for key in keys:
        assert key not in proc.stdout


def test_the_audit_proves_the_spa_door_and_that_a_replay_stays_closed(fleet, tmp_path):
    hosts, inventory, keys = fleet
    reports = tmp_path / 'reports'
    proc, _recap = playbook(inventory, 'portknock.knock.audit', '-e', 'audit_report_dir=%s' % reports)
    assert proc.returncode == 0, proc.stdout[-5000:]
    data = json.loads((reports / 'audit.json').read_text())
    assert data['ok'] and sorted(p['family'] for p in data['probes']) == ['ipv4', 'ipv6']
    for probe in data['probes']:
        assert probe['enforcer'] == 'fwknop'
        by = dict((c['check'], c) for c in probe['checks'])
        assert all(c['ok'] and not c['skipped'] for c in probe['checks']), probe
        assert by['opens_for_knocker']['seconds'] is not None
    for text in (proc.stdout, (reports / 'audit.json').read_text(), (reports / 'audit.junit.xml').read_text()):
        for key in keys:
            assert key not in text
