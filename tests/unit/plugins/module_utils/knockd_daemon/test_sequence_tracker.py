# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections

import pytest

from ansible_collections.portknock.knock.plugins.module_utils.sequence import (
    KnockValueError, parse_sequence, parse_tcpflags)
from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.packet import Packet
from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.one_time_sequences import (
    OneTimeSequences)
from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.sequence_tracker import (
    SequenceTracker)

from fake_clock import FakeClock as Clock

FakeStanza = collections.namedtuple('FakeStanza', 'name sequence seq_timeout tcpflags target')
SERVER = '10.99.4.1'
SERVER6 = 'fd42:99:4::1'


def stanza(name='ssh', sequence='3371,2459,4126', seq_timeout=15, tcpflags='syn', target=None):
    return FakeStanza(name, parse_sequence(sequence) if sequence else (), seq_timeout,
                      parse_tcpflags(tcpflags), target)


def tcp(src, port, flags=('syn',), dst=SERVER):
    return Packet(src, dst, 'tcp', 40000, port, frozenset(flags), 6 if ':' in src else 4)


def udp(src, port, dst=SERVER):
    return Packet(src, dst, 'udp', 40000, port, frozenset(), 6 if ':' in src else 4)


def kinds(events, kind):
    return [event for event in events if event.kind == kind]


def knock(tracker, clock, src, ports, gap=0.1, maker=tcp, **kwargs):
    events = []
    for port in ports:
        events += tracker.feed(maker(src, port, **kwargs))
        clock.now += gap
    return events


@pytest.fixture
def clock():
    return Clock()


def make(clock, *stanzas, **kwargs):
    kwargs.setdefault('local_addresses', [SERVER, SERVER6])
    return SequenceTracker(list(stanzas) or [stanza()], clock=clock, **kwargs)


def test_right_order_opens(clock):
    tracker = make(clock)
    events = knock(tracker, clock, '10.99.4.2', [3371, 2459, 4126])
    assert [e.stage for e in kinds(events, 'stage')] == [1, 2, 3]
    opened = kinds(events, 'open')
    assert [(e.stanza, e.source, e.family) for e in opened] == [('ssh', '10.99.4.2', 4)]
    assert len(tracker) == 0


def test_wrong_order_does_not_open(clock):
    tracker = make(clock)
    events = knock(tracker, clock, '10.99.4.2', [3371, 4126, 2459])
    assert not kinds(events, 'open')
    assert kinds(events, 'reset')


def test_wrong_port_in_the_middle_resets_and_first_port_restarts(clock):
    tracker = make(clock)
    events = knock(tracker, clock, '10.99.4.2', [3371, 2459, 3371, 2459, 4126])
    assert len(kinds(events, 'reset')) == 1
    assert len(kinds(events, 'open')) == 1


def test_ports_outside_the_sequence_are_ignored(clock):
    tracker = make(clock)
    events = knock(tracker, clock, '10.99.4.2', [3371, 22, 80, 2459, 4126])
    assert len(kinds(events, 'open')) == 1


def test_sources_are_independent(clock):
    tracker = make(clock)
    events = tracker.feed(tcp('10.99.4.2', 3371))
    events += tracker.feed(tcp('10.99.4.3', 3371))
    events += tracker.feed(tcp('10.99.4.2', 2459))
    events += tracker.feed(tcp('10.99.4.3', 4126))   # wrong for .3
    events += tracker.feed(tcp('10.99.4.2', 4126))
    assert [e.source for e in kinds(events, 'open')] == ['10.99.4.2']


def test_timeout_is_enforced_on_time(clock):
    tracker = make(clock)
    knock(tracker, clock, '10.99.4.2', [3371, 2459])
    assert tracker.next_deadline() == pytest.approx(1015.0)
    clock.now = 1014.9
    assert tracker.expire() == []
    clock.now = 1015.0
    events = tracker.expire()
    assert [(e.kind, e.source, e.stage) for e in events] == [('timeout', '10.99.4.2', 2)]
    assert len(tracker) == 0 and tracker.next_deadline() is None
    # the last knock after the timeout does not open
    assert not kinds(tracker.feed(tcp('10.99.4.2', 4126)), 'open')


def test_sequence_slower_than_timeout_does_not_open(clock):
    tracker = make(clock, stanza(seq_timeout=5))
    events = knock(tracker, clock, '10.99.4.2', [3371, 2459, 4126], gap=3)
    assert not kinds(events, 'open')
    assert kinds(events, 'timeout')


def test_tcpflags_mismatch_is_ignored_not_a_reset(clock):
    tracker = make(clock)
    events = tracker.feed(tcp('10.99.4.2', 3371))
    events += tracker.feed(tcp('10.99.4.2', 4126, flags=('ack',)))   # ignored
    events += tracker.feed(tcp('10.99.4.2', 2459, flags=('syn', 'ack')))  # syn set: counts
    events += tracker.feed(tcp('10.99.4.2', 4126, flags=('rst',)))   # ignored
    events += tracker.feed(tcp('10.99.4.2', 4126))
    assert not kinds(events, 'reset')
    assert len(kinds(events, 'open')) == 1


def test_negated_flag(clock):
    tracker = make(clock, stanza(tcpflags='syn,!ack'))
    events = tracker.feed(tcp('10.99.4.2', 3371, flags=('syn', 'ack')))
    assert events == []
    events = knock(tracker, clock, '10.99.4.2', [3371, 2459])
    events += tracker.feed(tcp('10.99.4.2', 4126, flags=('syn', 'ack')))   # ignored
    events += tracker.feed(tcp('10.99.4.2', 4126, flags=('syn',)))
    assert len(kinds(events, 'open')) == 1 and not kinds(events, 'reset')


def test_without_tcpflags_any_tcp_packet_counts(clock):
    tracker = make(clock, stanza(tcpflags=None))
    events = tracker.feed(tcp('10.99.4.2', 3371, flags=('ack',)))
    assert kinds(events, 'stage')


def test_udp_steps_and_protocol_mismatch(clock):
    tracker = make(clock, stanza(sequence='3371:udp,2459:tcp,4126:udp'))
    events = tracker.feed(udp('10.99.4.2', 3371))
    events += tracker.feed(tcp('10.99.4.2', 2459))
    events += tracker.feed(udp('10.99.4.2', 4126))
    assert len(kinds(events, 'open')) == 1
    # tcp on a udp step is not part of the sequence: ignored like any other port
    tracker = make(clock, stanza(sequence='3371:udp,2459:udp'))
    events = tracker.feed(tcp('10.99.4.2', 3371))
    assert events == []


def test_ipv6_source(clock):
    tracker = make(clock)
    events = knock(tracker, clock, 'fd42:99:4::2', [3371, 2459, 4126], dst='fd42:99:4:0::1')
    assert [(e.source, e.family) for e in kinds(events, 'open')] == [('fd42:99:4::2', 6)]


def test_ipv4_only(clock):
    tracker = make(clock, ipv4_only=True)
    events = knock(tracker, clock, 'fd42:99:4::2', [3371, 2459, 4126], dst=SERVER6)
    assert events == []


def test_destination_must_be_local_or_target(clock):
    tracker = make(clock)
    assert knock(tracker, clock, '10.99.4.2', [3371, 2459, 4126], dst='10.99.4.77') == []
    tracker = make(clock, stanza(target='10.99.4.77'))
    assert knock(tracker, clock, '10.99.4.2', [3371, 2459, 4126], dst=SERVER) == []
    events = knock(tracker, clock, '10.99.4.2', [3371, 2459, 4126], dst='10.99.4.77')
    assert len(kinds(events, 'open')) == 1


def test_retransmitted_syn_does_not_break_the_sequence(clock):
    tracker = make(clock)
    events = knock(tracker, clock, '10.99.4.2', [3371, 3371, 2459, 2459, 2459, 4126], gap=1.0)
    assert not kinds(events, 'reset')
    assert len(kinds(events, 'open')) == 1


def test_late_repeat_of_a_step_resets(clock):
    tracker = make(clock, retransmit_window=2.0)
    events = knock(tracker, clock, '10.99.4.2', [3371, 2459], gap=0.1)
    clock.now += 5
    events += knock(tracker, clock, '10.99.4.2', [2459, 4126])
    assert kinds(events, 'reset') and not kinds(events, 'open')


def test_repeated_port_in_the_sequence_is_a_step_not_a_retransmit(clock):
    tracker = make(clock, stanza(sequence='3371,3371,2459'))
    events = knock(tracker, clock, '10.99.4.2', [3371, 3371, 2459])
    assert len(kinds(events, 'open')) == 1


def test_single_step_sequence(clock):
    tracker = make(clock, stanza(sequence='7311'))
    events = tracker.feed(tcp('10.99.4.2', 7311))
    assert len(kinds(events, 'open')) == 1 and len(tracker) == 0


def test_several_stanzas_track_separately(clock):
    tracker = make(clock, stanza('open', '7311,9127,8243'), stanza('close', '8243,9127,7311'))
    events = knock(tracker, clock, '10.99.4.2', [7311, 9127, 8243])
    assert [e.stanza for e in kinds(events, 'open')] == ['open']
    events = knock(tracker, clock, '10.99.4.2', [8243, 9127, 7311])
    assert [e.stanza for e in kinds(events, 'open')] == ['close']


def test_reknock_opens_again(clock):
    tracker = make(clock)
    events = knock(tracker, clock, '10.99.4.2', [3371, 2459, 4126] * 2)
    assert len(kinds(events, 'open')) == 2


def test_eviction_under_flood_keeps_a_knocker_in_progress(clock):
    tracker = make(clock, max_attempts=4096)
    knock(tracker, clock, '10.99.4.2', [3371, 2459], gap=0.001)
    for index in range(100000):
        src = '10.%d.%d.%d' % (100 + index // 65536, (index // 256) % 256, index % 256)
        tracker.feed(tcp(src, 3371))
        assert len(tracker) <= 4096
        if index % 10000 == 0:
            clock.now += 0.001
    events = tracker.feed(tcp('10.99.4.2', 4126))
    assert [e.source for e in kinds(events, 'open')] == ['10.99.4.2']


def test_new_attempt_does_not_evict_more_advanced_ones(clock):
    tracker = make(clock, max_attempts=2)
    knock(tracker, clock, '10.99.4.2', [3371, 2459])
    knock(tracker, clock, '10.99.4.3', [3371, 2459])
    events = tracker.feed(tcp('10.99.4.4', 3371))
    assert [(e.kind, e.source) for e in events] == [('evicted', '10.99.4.4')]
    assert len(kinds(knock(tracker, clock, '10.99.4.2', [4126]), 'open')) == 1


def test_oldest_least_advanced_is_evicted_first(clock):
    tracker = make(clock, max_attempts=3)
    knock(tracker, clock, '10.99.4.2', [3371, 2459])
    tracker.feed(tcp('10.99.4.3', 3371))
    clock.now += 1
    tracker.feed(tcp('10.99.4.4', 3371))
    events = tracker.feed(tcp('10.99.4.5', 3371))
    assert [(e.kind, e.source) for e in kinds(events, 'evicted')] == [('evicted', '10.99.4.3')]


def test_one_time_sequences(clock, tmp_path):
    path = tmp_path / 'seqs'
    path.write_text('# comment\n 1537,3371,2459\n\n 4126:udp,5555\nnot a sequence\n 6666\n')
    tracker = make(clock, stanza(name='otp', sequence=None),
                   one_time={'otp': OneTimeSequences(str(path))})
    assert tracker.ports() == set([(1537, 'tcp'), (3371, 'tcp'), (2459, 'tcp')])
    events = knock(tracker, clock, '10.99.4.2', [1537, 3371, 2459])
    assert len(kinds(events, 'open')) == 1 and kinds(events, 'sequence')
    assert path.read_text() == '# comment\n#1537,3371,2459\n\n 4126:udp,5555\nnot a sequence\n 6666\n'
    # replay of the used sequence fails
    assert not kinds(knock(tracker, clock, '10.99.4.2', [1537, 3371, 2459]), 'open')
    events = tracker.feed(udp('10.99.4.2', 4126)) + tracker.feed(tcp('10.99.4.2', 5555))
    assert len(kinds(events, 'open')) == 1
    events = tracker.feed(tcp('10.99.4.2', 6666))
    assert len(kinds(events, 'open')) == 1 and kinds(events, 'exhausted')
    assert path.read_text() == '# comment\n#1537,3371,2459\n\n#4126:udp,5555\nnot a sequence\n#6666\n'
    assert tracker.ports() == set()
    assert tracker.feed(tcp('10.99.4.2', 6666)) == []


def test_one_time_sequences_empty_file_disables_the_stanza(clock, tmp_path):
    path = tmp_path / 'seqs'
    path.write_text('#1537\n')
    tracker = make(clock, stanza(name='otp', sequence=None), one_time={'otp': OneTimeSequences(str(path))})
    assert [e.kind for e in tracker.events_at_start] == ['exhausted']


def test_feed_many_gives_the_same_events_as_feeding_one_by_one(clock):
    packets = ([tcp('10.99.4.%d' % (n % 7 + 2), port) for n, port in enumerate([3371, 2459, 3371, 4126, 2459] * 6)]
               + [tcp('10.99.4.2', 4126), udp('10.99.4.3', 3371), tcp('10.99.4.9', 3371, flags=('ack',))])
    one = SequenceTracker([stanza(), stanza('other', '2459,3371')], local_addresses=[SERVER], clock=clock,
                          max_attempts=5)
    many = SequenceTracker([stanza(), stanza('other', '2459,3371')], local_addresses=[SERVER], clock=clock,
                           max_attempts=5)
    expected = []
    for packet in packets:
        expected += one.feed(packet, clock.now)
    assert many.feed_many(packets, clock.now) == expected
    assert kinds(expected, 'open') and kinds(expected, 'evicted')
    assert one.attempts.keys() == many.attempts.keys()


BAD_TARGETS = ['host.example', 'localhost', '10.99.4.300', '10.99.4.0/24', '10.99.4.1,10.99.4.2', 'fd42::1::2',
               '10.99.4', '0x0a630401', ' ', '10.99.4.1 # lab', '*']


@pytest.mark.parametrize('target', BAD_TARGETS)
def test_a_target_that_is_not_an_address_is_refused_not_ignored(clock, target):
    # before: "no target", so knocks to ANY local address counted (issue 11 item 11)
    with pytest.raises(KnockValueError, match='Target .* is not an IPv4 or IPv6 address'):
        make(clock, stanza(target=target))


def test_ipv6_target_in_any_spelling(clock):
    tracker = make(clock, stanza(target='FD42:99:4:0::77'))
    assert kinds(knock(tracker, clock, 'fd42:99:4::2', [3371, 2459, 4126], dst='fd42:99:4::77'), 'open')
