#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: firewall_guard
short_description: Make a firewall change with a way back (snapshot, watchdog, confirm or roll back)
description:
  - "O(state=armed) saves the host's whole live firewall: C(iptables-save) of the nf_tables and of
    the legacy variant (legacy only when the kernel has legacy tables), IPv4 and IPv6, and
    C(nft -s list ruleset) (without the tables iptables-nft manages), plus the files in O(paths),
    under C(/var/lib/portknock/guard/<name>/) (mode 0700, files 0600). It then starts a watchdog
    on the host that restores all of it after O(timeout) seconds unless the guard is confirmed
    first. The watchdog does not depend on the connection that armed it: a transient systemd timer
    (C(systemd-run --on-active), unit C(portknock-guard-<name>)) where systemd runs, else a process
    in its own session (C(setsid))."
  - O(state=confirmed) stops the watchdog and deletes the snapshot (the change is kept).
    When the watchdog restored the host already, the task fails and says so
    (RV(rolled_back) is true), including what the restore could not do.
  - O(state=restored) restores the snapshot now and stops the watchdog. When the last restore
    was incomplete (its snapshot is kept), it restores that snapshot again.
  - "Each arm returns a RV(token). O(state=confirmed) and O(state=restored) must present it
    (O(token)), so a rollout can only confirm or restore its own arm; arming again with it restarts
    the countdown and keeps the snapshot. Without a token they act only on a snapshot whose watchdog
    is gone (another boot, or its deadline long past)."
  - "One live arm per host: while a guard is armed (its watchdog will restore it), arming it again
    without its token, or arming any other guard, is refused with a message naming that arm. Every
    guard snapshots the whole firewall, so two arms at once (two rollouts on one host) would undo
    each other's changes. Every operation holds the guard's lock C(<name>.lock) (the watchdog too)."
  - "Restoring replaces the whole firewall: each saved iptables variant and family is restored
    without C(--noflush) (tables that appeared since are emptied, ACCEPT policies), native nftables
    tables that exist now are deleted and the saved ones loaded (one C(nft -f) transaction), the
    files in O(paths) are put back (a file that did not exist is removed), then O(services) are
    restarted. Every part is attempted whatever fails (a missing binary included); the result is
    written to C(/var/lib/portknock/guard/<name>.last-restore.json): what was restored, what could
    not be (C(failed)), and, when incomplete, where the snapshot is kept (C(kept))."
  - Confirm and restore race safely; whichever renames the snapshot directory first acts.
  - "Typical use, by hand, through the role C(portknock.knock.guard) (C(tasks_from=arm), the change,
    C(tasks_from=confirm); site.yml does so) or by an action plugin (C(portknock.knock.recent_knock) with
    C(rollback_timeout) does exactly this): arm, change the firewall, C(meta: reset_connection) so
    the next task needs a NEW connection (with the C(portknock.knock.ssh) connection plugin, a new
    knock), confirm. If the controller cannot get back in, it cannot confirm and the host rolls
    itself back. O(state=confirmed) with O(reconnect=true) does the last three steps in one task."
version_added: 0.1.0
author: portknock.knock contributors (@portknock)
options:
  name:
    description:
      - Name of the guard (its snapshot directory, watchdog unit and records).
      - Letters, digits, C(-) and C(_), at most 40 characters.
    type: str
    default: default
  state:
    description: Arm (snapshot and watchdog), confirm (keep the change) or restore now.
    type: str
    choices: [armed, confirmed, restored]
    default: armed
  timeout:
    description:
      - With O(state=armed), seconds after which the watchdog restores the snapshot.
      - Leave room for the controller to reconnect (ssh C(ConnectTimeout), a knock) and confirm;
        it has RV(confirm_within) seconds.
    type: int
    default: 60
  paths:
    description:
      - Extra files saved with the firewall and put back on restore (for example
        C(/etc/knockd.conf)). Only with O(state=armed).
    type: list
    elements: path
    default: []
  services:
    description: Services restarted (C(systemctl restart)) after a restore. Only with O(state=armed).
    type: list
    elements: str
    default: []
  token:
    description:
      - The RV(token) the arm returned. Required to confirm or restore a live arm; with
        O(state=armed), arms that guard again (restarts its countdown, keeps its snapshot), and fails
        when that arm is gone (confirmed, or restored by its watchdog).
    type: str
  reconnect:
    description:
      - "With O(state=confirmed), done by the action plugin: reset the connection and confirm through a new
        one (with the C(portknock.knock.ssh) connection plugin, a new knock), retrying until shortly before the
        watchdog fires; with O(timeout), first arm the guard again with O(token) for O(timeout) seconds (the
        countdown of the reconnect; the snapshot stays the first one, O(paths) and O(services) as armed),
        else try for O(confirm_within) seconds. A host the controller cannot get back into fails (it is
        not reported unreachable) and restores itself when its watchdog fires."
      - The same code and margins as the C(portknock.knock.recent_knock) action plugin's O(portknock.knock.recent_knock#module:rollback_timeout).
    type: bool
    default: false
  confirm_within:
    description:
      - With O(reconnect) and without O(timeout), how long to try to reconnect and confirm (the arm's
        RV(confirm_within)).
    type: int
  watchdog:
    description:
      - How the watchdog runs. V(auto) is V(systemd) when systemd is PID 1 and C(systemd-run)
        exists, else V(process).
    type: str
    choices: [auto, systemd, process]
    default: auto
notes:
  - "Arming a guard whose snapshot still exists but whose watchdog is gone (for example because the
    host rebooted while armed) keeps that older snapshot, the last state known to be good, and
    restarts the watchdog under a new token; RV(kept_snapshot) is then true."
  - A watchdog does not survive a reboot. The snapshot does; restore it with O(state=restored) or
    drop it with O(state=confirmed).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - portknock.knock.guarded_action
attributes:
  action:
    details: The action plugin resets the connection and confirms through a new one (O(reconnect)).
  check_mode:
    support: full
    details: Reports what would be done and does nothing.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
requirements:
  - iptables and/or nftables; systemd for the V(systemd) watchdog.
seealso:
  - module: portknock.knock.recent_knock
'''

EXAMPLES = r'''
- name: Save the firewall and knockd.conf, roll back in 90 s unless confirmed
  portknock.knock.firewall_guard:
    name: knockd
    timeout: 90
    paths: [/etc/knockd.conf]
    services: [knockd]
  register: guard

- name: The risky change
  ansible.builtin.template:
    src: knockd.conf.j2
    dest: /etc/knockd.conf
    mode: "0600"
  notify: Restart knockd

- name: Apply it now
  ansible.builtin.meta: flush_handlers

- name: Reset the connection, get back in through a new one (a new knock) and keep the change
  portknock.knock.firewall_guard:
    name: knockd
    state: confirmed
    token: "{{ guard.token }}"
    reconnect: true
    timeout: 60   # first restart the countdown: 60 s to get back in
    paths: [/etc/knockd.conf]
    services: [knockd]
'''

RETURN = r'''
snapshot:
  description: The snapshot directory.
  returned: always
  type: str
  sample: /var/lib/portknock/guard/default
saved:
  description: What the snapshot holds (iptables variants and families, nft, files).
  returned: when O(state=armed) and not in check mode
  type: list
  elements: str
  sample: [iptables-nft ipv4, iptables-nft ipv6, nft, /etc/knockd.conf]
kept_snapshot:
  description: An existing unconfirmed snapshot was kept instead of taking a new one.
  returned: when O(state=armed)
  type: bool
watchdog:
  description: How the watchdog runs, V(systemd) (RV(unit)) or V(process) (RV(pid)).
  returned: when O(state=armed) and not in check mode
  type: str
  sample: systemd
unit:
  description: The transient systemd timer of the watchdog.
  returned: when the watchdog is V(systemd)
  type: str
  sample: portknock-guard-default.timer
pid:
  description: Process id of the watchdog.
  returned: when the watchdog is V(process)
  type: int
token:
  description: The token of this arm, to present to confirm or restore it (O(token)).
  returned: when O(state=armed) and not in check mode
  type: str
  sample: 3f1c9b0d5e7a4c2b8e6f1a0d9c8b7a65
deadline:
  description: Epoch time at which the watchdog restores the snapshot.
  returned: when O(state=armed) and not in check mode
  type: float
confirm_within:
  description:
    - Seconds from the arm within which the controller should have confirmed (O(timeout) less the guard's
      margin of 3 s, at least 1). The role C(portknock.knock.guard) and the C(portknock.knock.recent_knock)
      action plugin try to reconnect and confirm for that long.
  returned: when O(state=armed)
  type: int
  sample: 57
restored:
  description: What was restored.
  returned: when O(state=restored) and something was restored
  type: list
  elements: str
rolled_back:
  description: With O(state=confirmed), the watchdog had already restored the snapshot (the change is gone).
  returned: when O(state=confirmed)
  type: bool
last_restore:
  description:
    - The record of the last restore of this guard, if any; keys C(time), C(token), C(restored),
      C(failed) (what could not be done), C(error) (null when complete), C(kept) (the snapshot kept by
      an incomplete restore).
  returned: when O(state=confirmed) and RV(rolled_back), and when O(state=restored) restored something
  type: dict
'''

import inspect
import json
import os
import re
import shutil
import signal
import sys
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.portknock.knock.plugins.module_utils import atomic_file
from ansible_collections.portknock.knock.plugins.module_utils import firewall_snapshot as fs

HELPER = 'firewall_snapshot.py'
PIDFILE = 'watchdog.pid'
# module_utils files have no entry point: on the host, the helper script runs the restore engine
# from a copy of its module_utils files, a package in HELPER_DIR beside it (a name with a dot:
# never a guard's snapshot directory)
HELPER_DIR = '.helper'
HELPER_PACKAGE = 'portknock_guard'
HELPER_MODULES = (atomic_file, fs)
MAIN_STUB = '''# The watchdog of portknock.knock's firewall guard (written by the firewall_guard module)
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), %r))
from %s.firewall_snapshot import watchdog_main  # noqa: E402

if __name__ == '__main__':
    raise SystemExit(watchdog_main(sys.argv[1:]))
''' % (HELPER_DIR, HELPER_PACKAGE)


def unit_name(name):
    return 'portknock-guard-%s' % name


def systemd_available(module):
    return os.path.isdir('/run/systemd/system') and module.get_bin_path('systemd-run') is not None


def write_helper(root):
    """The restore engine as a script on the host, run by the watchdog: its path."""
    package = os.path.join(root, HELPER_DIR, HELPER_PACKAGE)
    for directory in (root, os.path.dirname(package), package):
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
        os.chmod(directory, 0o700)
    atomic_file.write_atomic(os.path.join(package, '__init__.py'), '')
    for module in HELPER_MODULES:
        atomic_file.write_atomic(os.path.join(package, module.__name__.rsplit('.', 1)[-1] + '.py'),
                                 inspect.getsource(module))
    path = os.path.join(root, HELPER)
    atomic_file.write_atomic(path, MAIN_STUB, 0o700)     # last: it runs only once the package is there
    return path


def stop_watchdog(module, name, root):
    """Stop the systemd timer and/or the watchdog process of ``name`` (whichever exists)."""
    systemctl = module.get_bin_path('systemctl')
    if systemctl and os.path.isdir('/run/systemd/system'):
        for unit in ('%s.timer' % unit_name(name), '%s.service' % unit_name(name)):
            module.run_command([systemctl, 'stop', unit])
            module.run_command([systemctl, 'reset-failed', unit])
    pidfile = os.path.join(root, '%s.%s' % (name, PIDFILE))
    try:
        with open(pidfile) as handle:
            pid = int(handle.read().strip())
        with open('/proc/%d/cmdline' % pid, 'rb') as handle:
            cmdline = handle.read()
        if HELPER.encode() in cmdline and fs.snapshot_dir(name, root).encode() in cmdline:
            os.kill(pid, signal.SIGTERM)
    except (IOError, OSError, ValueError):
        pass
    if os.path.exists(pidfile):
        os.unlink(pidfile)


def start_watchdog(module, name, root, helper, directory, timeout, kind, token):
    python = sys.executable or '/usr/bin/python3'
    if kind == 'systemd':
        args = [module.get_bin_path('systemd-run', required=True), '--unit', unit_name(name),
                '--on-active', '%ds' % timeout, '--timer-property', 'AccuracySec=1s',
                '--description', 'portknock firewall guard %s: restore the firewall unless confirmed' % name,
                python, helper, 'restore', directory, token]
        rc, out, err = module.run_command(args)
        if rc != 0:
            raise fs.SnapshotError('systemd-run failed: %s' % (err or out).strip())
        return dict(watchdog='systemd', unit='%s.timer' % unit_name(name))
    # the helper forks the watchdog into its own session and prints its pid (run_command
    # returns at once: the child holds none of its pipes)
    rc, out, err = module.run_command([python, helper, 'spawn', str(timeout), directory, token], cwd='/')
    try:
        pid = int(out.strip())
    except ValueError:
        rc = rc or 1
    if rc != 0:
        raise fs.SnapshotError('could not start the watchdog process: %s' % (err or out).strip())
    fs._write(os.path.join(root, '%s.%s' % (name, PIDFILE)), str(pid))
    return dict(watchdog='process', pid=pid)


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
        kind = 'systemd' if systemd_available(module) else 'process'
    elif kind == 'systemd' and not systemd_available(module):
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
        helper = write_helper(root)
        stop_watchdog(module, p['name'], root)
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
        watchdog = start_watchdog(module, p['name'], root, helper, directory, p['timeout'], kind, token)
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
            stop_watchdog(module, p['name'], root)
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
        stop_watchdog(module, p['name'], root)
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


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', default='default'),
            state=dict(type='str', choices=['armed', 'confirmed', 'restored'], default='armed'),
            timeout=dict(type='int', default=fs.ROLLBACK_TIMEOUT),
            paths=dict(type='list', elements='path', default=[]),
            services=dict(type='list', elements='str', default=[]),
            watchdog=dict(type='str', choices=['auto', 'systemd', 'process'], default='auto'),
            token=dict(type='str', no_log=False),
            reconnect=dict(type='bool', default=False),     # the action plugin's (see its docs)
            confirm_within=dict(type='int'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    root = fs.GUARD_ROOT
    try:
        directory = fs.snapshot_dir(p['name'], root)
    except fs.SnapshotError as exc:
        module.fail_json(msg=str(exc))
    result = dict(changed=False, snapshot=directory)
    if p['token'] is not None and not re.match(r'[0-9a-f]{32}\Z', p['token']):
        module.fail_json(msg='token %r is not a guard token (32 hex digits, as state=armed returns it)' % p['token'], **result)
    if p['state'] == 'armed' and (p['timeout'] is None or p['timeout'] < 1):
        module.fail_json(msg='timeout %r must be at least 1 second' % p['timeout'], **result)
    action = dict(armed=arm, confirmed=confirm, restored=restore_now)[p['state']]
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


if __name__ == '__main__':
    main()
