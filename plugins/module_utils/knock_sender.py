# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""The one knock sender: resolve once, send one SYN or one datagram per step.

Used by the ``knock`` CLI and its ssh proxy mode, the ``portknock.knock.ssh``
connection plugin, the lookup, action and module ``knock``, the tests and the
benchmarks.  Standard library only (it runs on managed hosts too).

* A TCP step is exactly one SYN: a non-blocking ``connect()`` followed at once
  by ``close()``.  Linux drops a socket in SYN_SENT on close without sending a
  RST and without ever retransmitting the SYN, so a dropped knock is never
  repeated (retransmitted SYNs break sequences, knockd #72/#90/#92).
* A UDP step is one datagram of one NUL byte (what knockd's ``knock`` sends).
* The host is resolved ONCE; the caller gets back the address that was knocked
  so it connects to that very address (same address family as the knock).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import socket
import struct
import time

from .sequence import KnockValueError, parse_sequence

# The one default gap between two knocks, for every knock this collection sends (module, action,
# lookup, connection plugin, knock CLI): 50 ms keeps the steps in order through a busy path.
# knockd's own knock(1) client waits 0 ms by default.
DEFAULT_DELAY_MS = 50
UDP_PAYLOAD = b'\x00'
FAMILIES = {None: socket.AF_UNSPEC, 0: socket.AF_UNSPEC,
            4: socket.AF_INET, '4': socket.AF_INET, 'ipv4': socket.AF_INET,
            6: socket.AF_INET6, '6': socket.AF_INET6, 'ipv6': socket.AF_INET6,
            'any': socket.AF_UNSPEC, 'both': socket.AF_UNSPEC}
# A connect() in progress, or refused/answered already on a fast path: the SYN left.
_SENT_ERRNOS = (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN,
                errno.ECONNREFUSED, errno.EALREADY)


class KnockSendError(Exception):
    """A knock could not be sent; the message names the host/step and the reason."""


def parse_family(value):
    """Map None/0/'both' (or the old 'any'), 4/'4'/'ipv4'/AF_INET, 6/'6'/'ipv6'/AF_INET6 to a socket family."""
    key = value.lower().strip() if isinstance(value, str) else value
    if not isinstance(value, bool):
        if key in FAMILIES:
            return FAMILIES[key]
        if key in (socket.AF_INET, socket.AF_INET6):
            return key
    raise KnockValueError('address family %r is not one of 4, 6, ipv4, ipv6, both' % (value,))


def resolve(host, family=None):
    """Resolve ``host`` once, the way ssh does: the first getaddrinfo result.

    ``family`` restricts it like ssh's -4/-6 (see parse_family).
    Returns ``(family, address)`` with a numeric address string.
    """
    fam = parse_family(family)
    if not host:
        raise KnockSendError('no host to knock on')
    try:
        infos = socket.getaddrinfo(host, None, fam, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise KnockSendError('cannot resolve knock host %r%s: %s'
                             % (host, _family_text(fam), exc.strerror or exc))
    for info in infos:
        if info[0] in (socket.AF_INET, socket.AF_INET6):
            return info[0], info[4][0]
    raise KnockSendError('knock host %r has no IPv4/IPv6 address%s' % (host, _family_text(fam)))


def _family_text(fam):
    return {socket.AF_INET: ' (IPv4 only)', socket.AF_INET6: ' (IPv6 only)'}.get(fam, '')


def sockaddr(address, port, family=None):
    """The socket address tuple for a numeric ``address`` and ``port`` (keeps an IPv6 scope)."""
    fam = parse_family(family)
    try:
        infos = socket.getaddrinfo(address, port, fam, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
    except socket.gaierror as exc:
        raise KnockSendError('%r is not a numeric %saddress: %s'
                             % (address, {socket.AF_INET: 'IPv4 ', socket.AF_INET6: 'IPv6 '}.get(fam, ''),
                                exc.strerror or exc))
    return infos[0][0], infos[0][4]


def open_socket(family, kind, source=None):
    """A socket of ``kind`` in ``family``, bound to ``source`` when given (KnockSendError if it cannot be)."""
    sock = socket.socket(family, kind)
    try:
        if source:
            sock.bind(sockaddr(source, 0, family)[1])
    except (OSError, KnockSendError) as exc:
        sock.close()
        raise KnockSendError('cannot use source address %r: %s' % (source, exc))
    return sock


def send_tcp_knock(family, addr, source=None):
    """Send exactly one SYN to ``addr`` (a sockaddr tuple) and abort the attempt."""
    sock = open_socket(family, socket.SOCK_STREAM, source)
    try:
        # If the port happens to be open and the handshake already completed,
        # SO_LINGER 0 makes close() a RST instead of a FIN exchange.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        sock.setblocking(False)
        err = sock.connect_ex(addr)
        if err not in _SENT_ERRNOS:
            # the port is a step of a secret sequence: the message names the host only
            raise KnockSendError('TCP knock on %s failed: %s' % (addr[0], os_strerror(err)))
    finally:
        # Closing in SYN_SENT: no RST, no retransmission.
        sock.close()


def send_udp_knock(family, addr, source=None, payload=UDP_PAYLOAD):
    """Send exactly one UDP datagram to ``addr``."""
    sock = open_socket(family, socket.SOCK_DGRAM, source)
    try:
        sock.sendto(payload, addr)
    except OSError as exc:
        raise KnockSendError('UDP knock on %s failed: %s' % (addr[0], exc.strerror or exc))
    finally:
        sock.close()


def os_strerror(err):
    return '%s (errno %d)' % (os.strerror(err), err)


def send_knocks(address, steps, delay_ms=DEFAULT_DELAY_MS, family=None, source=None, sleep=time.sleep):
    """Knock ``steps`` (anything parse_sequence accepts) on the numeric ``address``.

    Waits ``delay_ms`` milliseconds between two knocks (not after the last).
    Returns the list of ``sequence.Step`` sent, in order.
    """
    try:
        sequence = parse_sequence(steps)
    except KnockValueError as exc:
        raise KnockSendError(str(exc))
    delay = _parse_delay(delay_ms)
    sent = []
    for index, step in enumerate(sequence):
        if index and delay:
            sleep(delay / 1000.0)
        fam, addr = sockaddr(address, step.port, family)
        if step.protocol == 'udp':
            send_udp_knock(fam, addr, source)
        else:
            send_tcp_knock(fam, addr, source)
        sent.append(step)
    return sent


def _parse_delay(delay_ms):
    if delay_ms is None:
        return 0
    try:
        delay = int(delay_ms)
    except (TypeError, ValueError):
        raise KnockSendError('knock delay %r is not a number of milliseconds' % (delay_ms,))
    if isinstance(delay_ms, bool) or delay < 0:
        raise KnockSendError('knock delay %r must be 0 or more milliseconds' % (delay_ms,))
    return delay


def route_source(address, family=None):
    """The local address the kernel picks to send to the numeric ``address`` (nothing is sent).

    A UDP ``connect()`` only selects the route and the source address; this is the address a
    door sees a packet from when no source is given (what an SPA message should claim).
    """
    fam, addr = sockaddr(address, 9, family)
    sock = socket.socket(fam, socket.SOCK_DGRAM)
    try:
        sock.connect(addr)
        return sock.getsockname()[0].split('%', 1)[0]
    except OSError as exc:
        raise KnockSendError('no route to %s: %s' % (address, exc.strerror or exc))
    finally:
        sock.close()


def send_datagram(address, port, payload, family=None, source=None):
    """Send ``payload`` as exactly one UDP datagram to the numeric ``address``:``port`` (an SPA packet)."""
    fam, addr = sockaddr(address, port, family)
    send_udp_knock(fam, addr, source, payload)
    return address


def knock(host, sequence, delay_ms=DEFAULT_DELAY_MS, family=None, source=None):
    """Resolve ``host`` once, knock ``sequence`` on it and return the address knocked.

    Connect to the returned address (not to ``host`` again) so the knock and
    the connection use the same address and address family.
    """
    fam, address = resolve(host, family)
    send_knocks(address, sequence, delay_ms=delay_ms, family=fam, source=source)
    return address
