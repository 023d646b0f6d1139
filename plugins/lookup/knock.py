# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: knock
short_description: Knock from the controller and return the address knocked
description:
  - Sends the knock sequence to each host given (one TCP SYN per TCP step, one UDP datagram per
    UDP step) from the controller, and returns the address knocked for each, so a following
    connection can use that very address.
  - The sequence is never logged.
version_added: 0.1.0
author: portknock.knock contributors (@portknock)
extends_documentation_fragment:
  - portknock.knock.knock_options
options:
  _terms:
    description: Host names or addresses to knock on (each resolved once).
    required: true
    type: list
    elements: str
'''

EXAMPLES = r'''
- name: Knock, then wait for the admin port on the address knocked
  ansible.builtin.wait_for:
    host: "{{ lookup('portknock.knock.knock', inventory_hostname, sequence=vault_knock, ip_version='ipv4') }}"
    port: 8443
'''

RETURN = r'''
_raw:
  description: The address knocked, one per host given.
  type: list
  elements: str
'''

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible.utils.display import Display

from ansible_collections.portknock.knock.plugins.module_utils.knock_task import (
    DEPRECATION_COLLECTION, DEPRECATION_VERSION, KnockTaskError, ip_version_deprecation, run_knock_task)

display = Display()


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        deprecation = ip_version_deprecation(dict(ip_version=self.get_option('ip_version')))
        if deprecation:
            display.deprecated(deprecation, version=DEPRECATION_VERSION, collection_name=DEPRECATION_COLLECTION)
        addresses = []
        for host in terms:
            params = dict(host=str(host), sequence=self.get_option('sequence'), delay=self.get_option('delay'),
                          ip_version=self.get_option('ip_version'), source=self.get_option('source'))
            try:
                result = run_knock_task(params)
            except KnockTaskError as exc:
                raise AnsibleLookupError('knock on %s failed: %s' % (host, exc))
            display.vvv('portknock.knock.knock: %s' % result['msg'])
            addresses.append(result['address'])
        return addresses
