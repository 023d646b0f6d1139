"""The one way the lab runs podman: lab/lab-podman, which applies lab/containers.conf.

Everything in the repository that needs podman (this tool, tests, molecule verifiers,
benchmarks) goes through LAB_PODMAN; tests/unit/lab/test_podman.py fails on a bare `podman`.
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB_PODMAN = os.path.join(HERE, 'lab-podman')
CONTAINERS_CONF = os.path.join(HERE, 'containers.conf')
PINNED_BACKEND = 'netavark'
PINNED_RUNTIME = 'runc'


def log(msg):
    print('pklab: %s' % msg, file=sys.stderr, flush=True)


def run(cmd, check=True, capture=True, **kw):
    res = subprocess.run(cmd, universal_newlines=True,
                         stdout=subprocess.PIPE if capture else None,
                         stderr=subprocess.PIPE if capture else None, **kw)
    if check and res.returncode != 0:
        raise SystemExit('pklab: command failed (%d): %s\n%s' % (
            res.returncode, ' '.join(cmd), (res.stderr or '').strip()))
    return res


def podman(*args, check=True, **kw):
    return run([LAB_PODMAN] + list(args), check=check, **kw)


def host_info():
    """(network backend, OCI runtime) podman uses with the lab's settings."""
    out = podman('info', '--format', '{{.Host.NetworkBackend}} {{.Host.OCIRuntime.Name}}').stdout.split()
    return (out + ['?', '?'])[:2]


def require_pinned_backend():
    """Refuse to build anything unless podman runs with the pinned backend and runtime."""
    backend, runtime = host_info()
    if backend != PINNED_BACKEND:
        raise SystemExit(
            'pklab: podman network backend is %r, not %r: with CNI an --internal network\'s bridge '
            'has no address, so the machine has no route to the lab and its traffic would follow the '
            'default route off the machine.  Install netavark (tools/bootstrap.sh does) and keep '
            'network_backend = "%s" in %s.' % (backend, PINNED_BACKEND, PINNED_BACKEND, CONTAINERS_CONF))
    if runtime != PINNED_RUNTIME:
        raise SystemExit('pklab: podman OCI runtime is %r, not %r (%s)' % (runtime, PINNED_RUNTIME, CONTAINERS_CONF))
    return backend, runtime
