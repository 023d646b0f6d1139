# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""The options of ansible.builtin.ssh, reused (not copied) as a doc fragment.

ansible-core cannot extend a plugin's documentation from another plugin, but
doc fragments are imported (not read with ast), so this fragment is built at
import time from the installed ``ansible.builtin.ssh`` DOCUMENTATION: the
``portknock.knock.ssh`` connection always documents and accepts exactly the
options of the ansible-core it runs with.

Every Ansible worker process that loads the connection plugin imports this
fragment again (once per task and host), so it is built from the text, without a
YAML round trip of the whole documentation: the builtin's ``options:`` block,
re-indented and without ``version_added`` lines (the builtin's history, not ours),
plus the few options of the fragments it extends (``connection_pipelining``),
merged the way ansible-core merges them.  A YAML load and dump of the builtin's
documentation made every task of a knocked play measurably slower
(benchmarks/knock_before_connect.py).  tests/unit/.../test_builtin_ssh.py checks
that the result equals the builtin's options as ansible-core merges them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib
import re

import yaml

from ansible.plugins.connection import ssh as _builtin_ssh

# Keys that describe the builtin's own history, not ours (scalar, one line each).
_HISTORY_KEYS = ('version_added', 'version_added_collection')
_HISTORY_LINE = re.compile(r'^\s*version_added(?:_collection)?:[^\n]*$')
_KEY_LINE = re.compile(r'^( *)([A-Za-z_][\w-]*):(.*)$')
_ITEM_LINE = re.compile(r'^( *)- (.*)$')


def _top_level(text):
    """(indentation, lines) of a documentation string whose top-level keys share one indentation."""
    lines = text.expandtabs().splitlines()
    first = next(line for line in lines if line.strip())
    return len(first) - len(first.lstrip(' ')), lines


def _block(text, key):
    """The lines under top-level ``key:`` of a YAML documentation string (raw, not dedented)."""
    indent, lines = _top_level(text)
    block, inside = [], False
    for line in lines:
        if not line.strip():
            if inside:
                block.append('')
            continue
        depth = len(line) - len(line.lstrip(' '))
        if depth <= indent:
            match = _KEY_LINE.match(line)
            inside = bool(match) and depth == indent and match.group(2) == key
            continue
        if inside:
            block.append(line)
    return block


def _reindented(block, depth):
    """``block`` shifted so that its shallowest line is at ``depth``, history lines dropped."""
    kept = [line for line in block if not _HISTORY_LINE.match(line)]
    base = min(len(line) - len(line.lstrip(' ')) for line in kept if line.strip())
    return [(' ' * depth + line[base:]) if line.strip() else '' for line in kept]


def _fragment_names(text):
    """The builtin fragments ``extends_documentation_fragment`` names (list or single value)."""
    names = []
    for line in _block(text, 'extends_documentation_fragment'):
        match = _ITEM_LINE.match(line)
        if match:
            names.append(match.group(2).strip().strip('\'"'))
    if not names:
        indent, lines = _top_level(text)
        for line in lines:
            match = _KEY_LINE.match(line)
            if match and len(match.group(1)) == indent and match.group(2) == 'extends_documentation_fragment':
                value = match.group(3).strip().strip('\'"')
                names = [value] if value else []
    return names


def _fragment_options(name):
    """The options (parsed: they are few) of one of ansible-core's own doc fragments."""
    short = name.split('.')[-1] if name.startswith('ansible.builtin.') or '.' not in name else None
    if short is None:
        return {}   # a collection's fragment: ansible-core's builtin ssh has none
    module = importlib.import_module('ansible.plugins.doc_fragments.%s' % short)
    block = _block(str(getattr(module.ModuleDocFragment, 'DOCUMENTATION', '') or ''), 'options')
    if not block:
        return {}
    return _load('\n'.join(_reindented(block, 0))) or {}


def _load(text):
    return yaml.load(text, Loader=getattr(yaml, 'CSafeLoader', yaml.SafeLoader))  # nosec: a safe loader


def _without_history(value):
    """Plain YAML-dumpable copy without version history."""
    if isinstance(value, dict):
        return dict((str(key), _without_history(item)) for key, item in value.items() if key not in _HISTORY_KEYS)
    if isinstance(value, list):
        return [_without_history(item) for item in value]
    return value


def _option_chunks(lines):
    """{option name: its lines} of an options block indented by 2 (order kept)."""
    chunks, name = {}, None
    for line in lines:
        match = _KEY_LINE.match(line)
        if match and len(match.group(1)) == 2:
            name = match.group(2)
            chunks[name] = []
        if name is not None:
            chunks[name].append(line)
    return chunks


def builtin_ssh_options_text():
    """``options:`` of ansible.builtin.ssh with its own fragments merged as ansible-core does
    (a fragment's option updated by the plugin's own definition of it), as YAML text."""
    text = str(_builtin_ssh.DOCUMENTATION)
    chunks = _option_chunks(_reindented(_block(text, 'options'), 2))
    for fragment_name in _fragment_names(text):
        for name, option in _fragment_options(fragment_name).items():
            merged = dict(option)
            if name in chunks:
                merged.update(_load('\n'.join(_reindented(chunks[name], 0)))[name])
            dumped = yaml.dump({name: _without_history(merged)}, default_flow_style=False,
                               Dumper=getattr(yaml, 'CSafeDumper', yaml.SafeDumper))
            chunks[name] = ['  ' + line if line else '' for line in dumped.splitlines()]
    return '\n'.join(['options:'] + [line for chunk in chunks.values() for line in chunk]) + '\n'


class ModuleDocFragment(object):
    """DOCUMENTATION is set below: computed, so there is no YAML literal for linters to read."""


ModuleDocFragment.DOCUMENTATION = builtin_ssh_options_text()
