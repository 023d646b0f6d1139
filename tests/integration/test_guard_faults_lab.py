# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The firewall guard under faults, on a lab host (issue 11 items 3, 4, 5).

Lab ``it-guardfault`` (2 hosts, lab/pklab.py through lab_hosts.py): host 1 is the server
(iptables-nft) whose ssh port 22 is behind a kernel door the controller knocks through
(portknock.knock.ssh); host 2 is another address that never knocks.  One lab for all tests:

(a) the watchdog restores while iptables-nft-restore is missing: it restores everything else
    (knockd.conf included), records what it could not do, a later confirm reports it, and a
    restore after the binary is back finishes the job;
(b) two rollouts at once on the host: the second arm is refused and touches nothing, the
    first one confirms with its token; then two real guarded applies at the same moment;
(c) a failed-and-changed apply (IPv4 committed, IPv6 refused): the module says it changed
    the firewall and the action plugin restores the previous firewall at once.

Each test ends with the host reachable by knocking (a new ssh connection that must knock),
plain ssh from the other host refused, and the firewall exactly as before.
The knock sequence is given to Ansible in a 0600 vars file, never on a command line.
Run as root:
  source tools/bootstrap.sh
  PYTHONPATH=$ANSIBLE_COLLECTIONS_PATH python -m pytest -q -m integration tests/integration/test_guard_faults_lab.py
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import difflib
import json
import os
import re
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor

import pytest

import lab_hosts
from lab_hosts import STATE, lab as make_lab
from lab_util import wait_until

LAB = 'it-guardfault'
SSH_SEQUENCE = [7313, 4187, 9421]
GUARD_ROOT = '/var/lib/portknock/guard'
KNOCKD_CONF = '/etc/knockd.conf'
DOORS = {   # doors the tests add and take away (never on 22)
    'extra': dict(name='extra', sequence=[6143, 2917, 8861], port=2300),
    'alpha': dict(name='alpha', sequence=[5281, 3907, 6652], port=2301),
    'beta': dict(name='beta', sequence=[4729, 8114, 3561], port=2302),
    'gamma': dict(name='gamma', sequence=[3391, 7748, 2165], port=2303),
}

pytestmark = lab_hosts.LAB_TEST

# ip6tables-nft-restore that refuses the gamma door's script (and only that): the guard's own
# restores, which feed whole saved rule sets, go through.
REFUSE_GAMMA = '''#!/bin/sh
data=$(cat)
case "$data" in
  *PK-gamma*) printf '%s\\n' "$data" | sed 's/^COMMIT$/-A PK-no-such-chain -j DROP\\nCOMMIT/' | /usr/sbin/ip6tables-nft-restore "$@"
              exit $? ;;
esac
printf '%s\\n' "$data" | /usr/sbin/ip6tables-nft-restore "$@"
'''


class Lab(object):
    def __init__(self, hosts, vars_file):
        self.server, self.other = hosts
        self.inventory = os.path.join(STATE, 'labs', LAB, 'inventory.yml')
        self.vars_file = vars_file

    def ansible(self, module, args, knock=True, new_connection=False, control_dir=None):
        """Run ``module`` on the server; returns its result dict (failed/unreachable set when so).

        Secrets are referenced as variables of the vars file (``{{ seq_<door> }}``)."""
        env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK='oneline', ANSIBLE_LOAD_CALLBACK_PLUGINS='1',
                   ANSIBLE_HOST_KEY_CHECKING='False', ANSIBLE_PIPELINING='True',
                   ANSIBLE_INVENTORY_UNPARSED_WARNING='0', ANSIBLE_NOCOLOR='1')
        if control_dir:     # a controller of its own (two operators do not share an ssh master)
            env['ANSIBLE_SSH_CONTROL_PATH_DIR'] = control_dir
        cmd = ['ansible', '-i', self.inventory, self.server.name, '-m', module] + (['-a', json.dumps(args)] if args else [])
        if knock:
            cmd += ['-e', '@' + self.vars_file]
        if new_connection:
            cmd += ['-e', json.dumps({'ansible_ssh_args': '-o ControlMaster=no -o ControlPath=none'})]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=env,
                              check=False, timeout=300)
        for line in proc.stdout.splitlines():
            if line.startswith(self.server.name + ' | UNREACHABLE!: '):
                return dict(unreachable=True, failed=True, msg=line.split(': ', 1)[1])
            if line.startswith(self.server.name + ' | ') and ' => ' in line:
                head, body = line.split(' => ', 1)
                result = json.loads(body)
                if 'FAILED' in head:
                    result['failed'] = True
                if 'UNREACHABLE' in head:
                    result['unreachable'] = result['failed'] = True
                return result
        raise AssertionError('no module result in ansible output:\n%s\n%s' % (proc.stdout, proc.stderr))

    def door(self, name, control_dir=None, **args):
        spec = dict(DOORS[name])
        spec.update(sequence='{{ seq_%s }}' % name, open_window=5, step_timeout=5)
        spec.update(args)
        return self.ansible('portknock.knock.recent_knock', spec, control_dir=control_dir)

    def guard(self, **args):
        return self.ansible('portknock.knock.firewall_guard', args)

    def out(self, command):
        return self.server.run(command).stdout

    def firewall(self):
        """The server's whole firewall as text: iptables-save of both families (counters aside),
        the native nftables tables (the ones iptables-nft does not manage: those are in the
        saves already, and nft lists their chains in the order they were created), the
        xt_recent lists.  Knock ports are masked (the text ends up in assertion messages)."""
        parts = []
        for tool in ('iptables-nft-save', 'ip6tables-nft-save'):
            text = self.out('%s 2>/dev/null' % tool)
            parts.append(re.sub(r'\[\d+:\d+\]', '[0:0]', '\n'.join(
                line for line in text.splitlines() if not line.startswith('#'))))
        parts.append(self.out('nft list tables 2>/dev/null | grep -v -E " (ip|ip6|arp|bridge) (filter|nat|mangle|raw|security)$" '
                              '| while read -r _ family name; do nft -t list table "$family" "$name"; done'))
        parts.append(' '.join(sorted(self.out('ls /proc/net/xt_recent').split())))
        text = '\n'.join(parts)
        for port in set(p for door in DOORS.values() for p in door['sequence']) | set(SSH_SEQUENCE):
            text = re.sub(r'\b%d\b' % port, 'KNOCK', text)
        return text

    def plain_ssh_open(self):
        """Whether a host that never knocked gets a TCP connection to the server's ssh."""
        res = self.other.run('nc -z -w 2 %s 22 && echo OPEN || echo CLOSED' % self.server.ipv4)
        return res.stdout.strip().endswith('OPEN')

    def live_arms(self):
        """Snapshot directories (armed guards) and running guard timers on the server."""
        dirs = self.out('ls -1 %s 2>/dev/null' % GUARD_ROOT).split()
        snaps = [d for d in dirs if re.match(r'^[A-Za-z0-9][A-Za-z0-9_-]*$', d)]
        timers = self.out("systemctl list-units --no-legend --plain 'portknock-guard-*' 2>/dev/null").split('\n')
        return snaps + [t.split()[0] for t in timers if t.strip() and 'active' in t.split()[2:3]]

    def assert_back(self, before):
        """Reachable by knocking (a new connection), closed without, the firewall as ``before``."""
        now = self.firewall()
        assert now == before, '\n'.join(difflib.unified_diff(before.splitlines(), now.splitlines(), lineterm=''))
        assert self.out('cat %s' % KNOCKD_CONF) == 'v1\n'
        ping = self.ansible('ansible.builtin.ping', {}, new_connection=True)
        assert not ping.get('failed') and ping.get('ping') == 'pong', ping
        assert not self.plain_ssh_open()
        assert self.live_arms() == []


@pytest.fixture(scope='module')
def lab():
    handle, vars_file = tempfile.mkstemp(suffix='.json')
    try:
        with os.fdopen(handle, 'w') as out:     # mkstemp: 0600
            secrets = dict(('seq_%s' % name, door['sequence']) for name, door in DOORS.items())
            secrets.update(seq_ssh=SSH_SEQUENCE, knock_sequence=SSH_SEQUENCE,
                           ansible_connection='portknock.knock.ssh', ansible_timeout=10)
            json.dump(secrets, out)
        with make_lab(LAB, 2) as hosts:
            the_lab = Lab(hosts, vars_file)
            the_lab.server.run('printf "v1\\n" > %s && mkdir -p /root/moved' % KNOCKD_CONF, check=True)
            # the ssh door, applied over plain ssh: from now on the controller must knock
            door = the_lab.ansible('portknock.knock.recent_knock', dict(
                name='ssh', sequence='{{ seq_ssh }}', port=22, open_window=10, step_timeout=5))
            assert door.get('changed') and not door.get('failed'), door
            assert not the_lab.plain_ssh_open()
            yield the_lab
    finally:
        os.unlink(vars_file)


def test_a_watchdog_restore_with_a_missing_binary(lab):
    before = lab.firewall()
    arm = lab.guard(name='faults', state='armed', timeout=20, paths=[KNOCKD_CONF])
    assert not arm.get('failed') and arm['watchdog'] == 'systemd' and len(arm['token']) == 32, arm
    try:
        # the change the controller never confirms, then the binary the restore needs goes away
        assert lab.door('extra')['changed']
        lab.server.run('printf "v2\\n" > %s' % KNOCKD_CONF, check=True)
        lab.server.run('mv /usr/sbin/iptables-nft-restore /root/moved/', check=True)
        record_file = '%s/faults.last-restore.json' % GUARD_ROOT
        text = wait_until(lambda: lab.out('cat %s 2>/dev/null' % record_file).strip(), 20 + 60, 1.0)
        record = json.loads(text)
        assert record['token'] == arm['token']
        assert record['error'] and len(record['failed']) == 1, record
        assert 'iptables-nft-restore not found' in record['failed'][0], record
        assert set(record['restored']) >= {KNOCKD_CONF, 'ip6tables-nft'}, record
        assert lab.out('cat %s' % KNOCKD_CONF) == 'v1\n'      # knockd.conf was put back anyway
        assert record['kept'] and lab.out('ls %s/manifest.json' % record['kept']).strip()
        # the IPv4 door was not taken away (iptables could not be restored): still the ssh door
        # lets the controller in by knocking; the confirm reports the incomplete rollback
        conf = lab.guard(name='faults', state='confirmed', token=arm['token'])
        assert conf.get('failed') and conf['rolled_back'] and not conf.get('unreachable'), conf
        assert 'INCOMPLETE' in conf['msg'] and 'iptables-nft-restore not found' in conf['msg'], conf
        assert conf['last_restore']['failed'] == record['failed']
    finally:
        lab.server.run('test -e /usr/sbin/iptables-nft-restore || mv /root/moved/iptables-nft-restore /usr/sbin/')
    # the binary is back: restoring again finishes the job
    again = lab.guard(name='faults', state='restored', token=arm['token'])
    assert not again.get('failed') and 'iptables-nft' in again['restored'], again
    lab.assert_back(before)


def test_b_two_rollouts_at_once(lab, tmp_path):
    before = lab.firewall()
    # rollout A has armed (and is making its change) ...
    first = lab.guard(name='rollout-a', state='armed', timeout=120, paths=[KNOCKD_CONF])
    assert not first.get('failed'), first
    snapshot = lab.out('cd %s/rollout-a && sha256sum $(find . -type f | sort)' % GUARD_ROOT)
    try:
        # ... when rollout B arms, under the same name, another name, or a door's guard
        for name in ('rollout-a', 'rollout-b'):
            second = lab.guard(name=name, state='armed', timeout=120, paths=[KNOCKD_CONF])
            assert second.get('failed') and 'rollout-a was armed at' in second['msg'], second
        applied = lab.door('alpha', rollback_timeout=30)
        assert applied.get('failed') and not applied.get('changed'), applied
        assert 'not armed, nothing changed' in applied['msg'] and 'rollout-a was armed at' in applied['msg']
        # B cannot confirm or restore A's arm either
        for args in (dict(state='confirmed'), dict(state='confirmed', token='0' * 32), dict(state='restored')):
            res = lab.guard(name='rollout-a', **args)
            assert res.get('failed'), res
        # A's snapshot and watchdog are untouched
        assert lab.out('cd %s/rollout-a && sha256sum $(find . -type f | sort)' % GUARD_ROOT) == snapshot
        assert lab.out('systemctl is-active portknock-guard-rollout-a.timer').strip() == 'active'
        assert 'PK-alpha' not in lab.out('iptables -S')
    finally:
        conf = lab.guard(name='rollout-a', state='confirmed', token=first['token'])
    assert not conf.get('failed') and conf['changed'], conf
    assert lab.out('systemctl is-active portknock-guard-rollout-a.timer').strip() != 'active'

    # two guarded applies started at the same moment: each either confirms its own arm or is
    # refused before changing anything; nobody's change is undone by the other.  Each has its
    # own ssh master, opened now one after the other: knocks sent at the same moment from one
    # address interleave and reset each other in the door (a property of knocking, not of the
    # guard), so the two runs start on open connections.
    for name in ('alpha', 'beta'):
        ping = lab.ansible('ansible.builtin.ping', {}, control_dir=str(tmp_path / name))
        assert ping.get('ping') == 'pong', ping
    with ThreadPoolExecutor(2) as pool:
        def rollout(name):
            return lab.door(name, rollback_timeout=30, control_dir=str(tmp_path / name))
        results = dict(zip(('alpha', 'beta'), pool.map(rollout, ('alpha', 'beta'))))
    rules = lab.out('iptables -S')
    for name, res in results.items():
        if res.get('failed'):
            assert not res.get('changed') and 'not armed, nothing changed' in res['msg'], res
            assert 'PK-%s' % name not in rules
        else:
            assert res['changed'] and res['firewall_guard']['confirmed'], res
            assert res['firewall_guard']['name'] == 'recent_knock-%s' % name
            assert '-A INPUT -j PK-%s' % name in rules
    assert any(not res.get('failed') for res in results.values()), results
    assert lab.live_arms() == []
    for name in ('alpha', 'beta'):
        res = lab.door(name, state='absent')
        assert not res.get('failed'), res
    lab.assert_back(before)


def test_c_a_failed_and_changed_apply_is_restored_at_once(lab):
    before = lab.firewall()
    lab.server.run('cat > /usr/local/sbin/ip6tables-nft-restore && chmod 755 /usr/local/sbin/ip6tables-nft-restore',
                   check=True, stdin=REFUSE_GAMMA)
    try:
        # without the guard: the module reports the partial change honestly
        res = lab.door('gamma')
        assert res.get('failed') and res['changed'] is True, res
        assert 'WAS changed' in res['msg'] and 'ipv4' in res['msg'] and 'left as they were' in res['msg'], res
        assert '-A INPUT -j PK-gamma' in lab.out('iptables -S') and 'PK-gamma' not in lab.out('ip6tables -S')
        assert not lab.door('gamma', state='absent').get('failed')
        assert lab.firewall() == before
        # under the guard: restored at once, and said so
        res = lab.door('gamma', rollback_timeout=30)
        assert res.get('failed') and res['changed'] is True, res
        assert 'after changing the firewall' in res['msg'] and 'restored at once' in res['msg'], res
        guard = res['firewall_guard']
        assert guard['rolled_back'] is True and guard['confirmed'] is False and 'iptables-nft' in guard['restored']
        for port in DOORS['gamma']['sequence'] + SSH_SEQUENCE:
            assert str(port) not in res['msg'] and str(port) not in json.dumps(res.get('rules'))
    finally:
        lab.server.run('rm -f /usr/local/sbin/ip6tables-nft-restore', check=True)
    lab.assert_back(before)
