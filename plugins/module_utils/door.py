# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""The door: a knock sequence that opens protected ports for a while.

One validated, immutable description shared by every enforcer (iptables
``-m recent`` chains, nftables sets, Debian's knockd, the bundled daemon).
Renderers take Doors; nothing else re-validates door fields.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import re

from .sequence import (KnockValueError, as_text, parse_sequence, parse_ports, parse_protocol,
                       parse_timeout, parse_tcpflags, show)

IP_VERSIONS = ('ipv4', 'ipv6', 'both')
# iptables chain names are at most 28 characters; the longest chain we build
# is PREFIX + name + '-' + a two-digit step suffix.
CHAIN_PREFIX = 'PK-'
MAX_NAME_LENGTH = 20
NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_]*\Z')

DEFAULT_STEP_TIMEOUT = 10
DEFAULT_OPEN_WINDOW = 30
DEFAULT_SEQ_TIMEOUT = 25   # knockd's default
DEFAULT_CMD_TIMEOUT = 10   # knockd's default

Door = collections.namedtuple('Door', [
    'name',          # str, [A-Za-z0-9_], at most MAX_NAME_LENGTH
    'sequence',      # tuple of sequence.Step
    'step_timeout',  # int seconds allowed between two knocks
    'open_window',   # int seconds the door stays open after the last knock
    'ports',         # tuple of protected ports
    'protocol',      # 'tcp' or 'udp' for the protected ports
    'ip_version',    # 'ipv4', 'ipv6' or 'both'
    'tcpflags',      # tuple of sequence.TcpFlag (knockd enforcers)
])


def parse_name(value):
    name = as_text(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if name is None or not NAME_RE.match(name):
        raise KnockValueError('door name %s must start with a letter or digit and contain only letters, digits and _'
                              % show(value))
    if len(name) > MAX_NAME_LENGTH:
        raise KnockValueError('door name %s is too long for a chain name (%d > %d characters)'
                              % (show(value), len(name), MAX_NAME_LENGTH))
    return name


def parse_ip_version(value):
    text = value.strip().lower() if isinstance(value, str) else None
    if text not in IP_VERSIONS:
        raise KnockValueError('ip_version %s is not one of %s' % (show(value), ', '.join(IP_VERSIONS)))
    return text


def make_door(name, sequence, port, step_timeout=DEFAULT_STEP_TIMEOUT, open_window=DEFAULT_OPEN_WINDOW,
              protocol='tcp', ip_version='both', tcpflags=None):
    """Validate every field and return a Door, or raise KnockValueError naming the bad value."""
    steps = parse_sequence(sequence)
    ports = parse_ports(port, 'protected port')
    proto = parse_protocol(protocol, 'protocol')
    for step in steps:
        if step.protocol == proto and step.port in ports:
            raise KnockValueError('knock port %s is also a protected port: a knock would be a connection attempt' % (step,))
    return Door(
        name=parse_name(name),
        sequence=steps,
        step_timeout=parse_timeout(step_timeout, 'step_timeout'),
        open_window=parse_timeout(open_window, 'open_window'),
        ports=ports,
        protocol=proto,
        ip_version=parse_ip_version(ip_version),
        tcpflags=parse_tcpflags(tcpflags),
    )


def door_from_dict(data):
    """Build a Door from a role/site.yml dictionary (the same keys as the module)."""
    known = ('name', 'sequence', 'port', 'step_timeout', 'open_window', 'protocol', 'ip_version', 'tcpflags')
    if not isinstance(data, dict):
        raise KnockValueError('a door must be a dict, not %s' % type(data).__name__)
    kwargs = dict((key, data[key]) for key in known if data.get(key) is not None)
    missing = [key for key in ('name', 'sequence', 'port') if key not in kwargs]
    if missing:
        raise KnockValueError('door %s is missing %s' % (show(data.get('name')), ', '.join(missing)))
    return make_door(**kwargs)


def distinct_steps(door):
    """The door's steps without repeats, in order of first appearance."""
    seen = []
    for step in door.sequence:
        if step not in seen:
            seen.append(step)
    return seen


def families(door):
    """The address families a door covers, as ('ipv4',), ('ipv6',) or both."""
    return ('ipv4', 'ipv6') if door.ip_version == 'both' else (door.ip_version,)


# --- Sequences a port scan opens, doors that collide (issue 11, items 16 and 17) --------------
#
# A scan that sends one packet to every port in order (1..65535, or 65535..1) completes every
# sequence whose ports only go up (or only go down): 7000,8000,9000 opens to ``nmap -r``.  A
# one-step door, or one whose steps are all the same port, opens to a scan in any order.
# Protocols are ignored: a scan of TCP and UDP side by side walks both in the same order.
# Messages name the door, never a port of its sequence (the sequence is a secret).

def sequence_order(steps):
    """How a port scan sees a sequence: 'single', 'ascending', 'descending' or None.

    ``steps`` is a Door or a tuple of Steps.  'single': one step, or every step on the same
    port.  'ascending'/'descending': the ports never go down (up); repeated ports do not break
    the run, since a scanner retransmits to ports that do not answer.  None: a scan in order
    does not complete it.
    """
    steps = steps.sequence if isinstance(steps, Door) else steps
    ports = [step.port for step in steps]
    if len(set(ports)) <= 1:
        return 'single'
    pairs = list(zip(ports, ports[1:]))
    if all(b >= a for a, b in pairs):
        return 'ascending'
    if all(b <= a for a, b in pairs):
        return 'descending'
    return None


def sequence_warning(door):
    """The warning for a door a port scan opens (see ``sequence_order``), or None."""
    order = sequence_order(door)
    if order is None:
        return None
    if order == 'single':
        return ('door %r has a single knock port: a scan of every port opens it; '
                'use several knock ports in no particular order' % (door.name,))
    return ('door %r has an %s knock sequence: a port scan in %s order opens it; '
            'put its knock ports in no particular order' % (door.name, order, order))


def sequence_warnings_for(name, sequence):
    """``sequence_warning`` for a raw sequence (module parameters); [] when it does not parse.

    A sequence that does not parse is the caller's error to report, not a warning.
    """
    try:
        steps = parse_sequence(sequence)
    except (KnockValueError, TypeError, ValueError):
        return []
    warning = sequence_warning(Door(name=str(name), sequence=steps, step_timeout=1, open_window=1, ports=(),
                                    protocol='tcp', ip_version='both', tcpflags=()))
    return [warning] if warning else []


def door_collisions(doors, open_ports=None):
    """What makes the doors of one host collide, as messages ([] when nothing does).

    ``doors`` are the present Doors of one host; ``open_ports`` maps a description (``'the
    management allowlist (recent_knock_management_ports)'``) to the ports it opens, each a
    port, ``"port:proto"`` or a Step (TCP unless said).  A knock step on a port that another
    door protects, or that ``open_ports`` opens, collides: the knock rule drops new connections
    to that port (or the port accepts the knock before the door sees it).  Messages name both
    sides and mask the port: it is a knock port.
    """
    from .sequence import Step, parse_step   # here: the imports at the top belong to the parsers
    messages = []
    opened = []
    for what, ports in sorted((open_ports or {}).items()):
        items = ports if isinstance(ports, (list, tuple)) else [ports]
        opened.append((what, set(parse_step(item) for item in items)))
    for door in doors:
        steps = set(door.sequence)
        for other in doors:
            if other is door or other.name == door.name:
                continue
            if any(Step(port, other.protocol) in steps for port in other.ports):
                messages.append(
                    'door %r has a knock step on a port that door %r protects (port not shown: it is a knock port); '
                    'its knock rule would drop new connections to door %r. Use a knock port no door protects'
                    % (door.name, other.name, other.name))
        for what, ports in opened:
            if steps & ports:
                messages.append(
                    'door %r has a knock step on a port that %s opens (port not shown: it is a knock port); '
                    'the knock would be accepted or dropped before the door counts it. Use another knock port'
                    % (door.name, what))
    return messages
