# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The firewall_guard module: its parameters, check mode, its margins, and who calls it.

What it does for each state is tested with module_utils/guard_states.py
(tests/unit/plugins/module_utils/test_guard_states.py), its watchdog with guard_watchdog.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.portknock.knock.plugins.module_utils import firewall_snapshot as fs
from ansible_collections.portknock.knock.plugins.modules import firewall_guard

from fake_guard_host import guard, guard_host
from utils import module_result


@pytest.fixture
def host(tmp_path, monkeypatch):
    return guard_host(tmp_path, monkeypatch)


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
