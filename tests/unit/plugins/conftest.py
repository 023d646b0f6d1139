# -*- coding: utf-8 -*-
"""Helpers shared by the tests that compare plugin documentation with ansible-core's."""
from __future__ import absolute_import, division, print_function

import pytest

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


@pytest.fixture
def plain_docs():
    return plain


@pytest.fixture
def builtin_ssh_options():
    """ansible.builtin.ssh's options as ansible-core merges them with its fragments (tagged)."""
    from ansible.plugins.connection import ssh as builtin_ssh
    from ansible.plugins.loader import fragment_loader
    from ansible.utils.plugin_docs import get_docstring
    return get_docstring(builtin_ssh.__file__, fragment_loader, is_module=False)[0]['options']


class _FragmentLoader:
    """ansible-core's fragment loader for this collection's and the builtin doc fragments, without a
    configured collection finder (``ansible_collections`` is importable from the installed copy)."""

    def get(self, name):
        import importlib
        collection, _dot, short = name.rpartition('.')
        packages = {'ansible.builtin': 'ansible.plugins.doc_fragments',
                    'portknock.knock': 'ansible_collections.portknock.knock.plugins.doc_fragments'}
        if collection not in packages:
            return None
        try:
            module = importlib.import_module('%s.%s' % (packages[collection], short))
        except ImportError:
            return None
        return type('Fragment', (module.ModuleDocFragment,), {'ansible_name': name})


@pytest.fixture
def module_doc():
    """A module's DOCUMENTATION merged with its fragments as ansible-doc does, plain."""
    import importlib
    import yaml
    from ansible.utils.plugin_docs import add_fragments

    def merged(name):
        module = importlib.import_module('ansible_collections.portknock.knock.plugins.modules.' + name)
        doc = yaml.safe_load(module.DOCUMENTATION)
        add_fragments(doc, module.__file__, _FragmentLoader(), is_module=True)
        return plain(doc)
    return merged
