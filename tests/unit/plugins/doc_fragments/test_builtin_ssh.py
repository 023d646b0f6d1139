# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

import yaml

from ansible.plugins.connection import ssh as builtin_ssh
from ansible.plugins.loader import fragment_loader
from ansible.utils.plugin_docs import get_docstring

from ansible_collections.portknock.knock.plugins.doc_fragments import builtin_ssh as fragment
from ansible_collections.portknock.knock.plugins.doc_fragments.builtin_ssh import ModuleDocFragment

HISTORY = ('version_added', 'version_added_collection')


def plain(value):
    """A plain copy of (tagged) documentation data without version history."""
    if isinstance(value, dict):
        return dict((str(k), plain(v)) for k, v in value.items() if k not in HISTORY)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def builtin_options_as_ansible_merges_them():
    doc = get_docstring(builtin_ssh.__file__, fragment_loader, is_module=False)[0]
    return plain(doc['options'])


def test_fragment_equals_the_builtin_options_as_ansible_core_merges_them():
    ours = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)['options']
    assert ours == builtin_options_as_ansible_merges_them()
    assert 'pipelining' in ours and ours['pipelining'].get('description')   # the builtin's own fragment
    assert 'version_added' not in ModuleDocFragment.DOCUMENTATION


def test_blocks_are_found_by_top_level_key_only():
    text = '''
    name: x
    options:
      a:
        description: one
        options:
          nested: {}
        version_added: '2.5'
      b:
          description: >
            two
            lines
    notes: [n]
    extends_documentation_fragment:
      - connection_pipelining
'''
    assert fragment._block(text, 'options')[0] == '      a:'
    assert fragment._block(text, 'notes') == []          # a flow value on the key line, no block
    assert fragment._fragment_names(text) == ['connection_pipelining']
    lines = ['options:'] + fragment._reindented(fragment._block(text, 'options'), 2)
    assert yaml.safe_load('\n'.join(lines)) == {'options': {'a': {'description': 'one', 'options': {'nested': {}}},
                                                            'b': {'description': 'two lines'}}}
    assert fragment._fragment_names('name: x\nextends_documentation_fragment: connection_pipelining\n') == \
        ['connection_pipelining']
