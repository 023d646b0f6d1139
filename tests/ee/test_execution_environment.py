# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The execution environment, as far as no registry is needed (tools/test.sh ee).

- The INSTALLED collection declares its controller-side needs in ansible-builder's
  collection-level format (meta/execution-environment.yml -> requirements.txt, bindep.txt),
  and `ansible-builder introspect --sanitize` lists exactly those.
- They are what the controller-side code needs: every third-party import of the plugins that
  run on the controller (and of the module_utils they import) is declared or comes with
  ansible-core, and nothing else is declared.
- `ansible-builder create` makes the build context from execution-environment.yml and the
  tarball (.cache/ee/), and the requirement files its builder stage writes carry them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import json
import os
import re
import subprocess
import sys
import tarfile

import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
EE_LOCAL = os.path.join(REPO, 'tools', 'ee_local.py')
OUT = os.path.join(REPO, '.cache', 'ee')
BIN = os.path.dirname(os.path.abspath(sys.executable))
NOTE = '  # from collection portknock.knock'
# Controller-side plugin types (modules run on the hosts: their needs are the roles' business).
CONTROLLER_DIRS = ['action', 'connection', 'lookup', 'filter', 'plugin_utils', 'doc_fragments']
# Controller-side module_utils no plugin imports by name: the knock proxy (the connection
# plugin runs it as ssh's ProxyCommand) and the SPA codec the knock client uses.
CONTROLLER_ENTRY_UTILS = ['knock_cli.py', 'spa.py']
# Imports ansible-core brings with it (its own dependencies) or that resolve inside it.
WITH_ANSIBLE_CORE = {'ansible', 'ansible_collections', 'yaml', 'jinja2'}


def installed():
    path = os.environ.get('PORTKNOCK_COLLECTION')
    assert path, 'PORTKNOCK_COLLECTION is not set: run under tools/test.sh or source tools/bootstrap.sh'
    return path


def declared(name):
    """Requirement lines of one of the collection's files as ansible-builder reads them (no comments)."""
    with open(os.path.join(installed(), name)) as fh:
        return [re.sub(r'(?:^|\s+)#.*$', '', line).strip() for line in fh
                if line.strip() and not line.lstrip().startswith('#')]


def req_name(line):
    return re.split(r'[\s<>=!~;\[]', line, 1)[0].lower().replace('_', '-')


def test_collection_level_dependency_files_are_installed():
    with open(os.path.join(installed(), 'meta', 'execution-environment.yml')) as fh:
        meta = yaml.safe_load(fh)
    assert meta == {'version': 1, 'dependencies': {'python': 'requirements.txt', 'system': 'bindep.txt'}}
    for name in ('requirements.txt', 'bindep.txt'):
        assert declared(name), '%s is empty or missing in the installed collection (build_ignore?)' % name
    with open(os.path.join(REPO, 'galaxy.yml')) as fh:
        ignored = yaml.safe_load(fh)['build_ignore']
    for name in ('requirements.txt', 'bindep.txt', 'meta', 'meta/execution-environment.yml'):
        assert name not in ignored
    # the repository's EE definition builds from the repository: it does not ship
    assert 'execution-environment.yml' in ignored
    assert not os.path.exists(os.path.join(installed(), 'execution-environment.yml'))


def introspect(folder):
    out = subprocess.run([os.path.join(BIN, 'ansible-builder'), 'introspect', '--sanitize', folder], check=True,
                         stdout=subprocess.PIPE, universal_newlines=True).stdout
    return yaml.safe_load(out[out.index('---'):])


def test_introspect_lists_exactly_the_collections_dependencies():
    data = introspect(os.environ['ANSIBLE_COLLECTIONS_PATH'])
    assert data == {'python': [line + NOTE for line in declared('requirements.txt')],
                    'system': [line + NOTE for line in declared('bindep.txt')]}
    # and what they are (so emptying both files cannot pass)
    assert [req_name(line) for line in declared('requirements.txt')] == ['cryptography']
    assert declared('bindep.txt') == ['openssh-client [platform:dpkg]', 'openssh-clients [platform:rpm]']


def test_bindep_names_the_ssh_client_on_both_package_platforms():
    from bindep.depends import Depends
    with open(os.path.join(installed(), 'bindep.txt')) as fh:
        depends = Depends(fh.read())
    for platform, package in (('platform:dpkg', 'openssh-client'), ('platform:rpm', 'openssh-clients')):
        rules = depends.active_rules([platform, 'default'])
        assert [rule[0] for rule in rules] == [package], platform


def third_party_imports(paths):
    found = {}
    for path in paths:
        with open(path) as fh:
            tree = ast.parse(fh.read(), path)
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split('.')[0]
                if top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(os.path.relpath(path, installed()))
    return found


def controller_files():
    """The controller-side plugins and every module_utils file they reach (relative imports followed)."""
    plugins = os.path.join(installed(), 'plugins')
    todo = [os.path.join(plugins, 'module_utils', name) for name in CONTROLLER_ENTRY_UTILS]
    for sub in CONTROLLER_DIRS:
        for root, _dirs, files in os.walk(os.path.join(plugins, sub)):
            todo += [os.path.join(root, f) for f in files if f.endswith('.py')]
    seen = set()
    while todo:
        path = todo.pop()
        if path in seen or not os.path.exists(path):
            continue
        seen.add(path)
        with open(path) as fh:
            tree = ast.parse(fh.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = os.path.dirname(path)
                    for _level in range(node.level - 1):
                        base = os.path.dirname(base)
                    parts = (node.module or '').split('.') if node.module else []
                elif (node.module or '').startswith('ansible_collections.portknock.knock.plugins.'):
                    base, parts = plugins, node.module.split('.')[4:]
                else:
                    continue
                target = os.path.join(base, *parts)
                todo.append(target + '.py')
                todo += [os.path.join(target, alias.name + '.py') for alias in node.names]
    return sorted(seen)


def test_requirements_are_exactly_the_controller_sides_third_party_imports():
    files = controller_files()
    assert any(f.endswith('connection/ssh.py') for f in files) and any(f.endswith('knock_sender.py') for f in files)
    imports = third_party_imports(files)
    needed = set(imports) - WITH_ANSIBLE_CORE
    names = set(req_name(line) for line in declared('requirements.txt'))
    assert needed == names, 'imported on the controller: %s; declared: %s' % (
        json.dumps(dict((k, sorted(v)) for k, v in imports.items()), indent=1), sorted(names))


def run_ee_local(*args):
    res = subprocess.run([sys.executable, EE_LOCAL] + list(args) + ['--out', OUT], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert res.returncode == 0, res.stdout
    return res.stdout


def test_definition_installs_this_versions_tarball():
    with open(os.path.join(REPO, 'galaxy.yml')) as fh:
        version = yaml.safe_load(fh)['version']
    with open(os.path.join(REPO, 'execution-environment.yml')) as fh:
        ee = yaml.safe_load(fh)
    assert ee['version'] == 3
    name = 'portknock-knock-%s.tar.gz' % version
    assert ee['dependencies']['galaxy'] == {'collections': [{'name': 'collections/' + name, 'type': 'file'}]}
    assert ee['additional_build_files'] == [{'src': 'dist/' + name, 'dest': 'collections'}]
    # the collection's own needs come from the collection (introspection), not a second list
    assert 'python' not in ee['dependencies'] and 'system' not in ee['dependencies']


def test_create_makes_a_context_whose_builder_requirements_carry_the_dependencies():
    data = json.loads(run_ee_local('requirements'))
    context = os.path.join(OUT, 'context')
    with open(os.path.join(context, 'Containerfile')) as fh:
        containerfile = fh.read()
    assert 'FROM $EE_BASE_IMAGE AS base' in containerfile
    assert 'ARG EE_BASE_IMAGE="registry.redhat.io/ansible-automation-platform-25/ee-minimal-rhel9:latest"' in containerfile
    assert 'ARG PKGMGR="/usr/bin/microdnf"' in containerfile
    assert re.search(r'^RUN .*ansible-galaxy collection install .*-r requirements.yml', containerfile, re.M)
    assert re.search(r'^RUN \$PYCMD /output/scripts/introspect.py introspect .*--write-pip=', containerfile, re.M)
    assert 'RUN /output/scripts/install-from-bindep' in containerfile
    with open(os.path.join(context, '_build', 'requirements.yml')) as fh:
        galaxy = yaml.safe_load(fh)
    tar = os.path.join(context, '_build', galaxy['collections'][0]['name'])
    with tarfile.open(tar) as handle:
        members = set(handle.getnames())
    assert {'meta/execution-environment.yml', 'requirements.txt', 'bindep.txt', 'MANIFEST.json'} <= members
    # what the builder stage writes, from the collection installed out of the context
    assert data['python_lines'] == declared('requirements.txt')
    assert data['system_lines'] == declared('bindep.txt')
    with open(data['python']) as fh:
        assert fh.read() == ''.join(line + NOTE + '\n' for line in declared('requirements.txt'))
    with open(data['system']) as fh:
        assert fh.read() == ''.join(line + NOTE + '\n' for line in declared('bindep.txt'))
