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
    (RV(rolled_back) is true).
  - O(state=restored) restores the snapshot now and stops the watchdog.
  - "Restoring replaces the whole firewall: each saved iptables variant and family is restored
    without C(--noflush) (tables that appeared since are emptied, ACCEPT policies), native nftables
    tables that exist now are deleted and the saved ones loaded (one C(nft -f) transaction), the
    files in O(paths) are put back (a file that did not exist is removed), then O(services) are
    restarted. Every part is attempted even when one fails; the result is written to
    C(/var/lib/portknock/guard/<name>.last-restore.json)."
  - Confirm and restore race safely; whichever renames the snapshot directory first acts.
  - "Typical use, by hand or by an action plugin (C(portknock.knock.recent_knock) with
    C(rollback_timeout) does exactly this): arm, change the firewall, C(meta: reset_connection) so
    the next task needs a NEW connection (with the C(portknock.knock.ssh) connection plugin, a new
    knock), confirm. If the controller cannot get back in, it cannot confirm and the host rolls
    itself back."
version_added: 1.0.0
author:
  - portknock.knock contributors (@portknock)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  name:
    description:
      - Name of the guard; several guards can be armed at once under different names.
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
      - Leave room for the controller to reconnect (ssh C(ConnectTimeout), a knock) and confirm.
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
  watchdog:
    description:
      - How the watchdog runs. V(auto) is V(systemd) when systemd is PID 1 and C(systemd-run)
        exists, else V(process).
    type: str
    choices: [auto, systemd, process]
    default: auto
notes:
  - "Arming a guard whose snapshot still exists (armed before, neither confirmed nor restored, for
    example because the host rebooted while armed) keeps that older snapshot, the last state known
    to be good, and restarts the watchdog; RV(kept_snapshot) is then true."
  - A watchdog does not survive a reboot. The snapshot does; restore it with O(state=restored) or
    drop it with O(state=confirmed).
attributes:
  check_mode:
    support: full
    details: Reports what would be done and does nothing.
  diff_mode:
    support: none
  platform:
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

- name: The risky change
  ansible.builtin.template:
    src: knockd.conf.j2
    dest: /etc/knockd.conf
    mode: "0600"
  notify: Restart knockd

- name: Apply it now
  ansible.builtin.meta: flush_handlers

- name: Force a new ssh connection (and a new knock with portknock.knock.ssh)
  ansible.builtin.meta: reset_connection

- name: Keep the change (only reached when the controller got back in)
  portknock.knock.firewall_guard:
    name: knockd
    state: confirmed
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
deadline:
  description: Epoch time at which the watchdog restores the snapshot.
  returned: when O(state=armed) and not in check mode
  type: float
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
  description: The record of the last restore of this guard (time, what, error), if any.
  returned: when O(state=confirmed) and RV(rolled_back)
  type: dict
'''

import inspect
import json
import os
import shutil
import signal
import sys
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.portknock.knock.plugins.module_utils import firewall_snapshot as fs

HELPER = 'firewall_snapshot.py'
PIDFILE = 'watchdog.pid'
# module_utils files have no entry point: the helper on the host is their source plus this
MAIN_STUB = '''

if __name__ == '__main__':
    raise SystemExit(watchdog_main(sys.argv[1:]))
'''


def unit_name(name):
    return 'portknock-guard-%s' % name


def systemd_available(module):
    return os.path.isdir('/run/systemd/system') and module.get_bin_path('systemd-run') is not None


def write_helper(root):
    """The restore engine as a plain script on the host, run by the watchdog."""
    if not os.path.isdir(root):
        os.makedirs(root, 0o700)
    os.chmod(root, 0o700)
    source = inspect.getsource(fs) + MAIN_STUB
    path = os.path.join(root, HELPER)
    tmp = path + '.tmp'
    fs._write(tmp, source, 0o700)
    os.rename(tmp, path)
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


def start_watchdog(module, name, root, helper, directory, timeout, kind):
    python = sys.executable or '/usr/bin/python3'
    if kind == 'systemd':
        args = [module.get_bin_path('systemd-run', required=True), '--unit', unit_name(name),
                '--on-active', '%ds' % timeout, '--timer-property', 'AccuracySec=1s',
                '--description', 'portknock firewall guard %s: restore the firewall unless confirmed' % name,
                python, helper, 'restore', directory]
        rc, out, err = module.run_command(args)
        if rc != 0:
            raise fs.SnapshotError('systemd-run failed: %s' % (err or out).strip())
        return dict(watchdog='systemd', unit='%s.timer' % unit_name(name))
    # the helper forks the watchdog into its own session and prints its pid (run_command
    # returns at once: the child holds none of its pipes)
    rc, out, err = module.run_command([python, helper, 'spawn', str(timeout), directory], cwd='/')
    try:
        pid = int(out.strip())
    except ValueError:
        rc = rc or 1
    if rc != 0:
        raise fs.SnapshotError('could not start the watchdog process: %s' % (err or out).strip())
    fs._write(os.path.join(root, '%s.%s' % (name, PIDFILE)), str(pid))
    return dict(watchdog='process', pid=pid)


def last_restore(directory):
    try:
        with open(fs.record_path(directory)) as handle:
            return json.load(handle)
    except (IOError, OSError, ValueError):
        return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', default='default'),
            state=dict(type='str', choices=['armed', 'confirmed', 'restored'], default='armed'),
            timeout=dict(type='int', default=60),
            paths=dict(type='list', elements='path', default=[]),
            services=dict(type='list', elements='str', default=[]),
            watchdog=dict(type='str', choices=['auto', 'systemd', 'process'], default='auto'),
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
    exists = os.path.isfile(os.path.join(directory, fs.MANIFEST))

    if p['state'] == 'armed':
        if p['timeout'] is None or p['timeout'] < 1:
            module.fail_json(msg='timeout %r must be at least 1 second' % p['timeout'], **result)
        kind = p['watchdog']
        if kind == 'auto':
            kind = 'systemd' if systemd_available(module) else 'process'
        elif kind == 'systemd' and not systemd_available(module):
            module.fail_json(msg='watchdog=systemd but systemd is not running or systemd-run is missing', **result)
        result.update(changed=True, kept_snapshot=exists)
        if module.check_mode:
            module.exit_json(**result)
        created = False
        try:
            helper = write_helper(root)
            stop_watchdog(module, p['name'], root)
            if not exists:
                if os.path.exists(directory):      # a half-written snapshot of a failed arm
                    shutil.rmtree(directory)
                created = True
                if os.path.exists(fs.record_path(directory)):
                    os.unlink(fs.record_path(directory))
                manifest = fs.save(directory, p['paths'], p['services'], run=lambda a, d=None: module.run_command(a, data=d))
            else:
                with open(os.path.join(directory, fs.MANIFEST)) as handle:
                    manifest = json.load(handle)
                module.warn('guard %s: an unconfirmed snapshot of %s exists, it is kept (last known-good state)'
                            % (p['name'], time.ctime(manifest.get('created', 0))))
            result['saved'] = (['iptables-%s %s' % (e['variant'], e['family']) for e in manifest['iptables']]
                               + (['nft'] if manifest.get('nft') else [])
                               + [e['path'] for e in manifest['files']])
            result['deadline'] = time.time() + p['timeout']
            result.update(start_watchdog(module, p['name'], root, helper, directory, p['timeout'], kind))
        except (fs.SnapshotError, IOError, OSError) as exc:
            if created:
                shutil.rmtree(directory, ignore_errors=True)
            module.fail_json(msg='could not arm guard %s (nothing will be restored): %s' % (p['name'], exc), **result)
        module.exit_json(**result)

    if p['state'] == 'confirmed':
        result['rolled_back'] = False
        claimed = None
        if exists:
            result['changed'] = True
            if module.check_mode:
                module.exit_json(**result)
            claimed = fs.claim(directory, 'confirmed')
            if claimed is not None:
                stop_watchdog(module, p['name'], root)
                shutil.rmtree(claimed, ignore_errors=True)
                module.exit_json(**result)
        # arming removes the previous record: a record now means the watchdog restored this arm
        record = last_restore(directory)
        if record is not None or exists:
            result.update(changed=False, rolled_back=True, last_restore=record)
            module.fail_json(msg='guard %s: too late to confirm, the watchdog %s the previous firewall'
                             % (p['name'], ('restored at %s' % time.ctime(record['time'])) if record else 'is restoring'),
                             **result)
        module.exit_json(msg='guard %s: nothing armed' % p['name'], **result)

    # restored
    if not exists:
        module.exit_json(msg='guard %s: no snapshot to restore' % p['name'], **result)
    result['changed'] = True
    if module.check_mode:
        module.exit_json(**result)
    record = fs.restore_claimed(directory, run=lambda a, d=None: module.run_command(a, data=d))
    stop_watchdog(module, p['name'], root)
    if record is None:
        module.exit_json(msg='guard %s: confirmed or restored by someone else meanwhile' % p['name'], **result)
    result['restored'] = record['restored']
    if record['error']:
        module.fail_json(msg=record['error'], **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
