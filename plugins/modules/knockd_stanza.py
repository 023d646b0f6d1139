#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: knockd_stanza
short_description: Manage door stanzas of a knockd.conf
description:
  - Adds, updates or removes one C([name]) stanza of a knockd 0.8 configuration file, or with
    O(stanzas) every stanza of the host in one call (the file is read, edited and written once).
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
author: portknock.knock contributors (@portknock)
options:
  name:
    description:
      - Name of the stanza (the text between the brackets). Must not be C(options).
      - One of O(name) or O(stanzas) is required; they are mutually exclusive.
    type: str
  stanzas:
    description:
      - Every stanza of the host in one call, each a dict of the single-stanza options (O(name),
        required, O(state), O(sequence), O(seq_timeout), ..., O(command_6)); with it those options
        are not given to the module itself.
      - All stanzas are validated and applied to the parsed file before anything is written; a bad
        value in any of them fails naming the stanza (position and name) and the value (knock
        ports masked), and the file is left untouched. Otherwise the file is written once.
      - A name may appear once. Stanzas are applied in list order (a new stanza is added at the end).
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the stanza, as O(name).
        type: str
        required: true
      state:
        description: As O(state).
        type: str
        choices: [present, absent]
        default: present
      sequence:
        description: As O(sequence).
        type: raw
      one_time_sequences:
        description: As O(one_time_sequences).
        type: path
      seq_timeout:
        description: As O(seq_timeout).
        type: raw
      tcpflags:
        description: As O(tcpflags).
        type: raw
      target:
        description: As O(target).
        type: str
      start_command:
        description: As O(start_command).
        type: str
      start_command_6:
        description: As O(start_command_6).
        type: str
      cmd_timeout:
        description: As O(cmd_timeout).
        type: raw
      stop_command:
        description: As O(stop_command).
        type: str
      stop_command_6:
        description: As O(stop_command_6).
        type: str
      command:
        description: As O(command).
        type: str
      command_6:
        description: As O(command_6).
        type: str
  exclusive:
    description:
      - With O(stanzas), remove every stanza of the file that is not in the list (C([options]) stays).
        A listed stanza with O(state=absent) is removed in any case.
    type: bool
    default: false
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
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - portknock.knock.knockd_file
  - ansible.builtin.files
notes:
  - Knock sequences and commands are C(no_log); Ansible masks their values in the output.
  - "A sequence whose knock ports only go up or only go down (whatever their protocols), a single step,
    or one port repeated, opens to a port scan (one packet to every port in order): the module warns,
    naming the door and no port. site.yml refuses such a door unless C(allow_monotonic=true)."
seealso:
  - module: portknock.knock.knockd_options
    description: The C([options]) section of the same file (log, pid file, interface).
  - module: portknock.knock.recent_knock
    description: A door kept by the kernel alone (C(-m recent) or nftables sets), without knockd.
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

- name: Every door of the host in one write; Debian's example stanza goes
  portknock.knock.knockd_stanza:
    stanzas:
      - name: openHTTPS
        state: absent
      - name: opencloseSSH
        sequence: [4127, 2381, 3659]
        start_command: /usr/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
        cmd_timeout: 60
        stop_command: /usr/sbin/iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
      - name: openWeb
        sequence: "9421,4187:udp,7313"
        command: /usr/sbin/iptables -A INPUT -s %IP% -p tcp --dport 443 -j ACCEPT
  notify: Reload knockd

- name: Remove Debian's example stanza
  portknock.knock.knockd_stanza:
    name: openHTTPS
    state: absent
'''

RETURN = r'''
stanza:
  description: Name of the managed stanza.
  returned: without O(stanzas)
  type: str
  sample: opencloseSSH
stanzas:
  description: Names of the stanzas given in O(stanzas), in order.
  returned: with O(stanzas)
  type: list
  elements: str
  sample: [openHTTPS, opencloseSSH]
changed_stanzas:
  description: Per changed stanza, its changed directives (V(stanza) when it was added or removed).
  returned: with O(stanzas), when the file could be edited
  type: dict
  sample: {opencloseSSH: [seq_timeout], openHTTPS: [stanza]}
changed_keys:
  description:
    - Directives changed (with O(stanzas), of any stanza), named as this module's options (O(command) as
      V(start_command)); V(stanza) when a stanza was added or removed, V(mode) when only the permissions changed.
  returned: always
  type: list
  elements: str
  sample: [seq_timeout, tcpflags]
backup_file:
  description: Copy of knockd.conf from before its stanzas were rewritten (O(backup=true)); V(null) when none was made.
  returned: always
  type: str
  sample: /etc/knockd.conf.4127.2026-05-21@08:30:00~
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.portknock.knock.plugins.module_utils.door import sequence_warnings_for
from ansible_collections.portknock.knock.plugins.module_utils.knockd_conf import STANZA_KEYS, value_ports
from ansible_collections.portknock.knock.plugins.module_utils.knockd_file import (
    COMMON_ARGUMENT_SPEC, edit_knockd_conf)
from ansible_collections.portknock.knock.plugins.module_utils.sequence import KnockValueError

# the fields of one stanza: the module's own options, and each element of O(stanzas)
STANZA_SPEC = dict(
    name=dict(type='str'),
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
_EXCLUSIVE = (('command', 'start_command'), ('command_6', 'start_command_6'))
_REQUIRED = (('sequence', 'one_time_sequences'), ('start_command', 'command', 'start_command_6', 'command_6'))
_FIELDS = [key for key in STANZA_SPEC if key not in ('name', 'state')]


def _stanza_problem(fields):
    """What is wrong with the combination of one stanza's fields (None: nothing)."""
    for pair in _EXCLUSIVE:
        if all(fields.get(key) is not None for key in pair):
            return 'parameters are mutually exclusive: %s' % '|'.join(pair)
    if fields.get('state', 'present') == 'present':
        for keys in _REQUIRED:
            if all(fields.get(key) is None for key in keys):
                return 'state is present but any of the following are missing: %s' % ', '.join(keys)
    return None


def _stanza_values(fields):
    """Canonical directive -> value of one stanza (``command`` written as ``Start_Command``)."""
    values = dict((key, fields.get(key)) for key in STANZA_KEYS)
    if fields.get('command') is not None:
        values['start_command'] = fields['command']
    if fields.get('command_6') is not None:
        values['start_command_6'] = fields['command_6']
    return values


def _label(index, name):
    return 'stanza %d (%s)' % (index + 1, name)


def main():
    argument_spec = dict(STANZA_SPEC)
    argument_spec['stanzas'] = dict(type='list', elements='dict', options=dict(
        STANZA_SPEC, name=dict(type='str', required=True)))
    argument_spec['exclusive'] = dict(type='bool', default=False)
    argument_spec.update(COMMON_ARGUMENT_SPEC)
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=list(_EXCLUSIVE) + [('name', 'stanzas')],
        required_one_of=[('name', 'stanzas')],
        supports_check_mode=True,
        add_file_common_args=True,
    )
    params = module.params
    if params['stanzas'] is None:
        if params['exclusive']:
            module.fail_json(msg='exclusive needs stanzas (the list of every stanza of the file)')
        problem = _stanza_problem(params)
        if problem:
            module.fail_json(msg=problem)
        stanzas = [dict((key, params[key]) for key in STANZA_SPEC)]
        result = dict(stanza=params['name'])
    else:
        given = sorted(key for key in _FIELDS if params[key] is not None)
        if given:
            module.fail_json(msg='with stanzas, %s belong(s) in each stanza, not to the module' % ', '.join(given))
        stanzas = params['stanzas']
        result = dict(stanzas=[stanza['name'] for stanza in stanzas])
    changed_stanzas = {}   # filled once every stanza is applied (knockd_file copies result)
    if params['stanzas'] is not None:
        result['changed_stanzas'] = changed_stanzas
    # the ports of every sequence as given (the file has them as rewritten, knockd_file masks those)
    for stanza in stanzas:
        module.no_log_values.update(value_ports(stanza.get('sequence')))
    # everything is checked before the file is read: one bad stanza, nothing written
    seen = {}
    for index, stanza in enumerate(stanzas):
        name = stanza['name']
        if params['stanzas'] is not None:
            if name in seen:
                module.fail_json(msg='%s: stanza %r is already %s (file left untouched)'
                                 % (_label(index, name), name, _label(seen[name], name)), **result)
            seen[name] = index
            problem = _stanza_problem(stanza)
            if problem:
                module.fail_json(msg='%s: %s (file left untouched)' % (_label(index, name), problem), **result)
    for stanza in stanzas:
        if stanza['state'] == 'present':
            for warning in sequence_warnings_for(stanza['name'], stanza['sequence']):
                module.warn(warning)   # a port scan opens it (names the door, no port)

    def edit_one(conf, stanza):
        if stanza['state'] == 'absent':
            return ['stanza'] if conf.remove_stanza(stanza['name']) else []
        return conf.set_stanza(stanza['name'], _stanza_values(stanza))

    def edit(conf):
        if params['stanzas'] is None:
            return edit_one(conf, stanzas[0])
        changed = {}
        for index, stanza in enumerate(stanzas):
            try:
                keys = edit_one(conf, stanza)
            except KnockValueError as error:   # KnockdConfError included: the same stanza named
                raise type(error)('%s: %s (file left untouched)' % (_label(index, stanza['name']), error))
            if keys:
                changed[stanza['name']] = keys
        if params['exclusive']:
            for name in conf.stanza_names():
                if name not in seen and conf.remove_stanza(name):
                    changed[name] = ['stanza']
        changed_stanzas.update(changed)
        return sorted(set(key for keys in changed.values() for key in keys))

    edit_knockd_conf(module, params['path'], edit, create=params['create'], backup=params['backup'],
                     result=result)


if __name__ == '__main__':
    main()
