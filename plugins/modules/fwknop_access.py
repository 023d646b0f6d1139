#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: fwknop_access
short_description: Manage SPA access stanzas of fwknopd's access.conf, and the fwknopd.conf keys they need
description:
  - Adds, updates or removes one stanza of a fwknopd 2.6.10 C(access.conf), found by its C(SOURCE)
    value, and optionally sets keys of C(fwknopd.conf) (the capture interface, the SPA port, the
    packet age...) with O(fwknopd_options).
  - The same files serve Debian's C(fwknop-server) and the collection's drop-in daemon
    C(portknock-fwknopd) (role C(portknock.knock.fwknop)).
  - Only the managed lines change; comments, blank lines, indentation and the other stanzas are
    kept byte for byte. A new key of C(fwknopd.conf) goes under its commented-out example when
    the file has one (as Debian's does).
  - Both files are parsed first, strictly (an unknown key, a bad value, a stanza without a key
    are errors naming C(path:line) and the value, keys masked); an invalid file fails the module
    and is left untouched. Files are written atomically, with their final mode from the start.
  - Options left unset leave the stanza's line as it is; equivalent values (C(sha256) and
    C(SHA256), C(tcp/22,udp/53) and V([tcp/22, udp/53]), the same key in other base64 padding)
    cause no change.
  - It does not restart fwknopd; notify a handler for that.
version_added: 0.1.0
author: portknock.knock contributors (@portknock)
options:
  path:
    description: Path of the access.conf.
    type: path
    default: /etc/fwknop/access.conf
  source:
    description:
      - The stanza's C(SOURCE) value, which names it - C(ANY) or a comma separated list of addresses and
        networks (C(10.0.0.0/8, 192.168.1.7)).
      - IPv6 networks are an extension of the collection's daemon; fwknopd 2.6.10 refuses them.
    type: str
    required: true
  state:
    description: Whether the stanza is in the file.
    type: str
    choices: [present, absent]
    default: present
  open_ports:
    description:
      - C(OPEN_PORTS) - what an SPA packet may open, a list of C(tcp/PORT) / C(udp/PORT) or one comma separated string.
      - An empty list removes the line (the client may then ask for any port, as with fwknopd).
    type: raw
  key_base64:
    description:
      - C(KEY_BASE64), the Rijndael key in base64 (C(fwknop --key-gen)). Required with O(state=present).
      - A C(KEY) line of the stanza is replaced by it. Keep it in Ansible Vault.
    type: str
  hmac_key_base64:
    description: C(HMAC_KEY_BASE64), the HMAC key in base64 (replaces a C(HMAC_KEY) line). Keep it in Ansible Vault.
    type: str
  hmac_digest_type:
    description: C(HMAC_DIGEST_TYPE) - C(md5), C(sha1), C(sha256) (fwknopd's default), C(sha384), C(sha512), C(sha3_256), C(sha3_512).
    type: str
  fw_access_timeout:
    description: C(FW_ACCESS_TIMEOUT), seconds an accepted packet keeps the door open (fwknopd's default 30).
    type: int
  require_source_address:
    description:
      - C(REQUIRE_SOURCE_ADDRESS) - refuse a packet whose message asks for C(0.0.0.0) (the client's C(-s)).
    type: bool
  fwknopd_conf_path:
    description: Path of the fwknopd.conf that O(fwknopd_options) edits.
    type: path
    default: /etc/fwknop/fwknopd.conf
  fwknopd_options:
    description:
      - Keys of fwknopd.conf to set, for example C(PCAP_INTF), C(PCAP_FILTER) (C(udp port N), the SPA port),
        C(MAX_SPA_PACKET_AGE), C(ENABLE_DIGEST_PERSISTENCE); a value V(null) removes the key (fwknopd's default).
      - Keys are fwknopd 2.6.10's names; booleans are written C(Y)/C(N), numbers as numbers.
      - The file is only read and written when this option is given (even in O(state=absent)).
    type: dict
  backup:
    description: Keep a timestamped copy of each file before changing it.
    type: bool
    default: false
  mode:
    description:
      - Permissions of both files, as O(ansible.builtin.file#module:mode) (octal or symbolic); they hold keys, hence the default.
      - The new content is written to a temporary file that has this mode from the start, then renamed over the file.
    type: raw
    default: '0600'
  create:
    description: Create a file that does not exist; fail otherwise.
    type: bool
    default: true
notes:
  - O(key_base64) and O(hmac_key_base64) are C(no_log); every key of both files (also C(KEY), C(HMAC_KEY))
    is masked in the result, the diff and error messages.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: One diff per file read, access.conf first, then fwknopd.conf when O(fwknopd_options) is given.
  platform:
    platforms: posix
seealso:
  - module: portknock.knock.knockd_stanza
  - name: fwknopd(8)
    description: fwknopd's manual page (the keys of both files).
    link: https://www.cipherdyne.org/fwknop/docs/manpages/fwknopd.html
'''

EXAMPLES = r'''
- name: SSH by SPA from the office network, keys from the vault
  portknock.knock.fwknop_access:
    source: 10.20.0.0/16
    open_ports: [tcp/22]
    key_base64: "{{ vault_fwknop_key_base64 }}"
    hmac_key_base64: "{{ vault_fwknop_hmac_key_base64 }}"
    hmac_digest_type: sha256
    fw_access_timeout: 30
    require_source_address: true
    fwknopd_options:
      PCAP_INTF: ens3
      PCAP_FILTER: udp port 62201
      MAX_SPA_PACKET_AGE: 120
      ENABLE_DIGEST_PERSISTENCE: true
  notify: Restart fwknopd

- name: Remove Debian's template stanza, keeping a copy of access.conf
  portknock.knock.fwknop_access:
    source: ANY
    state: absent
    backup: true
'''

RETURN = r'''
source:
  description: The managed stanza's C(SOURCE), as given.
  returned: always
  type: str
  sample: 10.20.0.0/16
changed_keys:
  description:
    - access.conf keys of the stanza whose line changed (C(SOURCE) when the stanza was added or removed),
      then C(fwknopd.conf:KEY) for each fwknopd.conf key changed; V(mode) when only a file's permissions changed.
  returned: always
  type: list
  elements: str
  sample: [OPEN_PORTS, "fwknopd.conf:PCAP_INTF"]
backup_file:
  description: Copy of access.conf from before the stanza changed (O(backup=true)); V(null) when none was made.
  returned: always
  type: str
  sample: /etc/fwknop/access.conf.3071.2026-02-14@10:15:00~
fwknopd_conf_backup_file:
  description: Copy of fwknopd.conf from before O(fwknopd_options) changed it (O(backup=true)); V(null) when none was made.
  returned: always
  type: str
  sample: /etc/fwknop/fwknopd.conf.3071.2026-02-14@10:15:00~
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.portknock.knock.plugins.module_utils.fwknop_access import (
    access_edit, access_parser, fwknopd_edit, fwknopd_parser, fwknopd_values, secrets)
from ansible_collections.portknock.knock.plugins.module_utils.fwknop_conf import FwknopConfError
from ansible_collections.portknock.knock.plugins.module_utils.knockd_file import apply_edit, plan_edit


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', default='/etc/fwknop/access.conf'),
            source=dict(type='str', required=True),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            open_ports=dict(type='raw'),
            key_base64=dict(type='str', no_log=True),
            hmac_key_base64=dict(type='str', no_log=True),
            hmac_digest_type=dict(type='str'),
            fw_access_timeout=dict(type='int'),
            require_source_address=dict(type='bool'),
            fwknopd_conf_path=dict(type='path', default='/etc/fwknop/fwknopd.conf'),
            fwknopd_options=dict(type='dict'),
            backup=dict(type='bool', default=False),
            mode=dict(type='raw', default='0600'),
            create=dict(type='bool', default=True),
        ),
        required_if=[('state', 'present', ('key_base64',))],
        supports_check_mode=True,
        add_file_common_args=True,
    )
    params = module.params
    result = dict(source=params['source'], changed_keys=[], backup_file=None, fwknopd_conf_backup_file=None)
    try:
        edit = access_edit(params)
        options = fwknopd_values(params['fwknopd_options'])
    except FwknopConfError as error:
        module.fail_json(msg=str(error), **result)
    plans = [plan_edit(module, params['path'], edit, params['create'], access_parser(params['path']),
                       secrets, FwknopConfError, 'access.conf')]
    if options is not None:
        plans.append(plan_edit(module, params['fwknopd_conf_path'], fwknopd_edit(options), params['create'],
                               fwknopd_parser(params['fwknopd_conf_path']), secrets,
                               FwknopConfError, 'fwknopd.conf'))
    changed, diffs = False, []
    for index, plan in enumerate(plans):   # both files validated before either is written
        one_changed, keys, backup_file, diff = apply_edit(module, plan, params['backup'])
        changed = changed or one_changed
        result['changed_keys'] += keys if index == 0 else ['fwknopd.conf:%s' % key for key in keys]
        result['fwknopd_conf_backup_file' if index else 'backup_file'] = backup_file
        diffs.append(diff)
    if module._diff:
        result['diff'] = diffs
    module.exit_json(changed=changed, **result)


if __name__ == '__main__':
    main()
