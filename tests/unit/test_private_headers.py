# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils, plugin_utils and doc_fragments say they are private to the collection."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
HEADER = '# PRIVATE to the collection portknock.knock: not a public API, may change without notice\n'


def private_files():
    for kind in ('module_utils', 'plugin_utils', 'doc_fragments'):
        for path in glob.glob(os.path.join(ROOT, 'plugins', kind, '**', '*.py'), recursive=True):
            if os.path.basename(path) != '__init__.py':
                yield os.path.relpath(path, ROOT)


def test_private_files_say_so_in_their_header():
    missing = []
    for path in sorted(private_files()):
        with open(os.path.join(ROOT, path)) as handle:
            head = [handle.readline() for dummy in range(6)]
        if HEADER not in head:
            missing.append(path)
    assert not missing, 'no PRIVATE header: %s' % ', '.join(missing)


def test_the_list_finds_the_files():
    files = set(private_files())
    assert 'plugins/module_utils/sequence.py' in files
    assert 'plugins/module_utils/knockd_daemon/main.py' in files
    assert 'plugins/plugin_utils/guarded_apply.py' in files
    assert 'plugins/doc_fragments/knock_options.py' in files
