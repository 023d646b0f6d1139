# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The recent_knock action plugin: the module as it is, or under the guard (guarded_apply) with rollback_timeout."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.errors import AnsibleActionFail

from ansible_collections.portknock.knock.plugins.action import recent_knock as action

from action_utils import make_action


def make(args, check_mode=False):
    return make_action(action, args, check_mode, lambda module_args: {'changed': True})


@pytest.fixture
def guarded(monkeypatch):
    calls = []

    def fake(plugin, task_vars, module, args, timeout, name):
        calls.append((module, dict(args), timeout, name))
        return {'changed': True, 'firewall_guard': {'name': name, 'confirmed': True}}
    monkeypatch.setattr(action, 'run_guarded', fake)
    return calls


@pytest.mark.parametrize('door, want', [('ssh', 'recent_knock-ssh'), ('web_2', 'recent_knock-web_2'),
                                        ('bad name!', 'recent_knock'), ('', 'recent_knock'), (None, 'recent_knock')])
def test_guard_name_follows_the_door(door, want):
    assert action.guard_name(door) == want


@pytest.mark.parametrize('args', [dict(name='ssh'), dict(name='ssh', rollback_timeout=0),
                                  dict(name='ssh', rollback_timeout=None)])
def test_without_a_rollback_timeout_the_module_runs_as_it_is(guarded, args):
    plugin = make(args)
    plugin.run(task_vars={})
    assert plugin.calls == [(action.MODULE, dict(name='ssh'))] and guarded == []


def test_rollback_timeout_applies_under_a_guard_named_after_the_door(guarded):
    res = make(dict(name='ssh', port=22, rollback_timeout='30')).run(task_vars={})
    assert guarded == [(action.MODULE, dict(name='ssh', port=22), 30, 'recent_knock-ssh')]
    assert res['firewall_guard']['confirmed'] is True


def test_the_doors_form_has_one_guard(guarded):
    make(dict(doors=[{'name': 'ssh'}, {'name': 'web'}], rollback_timeout=30)).run(task_vars={})
    assert guarded[0][3] == 'recent_knock'


def test_check_mode_never_arms(guarded):
    plugin = make(dict(name='ssh', rollback_timeout=30), check_mode=True)
    plugin.run(task_vars={})
    assert guarded == [] and plugin.calls == [(action.MODULE, dict(name='ssh'))]


@pytest.mark.parametrize('timeout', ['soon', [30], -1, '-5'])
def test_a_bad_rollback_timeout_is_named(guarded, timeout):
    with pytest.raises(AnsibleActionFail) as info:
        make(dict(name='ssh', rollback_timeout=timeout)).run(task_vars={})
    assert repr(timeout) in str(info.value) or str(timeout) in str(info.value)
    assert guarded == []
