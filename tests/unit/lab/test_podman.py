# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lab/labtool/podman.py: every podman call in the repository goes through lab/lab-podman."""

import os
import re
import subprocess

import pytest

from labtool import podman

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
# a podman command run from Python (a list starting with 'podman') or from a shell/YAML line
PY_CALL = re.compile(r"""[\[(]\s*['"]podman['"]""")
SHELL_CALL = re.compile(r"""(^|[;&|`(:]|\bexec\s|\bsudo\s)\s*podman\s+[a-z]""")
ALLOWED = {os.path.join("lab", "lab-podman"), os.path.join("tests", "unit", "lab", "test_podman.py")}   # the wrapper; this test's own examples


def tracked_files():
    out = subprocess.run(['git', 'ls-files'], cwd=REPO, stdout=subprocess.PIPE, universal_newlines=True, check=True)
    for rel in out.stdout.split():
        if rel.endswith(('.py', '.yml', '.yaml', '.sh', '.j2', '.cfg', '.ini')) or os.path.basename(os.path.dirname(rel)) in ('tools', 'scripts', '.ci'):
            yield rel


def bare_podman_calls(text, python=False):
    """Python: a command list starting with 'podman'; anything else: a shell line that runs
    podman (comments and prose are not calls)."""
    found = [m.group(0) for m in PY_CALL.finditer(text)]
    if not python:
        for line in text.splitlines():
            if not line.lstrip().startswith('#'):
                found += [m.group(0) for m in SHELL_CALL.finditer(line)]
    return found


@pytest.mark.parametrize('text', [
    "subprocess.run(['podman', 'exec', c])",
    'subprocess.Popen(("podman", "ps"))',
    'podman restart pklab-x',
    'cmd: podman exec host true',
    'x && podman rm -f y',
    '  exec podman ps -a',
])
def test_detector_finds_bare_calls(text):
    assert bare_podman_calls(text)


@pytest.mark.parametrize('text', [
    "subprocess.run([LAB_PODMAN, 'exec', c])",
    '# rootful podman lab',
    'lab/lab-podman ps',
    "'podman settings: CONTAINERS_CONF'",
])
def test_detector_leaves_the_wrapper_and_prose(text):
    assert not bare_podman_calls(text)
    assert not bare_podman_calls('"""Reach the host (podman exec)."""', python=True)


def test_no_bare_podman_in_the_repository():
    found = []
    for rel in tracked_files():
        if rel in ALLOWED:
            continue
        with open(os.path.join(REPO, rel), errors='replace') as fh:
            hits = bare_podman_calls(fh.read(), python=rel.endswith('.py'))
        found += ['%s: %s' % (rel, hit.strip()) for hit in hits]
    assert not found, 'podman must run through lab/lab-podman:\n' + '\n'.join(found)


def test_wrapper_applies_the_lab_settings():
    with open(podman.LAB_PODMAN) as fh:
        text = fh.read()
    assert 'CONTAINERS_CONF=' in text and 'containers.conf' in text
    assert os.access(podman.LAB_PODMAN, os.X_OK)


def test_containers_conf_pins_backend_and_runtime():
    with open(podman.CONTAINERS_CONF) as fh:
        text = fh.read()
    assert re.search(r'^network_backend\s*=\s*"%s"' % podman.PINNED_BACKEND, text, re.M)
    assert re.search(r'^runtime\s*=\s*"%s"' % podman.PINNED_RUNTIME, text, re.M)


def test_require_pinned_backend_names_cni(monkeypatch):
    monkeypatch.setattr(podman, 'host_info', lambda: ['cni', 'runc'])
    with pytest.raises(SystemExit) as err:
        podman.require_pinned_backend()
    assert "'cni'" in str(err.value) and 'netavark' in str(err.value)


def test_bootstrap_installs_the_pinned_backend():
    with open(os.path.join(REPO, 'tools', 'bootstrap.sh')) as fh:
        text = fh.read()
    lab_packages = re.search(r'^LAB_PACKAGES="([^"]*)"', text, re.M).group(1).split()
    for package in ('podman', podman.PINNED_BACKEND, podman.PINNED_RUNTIME):
        assert package in lab_packages
