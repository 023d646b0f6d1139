# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""site.yml on lab hosts: rollout, idempotence, check mode, and the way back.

The shared site lab (lab_hosts.site_lab, rolled out once): four fleet hosts, one per enforcer
(iptables, nftables, Debian's knockd, the bundled daemon), all reached through their doors by
portknock.knock.ssh.  Run with tools/test.sh (which
builds and installs the collection and sets the environment), as root.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import json
import os
import re
import time

import pytest

from lab_hosts import SITE_FLEET as HOSTS, STATE, on_host, site_doors, write_fleet

pytestmark = pytest.mark.integration

BROKEN = HOSTS[2]
ROLLBACK = 20


# What knockers change while a door works (not configuration): knockd's per-knocker ACCEPT
# rules in the door chains and the members of nftables door sets.
KNOCKER_RULE = re.compile(r'^-A PK-\S+-KD -s \S+ .*-j ACCEPT$')
SET_MEMBERS = re.compile(r'\n\s*elements = \{[^}]*\}', re.S)
# Chain policy counters (iptables-save prints them on every ':CHAIN POLICY [packets:bytes]' line):
# traffic, not configuration.  A restore loads the snapshot's counters, so they differ after it.
CHAIN_COUNTERS = re.compile(r'^(:\S+ \S+) \[\d+:\d+\]$', re.M)


def state_of(host):
    # iptables-nft tables through iptables-save (knockers' rules filtered below), native nft
    # tables (the door tables) through nft, plus the knockd files.
    text = on_host(host, 'iptables-save 2>/dev/null | grep -v "^#"; ip6tables-save 2>/dev/null | grep -v "^#"; '
                         'nft list tables 2>/dev/null | grep -v -E " (ip|ip6) (filter|nat|mangle|raw|security)$" '
                         '| while read -r _ family name; do nft -s list table "$family" "$name"; done; '
                         'cat /etc/knockd.conf /etc/default/knockd /etc/default/portknock-knockd 2>/dev/null')
    text = SET_MEMBERS.sub('', text)
    text = CHAIN_COUNTERS.sub(r'\1 [0:0]', text)
    return '\n'.join(line for line in text.splitlines() if not KNOCKER_RULE.match(line) or 'pk-static' in line)


def same_state(before):
    """The hosts whose state differs from ``before``, with a diff of each."""
    changed = {}
    for host, old in before.items():
        new = state_of(host)
        if new != old:
            changed[host] = '\n'.join(difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm=''))
    return changed


def assert_same_state(before):
    """Fail with the whole unified diff of every host whose state changed (pytest cuts dict reprs)."""
    changed = same_state(before)
    assert changed == {}, '\n'.join('--- %s ---\n%s' % item for item in sorted(changed.items()))


def doors(open_window):
    return json.dumps(site_doors(open_window))


@pytest.fixture
def rolled_out(site_lab):
    return site_lab


def test_rollout_puts_a_door_on_every_enforcer(rolled_out):
    assert 'PK-ssh' in on_host(HOSTS[0], 'iptables -S')
    assert 'portknock_ssh' in on_host(HOSTS[1], 'nft list tables')
    for host, unit in ((HOSTS[2], 'knockd'), (HOSTS[3], 'portknock-knockd')):
        assert on_host(host, 'systemctl is-active %s' % unit).strip() == 'active'
        assert '[ssh]' in on_host(host, 'cat /etc/knockd.conf')


def test_plain_ssh_is_refused_after_rollout(rolled_out):
    # from another lab host that never knocked: port 22 is closed on every fleet host
    for host in HOSTS:
        address = on_host(host, "ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1").strip()
        other = HOSTS[0] if host != HOSTS[0] else HOSTS[1]
        assert on_host(other, 'nc -z -w 2 %s 22 && echo OPEN || echo CLOSED' % address).strip() == 'CLOSED', host


def test_second_run_changes_nothing(rolled_out):
    proc, recap = rolled_out.playbook()
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert all(recap[h]['changed'] == 0 for h in HOSTS), recap


def test_check_mode_predicts_and_changes_nothing(rolled_out):
    before = dict((h, state_of(h)) for h in HOSTS)
    proc, recap = rolled_out.playbook('site.yml', '--check', '--diff', '-e', doors(25))
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert all(recap[h]['changed'] > 0 for h in HOSTS), recap     # the change is predicted
    assert_same_state(before)                                     # and not made


@pytest.mark.site_lab_destructive      # the fleet keeps the new doors: after every other test of the site lab
def test_broken_door_reverts_and_stops_the_rollout(rolled_out):
    before = dict((h, state_of(h)) for h in HOSTS)
    # The knockd host's daemon is moved to lo: it never sees the controller's knocks.
    broken = write_fleet(rolled_out.name, os.path.join(STATE, 'labs', rolled_out.name, 'fleet-broken.yml'),
                         '--set=%s:knockd_interface="lo"' % BROKEN)
    proc, recap = rolled_out.playbook('site.yml', '-e', doors(25), '-e', json.dumps({
        'portknock_serial': [1, 2, 1], 'portknock_rollback_timeout': ROLLBACK}), inventory=broken)
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert recap[BROKEN]['failed'] + recap[BROKEN]['unreachable'] == 1, recap
    assert 'stayed closed' in proc.stdout or 'ROLLED BACK' in proc.stdout or 'rolled' in proc.stdout, proc.stdout[-4000:]
    # batch 1 and the rest of batch 2 got the change; batch 3 was never touched
    assert '--seconds 25' in on_host(HOSTS[0], 'iptables -S')
    assert 'timeout 25s' in on_host(HOSTS[1], 'nft list ruleset') or '25s' in on_host(HOSTS[1], 'nft list ruleset')
    assert_same_state({HOSTS[3]: before[HOSTS[3]]})
    # the broken host restores its previous firewall and knockd state by itself: wait for the
    # watchdog's record of a finished restore (files, firewall, then the knockd restart)
    record = '/var/lib/portknock/guard/site.last-restore.json'
    deadline = time.time() + ROLLBACK + 30
    while time.time() < deadline and not on_host(BROKEN, 'cat %s 2>/dev/null' % record).strip():
        time.sleep(2)
    assert json.loads(on_host(BROKEN, 'cat %s' % record))['error'] is None
    assert_same_state({BROKEN: before[BROKEN]})
    assert on_host(BROKEN, 'systemctl is-active knockd').strip() == 'active'
