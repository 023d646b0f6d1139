# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: rollout_inputs
short_description: A digest of everything a host's rollout is made from
description:
  - Returns one SHA-256 hex digest per call of what C(site.yml) rolls out to the current host - the
    value of every variable whose name starts with one of O(prefixes) (templated, so the door list
    as the host sees it), the variables named in O(names), and the installed collection's own files
    (its C(FILES.json), or the content of its plugins, roles and scripts when it has none).
  - M(portknock.knock.rollout_stamp) keeps it on the host after a confirmed rollout. The next run
    that computes the same digest, on a host whose managed state has not drifted, has nothing to do.
  - Only the digest leaves this plugin - no value (sequence, key) is returned or logged.
version_added: 0.1.0
author: portknock.knock contributors (@portknock)
options:
  prefixes:
    description: Variable name prefixes whose variables are inputs.
    type: list
    elements: str
    default: [portknock_, knockd_, recent_knock_, fwknop_, host_python_, guard_, knock_]
  names:
    description: Other variables that are inputs (missing ones count as missing).
    type: list
    elements: str
    default: [ansible_port, allow_monotonic]
'''

EXAMPLES = r'''
- name: The rollout's inputs for this host
  ansible.builtin.set_fact:
    site_inputs: "{{ lookup('portknock.knock.rollout_inputs') }}"
'''

RETURN = r'''
_raw:
  description: The SHA-256 hex digest (one item).
  type: list
  elements: str
'''

import hashlib
import json
import os

from ansible.errors import AnsibleLookupError
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.lookup import LookupBase

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_collection_digest = []


def collection_digest(root=COLLECTION_ROOT):
    """SHA-256 of the installed collection: its FILES.json (every file's checksum), else its code."""
    files_json = os.path.join(root, 'FILES.json')
    digest = hashlib.sha256()
    if os.path.isfile(files_json):
        with open(files_json, 'rb') as handle:
            digest.update(handle.read())
        return digest.hexdigest()
    for top in ('plugins', 'roles', 'scripts'):
        for directory, dirs, files in sorted(os.walk(os.path.join(root, top))):
            dirs[:] = sorted(d for d in dirs if d != '__pycache__')
            for name in sorted(files):
                path = os.path.join(directory, name)
                digest.update(to_bytes(os.path.relpath(path, root)) + b'\0')
                with open(path, 'rb') as handle:
                    digest.update(handle.read())
    return digest.hexdigest()


def inputs_digest(values, collection):
    """The digest of ``values`` (name -> plain data) and the collection's digest."""
    try:
        text = json.dumps({'vars': values, 'collection': collection}, sort_keys=True, default=to_text)
    except (TypeError, ValueError) as exc:
        raise AnsibleLookupError('rollout_inputs: a variable is not plain data (%s)' % type(exc).__name__)
    return hashlib.sha256(to_bytes(text)).hexdigest()


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        variables = variables or {}
        prefixes = tuple(self.get_option('prefixes'))
        wanted = sorted(set(name for name in variables if name.startswith(prefixes)) | set(self.get_option('names')))
        values = {}
        for name in wanted:
            if name not in variables:
                values[name] = None
                continue
            try:
                values[name] = self._templar.template(variables[name], fail_on_undefined=False)
            except Exception as exc:   # a template error in a variable: name it, never its value
                raise AnsibleLookupError('rollout_inputs: variable %s cannot be templated (%s)'
                                         % (name, type(exc).__name__))
        if not _collection_digest:
            _collection_digest.append(collection_digest())
        return [inputs_digest(values, _collection_digest[0])]
