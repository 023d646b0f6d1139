#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: knock
short_description: Send a port knock sequence
description:
  - Sends a knock sequence to O(host) - one TCP SYN per TCP step (never a handshake, never a
    retransmission) and one UDP datagram per UDP step - and returns the address knocked.
  - Without C(delegate_to) the knock leaves from the controller (the action plugin sends it
    itself). With C(delegate_to) it leaves from the delegated host (this module runs there).
  - Use it for explicit knocks, for example before a M(ansible.builtin.wait_for) on a port
    other than SSH; SSH connections can knock by themselves with the
    C(portknock.knock.ssh) connection plugin.
  - A knock changes no configuration, so the task reports C(ok), not C(changed).
version_added: 0.1.0
author: portknock.knock contributors (@portknock)
extends_documentation_fragment:
  - portknock.knock.knock_options
options:
  host:
    description:
      - Host name or address to knock on. It is resolved once; the address knocked is returned
        in RV(address) so later tasks can connect to that very address.
    type: str
    required: true
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
    details: In check mode nothing is sent.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: none
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
    support: full
    details: Runs on the controller unless delegated.
notes:
  - Unlike knockd's C(knock), a dropped TCP knock is never retransmitted, so it cannot break the
    sequence by arriving twice.
seealso:
  - plugin: portknock.knock.knock
    plugin_type: lookup
  - plugin: portknock.knock.ssh
    plugin_type: connection
'''

EXAMPLES = r'''
- name: Open the door to the web admin port, then wait for it
  portknock.knock.knock:
    host: "{{ ansible_host }}"
    sequence: "{{ vault_admin_knock }}"     # e.g. [7311, '9127:udp', 8243]
    ip_version: ipv4
  register: knocked

- name: Wait for the port on the address that was knocked
  ansible.builtin.wait_for:
    host: "{{ knocked.address }}"
    port: 8443
    timeout: 10

- name: Knock from the bastion instead of the controller
  portknock.knock.knock:
    host: 10.0.0.5
    sequence: 7311,9127,8243
  delegate_to: bastion
'''

RETURN = r'''
address:
  description: The address knocked (connect to this one). None in check mode.
  returned: always
  type: str
  sample: 198.51.100.10
host:
  description: The host as given.
  returned: always
  type: str
knocks:
  description: Number of knocks sent (or that would be sent in check mode).
  returned: always
  type: int
  sample: 3
protocols:
  description: Protocols used by the steps.
  returned: always
  type: list
  elements: str
  sample: [tcp, udp]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.portknock.knock.plugins.module_utils.knock_task import (
    ARGUMENT_SPEC, DEPRECATION_COLLECTION, DEPRECATION_VERSION, KnockTaskError, ip_version_deprecation,
    run_knock_task)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    deprecation = ip_version_deprecation(module.params)
    if deprecation:
        module.deprecate(deprecation, version=DEPRECATION_VERSION, collection_name=DEPRECATION_COLLECTION)
    try:
        result = run_knock_task(module.params, check_mode=module.check_mode)
    except KnockTaskError as exc:
        module.fail_json(msg='knock on %s failed: %s' % (module.params['host'], exc))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
