# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The firewall_guard action plugin: the module as it is, or (reconnect) guarded_apply's confirm loop."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import pytest
import yaml

from ansible.errors import AnsibleActionFail

from ansible_collections.portknock.knock.plugins.action import firewall_guard as action
from ansible_collections.portknock.knock.plugins.plugin_utils import guarded_apply

from action_utils import make_action

TOKEN = 'c4' * 16
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), *(['..'] * 4)))


def make(args, check_mode=False):
    return make_action(action, args, check_mode,
                       lambda module_args: {'changed': module_args.get('state') == 'armed', 'token': TOKEN})


@pytest.fixture
def confirmed(monkeypatch):
    calls = []

    def fake(plugin, task_vars, name, **kwargs):
        calls.append((name, kwargs))
        return {'changed': False, 'confirmed': True, 'attempts': 1}
    monkeypatch.setattr(action, 'reconnect_and_confirm', fake)
    return calls


@pytest.mark.parametrize('args', [dict(name='g', state='armed', timeout=30),
                                  dict(name='g', state='confirmed', token=TOKEN),
                                  dict(name='g', state='restored', token=TOKEN, reconnect=True),
                                  dict(name='g', state='confirmed', token=TOKEN, reconnect=False)])
def test_without_reconnect_the_module_runs_as_it_is(confirmed, args):
    plugin = make(args)
    plugin.run(task_vars={})
    want = {k: v for k, v in args.items() if k != 'reconnect'}
    assert plugin.calls == [(guarded_apply.GUARD_MODULE, want)] and confirmed == []


def test_reconnect_with_timeout_is_a_countdown(confirmed):
    plugin = make(dict(name='site', state='confirmed', token=TOKEN, reconnect=True, timeout='45',
                       paths=['/etc/knockd.conf'], services=['knockd']))
    res = plugin.run(task_vars={'inventory_hostname': 'web1'})
    assert res['confirmed'] is True and plugin.calls == []
    assert confirmed == [('site', dict(token=TOKEN, countdown=45, within=None, paths=['/etc/knockd.conf'],
                                       services=['knockd']))]


def test_reconnect_with_confirm_within_tries_that_long(confirmed):
    make(dict(name='b', state='confirmed', token=TOKEN, reconnect='yes', confirm_within=57)).run(task_vars={})
    assert confirmed == [('b', dict(token=TOKEN, countdown=None, within=57, paths=(), services=()))]


def test_check_mode_runs_the_module(confirmed):
    plugin = make(dict(name='g', state='confirmed', token=TOKEN, reconnect=True, timeout=30), check_mode=True)
    plugin.run(task_vars={})
    assert confirmed == [] and plugin.calls[0][1] == dict(name='g', state='confirmed', token=TOKEN, timeout=30)


@pytest.mark.parametrize('args, said', [
    (dict(reconnect=True), 'timeout'),
    (dict(reconnect='maybe'), "'maybe'"),
    (dict(reconnect=True, timeout='soon'), "'soon'"),
    (dict(reconnect=True, timeout=0), '0'),
    (dict(reconnect=True, confirm_within=-5), '-5'),
    (dict(reconnect=True, confirm_within=[1]), '[1]'),
])
def test_bad_reconnect_arguments_are_named(confirmed, args, said):
    with pytest.raises(AnsibleActionFail) as info:
        make(dict(name='g', state='confirmed', token=TOKEN, **args)).run(task_vars={})
    assert said in str(info.value) and confirmed == []


def test_the_role_confirms_in_one_task_through_the_action():
    with open(os.path.join(ROOT, 'roles', 'guard', 'tasks', 'confirm.yml')) as handle:
        tasks = yaml.safe_load(handle)
    assert len(tasks) == 1
    args = tasks[0]['portknock.knock.firewall_guard']
    assert args['state'] == 'confirmed' and args['reconnect'] is True
