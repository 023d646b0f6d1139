# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""recent_knock_backends: backend selection, many doors in one transaction per family/backend,
removal from every backend, read-back (on an in-memory iptables-nft + nft host)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.portknock.knock.plugins.module_utils import recent_knock_backends as rkb
from ansible_collections.portknock.knock.plugins.module_utils import recent_rules
from ansible_collections.portknock.knock.plugins.module_utils.firewall_errors import BackendError
from ansible_collections.portknock.knock.plugins.module_utils import iptables_backend, nftables_backend

from fake_firewall import FakeFirewall


def doors(count, backend='iptables', state='present'):
    return [rkb.request_from(dict(name='d%d' % i, sequence=[7313 + 7 * i, 4187 + 5 * i, 9421 + 3 * i],
                                  port=20000 + i, state=state, backend=backend, step_timeout=10, open_window=30))
            for i in range(count)]


def converge(host, requests, check_mode=False):
    run = rkb.Converger(requests, host.run, host.which, check_mode=check_mode)
    run.converge(multi=len(requests) > 1)
    return run


def test_one_error_class_for_every_backend():
    assert iptables_backend.BackendError is BackendError is nftables_backend.BackendError


@pytest.mark.parametrize('bins,name', [(['iptables', 'nft'], 'iptables'), (['nft'], 'nftables')])
def test_auto_is_iptables_when_there_is_one(bins, name):
    host = FakeFirewall(bins=bins)
    assert rkb.resolve('auto', host.which) == name
    assert rkb.resolve('nftables', host.which) == 'nftables'


def test_select_backend_without_tools_is_an_error():
    host = FakeFirewall(bins=[])
    with pytest.raises(BackendError):
        rkb.select_backend('iptables', host.run, host.which)
    with pytest.raises(BackendError):
        rkb.select_backend('auto', host.run, host.which)


@pytest.mark.parametrize('count', [1, 3, 10])
def test_iptables_doors_one_restore_per_family_then_idempotent(count):
    host = FakeFirewall()
    run = converge(host, doors(count))
    assert run.changed and host.restores() == ['iptables-nft-restore', 'ip6tables-nft-restore']
    # every door owns its chains, and the jumps read in list order
    jumps = list(host.filter['ipv4']['INPUT'])
    assert jumps == ['-j PK-d%d' % i for i in range(count)]
    saves = len([1 for args, _d in host.calls if args[0].endswith('-save')])
    host.calls[:] = []
    again = converge(host, doors(count))
    assert not again.changed and host.restores() == []
    # reads: one save per family before, one after the apply (not one per door)
    assert saves == 4
    assert len(host.calls) == 3        # --version, two saves


def test_nft_doors_one_transaction():
    host = FakeFirewall()
    run = converge(host, doors(5, 'nftables'))
    assert run.changed and len(host.nft_writes()) == 1
    assert sorted(host.tables) == ['inet portknock_d%d' % i for i in range(5)]
    host.calls[:] = []
    assert not converge(host, doors(5, 'nftables')).changed and host.nft_writes() == []


def test_mixed_backends_and_only_what_changed_is_written():
    host = FakeFirewall()
    converge(host, doors(2, 'iptables') + doors(2, 'nftables')[1:])
    host.calls[:] = []
    wanted = doors(3, 'iptables')       # d2 new on iptables, d0 and d1 as they are
    run = converge(host, wanted)
    assert run.changed and host.restores() == ['iptables-nft-restore', 'ip6tables-nft-restore']
    script = [data for args, data in host.calls if args[0].endswith('iptables-nft-restore')][0]
    assert 'PK-d2' in script and 'PK-d0' not in script and 'PK-d1' not in script
    # d1 stays in nft as well (present doors are only written to their own backend)
    assert 'inet portknock_d1' in host.tables


def test_absent_removes_from_every_backend_in_one_transaction_each():
    host = FakeFirewall()
    converge(host, doors(2, 'iptables'))
    converge(host, doors(2, 'nftables'))
    host.calls[:] = []
    gone = [rkb.request_from(dict(name='d%d' % i, state='absent', backend='iptables')) for i in range(2)]
    run = converge(host, gone)
    assert run.changed
    assert host.restores() == ['iptables-nft-restore', 'ip6tables-nft-restore'] and len(host.nft_writes()) == 1
    assert list(host.filter['ipv4']) == ['INPUT'] and host.filter['ipv4']['INPUT'] == [] and not host.tables
    assert not converge(host, gone).changed


def test_check_mode_reports_the_change_and_writes_nothing():
    host = FakeFirewall()
    run = converge(host, doors(3), check_mode=True)
    assert run.changed and host.restores() == [] and run.before and run.after
    assert all('# door d' in text for text in run.after)


def test_rejected_family_after_the_first_committed_is_a_change():
    host = FakeFirewall(reject={'ip6tables-nft-restore'})
    with pytest.raises(rkb.Failed) as err:
        converge(host, doors(2))
    assert err.value.changed is True and 'WAS changed' in str(err.value) and 'd0: ipv4' in str(err.value)
    for port in (7313, 4187, 9421):
        assert str(port) not in str(err.value)


def test_rejected_nft_transaction_changes_nothing():
    host = FakeFirewall(reject={'nft'})
    with pytest.raises(rkb.Failed) as err:
        converge(host, doors(2, 'nftables'))
    assert err.value.changed is False and 'nothing was changed' in str(err.value) and 'd0, d1' in str(err.value)


def test_merge_restore_scripts_is_one_commit():
    a, b = doors(2)
    script = recent_rules.merge_restore_scripts([recent_rules.restore_script(a.door, 'ipv4', []), '',
                                                 recent_rules.restore_script(b.door, 'ipv4', [])])
    assert script.count('*filter') == 1 and script.count('COMMIT') == 1
    assert script.index('PK-d0') < script.index('PK-d1')
    assert recent_rules.merge_restore_scripts(['', '']) == ''
    with pytest.raises(ValueError):
        recent_rules.merge_restore_scripts(['-A INPUT -j X\n'])


def test_request_from_names_the_door_on_missing_fields():
    with pytest.raises(rkb.KnockValueError, match="door 'web'.*sequence, port"):
        rkb.request_from(dict(name='web'))
    with pytest.raises(rkb.KnockValueError, match='set_size'):
        rkb.request_from(dict(name='web', state='absent', set_size=0))
