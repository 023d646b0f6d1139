# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every plugins file with logic has its unit test at the mirrored path.

``plugins/<dir>/[<sub>/]<name>.py`` -> ``tests/unit/plugins/<dir>/[<sub>/]test_<name>.py``.
Tests under other names (``bad_inputs/``, ``test_knock_cli_sequence_file.py``) may exist as
well; they do not count as the mirrored one.  Files without logic: ``__init__.py`` and doc
fragments that only hold documentation text.

The lab tool's parts: ``lab/labtool/<name>.py`` -> ``tests/unit/lab/test_<name>.py``.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import glob
import os


ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


def has_logic(path):
    """False for ``__init__.py`` and a doc fragment that is text only (no function)."""
    if os.path.basename(path) == '__init__.py':
        return False
    with open(path) as handle:
        tree = ast.parse(handle.read())
    if '/doc_fragments/' in path.replace(os.sep, '/'):
        return any(isinstance(node, (ast.FunctionDef, ast.Lambda)) for node in ast.walk(tree))
    return True


def mirrored_test(relpath):
    directory, name = os.path.split(relpath)
    if directory == os.path.join('lab', 'labtool'):
        directory = 'lab'
    return os.path.join('tests', 'unit', directory, 'test_' + name)


def files_with_logic():
    paths = glob.glob(os.path.join(ROOT, 'plugins', '**', '*.py'), recursive=True)
    paths += glob.glob(os.path.join(ROOT, 'lab', 'labtool', '*.py'))
    return sorted(os.path.relpath(path, ROOT) for path in paths if has_logic(path))


def untested():
    return [path for path in files_with_logic()
            if not os.path.exists(os.path.join(ROOT, mirrored_test(path)))]


def test_mirrored_path():
    assert mirrored_test('plugins/module_utils/knockd_daemon/log.py') == \
        'tests/unit/plugins/module_utils/knockd_daemon/test_log.py'
    assert mirrored_test('lab/labtool/proxy.py') == 'tests/unit/lab/test_proxy.py'


def test_the_walk_finds_files_and_skips_text_only_fragments():
    files = files_with_logic()
    assert 'plugins/module_utils/sequence.py' in files
    assert 'plugins/module_utils/knockd_daemon/main.py' in files
    assert 'plugins/doc_fragments/builtin_ssh.py' in files       # computes its text
    assert 'plugins/doc_fragments/knock_options.py' not in files  # text only
    assert 'lab/labtool/state.py' in files and 'lab/labtool/__init__.py' not in files


def test_every_file_with_logic_has_its_mirrored_test():
    missing = [path + ' -> ' + mirrored_test(path) for path in untested()]
    assert not missing, 'no mirrored unit test:\n  ' + '\n  '.join(missing)
