# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""firewall_guard's decisions: tokens, one live arm per host, records of restores (issue 11 items 4, 5).

The module runs in this process (utils.module_result) on a guard root in tmp_path.  No
firewall tool is found (``which`` answers None) and the watchdog is not started (its start and
stop are recorded): only pure decisions and files are tested here; the lab test
tests/integration/test_guard_faults_lab.py runs the real thing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

import pytest

from ansible_collections.portknock.knock.plugins.module_utils import firewall_snapshot as fs
from ansible_collections.portknock.knock.plugins.modules import firewall_guard

from utils import module_result


class Watchdogs(object):
    def __init__(self):
        self.started, self.stopped = [], []

    def start(self, module, name, root, helper, directory, timeout, kind, token):
        self.started.append((name, token, timeout))
        return dict(watchdog='process', pid=4242)

    def stop(self, module, name, root):
        self.stopped.append(name)


@pytest.fixture
def host(tmp_path, monkeypatch):
    root = tmp_path / 'guard'
    monkeypatch.setattr(fs, 'GUARD_ROOT', str(root))
    monkeypatch.setattr(fs, 'which', lambda name: None)
    monkeypatch.setattr(fs, 'boot_id', lambda: 'boot-1')
    monkeypatch.setattr(firewall_guard, 'systemd_available', lambda module: False)
    dogs = Watchdogs()
    monkeypatch.setattr(firewall_guard, 'start_watchdog', dogs.start)
    monkeypatch.setattr(firewall_guard, 'stop_watchdog', dogs.stop)
    dogs.root = root
    dogs.conf = tmp_path / 'knockd.conf'
    dogs.conf.write_text('old')
    return dogs


def guard(**args):
    return module_result(firewall_guard.main, args)


def armed(name='g', **args):
    args.setdefault('paths', [])
    args.setdefault('timeout', 30)
    result, dummy, failed = guard(name=name, state='armed', **args)
    assert not failed, result
    return result


def snapshot_files(directory):
    found = {}
    for base, dummy, files in os.walk(directory):
        for name in files:
            with open(os.path.join(base, name)) as handle:
                found[os.path.relpath(os.path.join(base, name), directory)] = handle.read()
    return found


def test_arm_returns_a_token_that_confirm_must_present(host):
    arm = armed(paths=[str(host.conf)])
    token = arm['token']
    assert len(token) == 32 and host.started == [('g', token, 30)]
    assert fs.read_arm(arm['snapshot'])['token'] == token
    result, dummy, failed = guard(name='g', state='confirmed')
    assert failed and 'needs the token' in result['msg'] and os.path.isdir(arm['snapshot'])
    result, dummy, failed = guard(name='g', state='confirmed', token='f' * 32)
    assert failed and 'another arm' in result['msg'] and os.path.isdir(arm['snapshot'])
    assert host.stopped == ['g']                   # only the arm's own stop: nobody stopped its watchdog
    result, dummy, failed = guard(name='g', state='confirmed', token=token)
    assert not failed and result['changed'] and not os.path.exists(arm['snapshot'])
    assert host.stopped == ['g', 'g']
    # the answer got lost and the controller asks again: still confirmed, nothing else happens
    result, dummy, failed = guard(name='g', state='confirmed', token=token)
    assert not failed and not result['changed'] and 'already confirmed' in result['msg']


@pytest.mark.parametrize('second', [dict(name='g'), dict(name='other'), dict(name='g', token='e' * 32)])
def test_a_second_arm_while_one_is_live_is_refused_and_touches_nothing(host, second):
    arm = armed(paths=[str(host.conf)])
    before = snapshot_files(arm['snapshot'])
    started, stopped = list(host.started), list(host.stopped)
    host.conf.write_text('the first rollout changed it')
    result, dummy, failed = guard(state='armed', timeout=30, paths=[str(host.conf)], **second)
    assert failed and 'armed at' in result['msg'], result
    assert 'refused' in result['msg'] or 'not armed again' in result['msg']
    assert snapshot_files(arm['snapshot']) == before           # A's snapshot and token are intact
    assert host.started == started and host.stopped == stopped  # A's watchdog untouched
    assert not os.path.exists(fs.snapshot_dir('other', str(host.root)))
    assert not guard(name='g', state='confirmed', token=arm['token'])[2]


def test_rearm_with_the_token_restarts_the_countdown_and_keeps_the_snapshot(host):
    arm = armed(paths=[str(host.conf)])
    host.conf.write_text('new')
    again = armed(paths=[str(host.conf)], token=arm['token'], timeout=90)
    assert again['kept_snapshot'] and again['token'] == arm['token'] and again['deadline'] >= arm['deadline']
    assert host.started[-1] == ('g', arm['token'], 90)
    assert fs.read_arm(arm['snapshot'])['deadline'] == again['deadline']
    assert guard(name='g', state='restored', token=arm['token'])[0]['changed']
    assert host.conf.read_text() == 'old'


@pytest.mark.parametrize('stale', [dict(boot='boot-0'), dict(deadline=1.0)])
def test_an_arm_whose_watchdog_is_gone_is_taken_over_under_a_new_token(host, stale, monkeypatch):
    warned = []
    monkeypatch.setattr(firewall_guard.AnsibleModule, 'warn', lambda self, text: warned.append(text))
    arm = armed(paths=[str(host.conf)])
    record = fs.read_arm(arm['snapshot'])
    record.update(stale)
    fs.write_arm(arm['snapshot'], record)
    result, dummy, failed = guard(name='g', state='armed', timeout=30, paths=[str(host.conf)])
    assert not failed and result['kept_snapshot'] and result['token'] != arm['token']
    assert len(warned) == 1 and 'watchdog is gone' in warned[0]
    result, dummy, failed = guard(name='g', state='confirmed', token=arm['token'])
    assert failed and 'another arm' in result['msg']


def test_no_token_acts_on_a_stale_snapshot_only(host):
    arm = armed()
    record = fs.read_arm(arm['snapshot'])
    record['boot'] = 'boot-0'                                  # the host rebooted while armed
    fs.write_arm(arm['snapshot'], record)
    result, dummy, failed = guard(name='g', state='confirmed')
    assert not failed and result['changed'] and not os.path.exists(arm['snapshot'])


def arm_with_a_missing_binary(host):
    """Armed, then its snapshot names an iptables variant whose restore binary is missing."""
    arm = armed(paths=[str(host.conf)])
    manifest_path = os.path.join(arm['snapshot'], fs.MANIFEST)
    with open(manifest_path) as handle:
        manifest = json.load(handle)
    manifest['iptables'] = [dict(variant='nft', family='ipv4', file='iptables-nft-ipv4.rules', tables=['filter'])]
    with open(manifest_path, 'w') as handle:
        json.dump(manifest, handle)
    with open(os.path.join(arm['snapshot'], 'iptables-nft-ipv4.rules'), 'w') as handle:
        handle.write('*filter\nCOMMIT\n')
    host.conf.write_text('changed')
    return arm


def test_confirm_after_an_incomplete_watchdog_restore_reports_what_it_could_not_do(host):
    arm = arm_with_a_missing_binary(host)
    record = fs.watchdog_restore(arm['snapshot'], arm['token'])     # what the watchdog runs
    assert record['error'] and host.conf.read_text() == 'old'       # knockd.conf is back anyway
    result, dummy, failed = guard(name='g', state='confirmed', token=arm['token'])
    assert failed and result['rolled_back'] and 'INCOMPLETE' in result['msg']
    assert 'iptables-nft-restore not found' in result['msg'] and record['kept'] in result['msg']
    assert result['last_restore']['failed'] == record['failed']
    # a restore presenting the token retries it (still missing: fails and keeps it) ...
    result, dummy, failed = guard(name='g', state='restored', token=arm['token'])
    assert failed and 'iptables-nft-restore not found' in result['msg']
    kept = result['last_restore']['kept']
    # ... and once the cause is gone it completes
    with open(os.path.join(kept, fs.MANIFEST)) as handle:
        manifest = json.load(handle)
    manifest['iptables'] = []
    with open(os.path.join(kept, fs.MANIFEST), 'w') as handle:
        json.dump(manifest, handle)
    result, dummy, failed = guard(name='g', state='restored', token=arm['token'])
    assert not failed and result['changed'] and not os.path.exists(kept)
    assert guard(name='g', state='restored', token=arm['token'])[0]['changed'] is False


def test_rearm_or_confirm_of_an_arm_the_watchdog_restored_is_too_late(host):
    arm = armed(paths=[str(host.conf)])
    assert fs.watchdog_restore(arm['snapshot'], arm['token'])['error'] is None
    result, dummy, failed = guard(name='g', state='armed', timeout=30, token=arm['token'])
    assert failed and 'not armed again' in result['msg'] and 'too late' in result['msg']
    assert not os.path.exists(arm['snapshot'])
    result, dummy, failed = guard(name='g', state='confirmed', token=arm['token'])
    assert failed and result['rolled_back'] and 'INCOMPLETE' not in result['msg']
    # a token of no arm of this guard
    result, dummy, failed = guard(name='g', state='confirmed', token='d' * 32)
    assert failed and 'nothing is armed under this token' in result['msg']


def test_a_new_arm_after_a_restore_gets_its_own_token(host):
    first = armed()
    fs.watchdog_restore(first['snapshot'], first['token'])
    second = armed()
    assert second['token'] != first['token'] and not second['kept_snapshot']
    result, dummy, failed = guard(name='g', state='confirmed', token=first['token'])
    assert failed and 'another arm' in result['msg'] and os.path.isdir(second['snapshot'])


def test_a_directory_without_a_manifest_is_put_aside_not_deleted(host):
    directory = fs.snapshot_dir('g', str(host.root))
    os.makedirs(directory)
    with open(os.path.join(directory, 'somebody.txt'), 'w') as handle:
        handle.write('x')
    arm = armed()
    assert os.path.isfile(os.path.join(arm['snapshot'], fs.MANIFEST))
    aside = [e for e in os.listdir(str(host.root)) if e.startswith('g.broken.')]
    assert len(aside) == 1 and os.listdir(os.path.join(str(host.root), aside[0])) == ['somebody.txt']


@pytest.mark.parametrize('token', ['', 'abc', 'A' * 32, 'g' * 32, 'a' * 31 + '\n', 'a' * 33])
def test_bad_token_is_refused_naming_it(host, token):
    result, dummy, failed = guard(name='g', state='confirmed', token=token)
    assert failed and repr(token) in result['msg'] and 'guard token' in result['msg']


def test_check_mode_changes_nothing(host):
    result, dummy, failed = module_result(firewall_guard.main, dict(name='g', state='armed'), check_mode=True)
    assert not failed and result['changed'] and not os.path.exists(fs.snapshot_dir('g', str(host.root)))
    assert host.started == []


@pytest.mark.parametrize('timeout', [None, 2, 30, 900])
def test_one_set_of_margins_the_arm_says_how_long_to_try_to_confirm(host, timeout):
    """The guard's margins live in firewall_snapshot.py: the module's default timeout, the
    confirm_within the arm returns (what role guard waits), and guarded_apply's confirm loop."""
    from ansible_collections.portknock.knock.plugins.plugin_utils import guarded_apply

    args = dict(name='g', state='armed', paths=[])
    if timeout is not None:
        args['timeout'] = timeout
    result, dummy, failed = guard(**args)
    assert not failed, result
    want = timeout or fs.ROLLBACK_TIMEOUT
    assert host.started[-1][2] == want
    assert result['confirm_within'] == max(want - fs.CONFIRM_MARGIN, 1)
    assert guarded_apply.MARGIN == fs.CONFIRM_MARGIN and guarded_apply.AFTER_DEADLINE == fs.AFTER_DEADLINE


def test_playbooks_arm_and_confirm_through_role_guard_only():
    """site.yml and the recent_knock role's baseline call firewall_guard only through role guard."""
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), *(['..'] * 4)))
    for rel in ('site.yml', 'roles/recent_knock/tasks/baseline.yml'):
        with open(os.path.join(root, rel)) as handle:
            text = handle.read()
        assert 'portknock.knock.firewall_guard' not in text and 'reset_connection' not in text, rel
        assert 'tasks_from: arm' in text and 'tasks_from: confirm' in text, rel


def test_the_helper_on_the_host_runs_the_restore_engine_from_its_own_copy(tmp_path):
    import subprocess
    import sys
    root = tmp_path / 'guard'
    helper = firewall_guard.write_helper(str(root))
    assert helper == str(root / firewall_guard.HELPER) and os.stat(helper).st_mode & 0o777 == 0o700
    package = root / firewall_guard.HELPER_DIR / firewall_guard.HELPER_PACKAGE
    assert sorted(os.listdir(str(package))) == ['__init__.py', 'atomic_file.py', 'firewall_snapshot.py']
    assert os.stat(str(root / firewall_guard.HELPER_DIR)).st_mode & 0o777 == 0o700
    assert not fs.NAME_RE.match(firewall_guard.HELPER_DIR)          # never taken for a guard's snapshot
    env = dict(os.environ, PYTHONPATH='')                            # the host has no collection
    done = subprocess.run([sys.executable, '-I', helper, 'restore', str(root / 'g')], cwd='/', env=env, check=False,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert done.returncode == 0 and 'nothing to do' in done.stdout and done.stderr == ''
    assert firewall_guard.write_helper(str(root)) == helper        # again: the same files, nothing rewritten
    usage = subprocess.run([sys.executable, '-I', helper], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=60, check=False)
    assert usage.returncode == 2 and 'usage: firewall_snapshot.py' in usage.stderr
