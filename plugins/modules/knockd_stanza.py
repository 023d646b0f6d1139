#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: knockd_stanza
short_description: Manage one door stanza of a knockd.conf
description:
  - Adds, updates or removes one C([name]) stanza of a knockd 0.8 configuration file.
  - With O(state=present) the stanza is made to contain exactly the directives given;
    directives not given are removed from the stanza. Values equivalent to the existing ones
    (for example C(4127:tcp,2381:tcp,3659:tcp) and V([4127, 2381, 3659]), C(SYN) and V([syn]), or a key
    spelt C(Command) instead of C(Start_Command)) cause no change.
  - Only the lines of the managed stanza change; comments, blank lines, indentation and the
    other stanzas are kept byte for byte.
  - The existing file is parsed first as knockd 0.8 does (stricter on values). If it is invalid
    or has duplicate section names the module fails naming the line and value and the file is
    left untouched. The file is written atomically.
  - It does not reload knockd; notify a handler for that.
version_added: 0.1.0
author:
  - portknock.knock contributors (@portknock)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - portknock.knock.knockd_file
  - ansible.builtin.files
options:
  name:
    description: Name of the stanza (the text between the brackets). Must not be C(options).
    type: str
    required: true
  state:
    description: Whether the stanza should exist.
    type: str
    choices: [present, absent]
    default: present
  sequence:
    description:
      - Knock sequence, a list of ports, C(port:protocol) strings or C({port, protocol}) dicts,
        or a knockd string such as C(7311,9127:udp,8243). Protocol defaults to C(tcp).
      - One of O(sequence) or O(one_time_sequences) is required with O(state=present).
    type: raw
  one_time_sequences:
    description: Path of a knockd one-time sequences file (C(One_Time_Sequences)).
    type: path
  seq_timeout:
    description: Seconds allowed to complete the sequence (knockd default 25).
    type: raw
  tcpflags:
    description: TCP flags a knock packet must have, as a list or a knockd string (C(syn,!ack)).
    type: raw
  target:
    description: Destination address knock packets must be sent to (C(Target)).
    type: str
  start_command:
    description:
      - Command run when the sequence is completed by an IPv4 client (C(%IP%) is replaced).
      - One of O(start_command), O(command), O(start_command_6) or O(command_6) is required
        with O(state=present).
    type: str
  start_command_6:
    description: Command run when the sequence is completed by an IPv6 client.
    type: str
  cmd_timeout:
    description: Seconds between the start and the stop command (knockd default 10).
    type: raw
  stop_command:
    description: Command run O(cmd_timeout) seconds after the start command (IPv4).
    type: str
  stop_command_6:
    description: Command run O(cmd_timeout) seconds after the start command (IPv6).
    type: str
  command:
    description: Single-command form, written as C(Start_Command). Mutually exclusive with O(start_command).
    type: str
  command_6:
    description: Single-command form for IPv6. Mutually exclusive with O(start_command_6).
    type: str
notes:
  - Knock sequences and commands are C(no_log); Ansible masks their values in the output.
  - "A sequence whose knock ports only go up or only go down (whatever their protocols), a single step,
    or one port repeated, opens to a port scan (one packet to every port in order): the module warns,
    naming the door and no port. site.yml refuses such a door unless C(allow_monotonic=true)."
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
seealso:
  - module: portknock.knock.knockd_options
'''

EXAMPLES = r'''
- name: Door that opens SSH for a day
  portknock.knock.knockd_stanza:
    name: opencloseSSH
    sequence: [4127, 2381, 3659]
    seq_timeout: 15
    tcpflags: [syn]
    start_command: /usr/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
    cmd_timeout: 86400
    stop_command: /usr/sbin/iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
    backup: true
  notify: Restart knockd

- name: Remove Debian's example stanza
  portknock.knock.knockd_stanza:
    name: openHTTPS
    state: absent
'''

RETURN = r'''
stanza:
  description: Name of the managed stanza.
  returned: always
  type: str
  sample: opencloseSSH
changed_keys:
  description:
    - Canonical directives that were changed.
    - C(stanza) when the stanza was added or removed, C(mode) for permissions only.
  returned: always
  type: list
  elements: str
  sample: [seq_timeout, tcpflags]
backup_file:
  description: Path of the backup copy, when O(backup=true) and the file changed.
  returned: always
  type: str
  sample: /etc/knockd.conf.12345.2024-01-01@00:00:00~
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.portknock.knock.plugins.module_utils.door import sequence_warnings_for
from ansible_collections.portknock.knock.plugins.module_utils.knockd_conf import STANZA_KEYS, value_ports
from ansible_collections.portknock.knock.plugins.module_utils.knockd_file import (
    COMMON_ARGUMENT_SPEC, edit_knockd_conf)


def main():
    argument_spec = dict(
        name=dict(type='str', required=True),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        sequence=dict(type='raw', no_log=True),
        one_time_sequences=dict(type='path'),
        seq_timeout=dict(type='raw'),
        tcpflags=dict(type='raw'),
        target=dict(type='str'),
        start_command=dict(type='str', no_log=True),
        start_command_6=dict(type='str', no_log=True),
        cmd_timeout=dict(type='raw'),
        stop_command=dict(type='str', no_log=True),
        stop_command_6=dict(type='str', no_log=True),
        command=dict(type='str', no_log=True),
        command_6=dict(type='str', no_log=True),
    )
    argument_spec.update(COMMON_ARGUMENT_SPEC)
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[('command', 'start_command'), ('command_6', 'start_command_6')],
        required_if=[
            ('state', 'present', ('sequence', 'one_time_sequences'), True),
            ('state', 'present', ('start_command', 'command', 'start_command_6', 'command_6'), True),
        ],
        supports_check_mode=True,
        add_file_common_args=True,
    )
    params = module.params
    # the ports of the sequence as given (the file has them as rewritten, knockd_file masks those)
    module.no_log_values.update(value_ports(params['sequence']))
    name = params['name']
    values = dict((key, params[key]) for key in STANZA_KEYS)
    if params['command'] is not None:
        values['start_command'] = params['command']
    if params['command_6'] is not None:
        values['start_command_6'] = params['command_6']

    if params['state'] == 'present':
        for warning in sequence_warnings_for(name, params['sequence']):
            module.warn(warning)   # a port scan opens it (names the door, no port)

    def edit(conf):
        if params['state'] == 'absent':
            return ['stanza'] if conf.remove_stanza(name) else []
        return conf.set_stanza(name, values)

    edit_knockd_conf(module, params['path'], edit, create=params['create'], backup=params['backup'],
                     result=dict(stanza=name))


if __name__ == '__main__':
    main()
