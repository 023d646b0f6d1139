# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

import pytest

from ansible_collections.portknock.knock.plugins.module_utils import knock_task as kt


def params(**kw):
    base = dict(host='198.51.100.4', sequence=[7311, '9127:udp'], delay=None, ip_version='any', source=None)
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
    assert calls == [('198.51.100.4', '7311:tcp,9127:udp', dict(delay_ms=10, family='ipv4', source=None))]
    assert result['address'] == '198.51.100.4' and result['protocols'] == ['tcp', 'udp']
    assert '7311' not in repr(result)


@pytest.mark.parametrize('kw, message', [(dict(sequence='7311,99999'), "'99999' is out of range"),
                                         (dict(delay=-1), 'delay -1')])
def test_errors(kw, message):
    with pytest.raises(kt.KnockTaskError, match=message):
        kt.run_knock_task(params(**kw))


@pytest.mark.parametrize('given, sent', [(None, 'both'), ('both', 'both'), ('any', 'both'),
                                         ('ipv4', 'ipv4'), ('ipv6', 'ipv6')])
def test_ip_version_names_match_recent_knock(monkeypatch, given, sent):
    """{ipv4, ipv6, both} as in recent_knock; the old 'any' is 'both'."""
    calls = []
    monkeypatch.setattr(kt, 'knock', lambda host, seq, **k: calls.append(k['family']) or '198.51.100.4')
    kt.run_knock_task(params(ip_version=given))
    assert calls == [sent]


def test_any_is_a_deprecated_alias_of_both():
    assert kt.ARGUMENT_SPEC['ip_version']['default'] == 'both'
    assert set(kt.ARGUMENT_SPEC['ip_version']['choices']) == {'ipv4', 'ipv6', 'both', 'any'}
    assert 'use ip_version=both' in kt.ip_version_deprecation(dict(ip_version='any'))
    for value in ('both', 'ipv4', 'ipv6', None):
        assert kt.ip_version_deprecation(dict(ip_version=value)) is None


@pytest.mark.parametrize('value', ['inet', 'IPv4 ', 4, ''])
def test_unknown_ip_version_is_refused_by_name(monkeypatch, value):
    monkeypatch.setattr(kt, 'knock', lambda *a, **k: pytest.fail('knocked with a bad family'))
    if value == '':
        kt.run_knock_task(params(ip_version=value), check_mode=True)   # empty: the default
        return
    with pytest.raises(kt.KnockTaskError, match='ip_version %r is not one of ipv4, ipv6, both' % (value,)):
        kt.run_knock_task(params(ip_version=value))


def test_one_default_delay_everywhere(monkeypatch):
    """The task, the CLI and the connection plugin's documented default are knock_sender's constant."""
    from ansible_collections.portknock.knock.plugins.module_utils import knock_cli, knock_sender
    from ansible_collections.portknock.knock.plugins.connection import ssh
    import yaml
    assert kt.ARGUMENT_SPEC['delay']['default'] == knock_sender.DEFAULT_DELAY_MS == 50
    assert knock_cli.build_parser().parse_args(['198.51.100.4', '7313']).delay == knock_sender.DEFAULT_DELAY_MS
    options = yaml.safe_load(ssh.DOCUMENTATION)['options']
    assert int(options['knock_delay']['default']) == knock_sender.DEFAULT_DELAY_MS
    from ansible_collections.portknock.knock.plugins.doc_fragments.knock_options import ModuleDocFragment
    assert 'default: %d\n' % knock_sender.DEFAULT_DELAY_MS in ModuleDocFragment.DOCUMENTATION
    calls = []
    monkeypatch.setattr(kt, 'knock', lambda host, seq, **k: calls.append(k['delay_ms']) or '198.51.100.4')
    kt.run_knock_task(params(delay=None))
    assert calls == [knock_sender.DEFAULT_DELAY_MS]
