# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The knock action plugin: knocks from the controller (fake sender) or runs the module when delegated."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from unittest import mock

import pytest

from ansible.errors import AnsibleActionFail

from ansible_collections.portknock.knock.plugins.action import knock as action
from ansible_collections.portknock.knock.plugins.module_utils import knock_task


def make(args, delegate_to=None, check_mode=False):
    task = mock.MagicMock()
    task.args = dict(args)
    task.delegate_to = delegate_to
    task.check_mode = check_mode
    task.async_val = 0
    task.diff = False
    connection = mock.MagicMock()
    connection._shell.tmpdir = None
    return action.ActionModule(task, connection, mock.MagicMock(), loader=None, templar=None,
                               shared_loader_obj=None)


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr(knock_task, 'knock', lambda host, seq, **k: calls.append((host, seq, k)) or '10.231.0.7')
    return calls


def test_knocks_from_the_controller(sent):
    result = make(dict(host='web1', sequence=[7313, '4187:udp', 9421])).run(task_vars={})
    assert result['address'] == '10.231.0.7' and result['knocks'] == 3 and not result.get('failed')
    assert sent == [('web1', '7313:tcp,4187:udp,9421:tcp', dict(delay_ms=50, family='both', source=None))]
    assert '7313' not in repr(result)


def test_check_mode_sends_nothing(sent):
    result = make(dict(host='web1', sequence='7313,4187'), check_mode=True).run(task_vars={})
    assert result['address'] is None and sent == []


def test_delegated_runs_the_module_there(sent):
    plugin = make(dict(host='web1', sequence='7313,4187'), delegate_to='bastion')
    plugin._execute_module = mock.MagicMock(return_value=dict(address='10.231.0.8', knocks=2))
    result = plugin.run(task_vars={})
    assert result['address'] == '10.231.0.8' and sent == []
    assert plugin._execute_module.call_args[1]['module_name'] == 'portknock.knock.knock'


def test_any_warns_deprecated(sent, monkeypatch):
    warned = []
    monkeypatch.setattr(action.display, 'deprecated', lambda msg, **kw: warned.append((msg, kw)))
    make(dict(host='web1', sequence='7313,4187', ip_version='any')).run(task_vars={})
    assert sent[0][2]['family'] == 'both'
    assert warned == [('ip_version=any is deprecated, use ip_version=both (same meaning)',
                       dict(version='1.0.0', collection_name='portknock.knock'))]


def test_bad_sequence_fails_without_the_sequence(sent):
    with pytest.raises(AnsibleActionFail) as info:
        make(dict(host='web1', sequence='9421,7313;4187')).run(task_vars={})
    assert 'knock on web1 failed: sequence is invalid: knock step 2' in str(info.value)
    assert '9421' not in str(info.value) and sent == []
