# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decision logic of the guarded apply: only the action's module execution (and time) are faked."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.errors import AnsibleConnectionFailure

from ansible_collections.portknock.knock.plugins.plugin_utils import guarded_apply as ga

from fake_clock import FakeClock

GUARD = ga.GUARD_MODULE
TASK_VARS = {'inventory_hostname': 'web1'}
TOKEN = '5e' * 16


class FakeConnection(object):
    def __init__(self):
        self.resets = 0

    def reset(self):
        self.resets += 1


class FakeAction(object):
    """``_execute_module`` answers from a list of callables/results per (module, state)."""

    def __init__(self, clock, module_result, confirms, arm=None):
        self.clock = clock
        self.module_result = module_result
        self.confirms = list(confirms)
        self.arm = arm or {'changed': True, 'watchdog': 'systemd', 'unit': 'portknock-guard-g.timer',
                           'snapshot': '/var/lib/portknock/guard/g', 'token': TOKEN}
        self.calls = []
        self.restores = []
        self._connection = FakeConnection()

    def _execute_module(self, module_name=None, module_args=None, task_vars=None):
        self.calls.append((module_name, dict(module_args)))
        self.clock.now += 0.5
        if module_name != GUARD:
            return dict(self.module_result)
        if module_args['state'] == 'armed':
            return dict(self.arm)
        if module_args['state'] == 'restored':
            answer = self.restores.pop(0) if self.restores else AnsibleConnectionFailure('timed out')
            if isinstance(answer, Exception):
                raise answer
            return dict(answer)
        answer = self.confirms.pop(0) if self.confirms else AnsibleConnectionFailure('timed out')
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)

    def states(self):
        return [args.get('state', 'module') if name == GUARD else 'module' for name, args in self.calls]


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(ga.time, 'time', c.time)
    monkeypatch.setattr(ga.time, 'sleep', c.sleep)
    return c


def run(action, timeout=30):
    return ga.run_guarded(action, TASK_VARS, 'portknock.knock.recent_knock', {'name': 'seed'}, timeout, 'g',
                          paths=['/etc/x'], services=['s'])


def test_arm_failure_changes_nothing(clock):
    action = FakeAction(clock, {'changed': True}, [], arm={'failed': True, 'msg': 'no nft'})
    res = run(action)
    assert res['failed'] and not res['changed'] and 'not armed' in res['msg'] and 'no nft' in res['msg']
    assert action.states() == ['armed']          # the module never ran


def test_arm_arguments(clock):
    action = FakeAction(clock, {'changed': False}, [{'changed': True}])
    run(action, timeout=42)
    assert action.calls[0] == (GUARD, dict(name='g', state='armed', timeout=42, paths=['/etc/x'], services=['s']))


@pytest.mark.parametrize('module_result', [{'changed': False}, {'failed': True, 'msg': 'bad port 0'}])
def test_unchanged_or_failed_module_confirms_over_the_same_connection(clock, module_result):
    action = FakeAction(clock, module_result, [{'changed': True}])
    res = run(action)
    assert action.states() == ['armed', 'module', 'confirmed']
    assert action._connection.resets == 0
    assert res['firewall_guard']['confirmed'] is True
    assert res.get('failed') == module_result.get('failed')


def test_change_confirmed_through_a_new_connection(clock):
    action = FakeAction(clock, {'changed': True, 'rules': ['x']}, [{'changed': True}])
    res = run(action)
    assert action._connection.resets == 1
    assert action.states() == ['armed', 'module', 'confirmed']
    assert not res.get('failed') and res['changed'] and res['rules'] == ['x']
    assert res['firewall_guard']['confirmed'] is True and res['firewall_guard']['attempts'] == 1


def test_confirm_retries_until_the_host_answers(clock):
    unreachable = {'unreachable': True, 'msg': 'knock refused'}
    action = FakeAction(clock, {'changed': True}, [AnsibleConnectionFailure('refused'), unreachable, {'changed': True}])
    res = run(action)
    assert not res.get('failed')
    assert res['firewall_guard']['attempts'] == 3


def test_too_late_to_confirm_is_a_rollback(clock):
    late = {'failed': True, 'rolled_back': True, 'msg': 'too late'}
    action = FakeAction(clock, {'changed': True}, [late])
    res = run(action)
    assert res['failed'] and 'rolled back' in res['msg'] and res['firewall_guard']['rolled_back'] is True


def test_cut_off_stops_before_the_deadline_then_reports_the_rollback(clock):
    start = clock.now
    rolled = {'failed': True, 'rolled_back': True, 'msg': 'watchdog restored'}
    action = FakeAction(clock, {'changed': True}, [])
    # every confirmation before the deadline fails to connect; the one after it finds the rollback
    original = action._execute_module

    def answer(module_name=None, module_args=None, task_vars=None):
        if module_args.get('state') == 'confirmed' and clock.now - start > 30:
            action.confirms = [rolled]
        return original(module_name, module_args, task_vars)
    action._execute_module = answer
    res = run(action, timeout=30)
    assert res['failed'] and 'cut the controller off' in res['msg'] and 'HAS ROLLED BACK' in res['msg']
    guard = res['firewall_guard']
    assert guard['confirmed'] is False and guard['rolled_back'] is True and guard['attempts'] > 1
    assert action._connection.resets == 2
    assert clock.now - start >= 30 + ga.AFTER_DEADLINE


def test_cut_off_without_proof_of_rollback_says_it_will(clock):
    action = FakeAction(clock, {'changed': True}, [])
    res = run(action, timeout=10)
    assert res['failed'] and 'WILL ROLL BACK' in res['msg'] and 'portknock-guard-g.timer' in res['msg']
    assert res['firewall_guard']['rolled_back'] is False


def test_reset_without_support_only_warns(clock):
    action = FakeAction(clock, {'changed': True}, [{'changed': True}])
    action._connection = object()
    res = run(action)
    assert not res.get('failed')


def test_every_confirm_presents_the_arms_token(clock):
    for module_result in ({'changed': False}, {'changed': True}, {'failed': True, 'msg': 'bad port 0'}):
        action = FakeAction(clock, module_result, [AnsibleConnectionFailure('refused'), {'changed': True}])
        run(action)
        guards = [args for name, args in action.calls if name == GUARD and args['state'] != 'armed']
        assert guards and all(args['token'] == TOKEN for args in guards), action.calls


FAILED_AND_CHANGED = [
    {'failed': True, 'changed': True, 'msg': 'ip6tables-nft-restore --noflush rejected the door seed (its ipv6 rules '
     'were left as they were): x; the firewall WAS changed: its iptables rules (ipv4) were changed before this failure'},
    {'failed': True, 'changed': True, 'msg': 'the iptables door seed was applied but reads back differently'},
    {'failed': True, 'changed': True, 'msg': 'nft -f rejected the door seed; the firewall WAS changed: the iptables '
     'rules of the door were changed'},
]


@pytest.mark.parametrize('module_result', FAILED_AND_CHANGED)
def test_failed_and_changed_is_restored_at_once_and_said(clock, module_result):
    action = FakeAction(clock, module_result, [])
    action.restores = [{'changed': True, 'restored': ['nft ruleset', 'iptables-nft', 'ip6tables-nft']}]
    res = run(action)
    assert action.states() == ['armed', 'module', 'restored']       # never confirmed
    assert action.calls[-1][1] == dict(name='g', state='restored', token=TOKEN)
    assert action._connection.resets == 0
    assert res['failed'] and res['changed']
    assert 'after changing the firewall' in res['msg'] and module_result['msg'] in res['msg']
    assert 'restored at once' in res['msg'] and 'iptables-nft' in res['msg']
    guard = res['firewall_guard']
    assert guard['confirmed'] is False and guard['rolled_back'] is True and 'ip6tables-nft' in guard['restored']


def test_failed_and_changed_with_an_incomplete_restore_says_so(clock):
    action = FakeAction(clock, FAILED_AND_CHANGED[0], [])
    action.restores = [{'failed': True, 'changed': True, 'restored': ['/etc/knockd.conf'],
                        'msg': 'guard g: restore incomplete, failed: iptables-nft: iptables-nft-restore not found'}]
    res = run(action)
    assert res['failed'] and 'INCOMPLETE' in res['msg'] and 'iptables-nft-restore not found' in res['msg']
    assert res['firewall_guard']['rolled_back'] is False


def test_failed_and_changed_on_an_unreachable_host_leaves_it_to_the_watchdog(clock):
    action = FakeAction(clock, FAILED_AND_CHANGED[0], [])
    action.restores = [AnsibleConnectionFailure('broken pipe')]
    res = run(action)
    assert action.states() == ['armed', 'module', 'restored']
    assert res['failed'] and 'WILL ROLL BACK' in res['msg'] and 'portknock-guard-g.timer' in res['msg']
    assert 'broken pipe' in res['msg']


# reconnect_and_confirm: the same confirm loop for an arm made by an earlier task (role guard's confirm)

def confirm(action, **kwargs):
    return ga.reconnect_and_confirm(action, TASK_VARS, 'g', token=TOKEN, paths=['/etc/x'], services=['s'], **kwargs)


def test_countdown_arms_again_with_the_token_then_confirms_through_a_new_connection(clock):
    action = FakeAction(clock, None, [AnsibleConnectionFailure('refused'), {'changed': True}])
    res = confirm(action, countdown=20)
    assert action.calls[0] == (GUARD, dict(name='g', state='armed', timeout=20, paths=['/etc/x'], services=['s'],
                                           token=TOKEN))
    assert action.states() == ['armed', 'confirmed', 'confirmed'] and action._connection.resets == 1
    assert not res.get('failed') and res['confirmed'] is True and res['attempts'] == 2


def test_within_tries_that_long_without_arming(clock):
    start = clock.now
    action = FakeAction(clock, None, [])
    res = confirm(action, within=12)
    assert 'armed' not in action.states()
    # tries until the margin before the watchdog (within + margin from now), then looks once more after it
    assert clock.now - start >= 12 + ga.AFTER_DEADLINE
    assert res['failed'] and not res.get('unreachable') and 'cut the controller off' in res['msg']
    assert 'WILL ROLL BACK' in res['msg'] and 'its watchdog' in res['msg']


@pytest.mark.parametrize('arm', [{'failed': True, 'msg': 'not armed again: nothing is armed under this token'},
                                 AnsibleConnectionFailure('broken pipe')])
def test_countdown_that_cannot_start_fails_without_reset(clock, arm):
    action = FakeAction(clock, None, [{'changed': True}])
    if isinstance(arm, Exception):
        def refuse(module_name=None, module_args=None, task_vars=None):
            raise arm
        action._execute_module = refuse
    else:
        action.arm = arm
    res = confirm(action, countdown=20)
    assert res['failed'] and 'countdown could not be started' in res['msg'] and action._connection.resets == 0
    assert ('nothing is armed' in res['msg']) or ('broken pipe' in res['msg'])


def test_confirm_after_the_countdown_reports_the_rollback(clock):
    action = FakeAction(clock, None, [{'failed': True, 'rolled_back': True, 'msg': 'too late'}])
    res = confirm(action, countdown=20)
    assert res['failed'] and res['rolled_back'] is True and 'too late' in res['msg']


def test_needs_countdown_or_within(clock):
    with pytest.raises(ValueError):
        confirm(FakeAction(clock, None, []))
