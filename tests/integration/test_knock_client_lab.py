# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``knock`` CLI and its ssh ProxyCommand mode against Debian's knockd, on lab hosts.

Lab ``it-client`` (2 hosts): host 1 runs Debian's knockd on eth0 guarding a second sshd
on port 2022 (DROPped for everyone; knockd's start command inserts an ACCEPT for the
knocking address, IPv4 and IPv6); host 2 gets the INSTALLED collection's module_utils and
scripts/knock and knocks from extra addresses of its own, so every check starts from an
address for which the door was never opened.  The lab is always removed.
Run as root with tools/test.sh (it builds and installs the collection, $PORTKNOCK_COLLECTION).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess

import pytest

pytestmark = pytest.mark.integration

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
LAB_PODMAN = os.path.join(REPO, 'lab', 'lab-podman')   # podman with the lab's settings
LAB = 'it-client'
STATE = os.environ.get('PKLAB_STATE', os.path.join(REPO, '.lab'))
CONTAINERS = dict(os.environ)   # podman runs through LAB_PODMAN, which applies the lab's settings
REMOTE = '/opt/pk/ansible_collections/portknock/knock'
KNOCK = REMOTE + '/scripts/knock'
SEQUENCE = ['7311', '9127:udp', '8243']
PORT = 2022
KNOCKD_CONF = """[options]
    LogFile = /var/log/knockd.log

[opendoor]
    sequence         = 7311,9127:udp,8243
    seq_timeout      = 10
    tcpflags         = syn
    start_command    = /usr/sbin/iptables -I INPUT -s %IP% -p tcp --dport 2022 -j ACCEPT
    stop_command     = /usr/sbin/iptables -D INPUT -s %IP% -p tcp --dport 2022 -j ACCEPT
    start_command_6  = /usr/sbin/ip6tables -I INPUT -s %IP% -p tcp --dport 2022 -j ACCEPT
    stop_command_6   = /usr/sbin/ip6tables -D INPUT -s %IP% -p tcp --dport 2022 -j ACCEPT
    cmd_timeout      = 10
"""
SSH_OPTIONS = ['-i', '/root/.ssh/id_ed25519', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
               '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=15', '-o', 'LogLevel=ERROR']


def pklab(*args):
    return subprocess.run(['python3', os.path.join(REPO, 'lab', 'pklab.py')] + list(args), check=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          env=CONTAINERS).stdout


class Host(object):
    def __init__(self, info):
        self.name = info['name']
        self.container = info['container']
        self.ipv4 = info['ipv4']
        self.ipv6 = info['ipv6']

    def run(self, argv, check=True, timeout=300, input_text=None):
        result = subprocess.run([LAB_PODMAN, 'exec', '-i', self.container] + list(argv), env=CONTAINERS,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                                timeout=timeout, input=input_text, check=False)
        if check and result.returncode != 0:
            raise AssertionError('%s: %s failed (%d)\n%s%s' % (
                self.name, ' '.join(argv), result.returncode, result.stdout[-3000:], result.stderr[-3000:]))
        return result

    def sh(self, script, **kwargs):
        return self.run(['sh', '-c', script], **kwargs)

    def write(self, path, text):
        self.sh('mkdir -p "$(dirname %s)" && cat > %s' % (path, path), input_text=text)

    def put(self, local, remote):
        self.sh('mkdir -p %s' % os.path.dirname(remote))
        subprocess.run([LAB_PODMAN, 'cp', local, '%s:%s' % (self.container, remote)], env=CONTAINERS, check=True)


class ClientLab(object):
    """Server (knockd, sshd on 2022 behind the door) and client (the collection's knock)."""

    def __init__(self, info):
        self.index = info['index']
        self.server, self.client = [Host(item) for item in info['hosts'][:2]]
        self.key = info['key']
        self._next = 200

    def fresh_source(self, version):
        """A new address on the client's eth0 that never knocked (IPv4 /32 or IPv6 /128)."""
        self._next += 1
        if version == 4:
            address = '10.231.%d.%d' % (self.index, self._next)
            self.client.run(['ip', 'addr', 'add', address + '/32', 'dev', 'eth0'])
        else:
            address = 'fd42:706b:6c61::%x:%x' % (self.index, self._next)
            self.client.run(['ip', '-6', 'addr', 'add', address + '/128', 'dev', 'eth0', 'nodad'])
        return address

    def port_open_from(self, source, version):
        target = self.server.ipv4 if version == 4 else self.server.ipv6
        return self.client.run(['nc', '-%d' % version, '-z', '-w', '3', '-s', source, target, str(PORT)],
                               check=False).returncode == 0

    def ssh_through_proxy(self, source, version):
        target = self.server.ipv4 if version == 4 else self.server.ipv6
        proxy = '%s --proxy -%d -s %s %%h %%p %s' % (KNOCK, version, source, ' '.join(SEQUENCE))
        return self.client.run(['ssh'] + SSH_OPTIONS + ['-o', 'ProxyCommand=' + proxy, '-p', str(PORT),
                                                        'root@' + target, 'echo', 'through-the-door'],
                               check=False, timeout=60)


def _setup_server(server):
    server.sh('command -v knockd >/dev/null || '
              '(DEBIAN_FRONTEND=noninteractive apt-get install -y -q knockd >/dev/null 2>&1 '
              '|| (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q knockd))',
              timeout=600)
    server.write('/etc/knockd.conf', KNOCKD_CONF)
    for tool in ('iptables', 'ip6tables'):
        server.run([tool, '-A', 'INPUT', '-p', 'tcp', '--dport', str(PORT), '-j', 'DROP'])
    server.sh('mkdir -p /run/sshd && /usr/sbin/sshd -p %d -o PidFile=/run/sshd-%d.pid' % (PORT, PORT))
    server.run(['knockd', '-d', '-i', 'eth0', '-c', '/etc/knockd.conf'])
    server.sh('for i in $(seq 50); do pgrep -x knockd >/dev/null && exit 0; sleep 0.1; done; exit 1')


def _setup_client(the_lab):
    collection = os.environ.get('PORTKNOCK_COLLECTION')
    assert collection, 'PORTKNOCK_COLLECTION is not set: run with tools/test.sh (source tools/bootstrap.sh)'
    client = the_lab.client
    client.sh('mkdir -p %s/plugins /root/.ssh && chmod 700 /root/.ssh' % REMOTE)
    client.put(os.path.join(collection, 'plugins', 'module_utils'), REMOTE + '/plugins/module_utils')
    client.put(os.path.join(collection, 'scripts'), REMOTE + '/scripts')   # knock and its launcher
    client.put(the_lab.key, '/root/.ssh/id_ed25519')
    client.sh('chmod 600 /root/.ssh/id_ed25519 && chmod 755 %s' % KNOCK)


@pytest.fixture(scope='module')
def client_lab():
    try:
        pklab('up', '--lab', LAB, '-n', '2')
        with open(os.path.join(STATE, 'labs', LAB, 'hosts.json')) as handle:
            the_lab = ClientLab(json.load(handle))
        _setup_server(the_lab.server)
        _setup_client(the_lab)
        yield the_lab
    finally:
        subprocess.run(['python3', os.path.join(REPO, 'lab', 'pklab.py'), 'down', '--lab', LAB], env=CONTAINERS,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)


def _knockd_log(the_lab):
    return the_lab.server.run(['cat', '/var/log/knockd.log'], check=False).stdout[-3000:]


@pytest.mark.parametrize('version', [4, 6])
def test_cli_knock_opens_the_door_for_the_knocker(client_lab, version):
    source = client_lab.fresh_source(version)
    assert not client_lab.port_open_from(source, version), 'port %d open before any knock' % PORT
    target = client_lab.server.ipv4 if version == 4 else client_lab.server.ipv6
    result = client_lab.client.run([KNOCK, '-v', '-%d' % version, '-s', source, target] + SEQUENCE)
    assert result.stderr.count('hitting') == 3, result.stderr
    assert client_lab.port_open_from(source, version), 'knocked, port still closed\n' + _knockd_log(client_lab)
    # the door opened for the knocking address only
    other = client_lab.fresh_source(version)
    assert not client_lab.port_open_from(other, version)


@pytest.mark.parametrize('version', [4, 6])
def test_ssh_proxy_command_knocks_and_relays(client_lab, version):
    source = client_lab.fresh_source(version)
    assert not client_lab.port_open_from(source, version)
    result = client_lab.ssh_through_proxy(source, version)
    assert result.returncode == 0, result.stderr + '\n' + _knockd_log(client_lab)
    assert result.stdout.strip() == 'through-the-door'


def test_ssh_proxy_command_wrong_sequence_says_so(client_lab):
    source = client_lab.fresh_source(4)
    proxy = '%s --proxy -4 -s %s --connect-timeout 2 %%h %%p 7311 9127 8243' % (KNOCK, source)   # 9127 is udp
    result = client_lab.client.run(['ssh'] + SSH_OPTIONS + ['-o', 'ProxyCommand=' + proxy, '-p', str(PORT),
                                                            'root@' + client_lab.server.ipv4, 'true'],
                                   check=False, timeout=60)
    assert result.returncode != 0
    assert 'knock sent but port stayed closed' in result.stderr, result.stderr
