# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The knockd role on a host without systemd: Debian's knockd from its sysvinit script.

Lab `it-sysv` (pklab up --init sysv): PID 1 is a shell that started sshd, /sbin/init is gone,
so Ansible sees a sysvinit host.  The role installs knockd, writes the door and
/etc/default/knockd (START_KNOCKD=1, the interface), creates the door chains and starts knockd
through /etc/init.d/knockd; the client knocks with the collection's client and connects.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import tempfile
import time

import pytest

from lab_hosts import PODMAN_ENV, REPO, STATE, lab

pytestmark = pytest.mark.integration

LAB = 'it-sysv'
SEQUENCE = '3371 2459:udp 4126'
CMD_TIMEOUT = 4
PLAY = '''
- hosts: %(server)s
  gather_facts: false
  vars:
    knockd_always_allow: [10.231.0.1]
    knockd_doors:
      - name: opencloseSSH
        sequence: "3371:tcp,2459:udp,4126:tcp"
        seq_timeout: 15
        tcpflags: syn
        port: 22
        cmd_timeout: %(cmd_timeout)d
  roles:
    - role: portknock.knock.knockd
  post_tasks:
    - name: What Ansible saw
      ansible.builtin.debug:
        msg: "service_mgr={{ ansible_facts.service_mgr }}"
'''


@pytest.fixture(scope='module')
def hosts():
    with lab(LAB, 2, init='sysv') as hosts:
        yield hosts


def converge(server, *extra, cmd_timeout=CMD_TIMEOUT):
    with tempfile.NamedTemporaryFile('w', suffix='.yml', dir=os.path.join(STATE, 'labs', LAB), delete=False) as play:
        play.write(PLAY % dict(server=server.name, cmd_timeout=cmd_timeout))
    try:
        res = subprocess.run(['ansible-playbook', '-i', os.path.join(STATE, 'labs', LAB, 'inventory.yml'), play.name]
                             + list(extra), cwd=REPO, env=dict(PODMAN_ENV, ANSIBLE_NOCOLOR='1'),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    finally:
        os.unlink(play.name)
    return res


def reaches(client, server):
    return client.run('nc -z -w 2 %s 22' % server.ipv4).returncode == 0


@pytest.fixture(scope='module')
def converged(hosts):
    server, client = hosts
    res = converge(server)
    assert res.returncode == 0, res.stdout[-4000:]
    return res.stdout


def test_the_host_has_no_systemd(hosts):
    server = hosts[0]
    assert server.run('cat /proc/1/comm').stdout.strip() == 'sh'
    assert server.run('test -d /run/systemd/system').returncode != 0


def test_role_starts_knockd_from_its_init_script(hosts, converged):
    server = hosts[0]
    assert 'service_mgr=sysvinit' in converged
    assert server.run('grep -x START_KNOCKD=1 /etc/default/knockd').returncode == 0
    assert server.run('pidof knockd').returncode == 0
    assert server.run('stat -c %a /etc/knockd.conf').stdout.strip() == '600'


def test_door_opens_for_the_knocker_then_closes(hosts, converged):
    server, client = hosts
    collection = client.install_collection()
    assert not reaches(client, server)
    client.run('python3 %s/scripts/knock %s %s' % (collection, server.ipv4, SEQUENCE), check=True)
    time.sleep(0.5)
    assert reaches(client, server)
    time.sleep(CMD_TIMEOUT + 2)
    assert not reaches(client, server)


def test_second_run_changes_nothing(hosts, converged):
    res = converge(hosts[0])
    assert res.returncode == 0, res.stdout[-4000:]
    assert ' changed=0 ' in res.stdout, res.stdout[-3000:]


def test_a_changed_door_reaches_the_running_knockd_through_init_d(hosts, converged):
    server = hosts[0]
    res = converge(server, cmd_timeout=3)
    assert res.returncode == 0, res.stdout[-4000:]
    assert 'RUNNING HANDLER [portknock.knock.knockd : Reload knockd]' in res.stdout or \
        'RUNNING HANDLER [portknock.knock.knockd : Restart knockd]' in res.stdout, res.stdout[-3000:]
    assert 'cmd_timeout = 3' in server.run('cat /etc/knockd.conf').stdout.lower()
    assert server.run('pidof knockd').returncode == 0, 'knockd is not running after the change'
