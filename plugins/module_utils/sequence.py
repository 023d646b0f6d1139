# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
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


class KnockValueError(ValueError):
    """A value that cannot be part of a knock: the message names the value."""


Step = collections.namedtuple('Step', ['port', 'protocol'])
Step.__str__ = lambda self: '%d:%s' % (self.port, self.protocol)

TcpFlag = collections.namedtuple('TcpFlag', ['name', 'negated'])
TcpFlag.__str__ = lambda self: ('!' if self.negated else '') + self.name


def parse_port(value, what='port'):
    """Return ``value`` as an int port in 1..65535 or raise KnockValueError."""
    if isinstance(value, bool):
        raise KnockValueError('%s %r is not a port number' % (what, value))
    if isinstance(value, int):
        port = value
    else:
        text = str(value).strip()
        if not re.match(r'^[0-9]+\Z', text):
            raise KnockValueError('%s %r is not a port number' % (what, value))
        port = int(text)
    if not MIN_PORT <= port <= MAX_PORT:
        raise KnockValueError('%s %r is out of range (%d-%d)' % (what, value, MIN_PORT, MAX_PORT))
    return port


def parse_protocol(value, what='protocol'):
    proto = str(value).strip().lower()
    if proto not in PROTOCOLS:
        raise KnockValueError('%s %r is not one of %s' % (what, value, ', '.join(PROTOCOLS)))
    return proto


def parse_step(value, default_protocol='tcp'):
    """Parse one step: ``1600``, ``"1600"``, ``"1600:udp"`` or ``{port, protocol}``."""
    if isinstance(value, Step):
        return value
    if isinstance(value, dict):
        unknown = set(value) - set(['port', 'protocol'])
        if unknown:
            raise KnockValueError('knock step %r has unknown keys: %s' % (value, ', '.join(sorted(unknown))))
        if 'port' not in value:
            raise KnockValueError('knock step %r has no port' % (value,))
        return Step(parse_port(value['port'], 'knock port'),
                    parse_protocol(value.get('protocol', default_protocol), 'knock protocol'))
    if isinstance(value, int) and not isinstance(value, bool):
        return Step(parse_port(value, 'knock port'), default_protocol)
    text = str(value).strip()
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
    else:
        items = [part for part in re.split(r'[\s,]+', str(value).strip()) if part]
    if not items:
        raise KnockValueError('knock sequence is empty')
    return tuple(parse_step(item, default_protocol) for item in items)


def format_sequence(steps):
    """The knockd string form of a sequence: ``4127:tcp,2381:tcp,3659:tcp``."""
    return ','.join(str(step) for step in steps)


def parse_tcpflags(value):
    """Parse knockd's TCPFlags (``"syn,!ack"`` or a list) into TcpFlag tuples."""
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        items = [str(item) for item in value]
    else:
        items = str(value).split(',')
    flags = []
    for item in items:
        text = item.strip().lower()
        if not text:
            continue
        negated = text.startswith('!')
        name = text[1:].strip() if negated else text
        if name not in TCP_FLAGS:
            raise KnockValueError('TCP flag %r is not one of %s' % (item.strip(), ', '.join(TCP_FLAGS)))
        flags.append(TcpFlag(name, negated))
    names = [flag.name for flag in flags]
    for name in names:
        if names.count(name) > 1:
            raise KnockValueError('TCP flag %r is given more than once' % name)
    return tuple(flags)


def format_tcpflags(flags):
    return ','.join(str(flag) for flag in flags)


def parse_timeout(value, what='timeout'):
    """A timeout in whole seconds, strictly positive."""
    if isinstance(value, bool):
        raise KnockValueError('%s %r is not a number of seconds' % (what, value))
    if isinstance(value, int):
        seconds = value
    else:
        text = str(value).strip()
        if not re.match(r'^[0-9]+\Z', text):
            raise KnockValueError('%s %r is not a number of seconds' % (what, value))
        seconds = int(text)
    if seconds <= 0:
        raise KnockValueError('%s %r must be greater than 0' % (what, value))
    return seconds


def parse_ports(value, what='port'):
    """A protected port or list of ports (ints or numeric strings), deduplicated in order."""
    items = value if isinstance(value, (list, tuple)) else [value]
    if isinstance(value, str) and ',' in value:
        items = [part for part in value.split(',') if part.strip()]
    ports = []
    for item in items:
        port = parse_port(item, what)
        if port not in ports:
            ports.append(port)
    if not ports:
        raise KnockValueError('%s list is empty' % what)
    return tuple(ports)
