# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""The door: a knock sequence (or an SPA key pair) that opens protected ports for a while.

One validated, immutable description shared by every enforcer (iptables
``-m recent`` chains, nftables sets, Debian's knockd, the bundled daemon).
Renderers take Doors; nothing else re-validates door fields.

A door of ``kind: spa`` (SpaDoor) has keys instead of a sequence: fwknop's single packet
authorization, enforced by Debian's fwknopd or the bundled portknock-fwknopd (role
portknock.knock.fwknop); kernel and knockd enforcers cannot enforce it.
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
KNOCKD_CHAIN_SUFFIX = '-KD'   # the knockd role's door chains PK-<name>-KD (filter/knockd_commands.py)
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


DOOR_KINDS = ('knock', 'spa')
SPA_KEYS = ('key_base64', 'hmac_key_base64', 'hmac_digest_type', 'fw_access_timeout', 'spa_port',
            'require_source_address', 'source')
DEFAULT_FW_ACCESS_TIMEOUT = 30   # fwknopd's default FW_ACCESS_TIMEOUT


class SpaDoor(collections.namedtuple('SpaDoor', [
        'name',            # str, as a knock door's
        'ports',           # tuple of protected ports
        'protocol',        # 'tcp' or 'udp'
        'ip_version',      # 'ipv4', 'ipv6' or 'both'
        'open_window',     # int seconds (fwknop's FW_ACCESS_TIMEOUT)
        'spa_port',        # int UDP port of the SPA server
        'key_base64',      # str, validated base64 (secret)
        'hmac_key_base64',  # str, validated base64 (secret)
        'hmac_digest_type',  # fwknop's name, lower case
        'require_source_address',  # bool
        'source',          # 'ANY' or a tuple of networks (access.conf SOURCE)
])):
    """A door opened by one fwknop-compatible SPA packet; repr() never shows its keys."""
    __slots__ = ()
    kind = 'spa'
    sequence = ()      # no knock sequence: nothing for a port scan to complete
    tcpflags = ()

    def __repr__(self):
        return ('SpaDoor(name=%r, ports=%r, protocol=%r, ip_version=%r, open_window=%r, spa_port=%r, '
                'hmac_digest_type=%r, require_source_address=%r, source=%r, keys=<not shown>)'
                % (self.name, self.ports, self.protocol, self.ip_version, self.open_window, self.spa_port,
                   self.hmac_digest_type, self.require_source_address, self.source))


def is_spa(door):
    return isinstance(door, SpaDoor)


def _bool(value, what):
    if isinstance(value, bool):
        return value
    text = value.strip().lower() if isinstance(value, str) else None
    if text in ('yes', 'y', 'true', 'on', '1'):
        return True
    if text in ('no', 'n', 'false', 'off', '0'):
        return False
    raise KnockValueError('%s %s is not a boolean' % (what, show(value)))


def parse_spa_source(value):
    """access.conf's SOURCE: 'ANY' or addresses/networks (list or comma separated) -> 'ANY' or a tuple."""
    import ipaddress
    if value is None or (isinstance(value, str) and value.strip().upper() == 'ANY'):
        return 'ANY'
    items = value if isinstance(value, (list, tuple)) else (value.split(',') if isinstance(value, str) else None)
    if not items:
        raise KnockValueError('source %s is not ANY nor addresses or networks' % show(value))
    networks = []
    for item in items:
        try:
            networks.append(str(ipaddress.ip_network(as_text(item).strip(), strict=False)))
        except (ValueError, TypeError):
            raise KnockValueError('source %s is not an address or network' % show(item))
    return tuple(networks)


def make_spa_door(name, port, key_base64, hmac_key_base64, hmac_digest_type='sha256',
                  open_window=DEFAULT_FW_ACCESS_TIMEOUT, protocol='tcp', ip_version='both', spa_port=None,
                  require_source_address=False, source=None):
    """Validate every field and return a SpaDoor; errors name the field, never a key."""
    from . import spa    # the codec's key and digest parsers (AES itself is not imported)
    try:
        spa.key_from_base64(key_base64, 'key_base64')
        spa.hmac_key_from_base64(hmac_key_base64, 'hmac_key_base64')
        digest = spa.parse_digest_type(hmac_digest_type, 'hmac_digest_type')
    except spa.SpaError as exc:
        raise KnockValueError(str(exc))
    from .sequence import parse_port
    spa_port = parse_port(spa.DEFAULT_SPA_PORT if spa_port is None else spa_port, 'spa_port')
    ports = parse_ports(port, 'protected port')
    proto = parse_protocol(protocol, 'protocol')
    if proto == 'udp' and spa_port in ports:
        raise KnockValueError('spa_port %d is also a protected UDP port' % spa_port)
    return SpaDoor(
        name=parse_name(name), ports=ports, protocol=proto, ip_version=parse_ip_version(ip_version),
        open_window=parse_timeout(open_window, 'open_window'), spa_port=spa_port,
        key_base64=key_base64.strip(), hmac_key_base64=hmac_key_base64.strip(), hmac_digest_type=digest,
        require_source_address=_bool(require_source_address, 'require_source_address'),
        source=parse_spa_source(source))


def _spa_door_from_dict(data):
    label = show(data.get('name'))
    wrong = [key for key in ('sequence', 'step_timeout', 'tcpflags') if data.get(key) is not None]
    if wrong:
        raise KnockValueError('door %s is kind spa: it has keys, not %s' % (label, ', '.join(wrong)))
    window = data.get('open_window')
    timeout = data.get('fw_access_timeout')
    if window is not None and timeout is not None and str(window) != str(timeout):
        raise KnockValueError('door %s: open_window %s and fw_access_timeout %s differ (they are the same thing)'
                              % (label, show(window), show(timeout)))
    missing = [key for key in ('name', 'port', 'key_base64', 'hmac_key_base64') if data.get(key) is None]
    if missing:
        raise KnockValueError('door %s is missing %s' % (label, ', '.join(missing)))
    kwargs = dict((key, data[key]) for key in ('name', 'port', 'key_base64', 'hmac_key_base64', 'hmac_digest_type',
                                               'protocol', 'ip_version', 'spa_port', 'require_source_address',
                                               'source') if data.get(key) is not None)
    if window is not None or timeout is not None:
        kwargs['open_window'] = window if window is not None else timeout
    return make_spa_door(**kwargs)


def _masked(message, data):
    """``message`` without any long text value of ``data``: a key put in the wrong field is still a key."""
    for value in data.values():
        texts = value if isinstance(value, (list, tuple)) else [value]
        for text in texts:
            if isinstance(text, bytes):
                text = text.decode('latin-1')
            text = text.strip() if isinstance(text, str) else ''
            for end in range(len(text), 15, -1):     # show() may have cut it short
                if text[:end] in message:
                    message = message.replace(text[:end], '<%d characters, not shown>' % len(text))
                    break
    return message


def door_from_dict(data):
    """Build a Door (or a SpaDoor for ``kind: spa``) from a role/site.yml dictionary (the same keys as the module)."""
    known = ('name', 'sequence', 'port', 'step_timeout', 'open_window', 'protocol', 'ip_version', 'tcpflags')
    if not isinstance(data, dict):
        raise KnockValueError('a door must be a dict, not %s' % type(data).__name__)
    kind = data.get('kind', 'knock')
    if kind not in DOOR_KINDS:
        raise KnockValueError('door %s: kind %s is not one of %s'
                              % (show(data.get('name')), show(kind), ', '.join(DOOR_KINDS)))
    if kind == 'spa':
        try:
            return _spa_door_from_dict(data)
        except KnockValueError as exc:
            raise KnockValueError(_masked(str(exc), data))
    spa_only = [key for key in SPA_KEYS if data.get(key) is not None]
    if spa_only:
        raise KnockValueError('door %s has %s: only a door of kind spa has them'
                              % (show(data.get('name')), ', '.join(spa_only)))
    kwargs = dict((key, data[key]) for key in known if data.get(key) is not None)
    missing = [key for key in ('name', 'sequence', 'port') if key not in kwargs]
    if missing:
        raise KnockValueError('door %s is missing %s' % (show(data.get('name')), ', '.join(missing)))
    return make_door(**kwargs)


def distinct_steps(door):
    """The door's steps without repeats, in order of first appearance (none for an SPA door)."""
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
    """The warning for a door a port scan opens (see ``sequence_order``), or None (SPA doors: None)."""
    if is_spa(door):
        return None
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
