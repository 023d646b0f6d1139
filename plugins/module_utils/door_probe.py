# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""The door audit's probe: prove from outside that a door is shut to strangers and opens
for the knocker, with real packets from two source addresses of one vantage host.

For one door, one target address and one address family, in this order:

1. ``closed_to_stranger``: the stranger cannot connect to the protected port;
2. ``closed_to_knocker``: nor can the knocker, before its knock (an open window left by an
   earlier knock from the same address, such as Ansible's own, is waited out first);
3. ``wrong_order_stays_closed``: the stranger knocks the steps in reverse order and still
   cannot connect (doors of one step have no wrong order: ``skipped``); for an SPA door the
   stranger sends an SPA packet made with wrong keys;
4. ``opens_for_knocker``: after the right knock the knocker connects within ``deadline``
   seconds (the time it took is reported);
5. ``closed_to_stranger_while_open``: meanwhile the stranger still cannot connect;
6. ``closes_after_window``: ``window`` + ``margin`` seconds after the knock the knocker
   cannot open a new connection;
7. ``replay_stays_closed`` (SPA doors): the knocker's SPA packet sent again byte for byte does
   not open the door again (knock doors: ``skipped``; docs/spa.md says which resist replay).

Nothing is changed on the host; the only packets sent are the knocks and the connection
attempts of these checks.  The connection and knock functions and the clock are passed in,
so the sequence of checks is unit-tested without a network; the module ``door_probe`` wires
them to the one knock sender and real sockets.  Results never hold a sequence.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import socket
import time

from . import spa
from .door import is_spa
from .knock_sender import KnockSendError, send_datagram, send_knocks, sockaddr
from .spa_client import claimed_source

CHECKS = ('closed_to_stranger', 'closed_to_knocker', 'wrong_order_stays_closed', 'opens_for_knocker',
          'closed_to_stranger_while_open', 'closes_after_window', 'replay_stays_closed')
CHECK_TITLES = {
    'closed_to_stranger': 'closed to stranger',
    'closed_to_knocker': 'closed to knocker before the knock',
    'wrong_order_stays_closed': 'wrong-order knock stays closed',
    'opens_for_knocker': 'opens for knocker',
    'closed_to_stranger_while_open': 'closed to stranger while open',
    'closes_after_window': 'closes after the window',
    'replay_stays_closed': 'a replayed SPA packet stays closed',
}


class ProbeError(Exception):
    """The probe could not be run (bad source address, no route): names the value."""


def tcp_connects(address, port, source=None, timeout=1.0):
    """True if a TCP connection to ``address``:``port`` from ``source`` is accepted."""
    family, addr = sockaddr(address, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if source:
            try:
                sock.bind(sockaddr(source, 0, family)[1])
            except (OSError, socket.error) as exc:
                raise ProbeError('cannot use source address %s: %s' % (source, exc))
        sock.settimeout(timeout)
        try:
            sock.connect(addr)
            return True
        except (OSError, socket.error):
            return False
    finally:
        sock.close()


def family_of(address):
    return 'ipv6' if ':' in address else 'ipv4'


class Probe(object):
    """Runs the checks of one door on one address.  ``connect(address, port, source, quick=False)``
    -> bool (quick: a short attempt, while waiting for the door to open), ``knock(address, steps, source)``,
    ``send_spa(address, door, source, attempt)`` (attempt: ``right``, ``wrong_keys`` or ``replay``, the
    last ``right`` packet again), ``sleep(seconds)`` and ``now()`` are injected."""

    def __init__(self, connect, knock, sleep=time.sleep, now=time.time, deadline=5.0, margin=3.0, poll=0.1,
                 send_spa=None):
        self.connect, self.knock, self.sleep, self.now, self.send_spa = connect, knock, sleep, now, send_spa
        self.deadline, self.margin, self.poll = float(deadline), float(margin), float(poll)

    def _closed(self, address, port, source):
        return not self.connect(address, port, source)

    def run(self, door, address, knocker, stranger, window):
        """The checks' results, in order: dicts with check, ok, skipped, detail, seconds."""
        port = door.ports[0]
        steps = list(door.sequence)
        spa_door = is_spa(door)
        results = []

        def knock(source, attempt):
            if spa_door:
                self.send_spa(address, door, source, attempt)
            else:
                self.knock(address, list(reversed(steps)) if attempt == 'wrong_order' else steps, source)

        def record(check, ok, detail='', seconds=None, skipped=False):
            results.append(dict(check=check, title=CHECK_TITLES[check], ok=bool(ok), skipped=skipped,
                                detail=detail, seconds=seconds))
            return ok

        closed = self._closed(address, port, stranger)
        record('closed_to_stranger', closed,
               '' if closed else 'port %d accepted a connection from the stranger %s' % (port, stranger))
        # An earlier knock from the knocker's address (Ansible's own) may still hold the door open.
        waited_until = self.now() + window + self.margin
        while not self._closed(address, port, knocker) and self.now() < waited_until:
            self.sleep(self.poll * 4)
        closed = self._closed(address, port, knocker)
        record('closed_to_knocker', closed,
               '' if closed else 'port %d accepted the knocker %s before it knocked' % (port, knocker))
        if spa_door:
            knock(stranger, 'wrong_keys')
            self.sleep(self.poll)
            closed = self._closed(address, port, stranger)
            record('wrong_order_stays_closed', closed,
                   'an SPA packet with wrong keys' if closed else 'an SPA packet with wrong keys opened port %d' % port)
        elif len(steps) < 2:
            record('wrong_order_stays_closed', True, 'a one-step door has no wrong order', skipped=True)
        else:
            knock(stranger, 'wrong_order')
            self.sleep(self.poll)
            closed = self._closed(address, port, stranger)
            record('wrong_order_stays_closed', closed,
                   '' if closed else 'the steps in reverse order opened port %d' % port)
        started = self.now()
        knock(knocker, 'right')
        opened = None
        while True:
            if self.connect(address, port, knocker, quick=True):
                opened = self.now() - started
                break
            if self.now() - started >= self.deadline:
                break
            self.sleep(self.poll)
        record('opens_for_knocker', opened is not None,
               '' if opened is not None else 'port %d stayed closed %.1f s after the knock' % (port, self.deadline),
               seconds=None if opened is None else round(opened, 3))
        closed = self._closed(address, port, stranger)
        record('closed_to_stranger_while_open', closed,
               '' if closed else 'port %d accepted the stranger %s while open for the knocker' % (port, stranger))
        rest = started + window + self.margin - self.now()
        if rest > 0:
            self.sleep(rest)
        closed = self._closed(address, port, knocker)
        record('closes_after_window', closed,
               '' if closed else 'port %d still accepted the knocker %.0f s after the knock (window %d s)' % (
                   port, window + self.margin, window))
        if not spa_door:
            record('replay_stays_closed', True, 'knock doors are not probed for replay (docs/spa.md)', skipped=True)
            return results
        knock(knocker, 'replay')
        replayed = self.now()
        opened = False
        while not opened and self.now() - replayed < min(self.deadline, 2.0):
            opened = self.connect(address, port, knocker, quick=True)
            if not opened:
                self.sleep(self.poll)
        record('replay_stays_closed', not opened,
               '' if not opened else 'the knocker\'s SPA packet sent again opened port %d' % port)
        return results


class SpaSender(object):
    """The audit's SPA packets for one door: the right one (kept, to replay it) or one made with
    wrong keys; one datagram each, through the one sender.  Keys never leave this object."""

    def __init__(self):
        self.last = {}

    def __call__(self, address, door, source, attempt):
        family = family_of(address)
        try:
            if attempt == 'replay':
                data = self.last[(address, door.name)]
            else:
                if attempt == 'wrong_keys':
                    key, hmac_key = os.urandom(32), os.urandom(64)
                else:
                    key = spa.key_from_base64(door.key_base64, 'key_base64')
                    hmac_key = spa.hmac_key_from_base64(door.hmac_key_base64, 'hmac_key_base64')
                claim = claimed_source(address, family, source=source)
                data = spa.encode(claim, '%s/%d' % (door.protocol, door.ports[0]), key, hmac_key,
                                  hmac_digest_type=door.hmac_digest_type).encode('ascii')
                if attempt == 'right':
                    self.last[(address, door.name)] = data
            send_datagram(address, door.spa_port, data, family, source)
        except (KnockSendError, spa.SpaError, KeyError) as exc:
            # neither a key nor the packet in the message: the codec's errors never hold one
            why = (': %s' % exc) if isinstance(exc, spa.SpaError) else ''
            raise ProbeError('could not send the %s SPA packet to %s from %s%s'
                             % (attempt.replace('_', ' '), address, source or 'the default address', why))


def probe_door(door, address, knocker, stranger, window, deadline=5.0, margin=3.0, delay_ms=20, timeout=1.0):
    """Run the checks for real: the one knock sender and TCP connections from the vantage."""
    def connect(addr, port, source, quick=False):
        # while waiting for the door to open, short attempts: the time to open is measured finer
        return tcp_connects(addr, port, source, min(timeout, 0.2) if quick else timeout)

    def knock(addr, steps, source):
        try:
            send_knocks(addr, steps, delay_ms=delay_ms, source=source)
        except KnockSendError:
            # the sender's message may name a step: say only what failed
            raise ProbeError('could not knock %s from %s' % (addr, source or 'the default address'))

    return Probe(connect, knock, deadline=deadline, margin=margin, send_spa=SpaSender()).run(
        door, address, knocker, stranger, window)
