# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lab hosts for integration tests, made by the one lab tool (lab/pklab.py).

    with lab('it-daemon', 2) as hosts:
        server, client = hosts
        server.run('iptables -S')              # podman exec, returns CompletedProcess
        server.ipv4, server.ipv6, server.name  # addresses on the lab network
        client.put(local_path, remote_path)     # podman cp
        client.install_collection()             # the installed collection's module_utils + scripts
                                                # under /opt/pk (PYTHONPATH=/opt/pk)

The lab is always removed on exit, also when the test fails.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import json
import os
import subprocess

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
LAB_PODMAN = os.path.join(REPO, 'lab', 'lab-podman')   # podman with the lab's settings
PKLAB = os.path.join(REPO, 'lab', 'pklab.py')
STATE = os.environ.get('PKLAB_STATE', os.path.join(REPO, '.lab'))
PODMAN_ENV = dict(os.environ)   # podman runs through LAB_PODMAN, which applies the lab's settings
COLLECTION_ON_HOST = '/opt/pk'


class LabHost(object):
    def __init__(self, record, key):
        self.name = record['name']
        self.container = record['container']
        self.ipv4 = record['ipv4']
        self.ipv6 = record['ipv6']
        self.key = key

    def run(self, command, check=False, timeout=120, stdin=None):
        """Run a shell command on the host (podman exec); stdout and stderr together."""
        interactive = ['-i'] if stdin is not None else []
        res = subprocess.run([LAB_PODMAN, 'exec'] + interactive + [self.container, 'sh', '-c', command],
                             env=PODMAN_ENV, input=stdin, timeout=timeout, check=False,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        if check and res.returncode != 0:
            raise AssertionError('%s: %s failed (%d):\n%s' % (self.name, command, res.returncode, res.stdout))
        return res

    def spawn(self, command):
        """Start a long-running command on the host; returns the Popen of podman exec."""
        return subprocess.Popen([LAB_PODMAN, 'exec', self.container, 'sh', '-c', command], env=PODMAN_ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)

    def put(self, local, remote):
        subprocess.run([LAB_PODMAN, 'cp', local, '%s:%s' % (self.container, remote)], env=PODMAN_ENV, check=True)

    def install_collection(self):
        """Copy the installed collection's module_utils and scripts (the client, the daemon) to the host."""
        source = os.environ.get('PORTKNOCK_COLLECTION')
        if not source:
            raise AssertionError('PORTKNOCK_COLLECTION is not set: run under tools/test.sh or source tools/bootstrap.sh')
        target = COLLECTION_ON_HOST + '/ansible_collections/portknock/knock'
        self.run('mkdir -p %s/plugins' % target, check=True)
        self.put(os.path.join(source, 'plugins', 'module_utils'), target + '/plugins/module_utils')
        self.put(os.path.join(source, 'scripts'), target + '/scripts')
        return target


def _pklab(*args):
    return subprocess.run(['python3', PKLAB] + list(args), env=PODMAN_ENV, check=False,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)


@contextlib.contextmanager
def lab(name, count, init='systemd'):
    """A lab of ``count`` fresh hosts named ``name`` (PID 1: ``init``, see pklab up --init); removed on exit."""
    try:
        res = _pklab('up', '--lab', name, '-n', str(count), '--init', init)
        if res.returncode != 0:
            raise AssertionError('pklab up failed:\n' + res.stdout)
        with open(os.path.join(STATE, 'labs', name, 'hosts.json')) as handle:
            record = json.load(handle)
        yield [LabHost(host, record['key']) for host in record['hosts']]
    finally:
        _pklab('down', '--lab', name)
