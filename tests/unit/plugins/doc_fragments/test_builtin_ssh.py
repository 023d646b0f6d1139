# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

import yaml

from ansible.plugins.connection import ssh as builtin_ssh

from ansible_collections.portknock.knock.plugins.doc_fragments.builtin_ssh import ModuleDocFragment


def test_fragment_has_every_builtin_ssh_option_with_a_description():
    ours = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)['options']
    theirs = yaml.safe_load(builtin_ssh.DOCUMENTATION)['options']
    assert set(ours) == set(theirs)
    assert all(option.get('description') for option in ours.values())   # incl. pipelining's fragment
    assert [v['name'] for v in ours['ssh_args']['vars']] == [v['name'] for v in theirs['ssh_args']['vars']]
    assert 'version_added' not in ours['ssh_args']
