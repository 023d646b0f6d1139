# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""What ``portknock-fwknopd`` decides for one SPA packet: verify, replay, access (pure).

The packet's UDP payload goes through the same steps as in fwknopd 2.6.10:

1. a digest already in the replay cache: refused (``replay``), before any decryption;
2. the access.conf stanzas whose ``SOURCE`` holds the packet's source address, in file order
   (none: ``no stanza``); the first whose keys authenticate (HMAC) and decrypt it
   (spa.decode) takes it; when none does: ``bad HMAC``, ``decrypt failure`` or ``not SPA``;
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
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import ipaddress
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
REASONS = (REPLAY, NO_STANZA, BAD_HMAC, DECRYPT, NOT_SPA, CACHE_FULL, TOO_OLD, TOO_NEW, EXPIRED,
           SOURCE_REQUIRED, SOURCE_MISMATCH, USERNAME, PORT)
_RANK = {NOT_SPA: 0, BAD_HMAC: 1, DECRYPT: 2}
ANY_ADDRESSES = ('0.0.0.0', '::')
_U16 = struct.Struct('!H')

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
    return Decision(False, reason, src, address, tuple(access), None, stanza, detail)


def udp_payload(data, packet):
    """The UDP payload of the bare IP packet ``data`` (``packet``: its packet.Packet), or None.

    The payload is the end of the datagram (IPv4 total length, IPv6 payload length): its UDP
    header is found from the UDP length and must carry the ports the parser read.
    """
    try:
        if packet is None or packet.proto != 'udp':
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
        offsets = [(data[0] & 0x0F) * 4]
    else:
        offsets = range(40, min(end - 7, 40 + 8 * 64), 8)
    for offset in offsets:
        if offset + 8 > end:
            break
        sport, dport, length = struct.unpack_from('!HHH', data, offset)
        if (sport, dport) == (packet.sport, packet.dport) and offset + length == end and length >= 8:
            return offset
    return None


def _in_source(stanza, address):
    if stanza.source == 'ANY':
        return True
    return any(address.version == net.version and address in net for net in stanza.source)


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


def _reason_of(error):
    text = str(error)
    if 'HMAC' in text:
        return BAD_HMAC
    if 'decrypt' in text or 'digest' in text or 'field' in text or 'message' in text or 'Rijndael' in text:
        return DECRYPT
    return NOT_SPA


class SpaReceiver:
    """Decisions for SPA packets under one fwknopd.conf + access.conf.

    ``config``: fwknop_conf.FwknopdConfig; ``stanzas``: [fwknop_conf.AccessStanza];
    ``cache``: replay_cache.ReplayCache; ``clock``: wall clock (SPA timestamps are epoch seconds).
    """

    def __init__(self, config, stanzas, cache, require_packet_source=False, clock=time.time):
        self.config = config
        self.stanzas = list(stanzas)
        self.cache = cache
        self.require_packet_source = require_packet_source
        self.clock = clock
        self.max_age = config.max_spa_packet_age if config.enable_spa_packet_aging else None
        self.ports = frozenset([config.spa_port])

    def decide(self, payload, src, sport=0, dst='0.0.0.0', dport=0):
        """One Decision for the UDP ``payload`` (bytes) from ``src`` (text); never raises."""
        try:
            return self._decide(payload, src, sport, dst, dport)
        except Exception as error:  # pylint: disable=broad-except
            # belt and braces: a bug here must refuse the packet, not stop the daemon
            return refused(NOT_SPA, str(src), detail='unexpected %s' % type(error).__name__)

    def _decide(self, payload, src, sport, dst, dport):
        src = str(src)
        try:
            source = ipaddress.ip_address(src)
        except ValueError:
            return refused(NOT_SPA, src, detail='source is not an address')
        try:
            digest = spa.replay_digest(payload)
        except spa.SpaError:
            return refused(NOT_SPA, src)
        if digest in self.cache:
            return refused(REPLAY, src)
        message = stanza = None
        worst = None
        matched = False
        for candidate in self.stanzas:
            if not _in_source(candidate, source):
                continue
            matched = True
            try:
                message = spa.decode(payload, candidate.key, candidate.hmac_key, candidate.hmac_digest_type)
            except spa.SpaDependencyError:
                raise
            except spa.SpaError as error:
                reason = _reason_of(error)
                if worst is None or _RANK[reason] > _RANK[worst]:
                    worst = reason
                continue
            stanza = candidate
            break
        if not matched:
            return refused(NO_STANZA, src)
        if stanza is None:
            return refused(worst or NOT_SPA, src)
        return self._check(message, stanza, source, src, sport, dst, dport, digest)

    def _check(self, message, stanza, source, src, sport, dst, dport, digest):
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
        if self.require_packet_source and ipaddress.ip_address(address) != source:
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
        return Decision(True, None, src, str(ipaddress.ip_address(address)), message.access, int(timeout), line, '')
