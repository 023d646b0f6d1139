# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab tool itself: a second `up` after a crash works, and `down` leaves nothing behind."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import signal
import subprocess
import time

import pytest

pytestmark = pytest.mark.integration

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
PKLAB = os.path.join(REPO, 'lab', 'pklab.py')
STATE = os.environ.get('PKLAB_STATE', os.path.join(REPO, '.lab'))
LAB = 'it-lab'
ENV = dict(os.environ, CONTAINERS_CONF=os.path.join(REPO, 'lab', 'containers.conf'))


def run(*cmd):
    return subprocess.run(list(cmd), env=ENV, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)


def containers():
    return set(run('podman', 'ps', '-a', '--format', '{{.Names}}').stdout.split())


def hosts():
    with open(os.path.join(STATE, 'labs', LAB, 'hosts.json')) as fh:
        return json.load(fh)['hosts']


@pytest.fixture
def lab():
    try:
        yield
    finally:
        run('python3', PKLAB, 'down', '--lab', LAB)


def test_up_after_an_interrupted_up_and_down_leaves_nothing(lab):
    # lab containers of other labs on this machine (any state dir) keep the shared network
    others = [name for name in containers() if name.startswith('pklab-') and not name.startswith('pklab-%s-' % LAB)]
    # An `up` killed half way leaves containers behind ...
    proc = subprocess.Popen(['python3', PKLAB, 'up', '--lab', LAB, '-n', '2'], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not any(name.startswith('pklab-%s-' % LAB) for name in containers()):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # ... and the next `up` replaces them and works.
    res = run('python3', PKLAB, 'up', '--lab', LAB, '-n', '2')
    assert res.returncode == 0, res.stdout
    names = [h['container'] for h in hosts()]
    assert set(names) <= containers()
    for host in hosts():
        res = run('ssh', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR',
                  '-i', os.path.join(STATE, 'ssh', 'id_ed25519'), 'root@' + host['ipv6'], 'systemctl is-system-running')
        assert res.stdout.strip() in ('running', 'degraded'), res.stdout
    # The test network is never forwarded out of this machine.
    assert 'PKLAB-GUARD' in run('iptables', '-S', 'FORWARD').stdout
    assert 'PKLAB-GUARD' in run('ip6tables', '-S', 'FORWARD').stdout
    res = run('python3', PKLAB, 'down', '--lab', LAB)
    assert res.returncode == 0, res.stdout
    assert not [name for name in containers() if name.startswith('pklab-%s-' % LAB)]
    if not others:   # the last lab takes the network, the guard and the proxy with it
        assert run('podman', 'network', 'exists', 'pklab').returncode != 0
        assert 'PKLAB-GUARD' not in run('iptables', '-S').stdout
        assert os.path.join(STATE, 'apt-proxy') not in run('ps', '-eo', 'args').stdout
