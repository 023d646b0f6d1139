# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""What the recent_knock module does with its doors, behind ``select_backend`` (community.crypto style).

``select_backend(name, run, which, ...)`` resolves ``auto`` and builds the backend;
``converge(requests, run, which, ...)`` takes one or more doors to their wanted state:

* the doors are grouped by backend, each backend reads the live rules of all its doors
  at once (``live_many``) and applies every change in one transaction per address family
  (iptables: one ``iptables-restore --noflush`` per family; nftables: one ``nft -f``);
* a door with ``state=absent`` is removed from every backend available on the host;
* what a run changed is read back, and a failure part of the way reports ``changed``
  honestly and says what was changed (the guard of the action plugin restores it).

``run`` is ``run(args, data=None) -> (rc, out, err)`` and ``which`` a binary's path or None.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import re

from . import nft_rules, recent_rules
from .door import Door, make_door, parse_name
from .firewall_errors import BackendError
from .iptables_backend import IptablesBackend
from .nftables_backend import NftablesBackend
from .sequence import KnockValueError

BACKENDS = ('iptables', 'nftables')
BINARY = {'iptables': 'iptables', 'nftables': 'nft'}
IP_LIST_TOT = '/sys/module/xt_recent/parameters/ip_list_tot'

# One door to converge: its model, present or absent, the backend asked for (auto resolved),
# and the nftables options (None: the backend's default)
Request = collections.namedtuple('Request', 'door present backend set_size integrate_input_chain')


def read_ip_list_tot():
    try:
        with open(IP_LIST_TOT) as handle:
            return int(handle.read().strip())
    except (IOError, OSError, ValueError):
        return None


def resolve(name, which):
    """``auto`` is iptables when an iptables binary exists, else nftables."""
    if name == 'auto':
        return 'iptables' if which('iptables') else 'nftables'
    return name


def select_backend(name, run, which, set_size=nft_rules.DEFAULT_SET_SIZE, integrate_input_chain=False):
    """(resolved name, backend object); BackendError when its tools are missing."""
    name = resolve(name, which)
    if name == 'iptables':
        return name, IptablesBackend(run, which)
    return name, NftablesBackend(run, which, set_size, integrate_input_chain)


def dports(lines):
    """The port numbers matched in rule lines (to mask them when the sequence is unknown)."""
    found = set()
    for line in lines:
        found.update(re.findall(r'dport (\d+)', line))
    return found


def door_for_removal(name):
    """Only the name matters to remove a door."""
    return Door(name=parse_name(name), sequence=(), step_timeout=1, open_window=1, ports=(),
                protocol='tcp', ip_version='both', tcpflags=())


def request_from(params, backend='auto', set_size=None, integrate_input_chain=None):
    """A Request from the fields of one door (the module's single-door parameters or one
    element of ``doors``); KnockValueError on a bad value."""
    present = (params.get('state') or 'present') == 'present'
    sequence, port = params.get('sequence'), params.get('port')
    if present and (sequence is None or port is None):
        missing = [key for key, value in (('sequence', sequence), ('port', port)) if value is None]
        raise KnockValueError('door %r: state is present but all of the following are missing: %s'
                              % (params.get('name'), ', '.join(missing)))
    if sequence is not None and port is not None:
        door = make_door(params.get('name'), sequence, port, params.get('step_timeout'), params.get('open_window'),
                         params.get('protocol') or 'tcp', params.get('ip_version') or 'both')
    else:
        door = door_for_removal(params.get('name'))
    size = params.get('set_size') if params.get('set_size') is not None else set_size
    if size is not None and size <= 0:
        raise KnockValueError('set_size %r must be greater than 0' % size)
    integrate = params.get('integrate_input_chain')
    return Request(door, present, params.get('backend') or backend, size,
                   integrate_input_chain if integrate is None else integrate)


def changed_parts(backend, doors, before):
    """The parts (families, table; ``door: part`` for several doors) whose live rules differ from
    ``before`` ({door name: state}); None when unreadable."""
    try:
        now = backend.live_many(doors)
    except BackendError:
        return None
    parts = []
    for door in doors:
        old, new = before[door.name], now[door.name]
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                parts.append(key if len(doors) == 1 else '%s: %s' % (door.name, key))
    return parts


def changed_note(committed, backend, parts):
    """What a failed run had changed already (empty when nothing)."""
    notes = ['the %s rules of the door were changed' % name for name in committed]
    if backend is not None and parts is None:
        notes.append('the %s rules could not be read back: treat them as changed' % backend.name)
    elif parts:
        notes.append('its %s rules (%s) were changed before this failure' % (backend.name, ', '.join(parts)))
    return ('; the firewall WAS changed: %s' % '; '.join(notes)) if notes else '; nothing was changed'


class Failed(Exception):
    """converge() failed; ``changed`` says whether the firewall was changed all the same."""

    def __init__(self, msg, changed):
        super(Failed, self).__init__(msg)
        self.changed = changed


def describe_door(request, backend_name):
    """The per-door part of the result (before ``rules`` is known)."""
    door = request.door
    out = dict(name=door.name, backend=backend_name, rules={}, chains=list(recent_rules.owned_chains(door)),
               table='%s %s' % (nft_rules.TABLE_FAMILY, nft_rules.table_name(door)))
    if request.present:
        out['lists'] = list(recent_rules.list_names(door))
    return out


class Converger(object):
    """One run over ``requests``: ``plan()`` fills ``doors`` (per-door results), then ``apply()``."""

    def __init__(self, requests, run, which, check_mode=False, warn=None, secret=None,
                 factories=None):
        self.requests = requests
        self.run = run
        self.which = which
        self.check_mode = check_mode
        self.warn = warn or (lambda text: None)
        self.secret = secret if secret is not None else set()
        self.factories = factories or {'iptables': lambda: IptablesBackend(run, which),
                                       'nftables': lambda: NftablesBackend(run, which)}
        self.backends = {}
        self.committed = []
        self.changed = False
        self.before, self.after = [], []
        self.doors = [describe_door(r, resolve(r.backend, which)) for r in requests]
        self.details = []

    def _backend(self, name):
        if name not in self.backends:
            backend = self.factories[name]()
            for warning in backend.warnings:
                self.warn(warning)
            self.backends[name] = backend
        return self.backends[name]

    def groups(self):
        """[(backend name, [(index, request, primary?)])] in the order the doors name them."""
        order, groups = [], {}
        for index, request in enumerate(self.requests):
            name = self.doors[index]['backend']
            targets = [(name, True)]
            if not request.present:
                other = [b for b in BACKENDS if b != name][0]
                if self.which(BINARY[other]):
                    targets.append((other, False))
            for target, primary in targets:
                if target not in groups:
                    order.append(target)
                    groups[target] = []
                groups[target].append((index, request, primary))
        # each door's own backend first (a missing one fails before anything changes), removals after
        order.sort(key=lambda name: 0 if any(p for _i, _r, p in groups[name]) else 1)
        return [(name, groups[name]) for name in order]

    def converge(self, multi=False):
        try:
            for name, members in self.groups():
                backend = self._backend(name)
                if any(primary for _i, _r, primary in members):
                    self.details.append(backend.describe())
                self._converge_backend(backend, members, multi)
        except BackendError as exc:
            raise Failed(str(exc) + changed_note(self.committed, None, None),
                         False if self.check_mode else bool(self.committed))

    def _converge_backend(self, backend, members, multi):
        doors = [request.door for _i, request, _p in members]
        if hasattr(backend, 'configure'):
            for _i, request, _p in members:
                backend.configure(request.door, request.set_size, request.integrate_input_chain)
        live = backend.live_many(doors)
        items = []
        for index, request, primary in members:
            door = request.door
            if not door.sequence:
                # removing a door whose sequence was not given: its knock ports are still secret
                for lines in live[door.name].values():
                    self.secret.update(dports(lines))
            wanted = backend.wanted(door, request.present)
            if primary:
                self.doors[index]['rules'] = wanted
            if live[door.name] == wanted:
                continue
            self.changed = True
            head = '# door %s (%s)\n' % (door.name, backend.name) if multi else ''
            self.before.append(head + backend.as_text(live[door.name]))
            self.after.append(head + backend.as_text(wanted))
            items.append((door, wanted, live[door.name]))
        if not items or self.check_mode:
            return
        changing = [door for door, _w, _l in items]
        try:
            backend.apply_many(items)
        except BackendError as exc:
            # a change that went part of the way is a change: say so (the guard restores it)
            parts = changed_parts(backend, changing, live)
            raise Failed(str(exc) + changed_note(self.committed, backend, parts),
                         bool(self.committed or parts or parts is None))
        now = backend.live_many(changing)
        if any(now[door.name] != live[door.name] for door in changing):
            self.committed.append(backend.name)
        odd = [(door, wanted) for door, wanted, _l in items if now[door.name] != wanted]
        if odd:
            raise Failed('the %s door%s %s %s applied but read%s back differently; live rules:\n%s%s' % (
                backend.name, 's' if len(odd) > 1 else '', ', '.join(door.name for door, _w in odd),
                'were' if len(odd) > 1 else 'was', '' if len(odd) > 1 else 's', ''.join(backend.as_text(now[door.name]) for door, _w in odd),
                changed_note(self.committed, None, None)), bool(self.committed))
