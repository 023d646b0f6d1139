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
LAB_PODMAN = os.path.join(REPO, 'lab', 'lab-podman')   # podman with the lab's settings
PKLAB = os.path.join(REPO, 'lab', 'pklab.py')
STATE = os.environ.get('PKLAB_STATE', os.path.join(REPO, '.lab'))
LAB = 'it-lab'
ENV = dict(os.environ)   # podman runs through LAB_PODMAN, which applies the lab's settings


def run(*cmd):
    return subprocess.run(list(cmd), env=ENV, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)


def containers():
    return set(run(LAB_PODMAN, 'ps', '-a', '--format', '{{.Names}}').stdout.split())


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
    # ... and nothing sent to the lab ranges can leave by another route (standing blackholes).
    assert 'blackhole 10.231.0.0/16' in run('ip', '-4', 'route', 'show', 'type', 'blackhole').stdout
    assert 'blackhole fd42:706b:6c61::/64' in run('ip', '-6', 'route', 'show', 'type', 'blackhole').stdout
    res = run('python3', PKLAB, 'down', '--lab', LAB)
    assert res.returncode == 0, res.stdout
    assert not [name for name in containers() if name.startswith('pklab-%s-' % LAB)]
    if not others:   # the last lab takes the network, the guard and the proxy with it
        assert run(LAB_PODMAN, 'network', 'exists', 'pklab').returncode != 0
        assert 'PKLAB-GUARD' not in run('iptables', '-S').stdout
        assert os.path.join(STATE, 'apt-proxy') not in run('ps', '-eo', 'args').stdout
        # `down --all` also takes the standing blackhole routes (a single lab's down keeps them).
        assert 'blackhole 10.231.0.0/16' in run('ip', '-4', 'route', 'show', 'type', 'blackhole').stdout
        assert run('python3', PKLAB, 'down', '--all').returncode == 0
        assert '10.231.0.0/16' not in run('ip', '-4', 'route', 'show', 'type', 'blackhole').stdout
        assert 'fd42:706b:6c61::/64' not in run('ip', '-6', 'route', 'show', 'type', 'blackhole').stdout
