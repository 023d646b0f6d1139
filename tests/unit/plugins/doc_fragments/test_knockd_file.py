# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The knockd_file fragment: the file options and the attributes of the two knockd.conf modules."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
import yaml

from ansible_collections.portknock.knock.plugins.doc_fragments.knockd_file import ModuleDocFragment


def test_fragment_is_yaml_with_file_options_and_attributes():
    doc = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)
    assert sorted(doc['options']) == ['backup', 'create', 'mode', 'path']
    assert doc['options']['mode']['default'] == '0600' and doc['options']['path']['default'] == '/etc/knockd.conf'
    assert doc['attributes'] == {'check_mode': {'support': 'full'}, 'diff_mode': {'support': 'full'},
                                 'platform': {'platforms': 'posix'}}


@pytest.mark.parametrize('name', ['knockd_options', 'knockd_stanza'])
def test_modules_get_the_options_and_described_attributes(module_doc, name):
    doc = module_doc(name)
    assert set(['path', 'backup', 'mode', 'create', 'owner']) <= set(doc['options'])
    for key in ('check_mode', 'diff_mode'):
        assert doc['attributes'][key]['support'] == 'full' and doc['attributes'][key]['description']
    assert doc['attributes']['platform']['platforms'] == 'posix'
