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

The site lab (``site_lab()``; the session fixture ``site_lab`` of tests/integration/conftest.py)
is ONE lab rolled out ONCE by site.yml for every test of a whole fleet (test_audit_lab,
test_door_info_lab, test_site_rollout): four fleet hosts, one per enforcer, and a probe host.
Tests that change it for good are marked ``site_lab_destructive`` and run after all others.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import json
import os
import re
import subprocess

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
LAB_PODMAN = os.path.join(REPO, 'lab', 'lab-podman')   # podman with the lab's settings
PKLAB = os.path.join(REPO, 'lab', 'pklab.py')
STATE = os.environ.get('PKLAB_STATE', os.path.join(REPO, '.lab'))
PODMAN_ENV = dict(os.environ)   # podman runs through LAB_PODMAN, which applies the lab's settings
COLLECTION_ON_HOST = '/opt/pk'
# pytestmark of a lab test: as root, against the installed collection
LAB_TEST = [pytest.mark.integration,
            pytest.mark.skipif(os.geteuid() != 0, reason='needs root (rootful podman lab)'),
            pytest.mark.skipif(not os.environ.get('PORTKNOCK_COLLECTION'),
                               reason='source tools/bootstrap.sh first (installed collection)')]
RECAP = re.compile(r'^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', re.M)


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


def on_host(host, command, check=False, stderr=True, timeout=120):
    """Run a shell command on lab host ``host`` by podman exec (no ssh: its door may be closed to us); its
    stdout (with stderr unless ``stderr`` is false)."""
    proc = subprocess.run([LAB_PODMAN, 'exec', 'pklab-' + host, 'sh', '-c', command], env=PODMAN_ENV, check=False,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT if stderr else subprocess.PIPE,
                          universal_newlines=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError('%s: %s failed (%d): %s' % (host, command, proc.returncode, (proc.stderr or proc.stdout)[-2000:]))
    return proc.stdout


def write_fleet(lab_name, inventory, *extra):
    """tools/site_fleet.py: the fleet inventory of lab ``lab_name`` (its last host the probe)."""
    subprocess.run(['python3', os.path.join(REPO, 'tools', 'site_fleet.py'),
                    os.path.join(STATE, 'labs', lab_name, 'hosts.json'), inventory, '--probe'] + list(extra), check=True)
    return inventory


SITE_LAB = 'it-fleet'   # not it-site: other rollout tests and tools name their labs so
SITE_ENFORCERS = ['iptables', 'nftables', 'knockd', 'daemon']   # fleet hosts 1..4 (tools/site_fleet.py LAYOUT)
SITE_FLEET = ['%s-%d' % (SITE_LAB, k) for k in range(1, len(SITE_ENFORCERS) + 1)]   # host 5: the probe
SITE_SEQUENCE = [7219, '9203:udp', 8361]        # inventory/group_vars/portknock_fleet.yml's
SITE_OPEN_WINDOW = 10                           # short: the audit waits for the door to close again


def site_doors(open_window=SITE_OPEN_WINDOW):
    return {'portknock_doors': [{'name': 'ssh', 'sequence': SITE_SEQUENCE, 'port': 22, 'step_timeout': 5,
                                 'open_window': open_window, 'ip_version': 'both'}]}


# what every run of a playbook on the site lab adds (so that a second run changes nothing)
SITE_VARS = dict(site_doors(), portknock_metrics=True)


class SiteLab(object):
    def __init__(self, name):
        self.name = name
        self.inventory = os.path.join(STATE, 'labs', name, 'fleet.yml')
        with open(os.path.join(STATE, 'labs', name, 'hosts.json')) as handle:
            record = json.load(handle)
        self.hosts = dict((host['name'], host) for host in record['hosts'])     # name -> hosts.json record
        self.fleet = SITE_FLEET
        self.probe = LabHost(record['hosts'][-1], record['key'])

    def playbook(self, playbook='site.yml', *extra, **kwargs):
        """ansible-playbook on the fleet (``inventory=``: another inventory of it) with SITE_VARS, then
        ``extra``; returns (CompletedProcess, recap per host)."""
        cmd = ['ansible-playbook', '-i', os.path.join(REPO, 'inventory'), '-i', kwargs.get('inventory', self.inventory),
               os.path.join(REPO, playbook) if playbook.endswith('.yml') else playbook,
               '-e', json.dumps(SITE_VARS)] + list(extra)
        proc = subprocess.run(cmd, cwd=REPO, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, env=dict(os.environ, ANSIBLE_FORKS='5', ANSIBLE_NOCOLOR='1'))
        recap = {}
        for name, ok, changed, unreachable, failed in RECAP.findall(proc.stdout):
            recap[name] = dict(ok=int(ok), changed=int(changed), unreachable=int(unreachable), failed=int(failed))
        return proc, recap


@contextlib.contextmanager
def site_lab():
    """The site lab, rolled out once by site.yml (SITE_VARS); removed on exit."""
    with lab(SITE_LAB, len(SITE_FLEET) + 1):
        write_fleet(SITE_LAB, os.path.join(STATE, 'labs', SITE_LAB, 'fleet.yml'))
        result = SiteLab(SITE_LAB)
        proc, recap = result.playbook()
        assert proc.returncode == 0, proc.stdout[-6000:]
        assert all(recap[h]['failed'] == 0 and recap[h]['unreachable'] == 0 for h in SITE_FLEET), recap
        yield result
