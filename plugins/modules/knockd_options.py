#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: knockd_options
short_description: Manage the [options] section of a knockd.conf
description:
  - Sets the global options of a knockd 0.8 configuration file (C(UseSyslog), C(LogFile),
    C(PidFile), C(Interface)). Options not given are left as they are; an empty string removes
    an option, O(use_syslog=false) removes C(UseSyslog).
  - Adds an C([options]) section at the top of the file when needed. Only the changed lines are
    rewritten; comments and layout are kept.
  - The existing file is parsed first as knockd 0.8 does; an invalid file fails naming the line
    and value and is left untouched. The file is written atomically.
version_added: 0.1.0
author: portknock.knock contributors (@portknock)
options:
  use_syslog:
    description: Log through syslog (C(UseSyslog)).
    type: bool
  log_file:
    description: File knockd logs to (C(LogFile)); empty string removes it.
    type: str
  pid_file:
    description: PID file used with C(knockd -d) (C(PidFile)); empty string removes it.
    type: str
  interface:
    description: Interface knockd listens on (C(Interface)); empty string removes it. C(knockd -i) overrides it.
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - portknock.knock.knockd_file
  - ansible.builtin.files
seealso:
  - module: portknock.knock.knockd_stanza
    description: The doors of the same file, one stanza each.
'''

EXAMPLES = r'''
- name: Log to syslog and listen on eth1
  portknock.knock.knockd_options:
    use_syslog: true
    interface: eth1
  notify: Restart knockd
'''

RETURN = r'''
changed_keys:
  description: Options set or removed, by their names in this module (V(mode) when only the permissions changed).
  returned: always
  type: list
  elements: str
  sample: [interface, use_syslog]
backup_file:
  description: Copy of knockd.conf from before the C([options]) edit (O(backup=true)); V(null) when none was made.
  returned: always
  type: str
  sample: /etc/knockd.conf.2291.2026-03-09@14:02:51~
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.portknock.knock.plugins.module_utils.knockd_conf import OPTION_KEYS
from ansible_collections.portknock.knock.plugins.module_utils.knockd_file import (
    COMMON_ARGUMENT_SPEC, edit_knockd_conf)


def main():
    argument_spec = dict(
        use_syslog=dict(type='bool'),
        log_file=dict(type='str'),
        pid_file=dict(type='str'),
        interface=dict(type='str'),
    )
    argument_spec.update(COMMON_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True, add_file_common_args=True)
    params = module.params
    values = dict((key, params[key]) for key in OPTION_KEYS if params[key] is not None)

    edit_knockd_conf(module, params['path'], lambda conf: conf.set_options(values),
                     create=params['create'], backup=params['backup'])


if __name__ == '__main__':
    main()
