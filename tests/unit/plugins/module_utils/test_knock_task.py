# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

import pytest

from ansible_collections.portknock.knock.plugins.module_utils import knock_task as kt


def params(**kw):
    base = dict(host='198.51.100.4', sequence=[7000, '8000:udp'], delay=None, ip_version='any', source=None)
    base.update(kw)
    return base


def test_spec_hides_the_sequence():
    assert kt.ARGUMENT_SPEC['sequence']['no_log'] is True


def test_check_mode_sends_nothing(monkeypatch):
    monkeypatch.setattr(kt, 'knock', lambda *a, **k: pytest.fail('knocked in check mode'))
    result = kt.run_knock_task(params(), check_mode=True)
    assert result['knocks'] == 2 and result['address'] is None and result['changed'] is False


def test_knock_result_never_contains_the_sequence(monkeypatch):
    calls = []
    monkeypatch.setattr(kt, 'knock', lambda host, seq, **k: calls.append((host, seq, k)) or '198.51.100.4')
    result = kt.run_knock_task(params(delay=10, ip_version='ipv4'))
    assert calls == [('198.51.100.4', '7000:tcp,8000:udp', dict(delay_ms=10, family='ipv4', source=None))]
    assert result['address'] == '198.51.100.4' and result['protocols'] == ['tcp', 'udp']
    assert '7000' not in repr(result)


@pytest.mark.parametrize('kw, message', [(dict(sequence='7000,99999'), "'99999' is out of range"),
                                         (dict(delay=-1), 'delay -1')])
def test_errors(kw, message):
    with pytest.raises(kt.KnockTaskError, match=message):
        kt.run_knock_task(params(**kw))
