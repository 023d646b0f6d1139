#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: rollout_stamp
short_description: Tell in one call whether a host still has its last confirmed rollout (a stamp of inputs and state)
version_added: 0.1.0
author: portknock.knock contributors (@portknock)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
description:
  - The fast path of C(site.yml). After a host's rollout is confirmed, O(state=present) writes a stamp on
    the host - the controller's digest of the rollout's inputs (O(inputs)) and a fingerprint of the host
    state the rollout manages. On the next run O(state=check) says whether the host is RV(current) -
    the stamp's inputs are today's and the state's fingerprint is the stamped one - and, if not, names
    the parts that differ (RV(reasons)).
  - "The fingerprint is made of one digest per part: each of O(paths) (absent, or type, mode, owner,
    group and the sha256 of the content; a symlink by its target text, not followed; a directory
    recursively, without C(__pycache__)), each of O(globs) (its matches, each as a path), each of
    O(services), each of O(packages), and with O(firewall) the collection's own firewall state."
  - "Services: C(systemctl show) C(ActiveState), C(UnitFileState) and C(LoadState) (what C(systemctl is-active)
    and C(is-enabled) report; one call for all services) when PID 1 is systemd (C(/run/systemd/system)
    exists), else the exit status of C(service NAME status)."
  - "Packages: C(dpkg-query -W) of all of them in one call (name, version, status); a package that is
    not installed is recorded as missing, not an error."
  - "Firewall: for IPv4 and IPv6 and each iptables variant (nf_tables and legacy, where its C(-save)
    binary exists; legacy only when the kernel has a legacy filter table) what the collection owns in
    C(<iptables>-save -t filter) - the chains C(PK-*), the C(INPUT) rules that jump to them and
    C(INPUT)'s policy, counters zeroed - without the knockers' ACCEPT rules that knockd adds to and
    removes from its door chains C(PK-<name>-KD) (the rules without the C(pk-static) comment). And each
    table C(inet portknock_*) of C(nft -t list ruleset), without its sets' elements (knockers and their
    timeouts) and its counters' values."
  - "A command that is missing or fails (no nft, no dpkg-query) is recorded as that part's marker
    (C(not installed), C(unavailable)); it does not fail the task, and it differs from a state read."
  - "Digests are keyed with a random salt kept in the stamp (the managed files and rules hold knock ports
    and keys): the stamp and the results hold digests only, never content, rule text or values; the
    stamp is written atomically, mode 0600, in a directory created 0700 when missing."
  - Every command runs once per call; files are hashed in the module's process.
options:
  state:
    description:
      - V(check) compares the stamp with the host now and changes nothing.
      - V(present) writes the stamp for the host now (changed only when its content, or its mode, differs).
      - V(absent) removes the stamp.
    type: str
    choices: [check, present, absent]
    default: check
  path:
    description: The stamp file.
    type: path
    default: /var/lib/portknock/rollout.stamp
  inputs:
    description:
      - The controller's digest of the rollout's inputs, a sha256 in 64 hex digits. Required for
        V(check) and V(present).
    type: str
  paths:
    description: Absolute paths of the managed files and directories (a directory is fingerprinted recursively).
    type: list
    elements: str
    default: []
  globs:
    description:
      - Absolute shell patterns (for example C(/etc/systemd/system/portknock*)), expanded on the host; each
        pattern is one part (a file that appears or goes away changes it).
    type: list
    elements: str
    default: []
  services:
    description: Names of the managed services (units).
    type: list
    elements: str
    default: []
  packages:
    description: Names of the managed Debian packages.
    type: list
    elements: str
    default: []
  firewall:
    description: Fingerprint the collection's own firewall state (see the description).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    details: V(check) runs as in any mode; V(present) and V(absent) say what they would change.
  diff_mode:
    support: full
    details: The stamp's digests (inputs and fingerprint) before and after, nothing else.
  platform:
    platforms: posix
notes:
  - Run as root (the firewall and the managed files are root's).
  - The same O(paths), O(globs), O(services), O(packages) and O(firewall) must be given to V(present) and
    to V(check); a part that is not in both is reported as differing.
  - Without a stamp, RV(fingerprint) is keyed with a salt of its own and differs from call to call.
  - Give only what changes when the rollout changes it, not what a host writes as it runs (a log, the
    metrics file of the roles' timer, the guard's snapshots); those would make every check differ.
seealso:
  - module: portknock.knock.firewall_guard
'''

EXAMPLES = r'''
- name: The fast path of a knockd host (the same parts for check and present)
  module_defaults:
    portknock.knock.rollout_stamp:
      inputs: "{{ rollout_inputs_digest }}"
      paths: [/etc/knockd.conf, /etc/portknock]
      globs: [/etc/systemd/system/portknock*]
      services: [knockd]
      packages: [knockd]
  become: true
  block:
    - name: Is the host still what its last confirmed rollout left?
      portknock.knock.rollout_stamp:
      register: stamp

    - name: Nothing to do on this host
      ansible.builtin.meta: end_host
      when: stamp.current

    # ... the guarded rollout, confirmed ...

    - name: Stamp the host
      portknock.knock.rollout_stamp:
        state: present

- name: Force a full rollout next time
  portknock.knock.rollout_stamp:
    state: absent
  become: true
'''

RETURN = r'''
current:
  description: The stamp's inputs are O(inputs) and the host's state is the stamped one (O(state=check)).
  returned: state is check
  type: bool
  sample: false
reasons:
  description:
    - "Why the host is not current; empty when it is. V(no stamp), V(stamp unreadable), V(inputs differ),
      and V(state differs: <part>) for each part that differs, where the part is a path, V(glob <pattern>),
      V(service <name>), V(package <name>), V(firewall ipv4 nft), V(firewall ipv6 legacy), V(firewall nft)
      (the list of tables) or V(firewall nft inet portknock_<door>). Never content or values."
    - V(fingerprint differs) when the stamp's fingerprint does not match its own parts (edited by hand).
  returned: state is check
  type: list
  elements: str
  sample: ['state differs: /etc/knockd.conf', 'state differs: service knockd']
fingerprint:
  description: The keyed sha256 (hex) of the host's state now.
  returned: state is check or present
  type: str
  sample: 3f0c6c1f0e9c1f3d1b0c6a0f7e5d4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3
stamp_path:
  description: The stamp file (O(path)). Not named C(path), so Ansible does not add the file's attributes to the result.
  returned: always
  type: str
  sample: /var/lib/portknock/rollout.stamp
'''

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_text

from ..module_utils.rollout_stamp import STAMP_PATH, HostState, RolloutStamp, StampError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type='str', choices=['check', 'present', 'absent'], default='check'),
            path=dict(type='path', default=STAMP_PATH),
            inputs=dict(type='str', no_log=True),   # a digest of secrets among others: never shown
            paths=dict(type='list', elements='str', default=[]),
            globs=dict(type='list', elements='str', default=[]),
            services=dict(type='list', elements='str', default=[]),
            packages=dict(type='list', elements='str', default=[]),
            firewall=dict(type='bool', default=True),
        ),
        required_if=[('state', 'check', ['inputs']), ('state', 'present', ['inputs'])],
        supports_check_mode=True,
    )
    params = module.params

    def run(args):
        return module.run_command(args, environ_update={'LC_ALL': 'C'})

    host = HostState(run, lambda name: module.get_bin_path(name, opt_dirs=['/usr/sbin', '/sbin']))
    try:
        stamp = RolloutStamp(params['path'], host, params['inputs'], params['paths'], params['globs'],
                             params['services'], params['packages'], params['firewall'])
        if params['state'] == 'check':
            result = stamp.check()
        elif params['state'] == 'present':
            result = stamp.present(module.check_mode)
        else:
            result = stamp.absent(module.check_mode)
    except StampError as exc:
        module.fail_json(msg=to_text(exc))
    diff = result.pop('diff', None)
    if module._diff and diff is not None:
        result['diff'] = diff
    module.exit_json(**result)


if __name__ == '__main__':
    main()
