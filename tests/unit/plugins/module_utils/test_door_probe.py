# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils/door_probe.py: the audit's checks against simulated doors, with a fake clock.

Each kind of broken door (open to everyone, never opens, never closes, opens on the wrong
order, open to the knocker before the knock) must fail exactly the check that names it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

import base64

from ansible_collections.portknock.knock.plugins.module_utils import door_probe, spa
from ansible_collections.portknock.knock.plugins.module_utils.door import make_door, make_spa_door
from ansible_collections.portknock.knock.plugins.module_utils.door_probe import CHECKS, Probe, SpaSender

from fake_clock import FakeClock

KNOCKER, STRANGER, TARGET = '10.231.9.20', '10.231.9.21', '10.231.9.11'
DOOR = make_door('ssh', [7311, '9127:udp', 8243], 22, open_window=8)


class SimDoor(object):
    """A door that opens for `window` seconds to the source that sent the steps in order."""

    def __init__(self, clock, door, window=8, open_to_all=False, never_opens=False, never_closes=False,
                 any_order=False, preopen=None):
        self.clock, self.door, self.window = clock, door, window
        self.open_to_all, self.never_opens, self.never_closes, self.any_order = open_to_all, never_opens, never_closes, any_order
        self.opened = {}
        if preopen:
            self.opened[preopen] = clock.now
        self.knocks = []
        self.connects = 0

    def connect(self, address, port, source, quick=False):
        assert address == TARGET and port == 22
        self.connects += 1
        if self.open_to_all:
            return True
        since = self.opened.get(source)
        return since is not None and (self.never_closes or self.clock.now - since < self.window)

    def knock(self, address, steps, source):
        self.knocks.append((source, [s.port for s in steps]))
        right = [s.port for s in self.door.sequence]
        got = [s.port for s in steps]
        if not self.never_opens and (got == right or (self.any_order and sorted(got) == sorted(right))):
            self.opened[source] = self.clock.now


def run(**kw):
    clock = FakeClock()
    sim = SimDoor(clock, DOOR, **kw)
    results = Probe(sim.connect, sim.knock, sleep=clock.sleep, now=clock).run(DOOR, TARGET, KNOCKER, STRANGER, 8)
    return dict((r['check'], r) for r in results), sim, clock


def failed(results):
    return sorted(name for name, r in results.items() if not r['ok'])


def test_a_good_door_passes_every_check_in_order():
    results, sim, clock = run()
    assert list(results) == list(CHECKS)
    assert failed(results) == []
    assert results['replay_stays_closed']['skipped']
    assert results['opens_for_knocker']['seconds'] == 0
    # the knocks sent: the stranger's reversed steps, then the knocker's right ones; nothing else
    assert sim.knocks == [(STRANGER, [8243, 9127, 7311]), (KNOCKER, [7311, 9127, 8243])]
    assert clock.now >= 1000 + 8 + 3


@pytest.mark.parametrize('kw, broken', [
    (dict(open_to_all=True), ['closed_to_knocker', 'closed_to_stranger', 'closed_to_stranger_while_open',
                              'closes_after_window', 'wrong_order_stays_closed']),
    (dict(never_opens=True), ['opens_for_knocker']),
    (dict(never_closes=True), ['closes_after_window']),
    # the stranger's reversed knock opened the door for the stranger: both checks see it
    (dict(any_order=True), ['closed_to_stranger_while_open', 'wrong_order_stays_closed']),
])
def test_each_broken_door_fails_the_check_that_names_it(kw, broken):
    results, _sim, _clock = run(**kw)
    assert failed(results) == broken
    for name in broken:
        assert results[name]['detail']


def test_an_earlier_open_window_of_the_knocker_is_waited_out():
    results, _sim, clock = run(preopen=KNOCKER)
    assert failed(results) == []


def test_one_step_door_has_no_wrong_order():
    door = make_door('one', [7311], 22, open_window=8)
    clock = FakeClock()
    sim = SimDoor(clock, door)
    results = Probe(sim.connect, sim.knock, sleep=clock.sleep, now=clock).run(door, TARGET, KNOCKER, STRANGER, 8)
    by = dict((r['check'], r) for r in results)
    assert by['wrong_order_stays_closed']['skipped'] and by['wrong_order_stays_closed']['ok']
    assert sim.knocks == [(KNOCKER, [7311])]


def test_results_hold_no_sequence():
    results, _sim, _clock = run(never_opens=True)
    text = repr(results)
    for port in ('7311', '9127', '8243'):
        assert port not in text


KEY, HMAC_KEY = base64.b64encode(b'k' * 32).decode(), base64.b64encode(b'h' * 64).decode()
SPA_DOOR = make_spa_door('ssh', 22, KEY, HMAC_KEY, open_window=8)


class SimSpaDoor(object):
    """An SPA server: a right packet opens for its source once; ``replayable`` accepts a packet twice,
    ``any_key`` accepts packets made with any keys."""

    def __init__(self, clock, window=8, replayable=False, any_key=False):
        self.clock, self.window, self.replayable, self.any_key = clock, window, replayable, any_key
        self.opened, self.seen, self.sent = {}, set(), []

    def connect(self, address, port, source, quick=False):
        since = self.opened.get(source)
        return since is not None and self.clock.now - since < self.window

    def send_spa(self, address, door, source, attempt):
        self.sent.append((source, attempt))
        packet = 'packet-of-%s' % source if attempt in ('right', 'replay') else 'junk'
        if attempt == 'wrong_keys' and not self.any_key:
            return
        if packet in self.seen and not self.replayable:
            return
        self.seen.add(packet)
        self.opened[source] = self.clock.now


def run_spa(**kw):
    clock = FakeClock()
    sim = SimSpaDoor(clock, **kw)
    probe = Probe(sim.connect, None, sleep=clock.sleep, now=clock, send_spa=sim.send_spa)
    results = probe.run(SPA_DOOR, TARGET, KNOCKER, STRANGER, 8)
    return dict((r['check'], r) for r in results), sim


def test_an_spa_door_is_probed_with_packets_and_a_replay():
    results, sim = run_spa()
    assert list(results) == list(CHECKS)
    assert failed(results) == []
    assert not results['replay_stays_closed']['skipped']
    assert sim.sent == [(STRANGER, 'wrong_keys'), (KNOCKER, 'right'), (KNOCKER, 'replay')]


@pytest.mark.parametrize('kw, broken', [
    (dict(replayable=True), ['replay_stays_closed']),
    (dict(any_key=True), ['closed_to_stranger_while_open', 'wrong_order_stays_closed']),
])
def test_a_broken_spa_door_fails_the_check_that_names_it(kw, broken):
    results, _sim = run_spa(**kw)
    assert failed(results) == broken


def test_the_spa_sender_sends_a_real_packet_and_replays_it_byte_for_byte(monkeypatch):
    sent = []
    monkeypatch.setattr(door_probe, 'send_datagram', lambda *a: sent.append(a))
    sender = SpaSender()
    sender('127.0.0.1', SPA_DOOR, '127.0.0.1', 'right')
    sender('127.0.0.1', SPA_DOOR, '127.0.0.1', 'replay')
    sender('127.0.0.1', SPA_DOOR, '127.0.0.1', 'wrong_keys')
    (a1, p1, d1, _f, _s), (_a2, _p2, d2, _f2, _s2), (_a3, _p3, d3, _f3, _s3) = sent
    assert (a1, p1) == ('127.0.0.1', 62201) and d1 == d2 and d3 != d1
    message = spa.decode(d1.decode(), base64.b64decode(KEY), base64.b64decode(HMAC_KEY))
    assert message.source == '127.0.0.1'
    with pytest.raises(spa.SpaError):
        spa.decode(d3.decode(), base64.b64decode(KEY), base64.b64decode(HMAC_KEY))


def test_the_spa_sender_names_no_key_when_it_cannot_send():
    sender = SpaSender()
    with pytest.raises(door_probe.ProbeError) as exc:
        sender('127.0.0.1', SPA_DOOR, '127.0.0.1', 'replay')     # nothing to replay yet
    assert KEY not in str(exc.value) and HMAC_KEY not in str(exc.value)
