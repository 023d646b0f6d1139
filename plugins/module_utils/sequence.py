# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""The knock sequence model: steps, TCP flags, timeouts, and their validation.

This is the only place where a knock step, a sequence string such as
``"7311,9127:udp,8243"`` or a knockd ``TCPFlags`` value is parsed and checked.
Modules, plugins, the knockd.conf parser, the daemon and the ``knock`` client
all go through it.  Pure Python, standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import re

PROTOCOLS = ('tcp', 'udp')
# The flags knockd 0.8 understands in TCPFlags (src/knockd.c).
TCP_FLAGS = ('fin', 'syn', 'rst', 'psh', 'ack', 'urg')
MIN_PORT = 1
MAX_PORT = 65535
MAX_TIMEOUT = 2147483647   # seconds; knockd keeps timeouts in a C int
SHOW_LIMIT = 40            # characters of a bad value quoted in a message
# one step as written: a port (or a word, named in the error) and an optional protocol word
_STEP_SHAPE = re.compile(r'[+-]?([0-9]+|[A-Za-z]*)(:[A-Za-z]*)?\Z')


class KnockValueError(ValueError):
    """A value that cannot be part of a knock: the message names the value."""


def show(value, limit=SHOW_LIMIT):
    """``repr(value)`` for an error message: never raises, at most ``limit`` characters."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return 'a number of %d digits or more' % int(value.bit_length() * 0.30103)
    try:
        text = repr(value)
    except Exception:   # a huge int inside a list, a recursion limit, an odd __repr__
        text = '<%s>' % type(value).__name__
    return text if len(text) <= limit else text[:limit] + '...'


def as_text(value):
    """``str(value)``, or None when the value has no usable text (a huge int, an odd __str__)."""
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except Exception:
        return None


def _odd_characters(text):
    """Why ``text`` is not shaped like one step, without quoting its digits."""
    odd = []
    for char in text.replace(':', '', 1):   # the ':' of port:protocol is expected once
        if not (char.isascii() and char.isalnum()) and char not in odd:
            odd.append(char)
    if odd:
        shown = ', '.join(repr(char) for char in odd[:6])
        return 'it contains ' + shown + (' and more' if len(odd) > 6 else '')
    if ':' in text:
        return "the protocol after ':' must be tcp or udp"
    return 'it mixes digits and letters'


Step = collections.namedtuple('Step', ['port', 'protocol'])
Step.__str__ = lambda self: '%d:%s' % (self.port, self.protocol)

TcpFlag = collections.namedtuple('TcpFlag', ['name', 'negated'])
TcpFlag.__str__ = lambda self: ('!' if self.negated else '') + self.name


def _whole_number(value, what, kind, maximum):
    """``value`` (an int or its digits) as an int, or raise; None when above ``maximum``."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        text = None if isinstance(value, (bool, float)) else as_text(value)
    else:
        text = value
    if isinstance(text, int):
        return text if text <= maximum else None
    text = (text or '').strip()
    if not re.match(r'[0-9]+\Z', text):
        raise KnockValueError('%s %s is not %s' % (what, show(value), kind))
    digits = text.lstrip('0') or '0'
    if len(digits) > len(str(maximum)):   # before int(): Python refuses more than 4300 digits
        return None
    number = int(digits)
    return number if number <= maximum else None


def parse_port(value, what='port'):
    """Return ``value`` as an int port in 1..65535 or raise KnockValueError."""
    port = _whole_number(value, what, 'a port number', MAX_PORT)
    if port is None or port < MIN_PORT:
        digits = value.strip() if isinstance(value, str) else ''
        if len(digits) > len(str(MAX_PORT)):   # several steps run together, maybe: not quoted
            raise KnockValueError('%s of %d digits is out of range (%d-%d)' % (what, len(digits), MIN_PORT, MAX_PORT))
        raise KnockValueError('%s %s is out of range (%d-%d)' % (what, show(value), MIN_PORT, MAX_PORT))
    return port


def parse_protocol(value, what='protocol'):
    proto = as_text(value) if isinstance(value, str) else None
    proto = proto.strip().lower() if proto is not None else None
    if proto not in PROTOCOLS:
        raise KnockValueError('%s %s is not one of %s' % (what, show(value), ', '.join(PROTOCOLS)))
    return proto


def parse_step(value, default_protocol='tcp', position=None):
    """Parse one step: ``1600``, ``"1600"``, ``"1600:udp"`` or ``{port, protocol}``.

    A text that is not shaped like one step (``"7000;8000"``, ``"7000 8000"`` in a
    knockd.conf, ``"7000:8000"``) probably holds more than one step of a secret
    sequence: the error names the step's position and its odd characters, never its
    digits.  ``position`` (1-based) is the step's place in its sequence.
    """
    if isinstance(value, Step):
        return value
    where = 'knock step %d' % position if position else 'a knock step'
    if isinstance(value, dict):
        unknown = [key for key in value if key not in ('port', 'protocol')]
        if unknown:
            raise KnockValueError('%s has unknown keys: %s (known: port, protocol)'
                                  % (where, ', '.join(sorted(show(key) for key in unknown))))
        if 'port' not in value:
            raise KnockValueError('%s has no port' % where)
        return Step(parse_port(value['port'], 'knock port'),
                    parse_protocol(value.get('protocol', default_protocol), 'knock protocol'))
    if isinstance(value, int) and not isinstance(value, bool):
        return Step(parse_port(value, 'knock port'), default_protocol)
    if not isinstance(value, str):
        raise KnockValueError('%s must be a port, "port:protocol" or {port, protocol}, not %s'
                              % (where, type(value).__name__))
    text = re.sub(r'\s*:\s*', ':', value.strip())   # knockd reads "8000 :udp" as 8000:udp
    if not _STEP_SHAPE.match(text):
        raise KnockValueError('%s is not a port or port:protocol (%s)' % (where, _odd_characters(text)))
    if ':' in text:
        port, proto = text.split(':', 1)
        return Step(parse_port(port, 'knock port'), parse_protocol(proto, 'knock protocol'))
    return Step(parse_port(text, 'knock port'), default_protocol)


def parse_sequence(value, default_protocol='tcp'):
    """Parse a whole sequence into a tuple of Steps.

    Accepts the knockd string form ``"4127:tcp,2381:tcp,3659"`` (commas or
    white space between steps) or a list whose items ``parse_step`` accepts.
    An empty sequence is an error.
    """
    if value is None:
        raise KnockValueError('knock sequence is empty')
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        text = as_text(value)
        if text is None:   # a huge int
            raise KnockValueError('knock sequence %s is not a port' % show(value))
        items = [part for part in re.split(r'[\s,]+', text.strip()) if part]
    else:
        raise KnockValueError('knock sequence must be a list or a string, not %s' % type(value).__name__)
    if not items:
        raise KnockValueError('knock sequence is empty')
    return tuple(parse_step(item, default_protocol, position) for position, item in enumerate(items, 1))


def format_sequence(steps):
    """The knockd string form of a sequence: ``4127:tcp,2381:tcp,3659:tcp``."""
    return ','.join(str(step) for step in steps)


def parse_tcpflags(value):
    """Parse knockd's TCPFlags (``"syn,!ack"`` or a list) into TcpFlag tuples."""
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, str):
        items = value.split(',')
    else:
        raise KnockValueError('TCP flags %s must be a list or a string' % show(value))
    flags = []
    for item in items:
        if not isinstance(item, str):
            raise KnockValueError('TCP flag %s is not one of %s' % (show(item), ', '.join(TCP_FLAGS)))
        text = item.strip().lower()
        if not text:
            continue
        negated = text.startswith('!')
        name = text[1:].strip() if negated else text
        if name not in TCP_FLAGS:
            raise KnockValueError('TCP flag %s is not one of %s' % (show(item.strip()), ', '.join(TCP_FLAGS)))
        flags.append(TcpFlag(name, negated))
    names = [flag.name for flag in flags]
    for name in names:
        if names.count(name) > 1:
            raise KnockValueError('TCP flag %r is given more than once' % name)
    return tuple(flags)


def format_tcpflags(flags):
    return ','.join(str(flag) for flag in flags)


def parse_timeout(value, what='timeout'):
    """A timeout in whole seconds, 1..MAX_TIMEOUT."""
    if isinstance(value, int) and not isinstance(value, bool) and value <= 0:
        raise KnockValueError('%s %s must be greater than 0' % (what, show(value)))
    seconds = _whole_number(value, what, 'a number of seconds', MAX_TIMEOUT)
    if seconds is None:
        raise KnockValueError('%s %s is greater than %d seconds' % (what, show(value), MAX_TIMEOUT))
    if seconds <= 0:
        raise KnockValueError('%s %s must be greater than 0' % (what, show(value)))
    return seconds


def parse_ports(value, what='port'):
    """A protected port or list of ports (ints or numeric strings), deduplicated in order."""
    items = value if isinstance(value, (list, tuple)) else [value]
    if isinstance(value, str) and ',' in value:
        items = [part for part in value.split(',') if part.strip()]
    # a list of ports is no secret, but a huge one is no list of ports either
    if len(items) > MAX_PORT:
        raise KnockValueError('%s list has %d items, more than there are ports' % (what, len(items)))
    ports = []
    for item in items:
        port = parse_port(item, what)
        if port not in ports:
            ports.append(port)
    if not ports:
        raise KnockValueError('%s list is empty' % what)
    return tuple(ports)
