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

import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.portknock.knock.plugins.module_utils import firewall_snapshot as fs
from ansible_collections.portknock.knock.plugins.module_utils import guard_states


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
    guard_states.run(module, p, root, directory, result)


if __name__ == '__main__':
    main()
