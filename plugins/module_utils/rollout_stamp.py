# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""A host's rollout stamp: is the last confirmed rollout still what the host has (module rollout_stamp)?

The stamp (JSON, 0600) holds the controller's digest of the rollout's inputs and a fingerprint
of the host state the rollout manages, made of one digest per part (a path, a glob, a service,
a package, a firewall family and variant, an nft table), so a check can name the parts that
differ and never their content.  Digests are keyed with a random salt kept in the stamp: the
managed state holds knock ports and keys, and a plain sha256 of a low-entropy secret could be
guessed from a logged fingerprint.

What a part's state is:

* a path: absent, or type, mode, uid, gid and the sha256 of its content (a symlink: its target
  text, not followed); a directory recursively, sorted, without ``__pycache__``; files are hashed
  in this process (no command per file).
* a glob: the sorted matches of ``glob.glob``, each as a path.
* a service: ``systemctl show`` ActiveState, UnitFileState and LoadState (what ``is-active`` and
  ``is-enabled`` say) in one call for all services when PID 1 is systemd, else the exit status of
  ``service NAME status``.
* a package: its ``dpkg-query -W`` line (name, version, status), ``missing`` when not installed.
* the firewall: per family and iptables variant (nft, legacy) what the collection owns in
  ``<iptables>-<variant>-save -t filter`` (host_firewall.owned_xtables: chains PK-*, INPUT's
  jumps to them and INPUT's policy, counters zeroed) without the knockers' ACCEPT rules knockd
  adds to its door chains (``PK-*-KD`` rules without the ``pk-static`` comment); legacy is read
  only when the kernel has a legacy filter table (reading it would load the legacy module).  And
  each table ``inet portknock_*`` of ``nft -t list ruleset`` (one command: no set elements, i.e.
  no knockers and their timeouts) with its counters' values stripped (nft_rules.stateless).

A command that is missing or fails gives its part a marker (``not installed``, ``unavailable``)
instead of an error: the marker is a state like any other and differs from a read one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import glob
import hashlib
import hmac
import json
import os
import re
import stat

from . import nft_rules
from . import recent_rules
from .atomic_file import write_atomic
from .door import KNOCKD_CHAIN_SUFFIX
from .firewall_snapshot import FAMILIES as XTABLES_FAMILIES, VARIANTS, legacy_tables_now
from .host_firewall import STATIC_TAG, owned_xtables

STAMP_PATH = '/var/lib/portknock/rollout.stamp'
STAMP_MODE = 0o600
DIR_MODE = 0o700
SYSTEMD_RUN_DIR = '/run/systemd/system'
SKIPPED_DIRS = ('__pycache__',)
NOT_INSTALLED = 'not installed'
UNAVAILABLE = 'unavailable'
MISSING = 'missing'
DPKG_FORMAT = '${Package} ${Version} ${db:Status-Abbrev}\n'
SYSTEMD_PROPERTIES = ('ActiveState', 'UnitFileState', 'LoadState')
CHUNK = 1 << 16

_HEX64 = re.compile(r'\A[0-9a-f]{64}\Z')
_SERVICE = re.compile(r'\A[A-Za-z0-9_][A-Za-z0-9@._:\\-]{0,255}\Z')
_PACKAGE = re.compile(r'\A[a-z0-9][a-z0-9+.-]{0,127}(?::[a-z0-9-]{1,32})?\Z')
_ELEMENTS = re.compile(r'\n[ \t]*elements = \{[^}]*\}')   # a set's addresses, if nft printed them


class StampError(Exception):
    """A bad parameter or an unusable stamp path; the message names the value."""


# ---- parameters ----

def check_inputs(value):
    """The controller's digest, lowercased; StampError unless it is 64 hex digits (not quoted back)."""
    if not isinstance(value, str) or not _HEX64.match(value.strip().lower()):
        length = len(value) if isinstance(value, str) else 0
        raise StampError('inputs must be a sha256 digest (64 hex digits), got %s' % (
            'a text of %d characters that is not one' % length if isinstance(value, str) else type(value).__name__))
    return value.strip().lower()


def check_paths(values, what):
    """Absolute paths (globs: absolute patterns); StampError naming the first that is not."""
    found = []
    for value in values or ():
        if not isinstance(value, str) or not value.startswith('/') or '\x00' in value or '\n' in value:
            raise StampError('%s: %r is not an absolute path' % (what, value))
        found.append(value)
    return found


def check_names(values, what, pattern):
    found = []
    for value in values or ():
        if not isinstance(value, str) or not pattern.match(value):
            raise StampError('%s: %r is not a valid name' % (what, value))
        if value not in found:
            found.append(value)
    return found


# ---- paths ----

def _content_digest(path):
    digest = hashlib.sha256()
    try:
        with open(path, 'rb') as handle:
            for chunk in iter(lambda: handle.read(CHUNK), b''):
                digest.update(chunk)
    except (IOError, OSError):
        return 'unreadable'
    return digest.hexdigest()


def _entry(path, name):
    """[name, type, mode, uid, gid, content] of one file system entry (lstat: links are not followed)."""
    try:
        st = os.lstat(path)
    except (IOError, OSError):
        return [name, 'absent']
    head = [name, None, '%04o' % stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid]
    if stat.S_ISLNK(st.st_mode):
        head[1] = 'link'
        try:
            return head + [os.readlink(path)]
        except (IOError, OSError):
            return head + ['unreadable']
    if stat.S_ISDIR(st.st_mode):
        head[1] = 'dir'
        return head
    if stat.S_ISREG(st.st_mode):
        head[1] = 'file'
        return head + [_content_digest(path)]
    head[1] = 'other %o' % stat.S_IFMT(st.st_mode)    # a socket, a fifo, a device: never opened
    return head


def path_state(path):
    """The entries of ``path``: itself, and for a directory everything under it, sorted."""
    entries = [_entry(path, '.')]
    pending = [('', path)] if entries[0][1] == 'dir' else []
    while pending:
        relative, directory = pending.pop()
        try:
            names = sorted(os.listdir(directory))
        except (IOError, OSError):
            entries.append([relative or '.', 'unlistable'])
            continue
        below = []
        for name in names:
            if name in SKIPPED_DIRS:
                continue
            full = os.path.join(directory, name)
            rel = os.path.join(relative, name) if relative else name
            entry = _entry(full, rel)
            entries.append(entry)
            if entry[1] == 'dir':
                below.append((rel, full))
        pending.extend(reversed(below))
    entries.sort(key=lambda item: item[0])
    return entries


def glob_state(pattern):
    return [[match, path_state(match)] for match in sorted(glob.glob(pattern))]


# ---- firewall ----

def xtables_state(save_text):
    """The owned part of ``iptables-save -t filter`` output without knockd's knockers' rules."""
    lines = owned_xtables(save_text, with_policy=True).splitlines()
    return '\n'.join(line for line in lines
                     if not (line.startswith('-A ') and recent_rules.rule_chain(line).endswith(KNOCKD_CHAIN_SUFFIX)
                             and STATIC_TAG not in line)) + '\n'


def nft_state(ruleset_text):
    """{'inet portknock_x': listing} of the collection's tables, without set elements and counter values."""
    tables = {}
    for name, listing in nft_rules.table_listings(ruleset_text).items():
        family, _sep, table = name.partition(' ')
        if family == nft_rules.TABLE_FAMILY and table.startswith(nft_rules.TABLE_PREFIX):
            tables[name] = nft_rules.stateless(_ELEMENTS.sub('', listing))
    return tables


class HostState(object):
    """Reads the parts of a host's state: ``parts(...)`` -> {part name: canonical text}.

    ``run(args) -> (rc, out, err)`` and ``which(name) -> path or None`` are the host's (the
    module's run_command and get_bin_path); each command runs once.
    """

    def __init__(self, run, which, exists=None, legacy_tables=None):
        self.run = run
        self.which = which
        self.exists = exists or os.path.exists
        self.legacy_tables = legacy_tables or legacy_tables_now    # /proc/net/ip{,6}_tables_names
        self.commands = 0

    def _run(self, args):
        self.commands += 1
        try:
            return self.run(args)
        except (IOError, OSError):
            return 127, '', ''

    def parts(self, paths=(), globs=(), services=(), packages=(), firewall=True):
        found = {}
        for path in paths:
            found[path] = path_state(path)
        for pattern in globs:
            found['glob ' + pattern] = glob_state(pattern)
        found.update(self.services(services))
        found.update(self.packages(packages))
        if firewall:
            found.update(self.firewall())
        return found

    def services(self, names):
        if not names:
            return {}
        systemctl = self.which('systemctl')
        if systemctl and self.exists(SYSTEMD_RUN_DIR):
            rc, out, _err = self._run([systemctl, 'show', '--property=' + ','.join(SYSTEMD_PROPERTIES), '--'] + list(names))
            blocks = re.split(r'\n\s*\n', out.strip()) if out.strip() else []
            if rc != 0 or len(blocks) != len(names):
                return dict(('service ' + name, UNAVAILABLE) for name in names)
            found = {}
            for name, block in zip(names, blocks):
                values = dict(line.split('=', 1) for line in block.splitlines() if '=' in line)
                found['service ' + name] = ['systemd'] + [values.get(key) for key in SYSTEMD_PROPERTIES]
            return found
        service = self.which('service')
        if not service:
            return dict(('service ' + name, NOT_INSTALLED) for name in names)
        return dict(('service ' + name, ['service', self._run([service, name, 'status'])[0]]) for name in names)

    def packages(self, names):
        if not names:
            return {}
        dpkg_query = self.which('dpkg-query')
        if not dpkg_query:
            return dict(('package ' + name, NOT_INSTALLED) for name in names)
        rc, out, _err = self._run([dpkg_query, '-W', '-f', DPKG_FORMAT, '--'] + list(names))
        if rc not in (0, 1):          # 1: some are not installed (dpkg-query says so on stderr)
            return dict(('package ' + name, UNAVAILABLE) for name in names)
        lines = {}
        for line in out.splitlines():
            words = line.split()
            if words:
                lines.setdefault(words[0], []).append(' '.join(words))
        return dict(('package ' + name, sorted(lines.get(name.split(':')[0], [])) or MISSING) for name in names)

    def firewall(self):
        found = {}
        for variant in VARIANTS:
            for family, base, names_file in XTABLES_FAMILIES:
                part = 'firewall %s %s' % (family, variant)
                save = self.which('%s-%s-save' % (base, variant))
                if not save:
                    found[part] = NOT_INSTALLED
                elif variant == 'legacy' and recent_rules.TABLE not in self.legacy_tables(names_file):
                    found[part] = xtables_state('')       # no legacy filter table: nothing owned
                else:
                    rc, out, _err = self._run([save, '-t', recent_rules.TABLE])
                    found[part] = xtables_state(out) if rc == 0 else UNAVAILABLE
        nft = self.which('nft')
        if not nft:
            found['firewall nft'] = NOT_INSTALLED
            return found
        rc, out, _err = self._run([nft, '-t', 'list', 'ruleset'])
        if rc != 0:
            found['firewall nft'] = UNAVAILABLE
            return found
        tables = nft_state(out)
        found['firewall nft'] = sorted(tables)
        for name, listing in tables.items():
            found['firewall nft ' + name] = listing
        return found


# ---- digests and the stamp ----

def new_salt():
    return binascii.hexlify(os.urandom(16)).decode('ascii')


def _keyed(salt, text):
    return hmac.new(salt.encode('ascii'), text.encode('utf-8'), hashlib.sha256).hexdigest()


def digests(parts, salt):
    """{part name: keyed sha256 of its canonical JSON}."""
    return dict((name, _keyed(salt, json.dumps([name, value], sort_keys=True, separators=(',', ':'))))
                for name, value in parts.items())


def fingerprint(part_digests, salt):
    return _keyed(salt, json.dumps(sorted(part_digests.items()), separators=(',', ':')))


def read_stamp(path):
    """The stamp at ``path`` as a dict, None when there is none, 'unreadable' when it is not a stamp."""
    try:
        with open(path) as handle:
            text = handle.read()
    except (IOError, OSError, ValueError):
        return 'unreadable' if os.path.lexists(path) else None
    try:
        stamp = json.loads(text)
    except ValueError:
        return 'unreadable'
    if not (isinstance(stamp, dict) and isinstance(stamp.get('inputs'), str) and isinstance(stamp.get('fingerprint'), str)
            and isinstance(stamp.get('salt'), str) and re.match(r'\A[0-9a-f]{32}\Z', stamp['salt'])
            and isinstance(stamp.get('parts'), dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in stamp['parts'].items())):
        return 'unreadable'
    return stamp


def stamp_text(inputs, part_digests, salt):
    stamp = {'inputs': inputs, 'fingerprint': fingerprint(part_digests, salt), 'parts': part_digests, 'salt': salt}
    return json.dumps(stamp, sort_keys=True, indent=1) + '\n'


def summary(stamp):
    """What a diff shows of a stamp: its digests only."""
    if not isinstance(stamp, dict):
        return ''
    return 'inputs: %s\nfingerprint: %s\n' % (stamp['inputs'], stamp['fingerprint'])


def reasons(stamp, inputs, part_digests):
    """Why the host is not current (empty: it is); part names only, never their content."""
    if stamp is None:
        return ['no stamp']
    if not isinstance(stamp, dict):
        return ['stamp unreadable']
    found = [] if stamp['inputs'] == inputs else ['inputs differ']
    before = stamp['parts']
    found.extend('state differs: %s' % name for name in sorted(set(before) | set(part_digests))
                 if before.get(name) != part_digests.get(name))
    if not found and stamp['fingerprint'] != fingerprint(part_digests, stamp['salt']):
        found.append('fingerprint differs')
    return found


class RolloutStamp(object):
    """The three states of the module: ``check()``, ``present(check_mode)``, ``absent(check_mode)``."""

    def __init__(self, path, host, inputs=None, paths=(), globs=(), services=(), packages=(), firewall=True):
        if not isinstance(path, str) or not path.startswith('/'):
            raise StampError('path: %r is not an absolute path' % (path,))
        self.path = path
        self.host = host
        self.inputs = None if inputs is None else check_inputs(inputs)
        self.spec = dict(paths=check_paths(paths, 'paths'), globs=check_paths(globs, 'globs'),
                         services=check_names(services, 'services', _SERVICE),
                         packages=check_names(packages, 'packages', _PACKAGE), firewall=bool(firewall))

    def _now(self, salt):
        return digests(self.host.parts(**self.spec), salt)

    def _need_inputs(self, state):
        if self.inputs is None:
            raise StampError('state=%s needs inputs (the controller\'s digest of the rollout\'s inputs)' % state)

    def check(self):
        self._need_inputs('check')
        stamp = read_stamp(self.path)
        salt = stamp['salt'] if isinstance(stamp, dict) else new_salt()
        now = self._now(salt)
        why = reasons(stamp, self.inputs, now)
        return dict(changed=False, current=not why, reasons=why, fingerprint=fingerprint(now, salt), stamp_path=self.path)

    def present(self, check_mode=False):
        self._need_inputs('present')
        stamp = read_stamp(self.path)
        salt = stamp['salt'] if isinstance(stamp, dict) else new_salt()
        now = self._now(salt)
        text = stamp_text(self.inputs, now, salt)
        try:
            with open(self.path) as handle:
                same = handle.read() == text and stat.S_IMODE(os.fstat(handle.fileno()).st_mode) == STAMP_MODE
        except (IOError, OSError, ValueError):
            same = False
        if not same and not check_mode:
            self._write(text)
        return dict(changed=not same, fingerprint=fingerprint(now, salt), stamp_path=self.path,
                    diff=dict(before=summary(stamp), after=summary(json.loads(text)),
                              before_header=self.path, after_header=self.path))

    def _write(self, text):
        directory = os.path.dirname(self.path)
        try:
            if not os.path.isdir(directory):
                os.makedirs(directory, DIR_MODE)
                os.chmod(directory, DIR_MODE)
            if os.path.isdir(self.path):
                raise StampError('path: %s is a directory' % self.path)
            if not write_atomic(self.path, text, STAMP_MODE):
                os.chmod(self.path, STAMP_MODE)       # same content, wrong mode
        except (IOError, OSError) as exc:
            raise StampError('cannot write the stamp %s: %s' % (self.path, exc.strerror or exc))

    def absent(self, check_mode=False):
        stamp = read_stamp(self.path)
        exists = os.path.lexists(self.path)
        if exists and os.path.isdir(self.path) and not os.path.islink(self.path):
            raise StampError('path: %s is a directory, not a stamp' % self.path)
        if exists and not check_mode:
            try:
                os.unlink(self.path)
            except (IOError, OSError) as exc:
                raise StampError('cannot remove the stamp %s: %s' % (self.path, exc.strerror or exc))
        return dict(changed=exists, stamp_path=self.path,
                    diff=dict(before=summary(stamp) if exists else '', after='',
                              before_header=self.path, after_header=self.path))
