"""What machine the lab runs on: podman's network backend and runtime, and the versions of
the packages the lab uses.  Fails when the backend or runtime is not the pinned one."""

import os
import platform
import subprocess

from .podman import CONTAINERS_CONF, PINNED_BACKEND, PINNED_RUNTIME, host_info, podman


def package_versions(packages):
    out = []
    for name in packages:
        res = subprocess.run(['dpkg-query', '-W', '-f', '${Version}', name], universal_newlines=True,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        out.append((name, res.stdout.strip() if res.returncode == 0 and res.stdout.strip() else 'not installed'))
    return out


def report(packages):
    backend, runtime = host_info()
    lines = ['lab machine: kernel %s, podman %s' % (
        platform.release(), podman('version', '--format', '{{.Client.Version}}', check=False).stdout.strip() or '?'),
        'podman network backend: %s (pinned: %s)' % (backend, PINNED_BACKEND),
        'podman OCI runtime: %s (pinned: %s)' % (runtime, PINNED_RUNTIME),
        'podman settings: CONTAINERS_CONF=%s' % os.environ.get('PKLAB_CONTAINERS_CONF', CONTAINERS_CONF)]
    lines += ['package %s %s' % pv for pv in package_versions(packages)]
    ok = backend == PINNED_BACKEND and runtime == PINNED_RUNTIME
    if not ok:
        lines.append('FAIL: podman does not use the pinned backend/runtime (install netavark and runc: tools/bootstrap.sh)')
    return ok, lines
