# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the knockd role: turn high-level doors into knockd stanzas and firewall chains.

A door given to the role is a dict (``name``, ``sequence``, ``port``, ``protocol``,
``seq_timeout``, ``cmd_timeout``, ``tcpflags``, ``ip_version``, ``state``, ...).  Values are
validated once by ``door.make_door`` (no re-validation here).

Firewall layout, per door and address family (iptables / ip6tables):

* chain ``PK-<name>-KD``, entered from ``INPUT`` for NEW connections to the protected ports;
* inside it: the knockers' ``-s ADDR -j ACCEPT`` rules (inserted at the top by knockd's
  start command, only if not already there: ``-C || -I``), then the static rules tagged
  ``pk-static``: ``knockd_always_allow`` sources, and the closing ``DROP`` (closed default).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text
from ansible_collections.portknock.knock.plugins.module_utils.door import (
    CHAIN_PREFIX, KNOCKD_CHAIN_SUFFIX as CHAIN_SUFFIX, DEFAULT_CMD_TIMEOUT, DEFAULT_SEQ_TIMEOUT, families, make_door)
from ansible_collections.portknock.knock.plugins.module_utils.sequence import (
    KnockValueError, format_sequence, format_tcpflags, parse_sequence)

STATIC_TAG = 'pk-static'
RAW_COMMANDS = ('start_command', 'stop_command', 'start_command_6', 'stop_command_6', 'command', 'command_6')
PASS_THROUGH = ('target', 'one_time_sequences')
DOOR_KEYS = frozenset(('name', 'state', 'sequence', 'seq_timeout', 'cmd_timeout', 'tcpflags', 'port',
                       'protocol', 'ip_version', 'firewall') + RAW_COMMANDS + PASS_THROUGH)


def chain_name(name):
    """The knockd door chain: ``PK-<name>-KD`` (at most 26 characters with door names of 20)."""
    return CHAIN_PREFIX + name + CHAIN_SUFFIX


def _fail(door, error):
    raise AnsibleFilterError('knockd door %r: %s' % (door.get('name') if isinstance(door, dict) else door, to_text(error)))


def _check_keys(door):
    if not isinstance(door, dict):
        _fail(door, 'must be a dict, got %s' % type(door).__name__)
    unknown = sorted(set(door) - DOOR_KEYS)
    if unknown:
        _fail(door, 'unknown keys %s (known: %s)' % (', '.join(unknown), ', '.join(sorted(DOOR_KEYS))))
    if door.get('state', 'present') not in ('present', 'absent'):
        _fail(door, 'state %r is not present or absent' % (door.get('state'),))


def _present(door):
    return door.get('state', 'present') == 'present'


def _raw(door):
    return any(door.get(key) is not None for key in RAW_COMMANDS)


def _given(door, key, default):
    value = door.get(key)
    return default if value is None else value


def _validated(door):
    """The Door for a door with a protected port (None for raw-only doors without one)."""
    try:
        if door.get('port') is None:
            if not _raw(door):
                raise KnockValueError('needs a protected port (port) or raw commands (start_command, ...)')
            if door.get('sequence') is not None:
                parse_sequence(door['sequence'])
            return None
        return make_door(
            door.get('name'), door.get('sequence'), door['port'],
            step_timeout=_given(door, 'seq_timeout', DEFAULT_SEQ_TIMEOUT),
            open_window=_given(door, 'cmd_timeout', DEFAULT_CMD_TIMEOUT),
            protocol=door.get('protocol') or 'tcp', ip_version=door.get('ip_version') or 'both',
            tcpflags=door.get('tcpflags'))
    except KnockValueError as exc:
        _fail(door, exc)


# a path that is one word in a shell command: no space, quote, ;, $, newline ... (knockd runs
# its commands through /bin/sh, and the chain script does not quote it either)
_BINARY_RE = re.compile(r'[A-Za-z0-9._+/][A-Za-z0-9._+/-]*\Z')


def check_binary(path, what):
    """``path`` if it is a path of safe characters (not starting with -), else AnsibleFilterError naming it."""
    if not isinstance(path, str) or not _BINARY_RE.match(path) or '/-' in path:
        raise AnsibleFilterError("%s %r must be a path of letters, digits and . _ + - / only "
                                 "(it is used unquoted in shell commands)" % (what, path))
    return path


def management_networks(networks, what='recent_knock_management_networks'):
    """Validate a list of addresses/CIDRs (IPv4, IPv6) and return them as given.

    Raises AnsibleFilterError naming the first value that is not one address or network
    (a newline, a space or ``-j ACCEPT`` would otherwise reach the rule syntax).
    """
    if networks is None:
        return []
    if not isinstance(networks, (list, tuple)):
        raise AnsibleFilterError('%s must be a list of addresses or networks, not %s' % (what, type(networks).__name__))
    for net in networks:
        if not isinstance(net, str) or net != net.strip():
            raise AnsibleFilterError('%s: %r is not an address or network' % (what, net))
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError as exc:
            raise AnsibleFilterError('%s: %r is not an address or network (%s)' % (what, net, to_text(exc)))
    return list(networks)


def _port_match(model):
    return ['-p', model.protocol, '-m', 'multiport', '--dports', ','.join(str(p) for p in model.ports)]


def _commands(model, firewall, binaries):
    """Rendered start/stop commands, one pair per family of the door."""
    params = {}
    for family in families(model):
        binary = binaries[family]
        if firewall:
            chain, spec = chain_name(model.name), ['-s', '%IP%', '-j', 'ACCEPT']
        else:
            chain, spec = 'INPUT', ['-s', '%IP%'] + _port_match(model) + ['-j', 'ACCEPT']
        rule = ' '.join(spec)
        suffix = '' if family == 'ipv4' else '_6'
        params['start_command' + suffix] = '%s -w -C %s %s 2>/dev/null || %s -w -I %s 1 %s' % (
            binary, chain, rule, binary, chain, rule)
        params['stop_command' + suffix] = '%s -w -D %s %s' % (binary, chain, rule)
    return params


def knockd_stanza_params(door, firewall=True, iptables='/usr/sbin/iptables', ip6tables='/usr/sbin/ip6tables'):
    """Parameters of the knockd_stanza module for one role door."""
    _check_keys(door)
    check_binary(iptables, 'knockd_iptables')
    check_binary(ip6tables, 'knockd_ip6tables')
    name = door.get('name')
    if not _present(door):
        return {'name': name, 'state': 'absent'}
    model = _validated(door)
    params = {'name': name, 'state': 'present'}
    sequence = door.get('sequence')
    params['sequence'] = format_sequence(model.sequence) if model else sequence
    params['seq_timeout'] = door.get('seq_timeout')
    params['cmd_timeout'] = door.get('cmd_timeout')
    params['tcpflags'] = (format_tcpflags(model.tcpflags) or None) if model else door.get('tcpflags')
    for key in PASS_THROUGH:
        params[key] = door.get(key)
    if _raw(door):
        for key in RAW_COMMANDS:
            params[key] = door.get(key)
    else:
        params.update(_commands(model, door.get('firewall', firewall), {'ipv4': iptables, 'ipv6': ip6tables}))
    return dict((key, value) for key, value in params.items() if value is not None)


def _allow_for(sources, family, door_name):
    result = []
    for source in sources or []:
        try:
            net = ipaddress.ip_network(to_text(source), strict=False)
        except ValueError as exc:
            raise AnsibleFilterError('knockd_always_allow: %s (door %r)' % (exc, door_name))
        if (net.version == 4) == (family == 'ipv4'):
            result.append(str(net))
    return result


def knockd_firewall_chains(doors, firewall=True, always_allow=None, iptables='/usr/sbin/iptables',
                           ip6tables='/usr/sbin/ip6tables'):
    """The chains the role manages: one dict per door with a protected port and family.

    ``state: absent`` doors are returned with ``state: absent`` (their chains are removed);
    doors with ``firewall: false`` or without a protected port are left out.
    """
    binaries = {'ipv4': check_binary(iptables, 'knockd_iptables'), 'ipv6': check_binary(ip6tables, 'knockd_ip6tables')}
    management_networks(always_allow, 'knockd_always_allow')
    chains = []
    for door in doors or []:
        _check_keys(door)
        if not door.get('firewall', firewall):
            continue
        if not _present(door):
            for family in ('ipv4', 'ipv6'):
                chains.append({'door': door.get('name'), 'state': 'absent', 'family': family,
                               'binary': binaries[family], 'chain': chain_name(door.get('name'))})
            continue
        model = _validated(door)
        if model is None:
            continue
        for family in ('ipv4', 'ipv6'):
            chain = chain_name(model.name)
            entry = {'door': model.name, 'family': family, 'binary': binaries[family], 'chain': chain}
            if family not in families(model):
                entry['state'] = 'absent'
            else:
                entry['state'] = 'present'
                entry['jump'] = ' '.join(_port_match(model) + ['-m', 'conntrack', '--ctstate', 'NEW', '-j', chain])
                tag = ['-m', 'comment', '--comment', STATIC_TAG]
                entry['static'] = [' '.join(['-s', net] + tag + ['-j', 'ACCEPT'])
                                   for net in _allow_for(always_allow, family, model.name)]
                entry['static'].append(' '.join(tag + ['-j', 'DROP']))
            chains.append(entry)
    return chains


class FilterModule(object):
    def filters(self):
        return dict((function.__name__, function) for function in (
            knockd_stanza_params, knockd_firewall_chains, management_networks))
