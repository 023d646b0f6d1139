# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of ansible.builtin.ssh, reused (not copied) as a doc fragment.

ansible-core cannot extend a plugin's documentation from another plugin, but
doc fragments are imported (not read with ast), so this fragment is built at
import time from the installed ``ansible.builtin.ssh`` DOCUMENTATION: the
``portknock.knock.ssh`` connection always documents and accepts exactly the
options of the ansible-core it runs with.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import yaml

from ansible.plugins.connection import ssh as _builtin_ssh

# Keys that describe the builtin's own history, not ours.
_HISTORY_KEYS = ('version_added', 'version_added_collection')


def _without_history(value):
    """Plain YAML-dumpable copy (ansible-core tags its strings) without version history."""
    if isinstance(value, dict):
        return dict((str(key), _without_history(item)) for key, item in value.items() if key not in _HISTORY_KEYS)
    if isinstance(value, (list, tuple)):
        return [_without_history(item) for item in value]
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def builtin_ssh_options():
    """The ``options`` mapping of ansible.builtin.ssh's DOCUMENTATION."""
    doc = yaml.safe_load(str(_builtin_ssh.DOCUMENTATION))
    # the builtin's own fragments (connection_pipelining), merged the way ansible-core does
    from ansible.plugins.loader import fragment_loader
    from ansible.utils.plugin_docs import add_fragments
    add_fragments(doc, _builtin_ssh.__file__, fragment_loader=fragment_loader, is_module=False)
    return _without_history(doc.get('options') or {})


class ModuleDocFragment(object):
    """DOCUMENTATION is set below: computed, so there is no YAML literal for linters to read."""


ModuleDocFragment.DOCUMENTATION = yaml.safe_dump({'options': builtin_ssh_options()}, default_flow_style=False)
