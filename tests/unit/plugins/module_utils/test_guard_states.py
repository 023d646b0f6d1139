# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils/guard_states.py: tokens, one live arm per host, records of restores (issue 11 items 4, 5).

The firewall_guard module runs in this process (utils.module_result) on a guard root in
tmp_path (fake_guard_host: no firewall tool is found and the watchdog is not started, its start
and stop are recorded): only pure decisions and files are tested here; the lab test
tests/integration/test_guard_faults_lab.py runs the real thing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import time

import pytest

from ansible_collections.portknock.knock.plugins.module_utils import firewall_snapshot as fs
from ansible_collections.portknock.knock.plugins.module_utils import guard_states
from ansible_collections.portknock.knock.plugins.modules import firewall_guard

from fake_guard_host import guard, guard_host


@pytest.fixture
def host(tmp_path, monkeypatch):
    return guard_host(tmp_path, monkeypatch)


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


def test_who_may_confirm_or_restore_an_arm():
    arm = dict(token='a' * 32)
    assert guard_states.token_matches(arm, 'a' * 32, True) and not guard_states.token_matches(arm, 'b' * 32, False)
    assert not guard_states.token_matches(arm, None, True)          # a live arm needs its token
    assert guard_states.token_matches(arm, None, False) and guard_states.token_matches({}, None, True)
    assert guard_states.record_about(dict(token='a' * 32), None) and guard_states.record_about(dict(), 'a' * 32)
    assert not guard_states.record_about(dict(token='b' * 32), 'a' * 32) and not guard_states.record_about(None, None)


@pytest.mark.parametrize('timeout, within', [(1, 1), (3, 1), (4, 1), (5, 2), (60, 57)])
def test_confirm_within_is_the_timeout_less_the_margin(timeout, within):
    assert guard_states.confirm_within(timeout) == within == max(timeout - fs.CONFIRM_MARGIN, 1)


def test_messages_about_an_arm_and_a_restore():
    assert guard_states.when(None) == guard_states.when('x') == 'an unknown time'
    text = guard_states.describe_arm('g', dict(token='0123456789abcdef' * 2, created=0, deadline=60))
    assert text.startswith('guard g was armed at ') and '(token 01234567...)' in text and '89abcdef' not in text
    record = dict(time=0, error='x', failed=['nft: not found'], restored=['/etc/knockd.conf'], kept='/k')
    text = guard_states.rolled_back_message('g', record)
    assert 'INCOMPLETE' in text and 'nft: not found' in text and '/etc/knockd.conf' in text and '/k' in text
    assert 'INCOMPLETE' not in guard_states.rolled_back_message('g', dict(time=0, error=None))


def live_now():
    return time.time(), 'boot-1'


def test_other_live_guards_are_found_and_this_one_dots_and_files_skipped(host):
    first = armed(name='other')
    os.makedirs(os.path.join(str(host.root), 'other.new.12345678'))
    found = guard_states.live_guards(str(host.root), 'g', *live_now())
    assert [name for name, dummy in found] == ['other'] and found[0][1]['token'] == first['token']
    assert guard_states.live_guards(str(host.root), 'other', *live_now()) == []
    assert guard_states.live_guards(str(host.root / 'missing'), 'g', *live_now()) == []
