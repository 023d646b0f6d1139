# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""recent_knock reports ``changed`` honestly when it fails part of the way (issue 11 item 3).

The backends are replaced by a fake that holds live rules per part (family or table) and
fails where told: the decision "what did this run change" is the module's logic.  The real
partial commit (IPv4 committed, IPv6 refused) runs on a lab host in
tests/integration/test_guard_faults_lab.py.  Also: the action plugin names its guard after the door.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.portknock.knock.plugins.action import recent_knock as action
from ansible_collections.portknock.knock.plugins.module_utils.iptables_backend import BackendError
from ansible_collections.portknock.knock.plugins.module_utils import recent_knock_backends
from ansible_collections.portknock.knock.plugins.modules import recent_knock

from utils import module_result

SEQUENCE = [7313, 4187, 9421]


class FakeBackend(object):
    """Live rules per part; ``apply`` commits the parts in order and fails at ``fail_at``."""
    hosts = {}

    def __init__(self, name, parts, fail_at=None, readback=None, live_fails_after_apply=False):
        self.name, self.parts, self.fail_at, self.readback = name, parts, fail_at, readback
        self.live_fails_after_apply = live_fails_after_apply
        self.state = dict((part, ['old %s' % part]) for part in parts)
        self.applied = False
        self.warnings = []

    def describe(self):
        return self.name

    def live(self, door):
        if self.applied and self.live_fails_after_apply:
            raise BackendError('%s: cannot read the rules back' % self.name)
        return dict((k, list(v)) for k, v in self.state.items())

    def wanted(self, door, present):
        return dict((part, ['new %s' % part]) for part in self.parts)

    def apply(self, door, present, live):
        self.applied = True
        for part in self.parts:
            if part == self.fail_at:
                raise BackendError('%s rejected the door %s (its %s rules were left as they were)'
                                   % (self.name, door.name, part))
            self.state[part] = ['new %s' % part] if self.readback is None else [self.readback]

    def live_many(self, doors):
        return dict((door.name, self.live(door)) for door in doors)

    def apply_many(self, items):
        for door, wanted, live in items:
            self.apply(door, wanted, live)

    @staticmethod
    def as_text(state):
        return '\n'.join('%s: %s' % (k, v) for k, v in sorted(state.items())) + '\n'


def run_with(monkeypatch, iptables, nftables=None, **args):
    monkeypatch.setattr(recent_knock_backends, 'IptablesBackend', lambda run, which: iptables)
    monkeypatch.setattr(recent_knock_backends, 'NftablesBackend', lambda *a: nftables)
    monkeypatch.setattr(recent_knock.AnsibleModule, 'get_bin_path',
                        lambda self, name, *a, **k: '/usr/sbin/%s' % name if nftables or name != 'nft' else None)
    params = dict(name='seed', sequence=SEQUENCE, port=2022, backend='iptables')
    params.update(args)
    return module_result(recent_knock.main, params)


def test_ipv4_committed_then_ipv6_refused_is_a_change(monkeypatch):
    result, output, failed = run_with(monkeypatch, FakeBackend('iptables', ['ipv4', 'ipv6'], fail_at='ipv6'))
    assert failed and result['changed'] is True
    assert 'left as they were' in result['msg'] and 'WAS changed' in result['msg'] and '(ipv4)' in result['msg']
    assert 'nothing was changed' not in result['msg']
    for port in SEQUENCE:
        assert str(port) not in output


def test_refused_first_part_is_no_change(monkeypatch):
    result, dummy, failed = run_with(monkeypatch, FakeBackend('iptables', ['ipv4', 'ipv6'], fail_at='ipv4'))
    assert failed and result['changed'] is False and 'nothing was changed' in result['msg']


def test_readback_mismatch_is_a_change(monkeypatch):
    result, dummy, failed = run_with(monkeypatch, FakeBackend('iptables', ['ipv4', 'ipv6'], readback='odd'))
    assert failed and result['changed'] is True and 'reads back differently' in result['msg']
    assert 'WAS changed' in result['msg']


def test_unreadable_after_a_failed_apply_counts_as_changed(monkeypatch):
    backend = FakeBackend('iptables', ['ipv4', 'ipv6'], fail_at='ipv6', live_fails_after_apply=True)
    result, dummy, failed = run_with(monkeypatch, backend)
    assert failed and result['changed'] is True and 'could not be read back' in result['msg']


@pytest.mark.parametrize('fail_at', ['inet', None])
def test_absent_second_backend_failing_after_the_first_removed_the_door(monkeypatch, fail_at):
    iptables = FakeBackend('iptables', ['ipv4', 'ipv6'])
    nftables = FakeBackend('nftables', ['inet'], fail_at=fail_at, live_fails_after_apply=fail_at is None)
    result, dummy, failed = run_with(monkeypatch, iptables, nftables, state='absent', sequence=None, port=None)
    assert failed and result['changed'] is True
    assert 'the iptables rules of the door were changed' in result['msg']


def test_success_is_a_change_without_a_note(monkeypatch):
    result, dummy, failed = run_with(monkeypatch, FakeBackend('iptables', ['ipv4', 'ipv6']))
    assert not failed and result['changed'] is True


@pytest.mark.parametrize('name,guard', [
    ('ssh', 'recent_knock-ssh'), ('a' * 20, 'recent_knock-' + 'a' * 20), ('web_2', 'recent_knock-web_2'),
    ('ssh\n', 'recent_knock'), ('a-b', 'recent_knock'), (None, 'recent_knock'), (['x'], 'recent_knock'),
    ('a' * 21, 'recent_knock')])
def test_action_names_the_guard_after_the_door(name, guard):
    assert action.guard_name(name) == guard
