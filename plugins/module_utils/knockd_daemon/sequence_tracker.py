# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""Per-source knock state machine of the daemon.  Pure: the clock is injected.

Semantics follow knockd 0.8 (src/knockd.c, ``sniff``/``flags_match``), per
stanza and per source address:

- A stanza only looks at packets sent to its target (``Target``) or, without
  one, to an address of the listening host; to a port/protocol that is part
  of its sequence (knockd's pcap filter); and, for TCP, whose flags match
  ``TCPFlags`` (``!flag`` = must not be set).  Other packets are ignored:
  they neither advance nor break a knock.
- A packet that is the expected next step advances the attempt ("Stage N");
  the last step opens the door ("OPEN SESAME").
- A packet on another port of the sequence breaks the attempt.  Unlike
  knockd (which swallows that packet) it may start a new attempt when it is
  the first step, so a client that restarts its knock is not penalised.
- Fixes over knockd: ``seq_timeout`` is enforced on time (``expire``), not
  when the next packet arrives; a retransmission of the step just matched
  (same port and protocol, within ``retransmit_window`` seconds) is ignored
  instead of breaking the sequence; memory is bounded (``max_attempts``).
- Eviction when full: the attempt with the least progress, oldest first, is
  dropped; a new attempt never evicts one that made more progress (the new
  one is dropped instead), so a flood of first knocks cannot push out a
  knocker in the middle of its sequence.
- One-time sequences: after an opening, the used line is disabled and the
  stanza switches to the next sequence; with none left the stanza is
  disabled, as in knockd.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import ipaddress
import time

from ..sequence import KnockValueError, parse_tcpflags, show

DEFAULT_MAX_ATTEMPTS = 4096
DEFAULT_RETRANSMIT_WINDOW = 5.0   # covers the 1 s and 3 s SYN retransmissions

# kind: 'stage', 'open', 'timeout', 'reset', 'evicted', 'exhausted', 'sequence'
Event = collections.namedtuple('Event', ['kind', 'stanza', 'source', 'stage', 'family'])


def normalize_address(text):
    """The canonical text of a numeric address, or None when it is not one."""
    try:
        return str(ipaddress.ip_address(str(text).strip()))
    except ValueError:
        return None


class TrackedStanza:
    """What the state machine needs from a knockd stanza (duck-typed input)."""

    def __init__(self, stanza, index):
        self.index = index
        self.stanza = stanza
        self.name = stanza.name
        self.seq_timeout = float(getattr(stanza, 'seq_timeout', None) or 25)
        flags = getattr(stanza, 'tcpflags', None) or ()
        if isinstance(flags, str):
            flags = parse_tcpflags(flags)
        self.required = frozenset(flag.name for flag in flags if not flag.negated)
        self.forbidden = frozenset(flag.name for flag in flags if flag.negated)
        target = getattr(stanza, 'target', None)
        self.target = normalize_address(target) if target else None
        if target and self.target is None:
            # never "no target": that would count knocks to every local address
            raise KnockValueError('stanza [%s]: Target %s is not an IPv4 or IPv6 address' % (self.name, show(target)))
        self.one_time = None
        self.enabled = True
        self.set_sequence(tuple(getattr(stanza, 'sequence', None) or ()))

    def set_sequence(self, steps):
        self.steps = tuple((step.port, step.protocol) for step in steps)
        self.step_objects = tuple(steps)
        self.relevant = frozenset(self.steps)
        self.enabled = bool(self.steps)

    def flags_match(self, flags):
        return self.required <= flags and not (self.forbidden & flags)


class Attempt:
    __slots__ = ('stage', 'start', 'last_time')

    def __init__(self, start):
        self.stage = 0
        self.start = start
        self.last_time = start


class SequenceTracker:
    """Follow knock attempts of every source for every stanza.

    ``stanzas``: objects with name, sequence (tuple of Step), seq_timeout,
    tcpflags (tuple of TcpFlag), target; ``one_time`` maps a stanza name to an
    object with ``current()``/``consume(steps)`` (OneTimeSequences).
    ``local_addresses``: addresses of the host (None = accept any destination).
    """

    def __init__(self, stanzas, local_addresses=None, clock=time.monotonic,
                 max_attempts=DEFAULT_MAX_ATTEMPTS, retransmit_window=DEFAULT_RETRANSMIT_WINDOW,
                 one_time=None, ipv4_only=False):
        self.clock = clock
        self.max_attempts = max(1, int(max_attempts))
        self.retransmit_window = retransmit_window
        self.ipv4_only = ipv4_only
        self.stanzas = [TrackedStanza(stanza, index) for index, stanza in enumerate(stanzas)]
        self.events_at_start = []
        for tracked in self.stanzas:
            source = (one_time or {}).get(tracked.name)
            if source is not None:
                tracked.one_time = source
                steps = source.current()
                if steps is None:
                    tracked.enabled = False
                    self.events_at_start.append(Event('exhausted', tracked.name, None, 0, None))
                else:
                    tracked.set_sequence(steps)
        self.local_addresses = None
        self.set_local_addresses(local_addresses)
        # (stanza index, source) -> Attempt
        self.attempts = {}
        # per stanza: source -> None, in order of attempt start (for expiry)
        self.by_start = [collections.OrderedDict() for _stanza in self.stanzas]
        # per stage (1..): (stanza index, source) -> None, oldest first (for eviction)
        self.by_stage = collections.defaultdict(collections.OrderedDict)

    # -- configuration -------------------------------------------------
    def set_local_addresses(self, addresses):
        if addresses is None:
            self.local_addresses = None
        else:
            self.local_addresses = frozenset(
                address for address in (normalize_address(item) for item in addresses) if address)

    def ports(self):
        """Every (port, protocol) some enabled stanza listens to (for a capture filter)."""
        result = set()
        for tracked in self.stanzas:
            if tracked.enabled:
                result |= tracked.relevant
        return result

    def __len__(self):
        return len(self.attempts)

    # -- bookkeeping -----------------------------------------------------
    def _forget(self, key):
        attempt = self.attempts.pop(key, None)
        if attempt is None:
            return None
        self.by_start[key[0]].pop(key[1], None)
        stage_bucket = self.by_stage.get(attempt.stage)
        if stage_bucket is not None:
            stage_bucket.pop(key, None)
            if not stage_bucket:
                del self.by_stage[attempt.stage]
        return attempt

    def _set_stage(self, key, attempt, stage):
        bucket = self.by_stage.get(attempt.stage)
        if bucket is not None:
            bucket.pop(key, None)
            if not bucket:
                del self.by_stage[attempt.stage]
        attempt.stage = stage
        self.by_stage[stage][key] = None

    def _make_room(self, events):
        """Evict the least advanced, oldest attempt; False if every one made more progress than 1 step."""
        if len(self.attempts) < self.max_attempts:
            return True
        lowest = min(self.by_stage)
        if lowest > 1:
            return False
        key = next(iter(self.by_stage[lowest]))
        attempt = self._forget(key)
        events.append(Event('evicted', self.stanzas[key[0]].name, key[1], attempt.stage, None))
        return True

    # -- time --------------------------------------------------------------
    def next_deadline(self):
        """Monotonic time when the oldest attempt times out, or None."""
        deadline = None
        for tracked, order in zip(self.stanzas, self.by_start):
            if order:
                attempt = self.attempts[(tracked.index, next(iter(order)))]
                candidate = attempt.start + tracked.seq_timeout
                if deadline is None or candidate < deadline:
                    deadline = candidate
        return deadline

    def expire(self, now=None):
        """Drop attempts older than their stanza's seq_timeout; return 'timeout' events."""
        if now is None:
            now = self.clock()
        events = []
        for tracked, order in zip(self.stanzas, self.by_start):
            while order:
                source = next(iter(order))
                key = (tracked.index, source)
                attempt = self.attempts[key]
                if now - attempt.start < tracked.seq_timeout:
                    break
                self._forget(key)
                events.append(Event('timeout', tracked.name, source, attempt.stage, None))
        return events

    # -- packets -------------------------------------------------------------
    def _destination_ok(self, tracked, dst):
        if tracked.target:
            return dst == tracked.target
        return self.local_addresses is None or dst in self.local_addresses

    def feed(self, packet, now=None):
        """Account one parsed Packet; return the list of Events it caused."""
        if now is None:
            now = self.clock()
        events = self.expire(now)
        if packet is not None:
            self.feed_unexpired(packet, now, events)
        return events

    def feed_many(self, packets, now=None):
        """Account parsed Packets that arrived together (``now``): one expiry pass, then each packet.

        Same events as feeding them one by one at ``now``; cheaper under a flood.
        """
        if now is None:
            now = self.clock()
        events = self.expire(now)
        feed = self.feed_unexpired
        for packet in packets:
            feed(packet, now, events)
        return events

    def feed_unexpired(self, packet, now, events):
        """Account one Packet (not None), appending its Events to ``events``; no expiry pass."""
        if self.ipv4_only and packet.family == 6:
            return
        step = (packet.dport, packet.proto)
        source = packet.src
        dst = None
        for tracked in self.stanzas:
            if not tracked.enabled or step not in tracked.relevant:
                continue
            if packet.proto == 'tcp' and not (tracked.required <= packet.flags
                                              and not tracked.forbidden & packet.flags):
                continue  # knockd: wrong flags are ignored, never a reset (flags_match, inlined)
            if dst is None:
                dst = normalize_address(packet.dst) if ':' in packet.dst else packet.dst
            if not self._destination_ok(tracked, dst):
                continue
            self._feed_stanza(tracked, source, step, packet.family, now, events)

    def _feed_stanza(self, tracked, source, step, family, now, events):
        key = (tracked.index, source)
        attempt = self.attempts.get(key)
        if attempt is not None:
            if tracked.steps[attempt.stage] == step:
                self._advance(tracked, key, attempt, family, now, events)
                return
            if (tracked.steps[attempt.stage - 1] == step
                    and now - attempt.last_time <= self.retransmit_window):
                return  # retransmission of the step just matched
            self._forget(key)
            events.append(Event('reset', tracked.name, source, attempt.stage, family))
        if tracked.steps[0] != step:
            return
        if not self._make_room(events):
            events.append(Event('evicted', tracked.name, source, 0, family))
            return
        attempt = Attempt(now)
        self.attempts[key] = attempt
        self.by_start[tracked.index][source] = None
        self._advance(tracked, key, attempt, family, now, events)

    def _advance(self, tracked, key, attempt, family, now, events):
        stage = attempt.stage + 1
        attempt.last_time = now
        events.append(Event('stage', tracked.name, key[1], stage, family))
        if stage < len(tracked.steps):
            self._set_stage(key, attempt, stage)
            return
        self._forget(key)
        events.append(Event('open', tracked.name, key[1], stage, family))
        if tracked.one_time is not None:
            self._next_one_time_sequence(tracked, events)

    def _next_one_time_sequence(self, tracked, events):
        for key in [key for key in self.attempts if key[0] == tracked.index]:
            self._forget(key)
        try:
            steps = tracked.one_time.consume(tracked.step_objects)
        except (IOError, OSError):
            steps = None
        if steps is None:
            tracked.enabled = False
            events.append(Event('exhausted', tracked.name, None, 0, None))
        else:
            tracked.set_sequence(steps)
            events.append(Event('sequence', tracked.name, None, 0, None))
