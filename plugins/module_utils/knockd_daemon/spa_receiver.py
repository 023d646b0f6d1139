# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""What ``portknock-fwknopd`` decides for one SPA packet: verify, replay, access (pure).

The packet's UDP payload goes through the same steps as in fwknopd 2.6.10:

1. the access.conf stanzas whose ``SOURCE`` holds the packet's source address, in file order
   (none: ``no stanza``); the first whose HMAC key authenticates it (spa.Decoder: the HMAC,
   compared in constant time, before anything else of the packet is trusted) and whose key
   decrypts it takes it; when none does: ``bad HMAC``, ``decrypt failure`` or ``not SPA``.
   Data that no key could make SPA (not base64, a length or first character that Rijndael
   text never has, an HMAC's last character a digest never gives) is refused before any
   HMAC is computed, with the reason the HMAC or the decryption would have given;
2. once the HMAC matches, before decryption: a digest already in the replay cache is refused
   (``replay``).  fwknopd computes the digest of every packet first; this receiver only of
   authentic ones (junk costs no SHA-256).  The same packets are refused (a replay that no
   stanza of its new source authenticates is refused as ``bad HMAC``);
3. its digest goes into the replay cache (a cache full of live entries refuses it);
4. ``ENABLE_SPA_PACKET_AGING`` (default Y): the message's timestamp must be within
   ``MAX_SPA_PACKET_AGE`` seconds of the server's clock, either way (the clock-skew
   allowance is that same age, as in fwknopd: ``|now - timestamp| <= MAX_SPA_PACKET_AGE``):
   ``too old`` / ``too far in the future``;
5. ``ACCESS_EXPIRE`` / ``ACCESS_EXPIRE_EPOCH`` of the stanza: ``stanza expired``;
6. the address to open is the one inside the message; ``0.0.0.0`` (``::`` for IPv6, the
   client's ``-s``) is refused under ``REQUIRE_SOURCE_ADDRESS`` (``source address required``)
   and otherwise means the packet's source.  Extension (``--require-packet-source``): the
   address to open must also be the packet's source (``source mismatch``);
7. ``REQUIRE_USERNAME``: ``username mismatch``;
8. every requested proto/port must be in ``OPEN_PORTS`` (when given) and none in
   ``RESTRICT_PORTS`` (``port not allowed``);
9. the door stays open ``FW_ACCESS_TIMEOUT`` seconds, or the client's timeout (message type
   3, fwknop's ``-f``) capped at the stanza's ``MAX_FW_TIMEOUT``.

Beyond fwknopd: IPv6 (packets from IPv6 sources, IPv6 addresses in the message and in
``SOURCE``).  ``decide`` never raises on any payload; a Decision never holds key material or
the plaintext beyond the address and the access list (what the log line shows).

Extension, the per-source penalty (``penalty_failures``, ``penalty_seconds``; the daemon's
``--penalty-failures``/``--penalty-seconds``): a source address with ``penalty_failures``
refused packets within one second (junk the cheap checks refuse, an HMAC that did not match, a
failed decryption, a replay) has its packets refused unexamined (``penalized``: a dict lookup
before any check) for ``penalty_seconds``, so one flooding address cannot take the time that
legit packets from other addresses need (even cheap junk costs the parse and the checks, which
at the sender's maximum rate is more than one core has); the packet that starts a penalty says so in its Decision's detail (the daemon logs
that line, not one per penalized packet); a source that has not failed is never affected.
The daemon also drops a penalized source's packets in the kernel, in the capture socket's
filter (``penalized_sources``, ``penalty_changes``, ``next_penalty_end``): at the sender's
maximum rate even the dict lookup and the parse of each junk packet took more than a core
has.  Those packets never reach the daemon, so ``penalized`` counts only what came before.
Trade-offs: an attacker that spoofs many source addresses is not slowed down; a legit client
behind the flooder's address (NAT) waits until the flood stops; an attacker that can spoof a
client's address can keep that address penalized.  0 failures: no penalty.

Per-packet cost: the source's stanzas are looked up in a small dict keyed by its text (no
ipaddress objects before a packet is accepted), each stanza's spa.Decoder is built once.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import ipaddress
import socket
import struct
import time

from .. import spa

# refusal reasons: the words of the log lines and the keys of the counters
REPLAY = 'replay'
NO_STANZA = 'no stanza'
BAD_HMAC = 'bad HMAC'
DECRYPT = 'decrypt failure'
NOT_SPA = 'not SPA'
CACHE_FULL = 'replay cache full'
TOO_OLD = 'too old'
TOO_NEW = 'too far in the future'
EXPIRED = 'stanza expired'
SOURCE_REQUIRED = 'source address required'
SOURCE_MISMATCH = 'source mismatch'
USERNAME = 'username mismatch'
PORT = 'port not allowed'
PENALIZED = 'penalized'
REASONS = (REPLAY, NO_STANZA, BAD_HMAC, DECRYPT, NOT_SPA, CACHE_FULL, TOO_OLD, TOO_NEW, EXPIRED,
           SOURCE_REQUIRED, SOURCE_MISMATCH, USERNAME, PORT, PENALIZED)
_RANK = {NOT_SPA: 0, BAD_HMAC: 1, DECRYPT: 2}
ANY_ADDRESSES = ('0.0.0.0', '::')
_U16 = struct.Struct('!H')
_UDP = struct.Struct('!HHH')
DEFAULT_PENALTY_FAILURES = 20     # failed packets (HMAC or decryption) in one second from one source ...
DEFAULT_PENALTY_SECONDS = 5       # ... and it is ignored this long (seconds)
PENALTY_WINDOW = 1.0
MAX_TRACKED_SOURCES = 16384       # sources with failures in the current window / penalized at once
MAX_CACHED_SOURCES = 4096         # source -> its stanzas
_FAMILIES = ((4, socket.AF_INET), (6, socket.AF_INET6))

Decision = collections.namedtuple('Decision', [
    'accepted',   # bool
    'reason',     # None when accepted, else one of REASONS
    'src',        # the packet's source address (text)
    'address',    # the address to open (accepted), or the message's address when known, else None
    'access',     # tuple of spa.Access requested (when decrypted), else ()
    'timeout',    # seconds the doors stay open (accepted), else None
    'stanza',     # the access.conf line of the stanza that took it, or None
    'detail',     # a few words more for the log (never key material), or ''
])


def refused(reason, src, address=None, access=(), stanza=None, detail=''):
    return _new_decision(Decision, (False, reason, src, address, tuple(access), None, stanza, detail))


_new_decision = tuple.__new__     # a Decision without the namedtuple's Python __new__ (junk is many)


def udp_payload(data, packet):
    """The UDP payload of the bare IP packet ``data`` (``packet``: its packet.Packet), or None.

    The payload is the end of the datagram (IPv4 total length, IPv6 payload length): its UDP
    header is found from the UDP length and must carry the ports the parser read.
    """
    try:
        if packet is None or packet.proto != 'udp':
            return None
        if data[0] == 0x45:      # IPv4 without options (the flood case): the header is 20 bytes
            end = min(len(data), _U16.unpack_from(data, 2)[0])
            sport, dport, length = _UDP.unpack_from(data, 20)
            if sport == packet.sport and dport == packet.dport and length == end - 20 and length >= 8:
                return bytes(data[28:end])
            return None
        version = data[0] >> 4
        if version == 4:
            end = min(len(data), _U16.unpack_from(data, 2)[0])
        elif version == 6:
            length = _U16.unpack_from(data, 4)[0]
            end = min(len(data), 40 + length) if length else len(data)
        else:
            return None
        header = _find_udp_header(data, end, packet)
        if header is None:
            return None
        return bytes(data[header + 8:end])
    except (IndexError, struct.error, TypeError, ValueError):
        return None


def _find_udp_header(data, end, packet):
    """Offset of the UDP header: IPv4's header length; IPv6: after 8-byte aligned extension headers."""
    if data[0] >> 4 == 4:
        offsets = ((data[0] & 0x0F) * 4,)
    else:
        offsets = range(40, min(end - 7, 40 + 8 * 64), 8)
    for offset in offsets:
        if offset + 8 > end:
            break
        sport, dport, length = _UDP.unpack_from(data, offset)
        if (sport, dport) == (packet.sport, packet.dport) and offset + length == end and length >= 8:
            return offset
    return None


def _address_key(text):
    """``(version, integer)`` of a numeric address (no scope), or None: what SOURCE networks are matched with."""
    for version, family in _FAMILIES:
        try:
            return version, int.from_bytes(socket.inet_pton(family, text), 'big')
        except (OSError, ValueError, TypeError):
            continue
    return None


def _networks(stanza):
    """None for ``SOURCE ANY``, else ``(version, network, mask)`` integers of its networks."""
    if stanza.source == 'ANY':
        return None
    return tuple((net.version, int(net.network_address), int(net.netmask)) for net in stanza.source)


class _Stanza:
    """An access.conf stanza and what is computed once for it: its networks, its spa.Decoder."""
    __slots__ = ('stanza', 'networks', 'decoder', 'refusal')

    def __init__(self, stanza):
        self.stanza = stanza
        self.networks = _networks(stanza)
        self.decoder = None
        try:
            self.decoder = spa.Decoder(stanza.key, stanza.hmac_key, stanza.hmac_digest_type)
        except spa.SpaError as error:     # keys fwknop_conf would have refused: every packet fails
            self.refusal = _reason_of(error)
        else:   # what a packet it does not verify is refused as (the HMAC; without HMAC key the decryption)
            self.refusal = BAD_HMAC if self.decoder.hmac_length else DECRYPT

    def holds(self, address):
        if self.networks is None:
            return True
        version, number = address
        return any(version == net_version and number & mask == network
                   for net_version, network, mask in self.networks)


def _expire_epoch(stanza):
    """ACCESS_EXPIRE_EPOCH, or ACCESS_EXPIRE (MM/DD/YYYY, end of that day... as fwknopd: its start), or None."""
    options = getattr(stanza, 'options', None) or {}
    if options.get('ACCESS_EXPIRE_EPOCH', '').isdigit():
        return int(options['ACCESS_EXPIRE_EPOCH'])
    text = options.get('ACCESS_EXPIRE')
    if text:
        try:
            return int(time.mktime(time.strptime(text.strip(), '%m/%d/%Y')))
        except (ValueError, OverflowError):
            return 0     # a date fwknopd could not read either: expired (fail closed)
    return None


def _worse(worst, reason):
    return reason if worst is None or _RANK[reason] > _RANK[worst] else worst


def _reason_of(error):
    if isinstance(error, spa.SpaAuthError):
        return BAD_HMAC
    text = str(error)
    if 'HMAC' in text:
        return BAD_HMAC
    if 'decrypt' in text or 'digest' in text or 'field' in text or 'message' in text or 'Rijndael' in text:
        return DECRYPT
    return NOT_SPA


class SpaReceiver:
    """Decisions for SPA packets under one fwknopd.conf + access.conf.

    ``config``: fwknop_conf.FwknopdConfig; ``stanzas``: [fwknop_conf.AccessStanza];
    ``cache``: replay_cache.ReplayCache; ``clock``: wall clock (SPA timestamps are epoch seconds);
    ``penalty_failures``/``penalty_seconds``: the per-source penalty (0 failures: none), timed
    with ``monotonic``.  ``penalties``: penalties started, ``penalized``: packets they refused.
    """

    def __init__(self, config, stanzas, cache, require_packet_source=False, clock=time.time,
                 penalty_failures=DEFAULT_PENALTY_FAILURES, penalty_seconds=DEFAULT_PENALTY_SECONDS,
                 monotonic=time.monotonic):
        self.config = config
        self.stanzas = list(stanzas)
        self.cache = cache
        self.require_packet_source = require_packet_source
        self.clock = clock
        self.max_age = config.max_spa_packet_age if config.enable_spa_packet_aging else None
        self.ports = frozenset([config.spa_port])
        self._checks = [_Stanza(stanza) for stanza in self.stanzas]
        self._sources = {}             # source text -> tuple of its _Stanza, or None (not an address)
        self.penalty_failures = max(0, int(penalty_failures or 0))
        self.penalty_seconds = float(penalty_seconds)
        self.monotonic = monotonic
        self._failures = {}            # source text -> failed packets in the current window
        self._window = None            # monotonic start of that window
        self._penalized_until = {}     # source text -> monotonic end of its penalty
        self.penalties = 0
        self.penalized = 0
        self.penalty_changes = 0       # bumped when a penalty starts or ends: the kernel filter follows

    def decide(self, payload, src, sport=0, dst='0.0.0.0', dport=0):
        """One Decision for the UDP ``payload`` (bytes) from ``src`` (text); never raises."""
        try:
            return self._decide(payload, src, sport, dst, dport)
        except Exception as error:  # pylint: disable=broad-except
            # belt and braces: a bug here must refuse the packet, not stop the daemon
            return refused(NOT_SPA, str(src), detail='unexpected %s' % type(error).__name__)

    def _stanzas_of(self, src):
        checks = self._sources.get(src, False)
        if checks is False:
            address = _address_key(src)
            checks = None if address is None else tuple(check for check in self._checks if check.holds(address))
            if len(self._sources) >= MAX_CACHED_SOURCES:
                self._sources.clear()
            self._sources[src] = checks
        return checks

    def _decide(self, payload, src, sport, dst, dport):
        if not isinstance(src, str):
            src = str(src)
        if self._penalized_until:
            until = self._penalized_until.get(src)
            if until is not None:
                if self.monotonic() < until:
                    self.penalized += 1
                    return refused(PENALIZED, src)
                del self._penalized_until[src]
                self.penalty_changes += 1
        checks = self._stanzas_of(src)
        if checks is None:
            return refused(NOT_SPA, src, detail='source is not an address')
        if not checks:
            return refused(NO_STANZA, src)
        try:
            raw = spa.check_data(payload)
        except spa.SpaError:
            return refused(NOT_SPA, src, detail=self._failed(src) if self.penalty_failures else '')
        message = stanza = digest = None
        worst = None
        for check in checks:
            decoder = check.decoder
            text, computed = None, False
            if decoder is not None:
                text, computed = decoder.verify(raw)
            if text is None:
                worst = _worse(worst, check.refusal)
                continue
            if digest is None:
                digest = spa.replay_digest(raw)
                if digest in self.cache:
                    return refused(REPLAY, src, detail=self._failed(src) if self.penalty_failures else '')
            try:
                message = decoder.open(text, digest)
            except spa.SpaDependencyError:
                raise
            except spa.SpaError as error:
                worst = _worse(worst, _reason_of(error))
                continue
            stanza = check.stanza
            break
        if stanza is None:
            detail = self._failed(src) if self.penalty_failures else ''
            return refused(worst or NOT_SPA, src, detail=detail)
        return self._check(message, stanza, src, sport, dst, dport, digest)

    def _failed(self, src):
        """Count a failed packet of ``src``; the detail for the log when it starts a penalty, else ''."""
        now = self.monotonic()
        failures = self._failures
        if self._window is None or now - self._window >= PENALTY_WINDOW:
            failures.clear()
            self._window = now
            penalized = self._penalized_until
            if len(penalized) >= MAX_TRACKED_SOURCES // 2:
                self.expire_penalties(now)
        count = failures.get(src, 0) + 1
        if count < self.penalty_failures:
            if count > 1 or len(failures) < MAX_TRACKED_SOURCES:
                failures[src] = count
            return ''
        failures.pop(src, None)
        if len(self._penalized_until) >= MAX_TRACKED_SOURCES:
            return ''
        self._penalized_until[src] = now + self.penalty_seconds
        self.penalties += 1
        self.penalty_changes += 1
        return ('%d failed packets from this source within %g s: its packets are refused unexamined for %g s'
                % (count, PENALTY_WINDOW, self.penalty_seconds))

    def expire_penalties(self, now=None):
        """Forget the penalties that ended by ``now`` (monotonic; default: the receiver's clock).

        Every penalty lasts ``penalty_seconds`` from a monotonic start, so the dict's order (the
        order they started) is the order they end: only its head is looked at, however many
        sources a spoofing flood got penalized."""
        now = self.monotonic() if now is None else now
        penalized = self._penalized_until
        ended = 0
        while penalized:
            source = next(iter(penalized))
            if penalized[source] > now:
                break
            del penalized[source]
            ended += 1
        if ended:
            self.penalty_changes += 1

    def penalized_sources(self):
        """The sources under a penalty, the most recently penalized first (texts)."""
        return list(reversed(list(self._penalized_until)))

    def next_penalty_end(self):
        """The monotonic time the next penalty ends (the oldest one's), or None."""
        penalized = self._penalized_until
        return penalized[next(iter(penalized))] if penalized else None

    def _check(self, message, stanza, src, sport, dst, dport, digest):
        now = self.clock()
        line = stanza.line

        def no(reason, address=message.source, detail=''):
            return refused(reason, src, address, message.access, line, detail)

        if not self.cache.add(digest, src, sport, dst, dport, now):
            return no(CACHE_FULL)
        if self.max_age is not None:
            skew = int(now) - message.timestamp
            if skew > self.max_age:
                return no(TOO_OLD, detail='%d s old, MAX_SPA_PACKET_AGE %d' % (skew, self.max_age))
            if -skew > self.max_age:
                return no(TOO_NEW, detail='%d s ahead, MAX_SPA_PACKET_AGE %d' % (-skew, self.max_age))
        expires = _expire_epoch(stanza)
        if expires is not None and now >= expires:
            return no(EXPIRED)
        address = message.source
        if address in ANY_ADDRESSES:
            if stanza.require_source_address:
                return no(SOURCE_REQUIRED, detail='the message asks for %s' % address)
            address = src
        if self.require_packet_source and _address_key(address) != _address_key(src):
            return no(SOURCE_MISMATCH, address, 'the message asks for %s' % address)
        username = (getattr(stanza, 'options', None) or {}).get('REQUIRE_USERNAME')
        if username and message.username != username:
            return no(USERNAME, address)
        allowed = set(stanza.open_ports or ())
        restricted = set(getattr(stanza, 'restrict_ports', None) or ())
        for item in message.access:
            wanted = (item.protocol, item.port)
            if (allowed and wanted not in allowed) or wanted in restricted:
                return no(PORT, address, str(item))
        timeout = stanza.fw_access_timeout
        if message.client_timeout:
            timeout = message.client_timeout
            cap = getattr(stanza, 'max_fw_timeout', None)
            if cap:
                timeout = min(timeout, cap)
        # the accepted path (once per legit packet): the address as ipaddress writes it, as always
        return Decision(True, None, src, str(ipaddress.ip_address(address)), message.access, int(timeout), line, '')
