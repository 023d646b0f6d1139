# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

import yaml

from ansible_collections.portknock.knock.plugins.doc_fragments import builtin_ssh as fragment
from ansible_collections.portknock.knock.plugins.doc_fragments.builtin_ssh import ModuleDocFragment


def test_fragment_equals_the_builtin_options_as_ansible_core_merges_them(builtin_ssh_options, plain_docs):
    ours = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)['options']
    assert ours == plain_docs(builtin_ssh_options)
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
