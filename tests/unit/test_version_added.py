# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every documented plugin says it was added in the collection's version (galaxy.yml)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import re

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


def galaxy_version():
    with open(os.path.join(ROOT, 'galaxy.yml')) as handle:
        return str(yaml.safe_load(handle)['version'])


# the plugin's own version_added: the first one at the top level of its DOCUMENTATION
_PY_DOC = re.compile(r"^DOCUMENTATION = r?'\'\'(.*?)'\'\'", re.S | re.M)
_TOP = re.compile(r'^version_added:\s*(\S+)\s*$', re.M)
_FILTER_TOP = re.compile(r'^  version_added:\s*(\S+)\s*$', re.M)


def documented_plugins():
    """(path, version_added or None) of every plugin with its own DOCUMENTATION."""
    for path in sorted(glob.glob(os.path.join(ROOT, 'plugins', '*', '*.py'))):
        if '/doc_fragments/' in path or '/module_utils/' in path or '/plugin_utils/' in path:
            continue
        with open(path) as handle:
            doc = _PY_DOC.search(handle.read())
        if doc:
            found = _TOP.search(doc.group(1))
            yield os.path.relpath(path, ROOT), found.group(1) if found else None
    for path in sorted(glob.glob(os.path.join(ROOT, 'plugins', 'filter', '*.yml'))):
        with open(path) as handle:
            found = _FILTER_TOP.search(handle.read())
        yield os.path.relpath(path, ROOT), found.group(1) if found else None


PLUGINS = list(documented_plugins())


def test_plugins_are_found():
    names = [path for path, doc in PLUGINS]
    assert 'plugins/modules/knock.py' in names and 'plugins/lookup/knock.py' in names
    assert 'plugins/connection/ssh.py' in names and 'plugins/filter/knockd_doors.yml' in names


@pytest.mark.parametrize('path, doc', PLUGINS, ids=[path for path, doc in PLUGINS])
def test_version_added_is_the_collection_version(path, doc):
    assert doc == galaxy_version(), path
