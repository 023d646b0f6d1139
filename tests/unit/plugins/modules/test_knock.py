# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The knock module in-process, with a fake sender in place of the sockets."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.module_utils import basic

from ansible_collections.portknock.knock.plugins.module_utils import knock_task
from ansible_collections.portknock.knock.plugins.module_utils.knock_sender import KnockSendError
from ansible_collections.portknock.knock.plugins.modules.knock import main

from .utils import module_result


@pytest.fixture
def sent(monkeypatch):
    calls = []

    def fake_knock(host, sequence, **kwargs):
        calls.append((host, sequence, kwargs))
        return '10.231.0.7'
    monkeypatch.setattr(knock_task, 'knock', fake_knock)
    return calls


def test_knocks_and_returns_the_address_never_the_sequence(sent):
    result, output, failed = module_result(main, dict(host='web1', sequence=[7313, '4187:udp', 9421], ip_version='ipv4'),
                                           verbosity=4)
    assert not failed and result['changed'] is False
    assert result['address'] == '10.231.0.7' and result['knocks'] == 3 and result['protocols'] == ['tcp', 'udp']
    assert sent == [('web1', '7313:tcp,4187:udp,9421:tcp', dict(delay_ms=50, family='ipv4', source=None))]
    for port in ('7313', '4187', '9421'):
        assert port not in output
    assert 'deprecations' not in result


def test_check_mode_sends_nothing(sent):
    result, dummy, failed = module_result(main, dict(host='web1', sequence='7313,4187,9421'), check_mode=True)
    assert not failed and result['address'] is None and result['knocks'] == 3 and sent == []


def test_any_is_both_with_a_deprecation(sent, monkeypatch):
    # recorded at AnsibleModule.deprecate: where ansible-core routes it next depends on its
    # version and on whether controller code was imported in this process
    deprecated = []
    monkeypatch.setattr(basic.AnsibleModule, 'deprecate', lambda self, msg, **kw: deprecated.append((msg, kw)))
    result, output, failed = module_result(main, dict(host='web1', sequence='7313,4187', ip_version='any'))
    assert not failed and sent[0][2]['family'] == 'both', output
    assert deprecated == [('ip_version=any is deprecated, use ip_version=both (same meaning)',
                           dict(version='1.0.0', collection_name='portknock.knock'))]


def test_no_deprecation_for_the_current_names(sent, monkeypatch):
    deprecated = []
    monkeypatch.setattr(basic.AnsibleModule, 'deprecate', lambda self, msg, **kw: deprecated.append(msg))
    for value in ('both', 'ipv4', 'ipv6'):
        module_result(main, dict(host='web1', sequence='7313,4187', ip_version=value))
    assert deprecated == [] and [call[2]['family'] for call in sent] == ['both', 'ipv4', 'ipv6']


def test_default_family_is_both(sent):
    module_result(main, dict(host='web1', sequence='7313,4187'))
    assert sent[0][2]['family'] == 'both'


@pytest.mark.parametrize('args, message', [
    (dict(sequence='7313,0,9421'), "sequence is invalid: knock port '0' is out of range"),
    (dict(sequence='7313;9421'), 'sequence is invalid: knock step 1 is not a port'),
    (dict(sequence='7313,4187', delay=-5), 'delay -5 must be 0 to'),
    (dict(sequence='7313,4187', ip_version='inet'), 'value of ip_version must be one of'),
])
def test_bad_arguments_fail_naming_the_value_not_the_sequence(sent, args, message):
    args = dict(args, host='web1')
    result, output, failed = module_result(main, args)
    assert failed and message in result['msg'] and sent == []
    assert '9421' not in output and '4187' not in output


def test_a_send_error_is_reported(monkeypatch):
    def broken(host, sequence, **kwargs):
        raise KnockSendError('cannot resolve web1: Name or service not known')
    monkeypatch.setattr(knock_task, 'knock', broken)
    result, output, failed = module_result(main, dict(host='web1', sequence='7313,4187,9421'))
    assert failed and result['msg'] == 'knock on web1 failed: cannot resolve web1: Name or service not known'
    assert '7313' not in output
