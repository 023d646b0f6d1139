# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 14, test 5: role portknock.knock.fwknop switches one host Debian's fwknopd -> the bundled
drop-in -> back, with access unchanged.

One lab host (`it-fwknop`) runs a TCP listener on PORT, which the role closes (chain PK-FWKNOP)
and one access.conf stanza opens by SPA.  Each phase: the port is closed to the controller, one
real SPA packet (the collection's codec, plugins/module_utils/spa.py, from the controller's lab
address) opens it, a real TCP connect succeeds; access.conf is the same file in every phase.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import os
import socket
import subprocess
import tempfile
import time

import pytest

from ansible_collections.portknock.knock.plugins.module_utils import spa
from lab_hosts import PODMAN_ENV, REPO, STATE, lab

pytestmark = pytest.mark.integration

LAB = 'it-fwknop'
PORT = 8022
ACCESS_TIMEOUT = 6
KEY = os.urandom(32)
HMAC_KEY = os.urandom(64)
PLAY = '''
- hosts: %(server)s
  gather_facts: false
  vars:
    fwknop_implementation: %(implementation)s
    fwknop_access:
      - source: 10.231.0.0/16
        open_ports: [tcp/%(port)d]
        key_base64: "{{ lookup('ansible.builtin.env', 'PK_TEST_FWKNOP_KEY') }}"
        hmac_key_base64: "{{ lookup('ansible.builtin.env', 'PK_TEST_FWKNOP_HMAC') }}"
        hmac_digest_type: sha256
        fw_access_timeout: %(timeout)d
        require_source_address: true
  roles:
    - role: portknock.knock.fwknop
'''


def _installed_daemon():
    source = os.environ.get('PORTKNOCK_COLLECTION', '')
    return os.path.exists(os.path.join(source, 'scripts', 'portknock-fwknopd'))


@pytest.fixture(scope='module')
def server():
    with lab(LAB, 1) as hosts:
        host = hosts[0]
        host.run('setsid nohup python3 -m http.server %d >/dev/null 2>&1 < /dev/null &' % PORT, check=True)
        yield host


@pytest.fixture(scope='module')
def controller():
    with open(os.path.join(STATE, 'labs', LAB, 'hosts.json')) as handle:
        return json.load(handle)['gateway4']


def converge(server, implementation, *extra):
    with tempfile.NamedTemporaryFile('w', suffix='.yml', dir=os.path.join(STATE, 'labs', LAB), delete=False) as play:
        play.write(PLAY % dict(server=server.name, implementation=implementation, port=PORT,
                               timeout=ACCESS_TIMEOUT))
    env = dict(PODMAN_ENV, ANSIBLE_NOCOLOR='1', PK_TEST_FWKNOP_KEY=base64.b64encode(KEY).decode(),
               PK_TEST_FWKNOP_HMAC=base64.b64encode(HMAC_KEY).decode())
    try:
        res = subprocess.run(['ansible-playbook', '-i', os.path.join(STATE, 'labs', LAB, 'inventory.yml'), play.name] + list(extra),
                             cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True, check=False, timeout=600)
    finally:
        os.unlink(play.name)
    assert res.returncode == 0, res.stdout[-5000:]
    for secret in (env['PK_TEST_FWKNOP_KEY'], env['PK_TEST_FWKNOP_HMAC']):
        assert secret not in res.stdout
    return res.stdout


def connects(server, timeout=1.5):
    try:
        socket.create_connection((server.ipv4, PORT), timeout=timeout).close()
        return True
    except (OSError, socket.timeout):
        return False


def wait_for(predicate, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return predicate()


def send_spa(server, controller):
    data = spa.encode(controller, 'tcp/%d' % PORT, KEY, HMAC_KEY)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((controller, 0))
        sock.sendto(data.encode('ascii'), (server.ipv4, spa.DEFAULT_SPA_PORT))


def check_access(server, controller):
    # closed before (an earlier phase's opening has expired by FW_ACCESS_TIMEOUT)
    assert wait_for(lambda: not connects(server, 0.8), ACCESS_TIMEOUT + 20), 'port %d open before any SPA' % PORT
    assert not connects(server)
    send_spa(server, controller)
    assert wait_for(lambda: connects(server), 8), 'one SPA packet did not open tcp/%d' % PORT


def active(server, unit):
    """The unit's state once it settled (a unit still starting gets a few seconds)."""
    wait_for(lambda: server.run('systemctl is-active %s' % unit).stdout.strip() not in ('activating', 'deactivating'),
             10)
    return server.run('systemctl is-active %s' % unit).stdout.strip()


def journal(server, unit):
    return server.run('journalctl --no-pager -n 40 -u %s' % unit).stdout


def access_conf(server):
    return server.run('sha256sum /etc/fwknop/access.conf && stat -c %a /etc/fwknop/access.conf', check=True).stdout


@pytest.fixture(scope='module')
def phases():
    return {}


def test_1_debian_fwknopd(server, controller, phases):
    converge(server, 'debian')
    assert active(server, 'fwknop-server') == 'active', journal(server, 'fwknop-server')
    phases['access'] = access_conf(server)
    assert phases['access'].rstrip().endswith('600')
    check_access(server, controller)


def test_2_bundled_daemon(server, controller, phases):
    if not _installed_daemon():
        pytest.skip('scripts/portknock-fwknopd is not in the installed collection')
    converge(server, 'python')
    assert active(server, 'portknock-fwknopd') == 'active', journal(server, 'portknock-fwknopd')
    assert active(server, 'fwknop-server') != 'active'
    assert server.run('systemctl is-enabled fwknop-server').stdout.strip() != 'enabled'
    assert access_conf(server) == phases['access']
    check_access(server, controller)


def test_3_back_to_debian(server, controller, phases):
    out = converge(server, 'debian')
    assert active(server, 'fwknop-server') == 'active'
    assert active(server, 'portknock-fwknopd') != 'active'
    assert access_conf(server) == phases['access']
    check_access(server, controller)
    again = converge(server, 'debian')
    assert 'changed=0' in again, again[-3000:]
    predicted = converge(server, 'debian', '--check', '--diff')     # keys masked: converge checks
    assert 'changed=0' in predicted, predicted[-3000:]
    del out
