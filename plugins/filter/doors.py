# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One door list, several enforcers: translate site-wide doors for each role.

A site door is a dict with the fields of ``door.make_door`` (``name``, ``sequence``, ``port``,
``step_timeout``, ``open_window``, ``protocol``, ``ip_version``, ``tcpflags``) plus ``state``
and ``allow_monotonic``.  Each door is validated once through ``door.door_from_dict``; the
filters only map fields.  ``door_preflight`` (site.yml's preflight) refuses doors a port scan
opens (``door.sequence_order``) unless they are allowed.

A door of ``kind: spa`` (``door.SpaDoor``: keys instead of a sequence) goes to the fwknop role
through ``fwknop_access_stanzas``; the kernel and knockd enforcers cannot enforce it, so
``recent_knock_doors`` and ``knockd_doors`` refuse it (or skip it with ``spa_doors='skip'``).
The controller reaches a host behind an SPA door with the connection plugin's ``knock_spa_*``
variables (``door_spa_settings``) instead of ``knock_sequence``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.utils.display import Display
from ansible_collections.portknock.knock.plugins.module_utils.door import (
    SPA_KEYS, door_collisions as door_model_collisions, door_from_dict, is_spa, parse_spa_source, sequence_warning)
from ansible_collections.portknock.knock.plugins.module_utils.sequence import (
    KnockValueError, format_sequence, format_tcpflags)

SITE_KEYS = frozenset(('name', 'sequence', 'port', 'step_timeout', 'open_window', 'protocol',
                       'ip_version', 'tcpflags', 'state', 'allow_monotonic', 'kind') + SPA_KEYS)
SPA_DOOR_CHOICES = ('refuse', 'skip')

display = Display()


def _door(data):
    if not isinstance(data, dict):
        raise AnsibleFilterError('a door must be a dict, got %s' % type(data).__name__)
    unknown = sorted(set(data) - SITE_KEYS)
    if unknown:
        raise AnsibleFilterError('door %r: unknown keys %s' % (data.get('name'), ', '.join(unknown)))
    if data.get('state', 'present') not in ('present', 'absent'):
        raise AnsibleFilterError('door %r: state %r is not present or absent' % (data.get('name'), data.get('state')))
    try:
        return door_from_dict(data)
    except KnockValueError as exc:
        raise AnsibleFilterError('door %r: %s' % (data.get('name'), to_text(exc)))


def _knock_doors(doors, spa_doors, enforcer):
    """(data, Door) of the knock doors; an SPA door is refused (or skipped with spa_doors='skip')."""
    if spa_doors not in SPA_DOOR_CHOICES:
        raise AnsibleFilterError('spa_doors %r is not one of %s' % (spa_doors, ', '.join(SPA_DOOR_CHOICES)))
    for data in doors or []:
        door = _door(data)
        if is_spa(door):
            if spa_doors == 'skip':
                continue
            raise AnsibleFilterError(
                'door %r is kind spa: %s cannot enforce an SPA door (it needs fwknopd or portknock-fwknopd: '
                'put the host in knock_fwknop, its doors through portknock.knock.fwknop_access_stanzas), '
                "or pass spa_doors='skip' to leave SPA doors to those hosts" % (door.name, enforcer))
        yield data, door


def recent_knock_doors(doors, backend='auto', spa_doors='refuse'):
    """Site doors -> ``recent_knock_doors`` of the recent_knock role (kernel enforcer)."""
    out = []
    for data, door in _knock_doors(doors, spa_doors, 'the kernel enforcer (recent_knock)'):
        out.append(dict(name=door.name, sequence=format_sequence(door.sequence), port=list(door.ports),
                        protocol=door.protocol, step_timeout=door.step_timeout,
                        open_window=door.open_window, ip_version=door.ip_version, backend=backend,
                        state=data.get('state', 'present')))
    return out


def knockd_doors(doors, spa_doors='refuse'):
    """Site doors -> ``knockd_doors`` of the knockd role (Debian knockd or the bundled daemon).

    knockd times a whole attempt (``seq_timeout``) where the kernel doors time each step, so
    ``seq_timeout`` = ``step_timeout`` x number of steps; the door stays open for
    ``open_window`` (``cmd_timeout``).  TCP knocks count SYNs only, like the kernel doors.
    """
    out = []
    for data, door in _knock_doors(doors, spa_doors, 'knockd (or the bundled knock daemon)'):
        out.append(dict(name=door.name, sequence=format_sequence(door.sequence), port=list(door.ports),
                        protocol=door.protocol, seq_timeout=door.step_timeout * len(door.sequence),
                        cmd_timeout=door.open_window, ip_version=door.ip_version,
                        tcpflags=format_tcpflags(door.tcpflags) or 'syn',
                        state=data.get('state', 'present')))
    return out


def door_knock_sequence(doors, port):
    """The knock sequence (list of ``port:proto``) of the door protecting ``port``; [] if none.

    A door being removed (``state: absent``) still counts: until the rollout has removed it,
    the controller must knock to get in (once it is gone, a knock is harmless).
    SPA doors have no sequence: they are skipped (see ``door_spa_settings``)."""
    for data in doors or []:
        door = _door(data)
        if not is_spa(door) and int(port) in door.ports and door.protocol == 'tcp':
            return [str(step) for step in door.sequence]
    return []


def _ssh_door(doors, port):
    for data in doors or []:
        door = _door(data)
        if int(port) in door.ports and door.protocol == 'tcp':
            return door
    return None


def door_spa_settings(doors, port):
    """The connection plugin's ``knock_spa_*`` variables for the SPA door protecting TCP ``port``
    ({} when the first door protecting it is not an SPA door, or none does).

    The result holds the door's keys: use it for ``knock_spa_key``/``knock_spa_hmac_key`` of
    the host (as ``door_knock_sequence`` feeds ``knock_sequence``), never print it.
    """
    door = _ssh_door(doors, port)
    if door is None or not is_spa(door):
        return {}
    return dict(knock_spa_key=door.key_base64, knock_spa_hmac_key=door.hmac_key_base64,
                knock_spa_hmac_digest_type=door.hmac_digest_type, knock_spa_port=door.spa_port,
                knock_spa_access='tcp/%d' % int(port))


def door_kind(doors, port):
    """'spa' or 'knock' for the first door protecting TCP ``port``, '' when none does (preflight)."""
    door = _ssh_door(doors, port)
    return '' if door is None else ('spa' if is_spa(door) else 'knock')


def fwknop_access_stanzas(doors, source=None):
    """SPA doors -> ``fwknop_access`` of the fwknop role (one access.conf stanza per door).

    Knock doors are skipped (another enforcer's).  ``source`` overrides every door's
    ``source`` (access.conf ``SOURCE``, default ANY).  Each item: source, open_ports,
    key_base64, hmac_key_base64, hmac_digest_type, fw_access_timeout, require_source_address,
    plus name, spa_port, ip_version and state.  The items hold keys: never print them.
    """
    out = []
    for data in doors or []:
        door = _door(data)
        if not is_spa(door):
            continue
        sources = door.source
        if source is not None:
            try:
                sources = parse_spa_source(source)
            except KnockValueError as exc:
                raise AnsibleFilterError('fwknop_access_stanzas: %s' % to_text(exc))
        out.append(dict(name=door.name, source=sources if sources == 'ANY' else ', '.join(sources),
                        open_ports=', '.join('%s/%d' % (door.protocol, port) for port in door.ports),
                        key_base64=door.key_base64, hmac_key_base64=door.hmac_key_base64,
                        hmac_digest_type=door.hmac_digest_type.upper(), fw_access_timeout=door.open_window,
                        require_source_address=door.require_source_address, spa_port=door.spa_port,
                        ip_version=door.ip_version, state=data.get('state', 'present')))
    return out


def _allowed(value, what):
    if value is None:
        return False
    try:
        return boolean(value, strict=True)
    except TypeError:
        raise AnsibleFilterError('%s %r is not a boolean' % (what, value))


def _open_ports(open_ports):
    if open_ports is None:
        return {}
    if not isinstance(open_ports, dict):
        raise AnsibleFilterError('open_ports must be a dict (what opens them: list of ports), got %s'
                                 % type(open_ports).__name__)
    return open_ports


def _collisions(doors, open_ports):
    """door.door_collisions over the present doors (site or role dicts: other keys are ignored)."""
    present = []
    for data in doors or []:
        if not isinstance(data, dict):
            raise AnsibleFilterError('a door must be a dict, got %s' % type(data).__name__)
        if data.get('state', 'present') != 'present':
            continue
        try:
            present.append(door_from_dict(data))
        except KnockValueError as exc:
            raise AnsibleFilterError('door %r: %s' % (data.get('name'), to_text(exc)))
    try:
        return door_model_collisions(present, _open_ports(open_ports))
    except KnockValueError as exc:
        raise AnsibleFilterError('open_ports: %s' % to_text(exc))


def door_collisions(doors, open_ports=None):
    """The collisions between the present doors of one host (and ``open_ports``), as messages.

    ``open_ports`` maps what opens ports (``'the management allowlist'``) to a list of them.
    [] when nothing collides; no message shows a port.
    """
    return _collisions(doors, open_ports)


def door_preflight(doors, allow_monotonic=False, open_ports=None):
    """Refuse present doors a port scan opens (one step, ascending or descending ports), and
    doors of the host that collide (see ``door_collisions``).

    A door with ``allow_monotonic: true``, or every door when ``allow_monotonic`` is true, is
    let through with a warning.  Returns the warnings (no port in them); raises
    AnsibleFilterError naming every refused door.
    """
    every = _allowed(allow_monotonic, 'allow_monotonic')
    errors, warnings = [], []
    for data in doors or []:
        door = _door(data)
        allowed = _allowed(data.get('allow_monotonic', False), 'door %r: allow_monotonic' % (door.name,))
        warning = sequence_warning(door)
        if warning is None or data.get('state', 'present') != 'present':
            continue
        if every or allowed:
            warnings.append(warning + ' (allowed by allow_monotonic)')
        else:
            errors.append(warning)
    collisions = _collisions(doors, open_ports)
    if errors:
        raise AnsibleFilterError('; '.join(errors + collisions) + '. Change the sequence, or set allow_monotonic: true '
                                 'on the door (or for the play) to accept the risk; nothing was changed')
    if collisions:
        raise AnsibleFilterError('; '.join(collisions) + '; nothing was changed')
    for warning in warnings:
        display.warning(warning)
    return warnings


class FilterModule(object):
    def filters(self):
        return dict((function.__name__, function) for function in (
            recent_knock_doors, knockd_doors, door_knock_sequence, door_preflight, door_collisions,
            door_spa_settings, door_kind, fwknop_access_stanzas))
