# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""What module ``portknock.knock.firewall_guard`` does for each state: arm, confirm, restore now.

``arm`` snapshots the firewall (``firewall_snapshot.save``) and starts the watchdog
(``guard_watchdog.py``) under a new token, or restarts the countdown of the arm whose token it
is given; one live arm per host (every guard snapshots the whole firewall).  ``confirm`` stops
the watchdog and drops the snapshot, or says the watchdog restored the host already (and what
that restore could not do).  ``restore_now`` restores the snapshot and stops the watchdog, or
finishes an incomplete restore.  Confirm and restore act on a live arm only with its token.
``run`` holds the locks (arms of every guard, then the guard's own) and calls one of them.

Each takes the module (an ``AnsibleModule``: ``run_command``, ``warn``, ``check_mode``) and its
parameters, and ends the module (``exit_json`` / ``fail_json``) with ``result``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import time

from . import atomic_file
from . import firewall_snapshot as fs
from . import guard_watchdog

LOCK_WAIT = 60
ARM_LOCK = '.arm.lock'


def when(epoch):
    try:
        return time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(float(epoch)))
    except (TypeError, ValueError):
        return 'an unknown time'


def describe_arm(name, arm):
    return ('guard %s was armed at %s (token %s...) and its watchdog restores that snapshot at %s unless the '
            'rollout that armed it confirms' % (name, when(arm.get('created')), str(arm.get('token'))[:8],
                                                when(arm.get('deadline'))))


def live_guards(root, name, now, boot):
    """(name, arm) of every other guard on this host whose arm is live."""
    found = []
    try:
        entries = sorted(os.listdir(root))
    except OSError:
        return found
    for entry in entries:
        path = os.path.join(root, entry)
        if entry == name or not fs.NAME_RE.match(entry) or not os.path.isdir(path):
            continue    # claimed, half-written and lock files have dots in their names
        arm = fs.read_arm(path)
        if os.path.isfile(os.path.join(path, fs.MANIFEST)) and fs.is_live(arm, now, boot):
            found.append((entry, arm))
    return found


def token_matches(arm, token, live):
    """Whether the caller may confirm or restore the snapshot of ``arm``: with its token; without a
    token only a snapshot that has none (armed by an older version) or whose watchdog is gone."""
    if token is not None:
        return token == arm.get('token')
    return not arm.get('token') or not live


def record_about(record, token):
    """Whether a restore record is about the arm of ``token`` (any arm when no token is given)."""
    return record is not None and (token is None or record.get('token') in (None, token))


def rolled_back_message(name, record):
    msg = 'guard %s: too late to confirm, the watchdog restored the previous firewall at %s' % (name, when(record.get('time')))
    if record.get('error'):
        msg += ('; the restore was INCOMPLETE, it could not do: %s (restored: %s); the snapshot is kept in %s: '
                'fix the cause and run state=restored to finish it'
                % ('; '.join(record.get('failed') or [record['error']]), ', '.join(record.get('restored') or []) or 'nothing',
                   record.get('kept')))
    return msg


def not_armed_message(name, directory, token):
    record = fs.read_record(fs.record_path(directory))
    if record_about(record, token):
        return rolled_back_message(name, record)
    return ('guard %s: nothing is armed under this token (it was never armed on this host, or confirmed or restored '
            'and armed again since)' % name)


def confirm_within(timeout):
    """Seconds the controller has to reconnect and confirm an arm of ``timeout`` seconds."""
    return max(timeout - fs.CONFIRM_MARGIN, 1)


def arm(module, p, root, directory, result):
    kind = p['watchdog']
    if kind == 'auto':
        kind = 'systemd' if guard_watchdog.systemd_available(module) else 'process'
    elif kind == 'systemd' and not guard_watchdog.systemd_available(module):
        module.fail_json(msg='watchdog=systemd but systemd is not running or systemd-run is missing', **result)
    now, boot, token = time.time(), fs.boot_id(), p['token']
    exists = os.path.isfile(os.path.join(directory, fs.MANIFEST))
    current = fs.read_arm(directory) if exists else {}
    live = exists and fs.is_live(current, now, boot)
    if live and token != current.get('token'):
        module.fail_json(msg='%s. This arm is refused (two arms at once would undo each other\'s changes): wait until '
                         'that rollout confirms or its watchdog restores, or pass its token to restart its countdown'
                         % describe_arm(p['name'], current), **result)
    again = exists and token is not None and token == current.get('token')
    if token is not None and not again:
        module.fail_json(msg='not armed again: ' + not_armed_message(p['name'], directory, token), **result)
    if not again:
        others = live_guards(root, p['name'], now, boot)
        if others:
            module.fail_json(msg='%s. This arm of guard %s is refused: every guard snapshots the whole firewall, so '
                             'two at once would undo each other\'s changes; wait until it is confirmed or restored'
                             % (describe_arm(*others[0]), p['name']), **result)
    result.update(changed=True, kept_snapshot=exists, confirm_within=confirm_within(p['timeout']))
    if module.check_mode:
        module.exit_json(**result)
    new = None
    try:
        helper = guard_watchdog.write_helper(root)
        guard_watchdog.stop_watchdog(module, p['name'], root)
        if exists:
            manifest = fs.read_record(os.path.join(directory, fs.MANIFEST)) or {}
            if not again:
                module.warn('guard %s: an unconfirmed snapshot of %s exists, its watchdog is gone; it is kept '
                            '(last known-good state) and armed again under a new token'
                            % (p['name'], time.ctime(manifest.get('created', 0))))
        else:
            token = fs.new_token()
            for entry in os.listdir(root):      # half-written snapshots of arms that died (we hold the lock)
                if entry.startswith(p['name'] + '.new.'):
                    shutil.rmtree(os.path.join(root, entry), ignore_errors=True)
            new = '%s.new.%s' % (directory, token[:8])
            manifest = fs.save(new, p['paths'], p['services'], run=lambda a, d=None: module.run_command(a, data=d))
            if os.path.lexists(directory):      # not a snapshot (no manifest): put aside, never deleted
                os.rename(directory, '%s.broken.%d' % (directory, int(now)))
        if not again and exists:
            token = fs.new_token()
        record = dict(token=token, created=current.get('created', now) if exists else now, armed=now,
                      deadline=now + p['timeout'], boot=boot, timeout=p['timeout'])
        fs.write_arm(new or directory, record)
        if new:
            os.rename(new, directory)
            new = None
            for old in (fs.record_path(directory), fs.confirm_record_path(directory)):
                if os.path.exists(old):
                    os.unlink(old)
        result['saved'] = (['iptables-%s %s' % (e['variant'], e['family']) for e in manifest.get('iptables', [])]
                           + (['nft'] if manifest.get('nft') else [])
                           + [e['path'] for e in manifest.get('files', [])])
        result.update(token=token, deadline=record['deadline'])
        watchdog = guard_watchdog.start_watchdog(module, p['name'], root, helper, directory, p['timeout'], kind, token)
        result.update(watchdog)
        record.update(watchdog)
        fs.write_arm(directory, record)
    except (fs.SnapshotError, IOError, OSError) as exc:
        if new:
            shutil.rmtree(new, ignore_errors=True)     # our own half-written snapshot
        module.fail_json(msg='could not arm guard %s (nothing will be restored): %s' % (p['name'], exc), **result)
    module.exit_json(**result)


def confirm(module, p, root, directory, result):
    token = p['token']
    result['rolled_back'] = False
    if os.path.isfile(os.path.join(directory, fs.MANIFEST)):
        current = fs.read_arm(directory)
        live = fs.is_live(current)
        if not token_matches(current, token, live):
            if token is None:
                module.fail_json(msg='%s: confirming needs the token that arm returned' % describe_arm(p['name'], current),
                                 **result)
            msg = not_armed_message(p['name'], directory, token)
            if record_about(fs.read_record(fs.record_path(directory)), token):
                result.update(rolled_back=True, last_restore=fs.read_record(fs.record_path(directory)))
            module.fail_json(msg='%s; the snapshot there is another arm\'s: %s' % (msg, describe_arm(p['name'], current)),
                             **result)
        result['changed'] = True
        if module.check_mode:
            module.exit_json(**result)
        claimed = fs.claim(directory, 'confirmed')
        if claimed is not None:
            guard_watchdog.stop_watchdog(module, p['name'], root)
            shutil.rmtree(claimed, ignore_errors=True)
            try:
                atomic_file.write_atomic(fs.confirm_record_path(directory),
                                         json.dumps(dict(token=current.get('token'), time=time.time()), sort_keys=True))
            except (IOError, OSError) as exc:
                module.warn('guard %s confirmed, but its record could not be written: %s' % (p['name'], exc))
            module.exit_json(**result)
        result['changed'] = False
    record = fs.read_record(fs.record_path(directory))
    if record_about(record, token):
        result.update(rolled_back=True, last_restore=record)
        module.fail_json(msg=rolled_back_message(p['name'], record), **result)
    confirmed = fs.read_record(fs.confirm_record_path(directory))
    if token is not None:
        if confirmed and confirmed.get('token') == token:
            module.exit_json(msg='guard %s: already confirmed at %s' % (p['name'], when(confirmed.get('time'))), **result)
        module.fail_json(msg=not_armed_message(p['name'], directory, token), **result)
    module.exit_json(msg='guard %s: nothing armed' % p['name'], **result)


def restore_now(module, p, root, directory, result):
    token = p['token']

    def run(args, data=None):
        return module.run_command(args, data=data)

    if os.path.isfile(os.path.join(directory, fs.MANIFEST)):
        current = fs.read_arm(directory)
        if not token_matches(current, token, fs.is_live(current)):
            module.fail_json(msg='%s: restoring it now needs the token that arm returned' % describe_arm(p['name'], current),
                             **result)
        result['changed'] = True
        if module.check_mode:
            module.exit_json(**result)
        record = fs.restore_claimed(directory, run=run)
        guard_watchdog.stop_watchdog(module, p['name'], root)
        if record is None:
            module.exit_json(msg='guard %s: confirmed or restored by someone else meanwhile' % p['name'], **result)
    else:
        record = fs.read_record(fs.record_path(directory))
        if not (record_about(record, token) and record.get('kept') and os.path.isdir(record['kept'])):
            module.exit_json(msg='guard %s: no snapshot to restore' % p['name'], **result)
        # an incomplete restore kept its snapshot: do it again (the cause may be fixed now)
        result['changed'] = True
        if module.check_mode:
            module.exit_json(**result)
        record = fs.retry_restore(directory, run=run)
        if record is None:
            module.exit_json(msg='guard %s: no snapshot to restore' % p['name'], **result)
    result.update(restored=record['restored'], last_restore=record)
    if record['error']:
        module.fail_json(msg='guard %s: %s; the snapshot is kept in %s, run state=restored again to retry'
                         % (p['name'], record['error'], record['kept']), **result)
    module.exit_json(**result)


ACTIONS = dict(armed=arm, confirmed=confirm, restored=restore_now)


def run(module, p, root, directory, result):
    """Do ``p['state']`` on the guard of ``directory`` under the locks; ends the module."""
    action = ACTIONS[p['state']]
    if module.check_mode and not os.path.isdir(root):
        action(module, p, root, directory, result)
    try:
        if not os.path.isdir(root):
            os.makedirs(root, 0o700)
        # arms of every guard are serialised (one live guard per host), then every operation on
        # this guard holds its lock (the watchdog too)
        outer = fs.locked(os.path.join(root, ARM_LOCK), LOCK_WAIT) if p['state'] == 'armed' else None
        if outer is not None:
            outer.__enter__()       # pylint: disable=unnecessary-dunder-call
        try:
            with fs.locked(fs.lock_path(directory), LOCK_WAIT):
                action(module, p, root, directory, result)
        finally:
            if outer is not None:
                outer.__exit__(None, None, None)
    except fs.SnapshotError as exc:
        module.fail_json(msg='guard %s is busy: %s' % (p['name'], exc), **result)
    except (IOError, OSError) as exc:
        module.fail_json(msg='guard %s: %s' % (p['name'], exc), **result)
