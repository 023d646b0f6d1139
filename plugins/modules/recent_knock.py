#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: recent_knock
short_description: A port-knocking door enforced by the kernel (iptables -m recent or nftables sets)
description:
  - Manages one door, a secret knock sequence that opens protected ports to the knocking
    address for a short window, entirely in the kernel (no daemon on the packet path).
  - "iptables backend: per address family (iptables and ip6tables, table C(filter)) the door owns
    the chains C(PK-<name>) and C(PK-<name>-R), one jump C(-A INPUT -j PK-<name>) inserted at the
    top of C(INPUT) once, and the xt_recent lists C(PK_<name>_1) .. C(PK_<name>_<n>) (IPv4) and
    C(PK6_<name>_1) .. C(PK6_<name>_<n>) (IPv6), one per step, the last one is the open list
    (IPv4 and IPv6 never share a list, the kernel keeps one address mask per list).
    It never touches rules it does not own."
  - "nftables backend: the door owns the table C(inet portknock_<name>): dynamic sets
    C(step<k>_v4)/C(step<k>_v6) with timeouts and a base chain C(input) hooked on input at priority
    C(filter - 10). It fails closed: what it accepts it also marks (bit C(0x20000000) of the packet
    mark), and what accepts the protected port behind it (the role's baseline, the host's own chain
    with O(integrate_input_chain)) accepts only marked packets, so no door means a closed port.
    With O(integrate_input_chain) it also owns one rule in each host input chain that needs it."
  - "Semantics (both backends): only NEW packets are looked at, TCP knocks only as bare SYNs. A knock
    on step k's port from a source that made step k-1 less than O(step_timeout) seconds ago moves it
    on; any other knock on one of the door's ports resets that source (and restarts it at step 1 when
    it is step 1's port); a retransmitted knock changes nothing; knocks are dropped. NEW connections to
    the protected ports are accepted from sources that completed the sequence less than
    O(open_window) seconds ago and dropped from every other source, so the door closes the port even
    on a host whose policy is ACCEPT. Packets of established connections are not looked at: the host's
    own firewall handles them as usual."
  - Idempotent, the live rules the door owns are compared with the wanted ones, order included,
    in the form C(iptables-save) / C(nft -t list table) print them. Changes are one atomic transaction
    per address family (C(iptables-restore --noflush -w), python-iptables C(commit())) or per table
    (C(nft -f)), so a half door never exists and a rejected change leaves the live rules as they were.
version_added: 0.1.0
author: portknock.knock contributors (@portknock)
options:
  name:
    description:
      - Name of the door, used in the chain, list and table names.
      - Letters, digits and C(_), starting with a letter or digit, at most 20 characters.
      - Required unless O(doors) is given (mutually exclusive with it).
    type: str
  sequence:
    description:
      - The knock sequence, a secret (never logged).
      - A list whose items are a port (C(1600), TCP) or C("port:tcp") / C("port:udp"), or the knockd
        string form C("7311,9127:udp,8243").
      - The same port may appear several times. A protected port cannot be a knock port.
      - Required when O(state=present).
    type: raw
  doors:
    description:
      - All the doors of the host in one call, instead of the single-door parameters (mutually exclusive
        with O(name)). Each element has the fields of the single-door form.
      - The doors are grouped by backend and applied in one transaction per address family per backend
        (one C(iptables-restore --noflush) per family for every iptables door, one C(nft -f) for every
        nftables door; python-iptables commits per door). Idempotence, check mode and diff are per door
        as in the single-door form; a door's missing jump is inserted so that new jumps read in list order.
      - "Door names must be unique, and no door may knock on a port another door of the list protects
        (P(portknock.knock.door_collisions#filter)): the module fails before anything changes."
      - O(backend), O(set_size) and O(integrate_input_chain) given at the top level are the defaults of the
        elements that do not set them.
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the door (as O(name)).
        type: str
        required: true
      sequence:
        description: The knock sequence (as O(sequence)), a secret. Required when its O(doors[].state=present).
        type: raw
      step_timeout:
        description: The door's O(step_timeout).
        type: int
        default: 10
      open_window:
        description: The door's O(open_window).
        type: int
        default: 30
      port:
        description: The door's O(port); required when its O(doors[].state=present).
        type: raw
      protocol:
        description: The door's O(protocol).
        type: str
        choices: [tcp, udp]
        default: tcp
      ip_version:
        description: The door's O(ip_version).
        type: str
        choices: [ipv4, ipv6, both]
        default: both
      backend:
        description: As O(backend); default the top-level O(backend).
        type: str
        choices: [auto, iptables, nftables]
      set_size:
        description: As O(set_size); default the top-level O(set_size).
        type: int
      integrate_input_chain:
        description: As O(integrate_input_chain); default the top-level O(integrate_input_chain).
        type: bool
      state:
        description: The door's O(state).
        type: str
        choices: [present, absent]
        default: present
  step_timeout:
    description: Seconds allowed between two knocks.
    type: int
    default: 10
  open_window:
    description:
      - Seconds after the last knock during which NEW connections from the knocking address are
        accepted. Connections opened in the window stay up afterwards.
    type: int
    default: 30
  port:
    description:
      - Protected port or list of ports. Required when O(state=present).
    type: raw
  protocol:
    description: Protocol of the protected ports.
    type: str
    choices: [tcp, udp]
    default: tcp
  ip_version:
    description:
      - Address families the door covers. With V(ipv4) or V(ipv6) only, anything the door owns in the
        other family is removed.
    type: str
    choices: [ipv4, ipv6, both]
    default: both
  backend:
    description:
      - V(iptables) writes the rules with the host's own C(iptables) (the first on C(PATH)), so the
        door always shows in C(iptables -S). When C(iptables --version) says C(nf_tables), the rules
        go through C(iptables-nft-restore); when it says C(legacy), through python-iptables (Debian
        C(python3-iptables), importable by the Python that runs the module), or
        C(iptables-legacy-restore) with a warning when it is not installed. Legacy tables are never
        written on a host whose iptables is nf_tables.
      - V(nftables) writes a native C(inet) table with C(nft -f).
      - V(auto) is V(iptables) when an C(iptables) binary exists, else V(nftables).
      - With O(state=absent), the door is removed from every backend available on the host.
    type: str
    choices: [auto, iptables, nftables]
    default: auto
  set_size:
    description:
      - nftables backend only. Maximum number of addresses in each of the door's sets (per step and
        family). When a set is full, new knockers cannot be added until entries time out
        (existing entries are not evicted).
    type: int
    default: 65535
  integrate_input_chain:
    description:
      - nftables backend only. What to do when a base chain of the host on the input hook (its own
        firewall, e.g. the C(INPUT) policy DROP of iptables-nft, or a C(nftables.conf) with
        C(policy drop)) would drop what the door lets in, so that the door could never open.
      - V(false) fails, naming the chain and the rule to add (nothing is changed).
      - V(true) inserts C(meta mark & 0x20000000 == 0x20000000 accept comment "portknock_<name>") at
        the top of each such chain, in the same C(nft -f) transaction as the door's table; the rule
        is the door's own (compared, restored when missing, removed with O(state=absent)).
      - A chain that runs before the door (priority C(filter - 10) or lower) cannot be integrated,
        the module fails in both cases.
      - "Detection reads C(nft list ruleset): drop policies, drop/reject rules and jumps whose matches are
        only protocol, destination port, C(ct state) and the door's mark. Rules with other matches are
        assumed not to match. Legacy iptables (not in nft) is not looked at."
    type: bool
    default: false
  state:
    description: Whether the door exists.
    type: str
    choices: [present, absent]
    default: present
  rollback_timeout:
    description:
      - "Safe apply, handled by the action plugin: when greater than 0 (and not in check mode), the
        whole firewall is saved and a watchdog armed on the host with M(portknock.knock.firewall_guard)
        (guard name C(recent_knock-<name>), C(recent_knock) with O(doors)), the door is applied, the connection is reset so the controller
        must open a NEW connection (with the C(portknock.knock.ssh) connection plugin: knock again),
        and the guard is confirmed through it. If the controller cannot get back in within
        O(rollback_timeout) seconds, the task fails saying so and the host restores its previous
        firewall by itself."
      - "If the module fails after changing part of the door (one address family or one backend
        committed, or the rules read back differently), it reports C(changed) and the previous
        firewall is restored at once; the failure says what was changed and what was restored."
      - Leave room for a reconnection (ssh C(ConnectTimeout), 10 s by default, and the knock).
      - V(0) applies the door without a way back.
    type: int
    default: 0
notes:
  - "A sequence whose knock ports only go up or only go down (whatever their protocols), a single step,
    or one port repeated, opens to a port scan (one packet to every port in order): the module warns,
    naming the door and no port. site.yml refuses such a door unless C(allow_monotonic=true)."
  - "B(xt_recent capacity.) Each xt_recent list holds at most C(ip_list_tot) addresses (module
    parameter of C(xt_recent), default 100, returned as RV(xt_recent_ip_list_tot)). When a list is
    full, adding an address evicts the OLDEST entry of that list. A scan or a spoofed knock flood from
    more than C(ip_list_tot) sources within O(step_timeout) can therefore push a legitimate knocker out
    of a step list (its sequence fails and must be restarted) or out of the open list (the door closes
    for it before O(open_window) ends). It never lets anyone in who did not knock correctly. The value
    can only be set when C(xt_recent) is loaded, e.g. C(options xt_recent ip_list_tot=1000) in
    C(/etc/modprobe.d/xt_recent.conf) and a reboot (or reloading the module with no rule using it);
    it cannot be changed at run time and it is fixed when the module is built into the kernel unless
    given on the kernel command line (C(xt_recent.ip_list_tot=1000)). The nftables backend has no such
    global limit: see O(set_size)."
  - The sequence ports also appear in the returned rules and the diff; because O(sequence) is
    C(no_log), Ansible masks them there (C(********)).
  - "nftables backend: an C(accept) in the door's table ends only that table's chain; the host's own
    filter (priority C(filter)) still sees the packet. The door closes its ports everywhere; where the
    host's filter would drop what it lets in, the module fails (or integrates, O(integrate_input_chain))
    instead of reporting a door that cannot open. No other software on the host may use bit
    C(0x20000000) of the packet mark. The iptables backend jumps from the top of C(INPUT), so its ACCEPT
    is final for the iptables rule set."
  - Give each door its own protected ports. Two doors protecting the same port do not add up into
    "either sequence opens". With nftables both tables must let the packet through (both sequences
    needed), with iptables the door whose jump comes first decides.
  - "Never use another door's protected port (or a port the host keeps open, such as ssh or a
    management allowlist) as a knock step: the knock rule drops new connections to it. One module call
    with one door sees only that door, so it cannot check this; with O(doors) it checks the list, and the
    recent_knock role and site.yml refuse such doors (filter P(portknock.knock.door_collisions#filter))
    before anything changes."
  - The jump to the door is inserted at the top of C(INPUT) when missing; its position is not enforced
    afterwards (several doors each insert their own jump), only that it exists exactly once.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - portknock.knock.guarded_action
attributes:
  action:
    details: The action plugin arms and confirms the firewall guard (O(rollback_timeout)).
  check_mode:
    support: full
    details: Reads the live rules and reports the exact change and diff without applying anything.
  diff_mode:
    support: full
    details: Before and after are the door's rules as C(iptables-save) / C(nft -t list table) print them.
  platform:
    support: full
    platforms: posix
requirements:
  - iptables (nf_tables or legacy variant) for the iptables backend, python3-iptables recommended on legacy hosts.
  - nftables (nft) for the nftables backend.
'''

EXAMPLES = r'''
- name: The seed recipe, knock 1600 then ssh within 5 seconds (one step - the module warns, a port scan finds it)
  portknock.knock.recent_knock:
    name: ssh
    sequence: [1600]
    open_window: 5
    port: 22

- name: A three-step door with a UDP step, IPv4 only, native nftables
  portknock.knock.recent_knock:
    name: admin
    sequence: "7311,9127:udp,8243"
    step_timeout: 5
    open_window: 30
    port: [22, 2222]
    ip_version: ipv4
    backend: nftables

- name: All the doors of a host in one transaction per address family
  portknock.knock.recent_knock:
    doors:
      - name: admin
        sequence: [7313, 4187, 9421]
        port: 22
      - name: web
        sequence: "8243:udp,7311,9127"
        port: 8443
      - name: old
        state: absent

- name: Remove a door everywhere
  portknock.knock.recent_knock:
    name: admin
    state: absent
'''

RETURN = r'''
backend:
  description: The backend that enforces the door (V(iptables) or V(nftables)).
  returned: without O(doors)
  type: str
  sample: iptables
backend_details:
  description: The tool and variant used (with O(doors), of each backend used, separated by C(; )).
  returned: always
  type: str
  sample: iptables (iptables v1.8.9 (nf_tables), written with iptables-nft-restore)
rules:
  description:
    - The rules the door has after this run (what was applied, or would be in check mode).
    - "iptables: keys V(ipv4) and V(ipv6), lines as C(iptables -S)/C(iptables-save) print them:
      the jump, C(-N) for each owned chain, then the chains' rules. nftables: key V(inet), the lines
      of C(nft -t list table inet portknock_<name>), and with O(integrate_input_chain) key V(host): the
      door's rules in the host's own input chains (C(<family> <table> <chain>: <rule>)). Empty lists when
      the door is absent."
    - Knock ports are masked by Ansible (no_log of O(sequence)).
  returned: without O(doors)
  type: dict
  sample: {"ipv4": ["-A INPUT -j PK-ssh", "-N PK-ssh", "-N PK-ssh-R"], "ipv6": []}
chains:
  description: The iptables chains the door owns (whether present or not).
  returned: without O(doors)
  type: list
  elements: str
  sample: [PK-ssh, PK-ssh-R]
lists:
  description: The xt_recent lists of the door (C(/proc/net/xt_recent/<list>)), IPv4 then IPv6, step 1 first, open list last.
  returned: without O(doors), when O(state=present)
  type: list
  elements: str
  sample: [PK_ssh_1, PK6_ssh_1]
table:
  description: The nftables table the door owns with the nftables backend.
  returned: without O(doors)
  type: str
  sample: inet portknock_ssh
doors:
  description:
    - With O(doors), one element per door, in the order given, with the keys RV(backend), RV(rules),
      RV(chains), RV(table) and (present doors) RV(lists) as described here, plus C(name).
    - Without O(doors), the door's values are at the top level.
  returned: when O(doors) is given
  type: list
  elements: dict
  sample: [{"name": "ssh", "backend": "iptables", "rules": {"ipv4": [], "ipv6": []}, "chains": [PK-ssh, PK-ssh-R],
            "table": "inet portknock_ssh"}]
xt_recent_ip_list_tot:
  description: Current C(ip_list_tot) of the xt_recent kernel module (addresses per list), null when unknown.
  returned: always
  type: int
  sample: 100
'''


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.portknock.knock.plugins.module_utils.door import (
    DEFAULT_OPEN_WINDOW, DEFAULT_STEP_TIMEOUT, door_collisions, sequence_warning)
from ansible_collections.portknock.knock.plugins.module_utils.sequence import KnockValueError
from ansible_collections.portknock.knock.plugins.module_utils import nft_rules
from ansible_collections.portknock.knock.plugins.module_utils.recent_knock_backends import (
    Converger, Failed, read_ip_list_tot, request_from)

DOOR_FIELDS = dict(
    sequence=dict(type='raw', no_log=True),
    step_timeout=dict(type='int', default=DEFAULT_STEP_TIMEOUT),
    open_window=dict(type='int', default=DEFAULT_OPEN_WINDOW),
    port=dict(type='raw'),
    protocol=dict(type='str', choices=['tcp', 'udp'], default='tcp'),
    ip_version=dict(type='str', choices=['ipv4', 'ipv6', 'both'], default='both'),
    state=dict(type='str', choices=['present', 'absent'], default='present'),
)


def requests_from(module):
    """The Requests of this call (one, or one per element of ``doors``); fails on bad input."""
    p = module.params
    try:
        if p['doors'] is None:
            if p['state'] == 'present' and (p['sequence'] is None or p['port'] is None):
                missing = [key for key in ('sequence', 'port') if p[key] is None]
                module.fail_json(msg='state is present but all of the following are missing: %s' % ', '.join(missing))
            requests = [request_from(p)]
        else:
            if not p['doors']:
                raise KnockValueError('doors is an empty list: give at least one door')
            requests = [request_from(item, p['backend'], p['set_size'], p['integrate_input_chain'])
                        for item in p['doors']]
            names = [r.door.name for r in requests]
            twice = sorted(set(name for name in names if names.count(name) > 1))
            if twice:
                raise KnockValueError('doors: the door name%s %s appear%s more than once'
                                      % ('s' if len(twice) > 1 else '', ', '.join(repr(n) for n in twice),
                                         '' if len(twice) > 1 else 's'))
        if p['set_size'] is not None and p['set_size'] <= 0:
            raise KnockValueError('set_size %r must be greater than 0' % p['set_size'])
    except KnockValueError as exc:
        module.fail_json(msg=str(exc))
    for request in requests:
        # the knock ports are as secret as the sequence they come from
        module.no_log_values.update(str(step.port) for step in request.door.sequence)
    present = [r.door for r in requests if r.present]
    for door in present:
        if sequence_warning(door):
            module.warn(sequence_warning(door))   # a port scan opens it (names the door, no port)
    if p['doors'] is not None:
        collisions = door_collisions(present)
        if collisions:
            module.fail_json(msg='; '.join(collisions) + '; nothing was changed')
    return requests


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str'),
            doors=dict(type='list', elements='dict', options=dict(
                DOOR_FIELDS, name=dict(type='str', required=True),
                backend=dict(type='str', choices=['auto', 'iptables', 'nftables']),
                set_size=dict(type='int'), integrate_input_chain=dict(type='bool'))),
            backend=dict(type='str', choices=['auto', 'iptables', 'nftables'], default='auto'),
            set_size=dict(type='int', default=nft_rules.DEFAULT_SET_SIZE),
            integrate_input_chain=dict(type='bool', default=False),
            rollback_timeout=dict(type='int', default=0),   # used by the action plugin only
            **DOOR_FIELDS
        ),
        required_one_of=[('name', 'doors')],
        mutually_exclusive=[('name', 'doors')],
        supports_check_mode=True,
    )
    requests = requests_from(module)

    def run(args, data=None):
        return module.run_command(args, data=data, check_rc=False)

    run_ = Converger(requests, run, module.get_bin_path, check_mode=module.check_mode, warn=module.warn,
                     secret=module.no_log_values)
    multi = module.params['doors'] is not None
    result = dict(changed=False, xt_recent_ip_list_tot=read_ip_list_tot())

    def outcome():
        if multi:
            result['doors'] = run_.doors
        else:
            result.update(run_.doors[0])
            del result['name']
        result['backend_details'] = '; '.join(run_.details)
        return result
    try:
        run_.converge(multi)
    except Failed as exc:
        result['changed'] = exc.changed
        module.fail_json(msg=str(exc), **outcome())
    result['changed'] = run_.changed
    if run_.changed and module._diff:
        result['diff'] = dict(before=''.join(run_.before), after=''.join(run_.after))
    module.exit_json(**outcome())


if __name__ == '__main__':
    main()
