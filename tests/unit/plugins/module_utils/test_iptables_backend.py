# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backend selection and restore calls of the iptables backend, with a fake host."""

from __future__ import absolute_import, division, print_function

import pytest

from ansible_collections.portknock.knock.plugins.module_utils.door import make_door
from ansible_collections.portknock.knock.plugins.module_utils import iptables_backend as ib
from ansible_collections.portknock.knock.plugins.module_utils import recent_rules

from fake_firewall import FakeBinaries


class FakeHost(FakeBinaries):
    def __init__(self, version, binaries, save='', restore_rc=0):
        super(FakeHost, self).__init__(binaries)
        self.version, self.save, self.restore_rc = version, save, restore_rc

    def run(self, args, data=None):
        self.calls.append((args, data))
        if args[-1] == '--version':
            return 0, self.version, ''
        if args[0].endswith('-save'):
            return 0, self.save, ''
        return self.restore_rc, '', 'iptables-restore: line 3 failed' if self.restore_rc else ''


NFT_BINS = ['iptables', 'iptables-nft-save', 'iptables-nft-restore', 'ip6tables-nft-save', 'ip6tables-nft-restore',
            'iptables-legacy-save', 'iptables-legacy-restore']


@pytest.mark.parametrize('text, variant', [('iptables v1.8.9 (nf_tables)', 'nf_tables'),
                                           ('iptables v1.8.9 (legacy)', 'legacy'),
                                           ('iptables v1.6.1', 'legacy')])
def test_variant_of(text, variant):
    assert ib.variant_of(text) == variant


def test_nft_host_uses_nft_restore_never_legacy():
    host = FakeHost('iptables v1.8.9 (nf_tables)\n', NFT_BINS)
    backend = ib.IptablesBackend(host.run, host.which)
    assert backend.variant == 'nf_tables' and backend.iptc is None and not backend.warnings
    door = make_door('ssh', [1600], 22)
    live = backend.live(door)
    assert live == {'ipv4': [], 'ipv6': []}
    backend.apply(door, True, live)
    restores = [args for args, data in host.calls if args[0].endswith('-restore')]
    assert restores == [['/usr/sbin/iptables-nft-restore', '--noflush', '-w'],
                        ['/usr/sbin/ip6tables-nft-restore', '--noflush', '-w']]
    assert not any('legacy' in args[0] for args, data in host.calls)


def test_legacy_host_without_iptc_warns_and_uses_legacy_restore(monkeypatch):
    monkeypatch.setattr(ib.iptc_rules, 'import_iptc', lambda: None)
    bins = ['iptables', 'iptables-legacy-save', 'iptables-legacy-restore', 'ip6tables-legacy-save',
            'ip6tables-legacy-restore']
    host = FakeHost('iptables v1.8.9 (legacy)\n', bins)
    backend = ib.IptablesBackend(host.run, host.which)
    assert backend.warnings and 'iptables-legacy-restore' in backend.warnings[0]
    door = make_door('ssh', [1600], 22, ip_version='ipv4')
    backend.apply(door, True, {'ipv4': [], 'ipv6': []})
    restores = [(args, data) for args, data in host.calls if args[0].endswith('-restore')]
    assert [args[0] for args, data in restores] == ['/usr/sbin/iptables-legacy-restore']
    assert restores[0][1] == recent_rules.restore_script(door, 'ipv4', [])


def test_rejected_restore_raises_and_names_the_door():
    host = FakeHost('iptables v1.8.9 (nf_tables)\n', NFT_BINS, restore_rc=2)
    backend = ib.IptablesBackend(host.run, host.which)
    with pytest.raises(ib.BackendError, match='ssh'):
        backend.apply(make_door('ssh', [1600], 22), True, {'ipv4': [], 'ipv6': []})


def test_no_iptables_binary():
    host = FakeHost('', [])
    with pytest.raises(ib.BackendError):
        ib.IptablesBackend(host.run, host.which)
