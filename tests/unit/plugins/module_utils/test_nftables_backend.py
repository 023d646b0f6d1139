# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nftables backend with a fake nft: a door that cannot open is an error, or it integrates."""

from __future__ import absolute_import, division, print_function

import pytest

from ansible_collections.portknock.knock.plugins.module_utils.door import make_door
from ansible_collections.portknock.knock.plugins.module_utils.iptables_backend import BackendError
from ansible_collections.portknock.knock.plugins.module_utils import nft_rules as nr
from ansible_collections.portknock.knock.plugins.module_utils.nftables_backend import NftablesBackend

from fake_firewall import FakeBinaries, nft_reads

DOOR = make_door('ssh', [7313, 4187, 9421], 22)
DROP_POLICY = '''table inet filter { # handle 1
\tchain input { # handle 1
\t\ttype filter hook input priority filter; policy drop;
%s\t\tct state established,related accept # handle 3
\t\tiif "lo" accept # handle 4
\t}
}
'''


class FakeNft(FakeBinaries):
    """nft with a host ruleset (text) and the door's table (present or not)."""

    def __init__(self, host='', door_table=False, host_rule_handle=None, apply_rc=0):
        super(FakeNft, self).__init__(['nft'])
        self.host, self.door_table, self.host_rule_handle, self.apply_rc = host, door_table, host_rule_handle, apply_rc
        self.scripts = []

    def _ruleset(self):
        integrated = ''
        if self.host_rule_handle:
            integrated = '\t\t%s # handle %d\n' % (nr.integration_rule(DOOR), self.host_rule_handle)
        text = (self.host % integrated) if '%s' in self.host else self.host
        if self.door_table:
            text += nr.table_text(DOOR)
        return text

    def run(self, args, data=None):
        if args[1:] == ['--version']:
            return 0, 'nftables v1.0.6 (Lester Gooch #5)\n', ''
        read = nft_reads(args, data, self._ruleset())
        if read is not None:
            return read
        if args[1:4] == ['-t', 'list', 'table']:
            if self.door_table:
                return 0, nr.table_text(DOOR), ''
            return 1, '', 'Error: No such file or directory; did you mean table ...'
        if args[1:] == ['-f', '-']:
            self.scripts.append(data)
            if self.apply_rc:
                return self.apply_rc, '', 'Error: Could not process rule: No such file or directory'
            if 'delete table inet portknock_ssh\n' in data:
                self.door_table = 'delete table inet portknock_ssh\ntable inet' in data
            if 'insert rule' in data:
                self.host_rule_handle = 50
            elif 'delete rule' in data:
                self.host_rule_handle = None
            return 0, '', ''
        raise AssertionError('unexpected nft call %r' % (args,))


def backend(nft, integrate=False):
    return NftablesBackend(nft.run, nft.which, integrate_input_chain=integrate)


def converge(nft, present=True, integrate=False):
    """What the module does: live, wanted, apply when they differ, read back. Returns changed."""
    b = backend(nft, integrate)
    live = b.live(DOOR)
    wanted = b.wanted(DOOR, present)
    if live == wanted:
        return False
    b.apply(DOOR, present, live)
    assert b.live(DOOR) == wanted
    return True


def test_accept_policy_host_needs_nothing():
    nft = FakeNft()
    assert converge(nft) is True and converge(nft) is False
    assert 'insert rule' not in nft.scripts[0]


@pytest.mark.parametrize('host', [DROP_POLICY, DROP_POLICY.replace('policy drop;', 'policy accept;').replace(
    '\t\tiif "lo" accept # handle 4\n', '\t\tiif "lo" accept # handle 4\n\t\tcounter packets 0 bytes 0 drop # handle 5\n')])
def test_host_drop_fails_without_changing_anything(host):
    nft = FakeNft(host)
    with pytest.raises(BackendError) as err:
        converge(nft)
    assert 'cannot open' in str(err.value) and 'inet filter input' in str(err.value)
    assert nft.scripts == []          # nothing applied
    assert nft.door_table is False


def test_check_mode_predicts_the_failure():
    """wanted() alone (what check mode calls) already fails: no success for a door that cannot open."""
    b = backend(FakeNft(DROP_POLICY))
    b.live(DOOR)
    with pytest.raises(BackendError):
        b.wanted(DOOR, True)


def test_integrate_inserts_once_in_the_same_transaction_and_absent_removes_it():
    nft = FakeNft(DROP_POLICY)
    assert converge(nft, integrate=True) is True
    assert len(nft.scripts) == 1
    script = nft.scripts[0]
    assert script.startswith('table inet portknock_ssh\ndelete table inet portknock_ssh\n')
    assert script.endswith('insert rule inet filter input %s\n' % nr.integration_rule(DOOR))
    assert converge(nft, integrate=True) is False                    # idempotent
    # the rule deleted by someone else: put back, the table left alone
    nft.host_rule_handle = None
    assert converge(nft, integrate=True) is True
    assert nft.scripts[-1] == 'insert rule inet filter input %s\n' % nr.integration_rule(DOOR)
    # absent: the table and the door's own rule go, in one transaction
    assert converge(nft, present=False) is True
    assert nft.scripts[-1] == ('table inet portknock_ssh\ndelete table inet portknock_ssh\n'
                               'delete rule inet filter input handle 50\n')
    assert nft.host_rule_handle is None and nft.door_table is False
    assert converge(nft, present=False) is False


def test_integrated_door_without_the_option_fails_rather_than_pretending():
    nft = FakeNft(DROP_POLICY, door_table=True, host_rule_handle=7)
    with pytest.raises(BackendError):
        converge(nft)


def test_host_rules_show_in_the_state_and_diff_text():
    nft = FakeNft(DROP_POLICY, door_table=True, host_rule_handle=7)
    b = backend(nft, True)
    live = b.live(DOOR)
    assert live['host'] == ['inet filter input: %s' % nr.integration_rule(DOOR)]
    assert b.wanted(DOOR, True) == live
    assert '# in a host chain: inet filter input: meta mark' in b.as_text(live)
    assert 'host' not in backend(FakeNft()).wanted(DOOR, True)


def test_rejected_transaction_is_an_error():
    nft = FakeNft(DROP_POLICY, apply_rc=1)
    with pytest.raises(BackendError) as err:
        converge(nft, integrate=True)
    assert 'rejected' in str(err.value)


def test_ruleset_unreadable_is_an_error():
    nft = FakeNft()
    real = nft.run

    def run(args, data=None):
        if 'list' in args or '-i' in args:
            return 1, '', 'Error: Operation not permitted'
        return real(args, data)
    with pytest.raises(BackendError) as err:
        NftablesBackend(run, nft.which).live(DOOR)
    assert 'list ruleset' in str(err.value)


class RecordingNft(FakeNft):
    """FakeNft that records its calls; ``broken`` makes the table-by-table read fail that way."""

    def __init__(self, *args, **kwargs):
        self.broken = kwargs.pop('broken', None)
        super(RecordingNft, self).__init__(*args, **kwargs)
        self.calls = []

    def run(self, args, data=None):
        self.calls.append(args[1:])
        if self.broken == 'chains' and args[1:] == ['-a', 'list', 'chains']:
            return 1, '', 'Error: Operation not supported'
        if self.broken == 'gone' and args[1:] == ['-a', '-t', '-i']:
            rc, out, err = super(RecordingNft, self).run(args, data)
            return 0, out[:out.index('table inet portknock_ssh')], 'Error: No such file or directory'
        if self.broken == 'no-cli' and args[1:] == ['-a', '-t', '-i']:
            return 1, '', 'Error: interactive CLI not supported in this build'
        if self.broken == 'quoted' and args[1:] == ['-a', 'list', 'chains']:
            return 0, 'table inet "odd name" {\n}\n', ''
        return super(RecordingNft, self).run(args, data)


def test_the_ruleset_is_read_table_by_table_in_one_nft():
    """Two cheap calls (table names, then every table in one ``nft -i``), never ``list ruleset``:
    nft 1.0.x lists the whole ruleset in time that grows faster than its rules."""
    nft = RecordingNft(DROP_POLICY, door_table=True, host_rule_handle=7)
    b = backend(nft, True)
    live = b.live(DOOR)
    reads = [args for args in nft.calls if args != ['--version']]
    assert reads == [['-a', 'list', 'chains'], ['-a', '-t', '-i']]
    assert live['host'] == ['inet filter input: %s' % nr.integration_rule(DOOR)]
    assert b.wanted(DOOR, True) == live
    # the same state as from the whole ruleset, read the old way
    whole = RecordingNft(DROP_POLICY, door_table=True, host_rule_handle=7, broken='chains')
    assert backend(whole, True).live(DOOR) == live
    assert ['-a', '-t', 'list', 'ruleset'] in whole.calls


@pytest.mark.parametrize('broken', ['chains', 'gone', 'no-cli', 'quoted'])
def test_a_failed_table_by_table_read_falls_back_to_the_whole_ruleset(broken):
    nft = RecordingNft(DROP_POLICY, door_table=True, host_rule_handle=7, broken=broken)
    b = backend(nft, True)
    live = b.live(DOOR)
    assert nft.calls[-1] == ['-a', '-t', 'list', 'ruleset']
    assert live['host'] == ['inet filter input: %s' % nr.integration_rule(DOOR)]
    assert live['inet'] and b.wanted(DOOR, True) == live


def test_empty_ruleset_needs_no_table_read():
    nft = RecordingNft()
    assert backend(nft).live(DOOR) == {'inet': []}
    assert [args for args in nft.calls if args != ['--version']] == [['-a', 'list', 'chains']]


class CountingNft(FakeNft):
    """nft whose door table has counted packets (the listing carries the counters' values)."""

    def run(self, args, data=None):
        rc, out, err = super(CountingNft, self).run(args, data)
        if args[1:4] == ['-t', 'list', 'table'] and rc == 0:
            out = out.replace(' counter ', ' counter packets 42 bytes 2520 ')
        return rc, out, err


def test_counted_packets_are_no_change():
    """The door's counters move with every knock: the door is still the same door (idempotent)."""
    nft = CountingNft()
    assert converge(nft) is True
    assert converge(nft) is False
    assert len(nft.scripts) == 1
