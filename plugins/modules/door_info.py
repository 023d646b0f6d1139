#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: door_info
short_description: Count what happens at a host's doors (knocks per step, opens, open sources, refusals)
version_added: 0.1.0
author: portknock.knock contributors (@portknock)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
description:
  - Reads, per door of the host and per enforcer, what the enforcer can tell, and changes nothing
    (it also runs in check mode).
  - "V(iptables) doors (P(portknock.knock.recent_knock#module)): the rule counters of the chains C(PK-<name>)
    (C(iptables-save -c), IPv4 and IPv6 summed) and the open lists in C(/proc/net/xt_recent)."
  - "V(nftables) doors: the C(counter) of each rule of C(table inet portknock_<name>) and the elements of
    its open sets, with their C(expires). A table written by an older release has no counters: its
    counts are V(null) until the door is applied again."
  - "V(daemon) (the bundled daemon): its counters file C(counters.json) and the open doors of its state file."
  - "V(knockd) (Debian's knockd): what its log holds (C(LogFile) of knockd.conf, else syslog through
    C(journalctl -t knockd)): C(Stage N), C(OPEN SESAME) and C(sequence timeout) lines; the sources open
    now are the knockers' rules of the door chains C(PK-<name>-KD), without the time left."
  - Sequences and keys are never returned (door names, counts and addresses only); the knock ports the
    module reads are masked in its output anyway.
  - The roles' optional metrics timer writes the same counters for Prometheus (C(scripts/portknock-metrics));
    see docs/door-info.md.
options:
  enforcers:
    description:
      - Enforcers to read. Default, every one found on the host (door chains or tables present, knockd.conf
        and the daemon that reads it). An enforcer named here is reported even when it has no door.
    type: list
    elements: str
    choices: [iptables, nftables, knockd, daemon]
  doors:
    description: Only these doors (names). Default, every door found.
    type: list
    elements: str
  knockd_conf:
    description: The knockd.conf of the V(knockd) and V(daemon) enforcers.
    type: path
    default: /etc/knockd.conf
  daemon_dir:
    description: The bundled daemon's state directory (C(counters.json), C(state.json)).
    type: path
    default: /run/portknock-knockd
attributes:
  check_mode:
    support: full
    details: It changes nothing in any mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Run as root (the rule counters, C(/proc/net/xt_recent) and the daemon's state file are root's).
  - Counters start at 0 when a door's rules are loaded (kernel doors) or the daemon starts; Debian knockd's
    counts are those of its current log file.
  - The time left of an iptables door needs the kernel's jiffies (C(/proc/timer_list), else the uptime
    and C(CONFIG_HZ)); it is V(null) when neither can be read.
'''

EXAMPLES = r'''
- name: What happened at the doors
  portknock.knock.door_info:
  become: true
  register: doors

- name: Opens of the ssh door
  ansible.builtin.debug:
    msg: "{{ doors.doors | selectattr('name', 'equalto', 'ssh') | map(attribute='opens') | list }}"
'''

RETURN = r'''
enforcers:
  description: The enforcers read.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: V(iptables), V(nftables), V(knockd) or V(daemon).
      type: str
    up:
      description: The daemon runs, or the kernel doors are loaded.
      type: bool
    service:
      description: The systemd unit, or what holds the kernel doors.
      type: str
    state:
      description:
        - C(systemctl is-active) of the unit (or V(running) / V(not running) from the process list).
        - V(loaded) or V(no doors) for kernel doors.
      type: str
doors:
  description: One entry per door and enforcer.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The door's name.
      type: str
    enforcer:
      description: What enforces it.
      type: str
    steps:
      description: Number of knock steps (never the ports).
      type: int
    knocks:
      description: Per step (first step first), the knocks that reached it; V(null) where the enforcer cannot tell.
      type: list
      elements: int
    opens:
      description: Complete sequences (the door opened or was extended); V(null) when unknown.
      type: int
    refusals:
      description: Refused attempts (the sum of RV(doors[].refusal_reasons)); V(null) when unknown.
      type: int
    refusal_reasons:
      description:
        - "Refusals by reason: V(wrong_order_or_too_slow) (kernel doors cannot tell which), V(wrong_order),
          V(too_slow), V(dropped) (the daemon's memory was full)."
      type: dict
    connections:
      description: Kernel doors, new connections to the protected ports, V(accepted) and V(refused); V(null) otherwise.
      type: dict
    open_sources:
      description:
        - Sources the door is open to now, C(address), C(family) and C(expires_in) (seconds left, V(null) when unknown).
      type: list
      elements: dict
    open_window:
      description: Seconds a door stays open (C(open_window), or the C(cmd_timeout) of knockd).
      type: int
'''

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_text

from ..module_utils.door_counters import ENFORCERS, CountersError, DoorInfo


def main():
    module = AnsibleModule(
        argument_spec=dict(
            enforcers=dict(type='list', elements='str', choices=list(ENFORCERS)),
            doors=dict(type='list', elements='str'),
            knockd_conf=dict(type='path', default='/etc/knockd.conf'),
            daemon_dir=dict(type='path', default='/run/portknock-knockd'),
        ),
        supports_check_mode=True,
    )

    def run(args, data=None):
        return module.run_command(args, data=data)

    info = DoorInfo(run=run, which=lambda name: module.get_bin_path(name, opt_dirs=['/usr/sbin', '/sbin']),
                    knockd_conf=module.params['knockd_conf'], daemon_dir=module.params['daemon_dir'])
    try:
        report = info.report(module.params['enforcers'], module.params['doors'])
    except CountersError as exc:
        module.no_log_values.update(info.knock_ports)
        module.fail_json(msg=to_text(exc))
    module.no_log_values.update(info.knock_ports)   # nothing returned holds them; masked all the same
    for warning in info.warnings:
        module.warn(warning)                        # what could not be read: those counts are null
    module.exit_json(changed=False, enforcers=report['enforcers'], doors=report['doors'])


if __name__ == '__main__':
    main()
