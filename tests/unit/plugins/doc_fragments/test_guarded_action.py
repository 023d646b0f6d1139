# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guarded_action fragment: the action attribute of the modules paired with an action plugin."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib
import os

import pytest
import yaml

from ansible_collections.portknock.knock.plugins.doc_fragments.guarded_action import ModuleDocFragment


def test_fragment_is_the_action_attribute_only():
    doc = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)
    assert list(doc) == ['attributes'] and list(doc['attributes']) == ['action']
    assert doc['attributes']['action']['support'] == 'full' and doc['attributes']['action']['description']


@pytest.mark.parametrize('name, words', [('recent_knock', 'firewall guard'), ('firewall_guard', 'new one')])
def test_each_module_keeps_its_own_details_and_has_its_action_plugin(module_doc, name, words):
    action = module_doc(name)['attributes']['action']
    assert action['support'] == 'full' and action['description'].startswith('Indicates')
    assert words in action['details']
    module = importlib.import_module('ansible_collections.portknock.knock.plugins.modules.' + name)
    assert os.path.exists(os.path.join(os.path.dirname(module.__file__), '..', 'action', name + '.py'))
