# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""Save a host's whole firewall (and a few files) and put it back: the firewall guard's engine.

Used by the ``portknock.knock.firewall_guard`` module, and run on the host by the guard's
watchdog: guard_watchdog.write_helper copies this file and ``atomic_file.py`` (its one import from the
collection) into a package beside a script calling ``watchdog_main`` (``python3
firewall_snapshot.py restore <snapshot dir>``); everything else is the standard library.

A snapshot directory holds ``manifest.json`` and one file per saved thing:

* ``iptables-<variant>-<family>.rules``: ``iptables-save`` output of the nf_tables and of the
  legacy variant, IPv4 and IPv6 (legacy only when the kernel has legacy tables).  Restoring
  replaces every table of that variant: the saved tables with ``<variant>-restore`` (no
  ``--noflush``), and tables that exist now but did not then are reset to empty with ACCEPT
  policies in the same transaction.
* ``nft.ruleset``: ``nft -s list ruleset`` without the tables iptables-nft manages (family
  ip/ip6/arp/bridge named filter/nat/mangle/raw/security; restored through iptables above).
  Restoring deletes every other table that exists now and loads the saved ones, in one
  ``nft -f`` transaction.  Timeouts left on set elements (``expires``) are dropped.
* ``files/<n>``: copies of extra files (mode and owner kept), restored atomically; a file
  that did not exist is removed.  Then the listed services are restarted.

Who wins between confirm and restore is decided by renaming the snapshot directory
(``claim``): whichever renames it first acts, the other finds nothing.  Every operation on a
guard (arm, confirm, restore, the watchdog) also holds the guard's lock ``<name>.lock``.

Each arm has a token, kept with the snapshot in ``arm.json`` (with its deadline and the boot
it was made in): confirm and restore must present it, and the watchdog restores only the arm
it was started for.  The watchdog's restore carries on through every error it can survive
(a missing binary, an unreadable file) and writes ``<name>.last-restore.json`` saying what it
restored and what it could not; a restore that could not finish keeps the snapshot
(``kept`` in the record) so it can be retried.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time

from .atomic_file import write_atomic

GUARD_ROOT = '/var/lib/portknock/guard'
# The guard's margins, ONE set for every "arm, change, reset the connection, confirm": the
# recent_knock and firewall_guard action plugins (both plugin_utils/guarded_apply.py; the role
# portknock.knock.guard, site.yml and the recent_knock role's baseline through the latter) and
# firewall_guard's defaults and arm result (confirm_within).
ROLLBACK_TIMEOUT = 60   # firewall_guard's default timeout: the countdown after the change
CONFIRM_MARGIN = 3      # the controller stops trying to confirm this long before the watchdog fires
AFTER_DEADLINE = 8      # then waits this long past the deadline and looks whether the host rolled back
MANIFEST = 'manifest.json'
ARM = 'arm.json'
BOOT_ID = '/proc/sys/kernel/random/boot_id'
# an arm whose snapshot still exists this long after its deadline lost its watchdog (it died,
# or never ran): it is stale, not live
STALE_AFTER = 120
SEARCH_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']
FAMILIES = (('ipv4', 'iptables', '/proc/net/ip_tables_names'),
            ('ipv6', 'ip6tables', '/proc/net/ip6_tables_names'))
VARIANTS = ('nft', 'legacy')
BUILTIN_CHAINS = {
    'filter': ('INPUT', 'FORWARD', 'OUTPUT'),
    'nat': ('PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'),
    'mangle': ('PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'),
    'raw': ('PREROUTING', 'OUTPUT'),
    'security': ('INPUT', 'FORWARD', 'OUTPUT'),
}
XTABLES_FAMILIES = ('ip', 'ip6', 'arp', 'bridge')
NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_-]{0,39}\Z')


class SnapshotError(Exception):
    """Saving or restoring failed; the message says which command and why."""


def default_run(args, data=None):
    if not args or not args[0]:
        raise SnapshotError('no program to run (a binary is missing): %r' % (args,))
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(data.encode() if data is not None else None)
    return proc.returncode, out.decode('utf-8', 'replace'), err.decode('utf-8', 'replace')


def which(name):
    for directory in os.environ.get('PATH', '').split(os.pathsep) + SEARCH_PATH:
        path = os.path.join(directory, name)
        if directory and os.access(path, os.X_OK):
            return path
    return None


def check_name(name):
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise SnapshotError('guard name %r: letters, digits, - and _ only, at most 40 characters' % (name,))
    return name


def snapshot_dir(name, root=GUARD_ROOT):
    return os.path.join(root, check_name(name))


def tables_in(save_text):
    """Table names of an iptables-save output, in order."""
    return [line[1:].strip() for line in save_text.splitlines() if line.startswith('*')]


def empty_table(table):
    """An iptables-restore stanza that leaves ``table`` empty with ACCEPT policies."""
    lines = ['*%s' % table]
    lines.extend(':%s ACCEPT [0:0]' % chain for chain in BUILTIN_CHAINS.get(table, ()))
    lines.append('COMMIT')
    return '\n'.join(lines) + '\n'


def iptables_restore_input(saved_text, tables_now):
    """What to feed ``iptables-restore`` (without --noflush) to get back exactly ``saved_text``."""
    saved_tables = tables_in(saved_text)
    extra = ''.join(empty_table(t) for t in tables_now if t not in saved_tables)
    text = saved_text if saved_text.endswith('\n') or not saved_text else saved_text + '\n'
    return text + extra


def is_xtables_table(family, name):
    return family in XTABLES_FAMILIES and name in BUILTIN_CHAINS


def nft_tables(list_text):
    """(family, name) of each ``table <family> <name>`` line of ``nft list tables``."""
    found = []
    for line in list_text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == 'table':
            found.append((parts[1], parts[2]))
    return found


def nft_native_blocks(ruleset_text):
    """The top-level ``table ... { }`` blocks of ``nft list ruleset`` that iptables-nft does not manage."""
    blocks, current, keep = [], [], False
    for line in ruleset_text.splitlines():
        if not current:
            parts = line.split()
            if len(parts) >= 3 and parts[0] == 'table':
                current = [line]
                keep = not is_xtables_table(parts[1], parts[2])
                if line.rstrip().endswith('}'):
                    if keep:
                        blocks.append(line)
                    current = []
            continue
        current.append(line)
        if line.startswith('}'):
            if keep:
                blocks.append('\n'.join(current))
            current = []
    text = '\n'.join(blocks)
    return re.sub(r' expires [0-9dhms.]+', '', text) + ('\n' if text else '')


def nft_restore_script(saved_native, tables_now):
    """One ``nft -f`` transaction: delete today's native tables, load the saved ones."""
    lines = ['delete table %s %s' % t for t in tables_now if not is_xtables_table(*t)]
    return '\n'.join(lines) + ('\n' if lines else '') + saved_native


def legacy_tables_now(names_file):
    try:
        with open(names_file) as handle:
            return [line.strip() for line in handle if line.strip()]
    except (IOError, OSError):
        return []


def _tool(base, variant, what):
    return which('%s-%s-%s' % (base, variant, what))


def _checked(run, args, data=None):
    rc, out, err = run(args, data)
    if rc != 0:
        raise SnapshotError('%s failed (rc %s): %s' % (' '.join(args), rc, (err or out).strip()))
    return out


def _write(path, text, mode=0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, 'w') as handle:
        handle.write(text)


def new_token():
    """A fresh token for one arm (not a secret: it tells arms apart, it does not authenticate)."""
    return binascii.hexlify(os.urandom(16)).decode('ascii')


def boot_id():
    try:
        with open(BOOT_ID) as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return None


def lock_path(directory):
    return directory + '.lock'


@contextlib.contextmanager
def locked(path, timeout=60.0, poll=0.2):
    """Hold an exclusive flock on ``path`` (created 0600); SnapshotError after ``timeout`` s."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.time() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except (IOError, OSError):
                if time.time() >= deadline:
                    raise SnapshotError('%s is locked by another run (waited %d s)' % (path, timeout))
                time.sleep(poll)
        yield
    finally:
        os.close(fd)       # releases the lock


def read_arm(directory):
    """The arm record of a snapshot directory (token, deadline, boot), {} when it has none."""
    try:
        with open(os.path.join(directory, ARM)) as handle:
            arm = json.load(handle)
        return arm if isinstance(arm, dict) else {}
    except (IOError, OSError, ValueError):
        return {}


def write_arm(directory, arm):
    write_atomic(os.path.join(directory, ARM), json.dumps(arm, sort_keys=True))


def is_live(arm, now=None, boot=None):
    """Whether an arm still has a watchdog that will restore it (same boot, deadline not long past)."""
    now = time.time() if now is None else now
    boot = boot_id() if boot is None else boot
    try:
        deadline = float(arm.get('deadline'))
    except (TypeError, ValueError):
        return False
    return bool(arm.get('token')) and arm.get('boot') == boot and now < deadline + STALE_AFTER


def save(directory, paths=(), services=(), run=default_run):
    """Save the live firewall (and ``paths``) into ``directory`` (created 0700). Returns the manifest."""
    os.makedirs(directory, 0o700)
    os.chmod(directory, 0o700)
    manifest = {'created': time.time(), 'iptables': [], 'nft': None, 'files': [], 'services': list(services)}
    for variant in VARIANTS:
        for family, base, names_file in FAMILIES:
            save_bin = _tool(base, variant, 'save')
            if not save_bin or not _tool(base, variant, 'restore'):
                continue
            text = ''
            if variant == 'nft' or legacy_tables_now(names_file):
                text = _checked(run, [save_bin])
            name = 'iptables-%s-%s.rules' % (variant, family)
            _write(os.path.join(directory, name), text)
            manifest['iptables'].append({'variant': variant, 'family': family, 'file': name,
                                         'tables': tables_in(text)})
    nft = which('nft')
    if nft:
        native = nft_native_blocks(_checked(run, [nft, '-s', 'list', 'ruleset']))
        _write(os.path.join(directory, 'nft.ruleset'), native)
        manifest['nft'] = {'file': 'nft.ruleset', 'tables': nft_tables(native)}
    if paths:
        os.mkdir(os.path.join(directory, 'files'), 0o700)
    for index, path in enumerate(paths):
        entry = {'path': path, 'copy': None}
        if os.path.exists(path):
            st = os.stat(path)
            entry.update(copy='files/%d' % index, mode=st.st_mode & 0o7777, uid=st.st_uid, gid=st.st_gid)
            shutil.copyfile(path, os.path.join(directory, entry['copy']))
            os.chmod(os.path.join(directory, entry['copy']), 0o600)
        manifest['files'].append(entry)
    _write(os.path.join(directory, MANIFEST), json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def _need(path, name):
    """``path`` of the binary ``name``, or a SnapshotError saying it is missing (never Popen([None]))."""
    if not path:
        raise SnapshotError('%s not found (PATH and %s)' % (name, ':'.join(SEARCH_PATH)))
    return path


def restore_parts(directory, run=None):
    """Put back what ``save`` saved in ``directory``: (restored, failed), lists of strings.

    Every part is attempted whatever happens to the others (a missing binary, an unreadable
    file, a command that fails): the firewall parts, then the files, then the services.
    """
    run = run or default_run
    done, errors = [], []

    def attempt(label, func):
        try:
            func()
            done.append(label)
        except Exception as exc:    # pylint: disable=broad-except  # the way back goes on whatever fails
            errors.append('%s: %s' % (label, exc if isinstance(exc, (SnapshotError, EnvironmentError))
                                      else '%s: %s' % (type(exc).__name__, exc)))

    try:
        with open(os.path.join(directory, MANIFEST)) as handle:
            manifest = json.load(handle)
        if not isinstance(manifest, dict):
            raise ValueError('not a JSON object')
    except Exception as exc:        # pylint: disable=broad-except
        return done, ['manifest %s: %s' % (os.path.join(directory, MANIFEST), exc)]

    if manifest.get('nft'):
        def nft_restore():
            nft = _need(which('nft'), 'nft')
            with open(os.path.join(directory, manifest['nft']['file'])) as handle:
                saved = handle.read()
            now = nft_tables(_checked(run, [nft, 'list', 'tables']))
            script = nft_restore_script(saved, now)
            if script.strip():
                _checked(run, [nft, '-f', '-'], script)
        attempt('nft ruleset', nft_restore)
    for entry in manifest.get('iptables', []):
        base = 'iptables' if entry.get('family') == 'ipv4' else 'ip6tables'
        names_file = dict((f, n) for f, b, n in FAMILIES).get(entry.get('family'))

        def ipt_restore(entry=entry, base=base, names_file=names_file):
            variant = entry['variant']
            restore_bin = _need(_tool(base, variant, 'restore'), '%s-%s-restore' % (base, variant))
            with open(os.path.join(directory, entry['file'])) as handle:
                saved = handle.read()
            if variant == 'legacy':
                now = legacy_tables_now(names_file)
            else:
                now = tables_in(_checked(run, [_need(_tool(base, 'nft', 'save'), '%s-nft-save' % base)]))
            data = iptables_restore_input(saved, now)
            if data.strip():
                _checked(run, [restore_bin, '-w'], data)
        attempt('%s-%s' % (base, entry.get('variant')), ipt_restore)
    for entry in manifest.get('files', []):
        def file_restore(entry=entry):
            path = entry['path']
            if entry['copy'] is None:
                if os.path.lexists(path):
                    os.unlink(path)
                return
            tmp = '%s.portknock-guard.%d' % (path, os.getpid())
            shutil.copyfile(os.path.join(directory, entry['copy']), tmp)
            os.chmod(tmp, entry['mode'])
            os.chown(tmp, entry['uid'], entry['gid'])
            try:
                os.rename(tmp, path)
            except OSError:      # a mount point (bind-mounted file): rewrite it in place
                os.unlink(tmp)
                shutil.copyfile(os.path.join(directory, entry['copy']), path)
                os.chmod(path, entry['mode'])
        attempt(entry.get('path', '?'), file_restore)
    for service in manifest.get('services', []):
        attempt('restart %s' % service,
                lambda service=service: _checked(run, [_need(which('systemctl'), 'systemctl'), 'restart', service]))
    return done, errors


def incomplete_message(done, errors):
    return 'restore incomplete, failed: %s (restored: %s)' % ('; '.join(errors), ', '.join(done) or 'nothing')


def restore(directory, run=None):
    """Put back what ``save`` saved in ``directory``. Returns the list of what was restored.

    Every part is attempted even when one fails; SnapshotError lists the failures.
    """
    done, errors = restore_parts(directory, run)
    if errors:
        raise SnapshotError(incomplete_message(done, errors))
    return done


def claim(directory, why):
    """Atomically take the snapshot for ``why`` ('confirmed' or 'restoring'); None if someone else did."""
    taken = '%s.%s.%d.%s' % (directory, why, os.getpid(), new_token()[:8])
    try:
        os.rename(directory, taken)
    except OSError:
        return None
    return taken


def record_path(directory):
    return directory + '.last-restore.json'


def confirm_record_path(directory):
    return directory + '.last-confirm.json'


def read_record(path):
    try:
        with open(path) as handle:
            record = json.load(handle)
        return record if isinstance(record, dict) else None
    except (IOError, OSError, ValueError):
        return None


def restore_taken(directory, taken, run=None):
    """Restore the claimed snapshot ``taken`` of guard ``directory``; write and return the record.

    The record: time, token (of the arm restored), restored, failed (what could not be done),
    error (None when complete) and kept (the snapshot, left in place when incomplete).
    """
    record = {'time': time.time(), 'token': read_arm(taken).get('token'), 'restored': [], 'failed': [],
              'error': None, 'kept': None}
    try:
        done, errors = restore_parts(taken, run)
    except Exception as exc:        # pylint: disable=broad-except  # restore_parts catches; belt and braces
        done, errors = [], ['restore: %s: %s' % (type(exc).__name__, exc)]
    record.update(restored=done, failed=errors)
    if errors:
        record.update(error=incomplete_message(done, errors), kept=taken)
    try:
        write_atomic(record_path(directory), json.dumps(record, sort_keys=True))
    except Exception as exc:        # pylint: disable=broad-except
        record['record_error'] = str(exc)
    if not errors:
        shutil.rmtree(taken, ignore_errors=True)
    return record


def restore_claimed(directory, run=None, token=None):
    """Claim ``directory`` and restore it; writes ``<dir>.last-restore.json``.

    None if it was gone (confirmed, restored) or, with ``token``, holds another arm's snapshot.
    """
    if token is not None:
        armed = read_arm(directory).get('token')
        if armed and armed != token:
            return None
    taken = claim(directory, 'restoring')
    if taken is None:
        return None
    return restore_taken(directory, taken, run)


def retry_restore(directory, run=None):
    """Restore again the snapshot an incomplete restore kept; the new record, or None if there is none."""
    record = read_record(record_path(directory))
    kept = record.get('kept') if record else None
    if not kept or not os.path.isfile(os.path.join(kept, MANIFEST)):
        return None
    taken = claim(kept, 'restoring')
    if taken is None:
        return None
    return restore_taken(directory, taken, run)


def detach():
    """Fork a child in its own session with stdio on /dev/null; returns the child's pid in the
    parent, 0 in the child (so the caller's pipes close as soon as the parent returns)."""
    pid = os.fork()
    if pid:
        return pid
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)
    os.chdir('/')
    return 0


WATCHDOG_LOCK_WAIT = 300.0


def watchdog_restore(directory, token=None):
    """The watchdog's restore: under the guard's lock when it can get it (a confirm in progress
    finishes first), without it after WATCHDOG_LOCK_WAIT s (the way back must not wait forever)."""
    held = None
    try:
        held = locked(lock_path(directory), timeout=WATCHDOG_LOCK_WAIT)
        held.__enter__()       # pylint: disable=unnecessary-dunder-call
    except (SnapshotError, EnvironmentError):
        held = None
    try:
        return restore_claimed(directory, token=token)
    finally:
        if held is not None:
            held.__exit__(None, None, None)


def watchdog_main(argv, out=None, err=None):
    """The watchdog's command line; returns the exit status.

    ``restore DIR [TOKEN]``: restore now.  ``watch SECONDS DIR [TOKEN]``: sleep, then restore.
    ``spawn SECONDS DIR [TOKEN]``: run ``watch`` in a detached child and print its pid.
    With TOKEN only the arm of that token is restored (another arm's snapshot is left alone).
    The guard module writes this file plus a two-line ``__main__`` stub on the host
    (module_utils files have no entry point of their own).
    """
    out = out or sys.stdout
    err = err or sys.stderr
    if len(argv) in (3, 4) and argv[0] == 'spawn':
        pid = detach()
        if pid:
            out.write('%d\n' % pid)
            out.flush()
            return 0
        try:
            return watchdog_main(['watch'] + list(argv[1:]))
        finally:
            os._exit(0)     # the child never returns into the caller
    if len(argv) in (2, 3) and argv[0] == 'restore':
        directory, token = argv[1], (argv[2] if len(argv) == 3 else None)
    elif len(argv) in (3, 4) and argv[0] == 'watch':
        try:
            time.sleep(float(argv[1]))
        except ValueError:
            err.write('watch: %r is not a number of seconds\n' % (argv[1],))
            return 2
        directory, token = argv[2], (argv[3] if len(argv) == 4 else None)
    else:
        err.write('usage: firewall_snapshot.py restore DIR [TOKEN] | watch SECONDS DIR [TOKEN] | spawn SECONDS DIR [TOKEN]\n')
        return 2
    record = watchdog_restore(directory, token)
    if record is None:
        out.write('%s: confirmed, already restored or armed again, nothing to do\n' % directory)
        return 0
    out.write('%s: restored %s\n' % (directory, ', '.join(record['restored']) or 'nothing'))
    if record['error']:
        err.write('%s\n' % record['error'])
        return 1
    return 0
