# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""Fail-closed doors: the daemon opens access itself, with an expiry the kernel holds.

No shell is involved and access ends on time even if the daemon is killed.
A spec names where the source address goes:

``nft:FAMILY/TABLE/SET4[/SET6]``
    ``nft add element FAMILY TABLE SET { ADDR timeout Ns }`` (the set needs
    ``flags timeout``; SET4 of type ipv4_addr, SET6 of type ipv6_addr; without
    SET6, IPv6 knockers are not let in).  A re-knock re-adds the element with
    a fresh timeout in one nft transaction.
``recent:NAME[/NAME6]``
    ``+ADDR`` written to ``/proc/net/xt_recent/NAME`` (IPv6 addresses to NAME6
    when given); the expiry is the ``--seconds`` of the firewall's ``-m recent
    --rcheck`` rule (set it to the stanza's Cmd_Timeout).  A re-knock refreshes
    the entry's time.  Give IPv6 its own list when an ip6tables rule checks it:
    the kernel keeps the ``--mask`` of the rule that created a list, so an IPv4
    rule's list masks IPv6 sources to their first 32 bits (recent_rules.py).

Specs are given on the command line (``--kernel-door [STANZA=]SPEC``), not in
knockd.conf, because knockd 0.8 (and the collection's parser) reject unknown
directives and the same file must work with both daemons.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re
import subprocess

XT_RECENT_DIR = '/proc/net/xt_recent'
NFT_FAMILIES = ('ip', 'ip6', 'inet', 'bridge', 'netdev', 'arp')
_NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_.-]{0,63}\Z')


class KernelDoorError(ValueError):
    pass


def _check_name(name, what, spec):
    if not _NAME_RE.match(name or ''):
        raise KernelDoorError('kernel door %r: %s %r is not a valid name' % (spec, what, name))
    return name


def _address(address):
    return ipaddress.ip_address(str(address))


class NftSetDoor:
    def __init__(self, spec, family, table, set4, set6=None, nft='nft'):
        self.spec = spec
        self.family = family
        self.table = table
        self.sets = {4: set4, 6: set6}
        self.nft = nft

    def _run(self, script):
        result = subprocess.run([self.nft, '-f', '-'], input=script.encode(), check=False,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if result.returncode != 0:
            message = result.stderr.decode('utf-8', 'replace').strip()
            raise OSError('nft failed (%d): %s' % (result.returncode, message))

    def _target(self, address):
        addr = _address(address)
        name = self.sets.get(addr.version)
        if not name:
            raise OSError('kernel door %s has no set for IPv%d' % (self.spec, addr.version))
        return '%s %s %s' % (self.family, self.table, name), str(addr)

    def open(self, address, seconds):
        where, addr = self._target(address)
        seconds = max(1, int(seconds))
        self._run('add element %s { %s timeout %ds }\n'
                  'delete element %s { %s }\n'
                  'add element %s { %s timeout %ds }\n'
                  % (where, addr, seconds, where, addr, where, addr, seconds))

    def close(self, address):
        where, addr = self._target(address)
        # add first so that the delete cannot fail on an already expired element
        self._run('add element %s { %s timeout 1s }\ndelete element %s { %s }\n' % (where, addr, where, addr))


class RecentListDoor:
    def __init__(self, spec, name, directory=XT_RECENT_DIR, name6=None):
        self.spec = spec
        self.name = name
        self.name6 = name6 or name
        self.directory = directory

    def _write(self, addr, sign):
        name = self.name6 if addr.version == 6 else self.name
        with open('%s/%s' % (self.directory, name), 'w') as handle:
            handle.write('%s%s\n' % (sign, addr))

    def open(self, address, seconds):
        self._write(_address(address), '+')

    def close(self, address):
        try:
            self._write(_address(address), '-')
        except OSError:
            pass  # not in the list any more


def parse_kernel_door(spec):
    """A door object (``open(address, seconds)``, ``close(address)``) from its spec."""
    text = str(spec).strip()
    kind, _sep, rest = text.partition(':')
    if kind == 'nft':
        parts = rest.split('/')
        if len(parts) not in (3, 4):
            raise KernelDoorError('kernel door %r: expected nft:FAMILY/TABLE/SET4[/SET6]' % text)
        if parts[0] not in NFT_FAMILIES:
            raise KernelDoorError('kernel door %r: nft family %r is not one of %s'
                                  % (text, parts[0], ', '.join(NFT_FAMILIES)))
        names = [_check_name(part, 'name', text) if part else None for part in parts[1:]]
        if not names[0] or not names[1]:
            raise KernelDoorError('kernel door %r: table and IPv4 set are required' % text)
        return NftSetDoor(text, parts[0], names[0], names[1], names[2] if len(names) > 2 else None)
    if kind == 'recent':
        parts = rest.split('/')
        if len(parts) > 2:
            raise KernelDoorError('kernel door %r: expected recent:NAME[/NAME6]' % text)
        names = [_check_name(part, 'recent list', text) for part in parts]
        return RecentListDoor(text, names[0], name6=names[1] if len(names) > 1 else None)
    raise KernelDoorError('kernel door %r: expected nft:FAMILY/TABLE/SET4[/SET6] or recent:NAME[/NAME6]' % text)


def parse_kernel_door_option(value):
    """``[STANZA=]SPEC`` from the command line -> (stanza name or None for all, door)."""
    text = str(value)
    stanza = None
    if '=' in text:
        stanza, text = text.split('=', 1)
        stanza = stanza.strip()
    return stanza, parse_kernel_door(text)
