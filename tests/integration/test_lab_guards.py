# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab never lets test traffic leave the machine (issue: a fresh machine with CNI).

Both broken cases are reproduced for real and counted with counter rules:
- podman with the CNI backend (a scratch containers.conf): `pklab up` stops at once with a
  message that names CNI and netavark, creates no host, and no packet for the lab ranges
  leaves through any interface but the lab bridge and lo;
- a lab bridge without its address, in a namespace whose default route leads to a second
  namespace standing for "off the machine": the route check names the cause before anything
  is sent, and with the standing blackhole routes nothing for the lab ranges goes out.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess

import pytest

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason='needs root (netns, iptables, podman)')]

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
PKLAB = os.path.join(REPO, 'lab', 'pklab.py')
LAB_PODMAN = os.path.join(REPO, 'lab', 'lab-podman')   # podman with the lab's settings
LAB_NETS = {'iptables': '10.231.0.0/16', 'ip6tables': 'fd42:706b:6c61::/64'}
COUNT = 'PKLAB-TEST-LEAK'


def sh(*argv, **kw):
    return subprocess.run(list(argv), check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, **kw)


def in_ns(ns, *argv):
    return sh('ip', 'netns', 'exec', ns, *argv)


def leak_counter(prefix=()):
    """A counter for packets to the lab ranges leaving through anything but lo and the lab bridge."""
    drop_counter(prefix)
    for tool, net in LAB_NETS.items():
        cmd = list(prefix) + [tool, '-w']
        assert sh(*(cmd + ['-N', COUNT])).returncode == 0
        for rule in (['-o', 'lo', '-j', 'RETURN'], ['-o', 'podman+', '-j', 'RETURN'], ['-o', 'pkbr+', '-j', 'RETURN'], []):
            assert sh(*(cmd + ['-A', COUNT] + rule)).returncode == 0
        assert sh(*(cmd + ['-I', 'OUTPUT', '1', '-d', net, '-j', COUNT])).returncode == 0


def leaked(prefix=()):
    total = 0
    for tool in LAB_NETS:
        out = sh(*(list(prefix) + [tool, '-w', '-nvxL', COUNT])).stdout.splitlines()
        total += int(out[-1].split()[0])   # the last rule: everything not returned
    return total


def drop_counter(prefix=()):
    for tool, net in LAB_NETS.items():
        cmd = list(prefix) + [tool, '-w']
        sh(*(cmd + ['-D', 'OUTPUT', '-d', net, '-j', COUNT]))
        sh(*(cmd + ['-F', COUNT]))
        sh(*(cmd + ['-X', COUNT]))


def test_up_refuses_podman_with_cni_and_sends_nothing(tmp_path):
    with open(os.path.join(REPO, 'lab', 'containers.conf')) as fh:
        conf = fh.read()
    assert 'network_backend = "netavark"' in conf
    scratch = tmp_path / 'containers-cni.conf'
    scratch.write_text(conf.replace('network_backend = "netavark"', 'network_backend = "cni"'))
    env = dict(os.environ, PKLAB_CONTAINERS_CONF=str(scratch), PKLAB_STATE=str(tmp_path / 'state'))
    leak_counter()
    try:
        res = sh('python3', PKLAB, 'up', '--lab', 'it-cni', '-n', '1', env=env, timeout=120)
        sent = leaked()
    finally:
        drop_counter()
    assert res.returncode != 0
    assert "network backend is 'cni'" in res.stdout and 'Install netavark' in res.stdout, res.stdout
    created = sh(LAB_PODMAN, 'ps', '-a', '--filter', 'label=io.portknock.lab.lab=it-cni', '--format', '{{.Names}}').stdout
    assert created.strip() == ''
    assert sent == 0
    doctor = sh('python3', PKLAB, 'doctor', 'podman', env=env)
    assert doctor.returncode != 0 and 'network backend: cni' in doctor.stdout


@pytest.fixture
def broken_bridge_ns():
    """Namespace `pkt-nobr` with a lab bridge that has no address and a default route out of
    a veth to namespace `pkt-nobr-out` (standing for the machine's uplink)."""
    ns, out = 'pkt-nobr-%d' % os.getpid(), 'pkt-nobr-out-%d' % os.getpid()
    try:
        for name in (ns, out):
            assert sh('ip', 'netns', 'add', name).returncode == 0
            sh('ip', '-n', name, 'link', 'set', 'lo', 'up')
        assert sh('ip', '-n', ns, 'link', 'add', 'pkbr0', 'type', 'bridge').returncode == 0
        sh('ip', '-n', ns, 'link', 'set', 'pkbr0', 'up')
        assert sh('ip', 'link', 'add', 'pkup0', 'netns', ns, 'type', 'veth', 'peer', 'name', 'pkdn0',
                  'netns', out).returncode == 0
        for name, dev in ((ns, 'pkup0'), (out, 'pkdn0')):
            sh('ip', '-n', name, 'link', 'set', dev, 'up')
        assert sh('ip', '-n', ns, 'route', 'add', 'default', 'dev', 'pkup0').returncode == 0
        assert sh('ip', '-n', ns, '-6', 'route', 'add', 'default', 'dev', 'pkup0').returncode == 0
        leak_counter(prefix=('ip', 'netns', 'exec', ns))
        yield ns
    finally:
        for name in (ns, out):
            sh('ip', 'netns', 'del', name)


CHECK = ("import sys; sys.path.insert(0, %r); from labtool import network; "
         "network.check_routes('pkbr0', ['10.231.7.11', 'fd42:706b:6c61::7:b'], backend='netavark'); "
         "print('routes ok')" % os.path.join(REPO, 'lab'))


def try_to_reach_the_lab(ns):
    for addr in ('10.231.7.11', 'fd42:706b:6c61::7:b'):
        in_ns(ns, 'nc', '-z', '-w', '1', addr, '22')


def test_bridge_without_address_is_refused_and_nothing_leaves(broken_bridge_ns, tmp_path):
    ns = broken_bridge_ns
    prefix = ('ip', 'netns', 'exec', ns)
    # Without the guards the lab's traffic follows the default route: the counter sees it.
    try_to_reach_the_lab(ns)
    assert leaked(prefix) > 0
    leak_counter(prefix)
    # The route check names the cause and sends nothing.
    res = in_ns(ns, 'python3', '-c', CHECK)
    assert res.returncode != 0 and 'through pkup0' in res.stdout and 'bridge pkbr0 has no address' in res.stdout, res.stdout
    assert leaked(prefix) == 0
    # The standing guard: blackhole routes for the lab ranges; now nothing can leave.
    res = in_ns(ns, 'env', 'PKLAB_STATE=%s' % tmp_path, 'python3', PKLAB, 'guard')
    assert res.returncode == 0, res.stdout
    res = in_ns(ns, 'python3', '-c', CHECK)
    assert res.returncode != 0 and 'nowhere (blackhole)' in res.stdout and 'has no address' in res.stdout, res.stdout
    try_to_reach_the_lab(ns)
    assert leaked(prefix) == 0
    # With its address the bridge carries the lab ranges again (its own route wins over the blackhole).
    sh('ip', '-n', ns, 'addr', 'add', '10.231.0.1/16', 'dev', 'pkbr0')
    sh('ip', '-n', ns, 'addr', 'add', 'fd42:706b:6c61::1/64', 'dev', 'pkbr0', 'nodad')
    res = in_ns(ns, 'python3', '-c', CHECK)
    assert res.returncode == 0 and 'routes ok' in res.stdout, res.stdout


def test_machine_has_standing_blackhole_routes_while_labs_exist():
    """`up` (any lab) leaves the blackhole routes standing; `down --all` removes them
    (tests/integration/test_lab.py checks the removal)."""
    assert sh('python3', PKLAB, 'guard').returncode == 0
    for family, net in (('-4', LAB_NETS['iptables']), ('-6', LAB_NETS['ip6tables'])):
        assert 'blackhole' in sh('ip', family, 'route', 'show', 'type', 'blackhole', net).stdout
