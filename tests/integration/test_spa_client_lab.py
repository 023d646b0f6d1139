# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's SPA sender against real SPA servers (issue 14, tests 2 and 3).

Two network namespaces per SPA server (tests/integration/netns_lab.py): the server side runs
the SPA server (Debian's ``fwknopd`` 2.6.10, or the bundled ``scripts/portknock-fwknopd`` with
an ``-m recent`` kernel door) and an ``sshd`` on several ports, each its own door (one port per test, so
what one test opened does not open the next one's); a REJECT rule keeps each port closed
until an SPA packet opens it for the client.  The client side runs the ``knock`` CLI, plain
ssh with ``knock --proxy --spa`` as ProxyCommand, and ansible-playbook with
``ansible_connection=portknock.knock.ssh`` and the ``knock_spa_*`` variables.

SPA packets (UDP to the SPA port) and new ssh connections (SYNs) are counted by counter
rules in the server namespace's mangle PREROUTING, which sees them before any filter rule.
Keys are fresh per run and only ever written to 0600 files or put in an environment.
Run: source tools/bootstrap.sh && PYTHONPATH=$ANSIBLE_COLLECTIONS_PATH python -m pytest -q -m integration tests/integration/test_spa_client_lab.py
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab_util import kill_processes_naming, stop_process, write_private  # noqa: E402
from netns_lab import netns_pair  # noqa: E402

pytestmark = pytest.mark.integration

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
VENV_BIN = os.path.dirname(sys.executable)
FWKNOPD = shutil.which('fwknopd') or ('/usr/sbin/fwknopd' if os.path.exists('/usr/sbin/fwknopd') else None)
SSHD = shutil.which('sshd') or ('/usr/sbin/sshd' if os.path.exists('/usr/sbin/sshd') else None)
SPA_PORT = 62201
# one protected sshd port per test (none ascending order matters here: these are not knock ports)
PORTS = {'cli': 2201, 'proxy': 2202, 'play': 2203, 'wrong_key': 2204, 'wrong_hmac': 2205, 'env': 2206}
WAIT = 20           # seconds: a deadline, never a measurement
SSH_OPTS = ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
            '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=8']

PLAY = '''
- hosts: spa
  gather_facts: false
  tasks:
    - ping:
    - command: "true"
    - meta: reset_connection
    - ping:
    - command: "true"
'''


def installed_collection():
    source = os.environ.get('PORTKNOCK_COLLECTION')
    if not source and os.environ.get('ANSIBLE_COLLECTIONS_PATH'):
        source = os.path.join(os.environ['ANSIBLE_COLLECTIONS_PATH'].split(os.pathsep)[0],
                              'ansible_collections', 'portknock', 'knock')
    if not source or not os.path.isdir(source):
        pytest.fail('ANSIBLE_COLLECTIONS_PATH is not set: run under tools/test.sh or source tools/bootstrap.sh')
    return source


class Side(object):
    """One SPA server in its namespace pair, its sshd, counters, and the client namespace."""

    def __init__(self, kind, server, client, work, keys):
        self.kind, self.server, self.client, self.work = kind, server, client, work
        self.key_b64, self.hmac_b64 = keys
        self.procs = []
        self.log = os.path.join(work, '%s.log' % kind)

    # --- server side --------------------------------------------------------------------
    def firewall(self):
        script = ['iptables -w -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
                  'iptables -w -t mangle -A PREROUTING -p udp --dport %d -m comment --comment pk-spa' % SPA_PORT]
        for port in PORTS.values():
            # sshd's SYN-ACK: a new TCP connection let in (a refused attempt gets the kernel's RST)
            script.append('iptables -w -t mangle -A OUTPUT -p tcp --sport %d --tcp-flags SYN,ACK SYN,ACK '
                          '-m comment --comment pk-conn-%d' % (port, port))
            if self.kind == 'bundled':
                # the bundled daemon opens a kernel door: an -m recent list per port (-K tcp/PORT=recent:pkspaPORT)
                script.append('iptables -w -A INPUT -p tcp --dport %d -m recent --name pkspa%d --rcheck --seconds 30 '
                              '-j ACCEPT' % (port, port))
            script.append('iptables -w -A INPUT -p tcp --dport %d -j REJECT --reject-with tcp-reset' % port)
        self.server.run(' && '.join(script), check=True)

    def sshd(self):
        os.makedirs('/run/sshd', mode=0o755, exist_ok=True)   # sshd's privilege separation dir
        host_key = os.path.join(self.work, 'host_key')
        subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', host_key], check=True)
        conf = ['ListenAddress %s' % self.server.addr4, 'HostKey %s' % host_key,
                'AuthorizedKeysFile %s' % os.path.join(self.work, 'authorized_keys'),
                'PidFile %s' % os.path.join(self.work, 'sshd.pid'), 'StrictModes no', 'UsePAM no',
                'PermitRootLogin prohibit-password', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no',
                'Subsystem sftp internal-sftp', 'MaxStartups 50']
        conf += ['Port %d' % port for port in PORTS.values()]
        path = write_private(os.path.join(self.work, 'sshd_config'), '\n'.join(conf) + '\n')
        self.procs.append(self.server.spawn([SSHD, '-D', '-e', '-f', path], stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
        self.wait(lambda: 'LISTEN' in self.server.run('ss -ltn sport = :%d' % PORTS['cli']).stdout, 'sshd listening')

    def daemon(self):
        stanza = ('SOURCE ANY\nOPEN_PORTS %s\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nHMAC_DIGEST_TYPE SHA256\n'
                  'FW_ACCESS_TIMEOUT 30\n' % (', '.join('tcp/%d' % p for p in PORTS.values()),
                                              self.key_b64, self.hmac_b64))
        access = write_private(os.path.join(self.work, 'access.conf'), stanza)
        run_dir = os.path.join(self.work, 'run')
        os.mkdir(run_dir, 0o700)
        conf = write_private(os.path.join(self.work, 'fwknopd.conf'),
                             'PCAP_INTF %s;\nPCAP_FILTER udp port %d;\nFWKNOP_RUN_DIR %s;\nENABLE_IPT_FORWARDING N;\n'
                             'ENABLE_DIGEST_PERSISTENCE Y;\n' % (self.server.dev, SPA_PORT, run_dir))
        if self.kind == 'fwknopd':
            argv = [FWKNOPD, '-f', '-v', '-c', conf, '-a', access, '-i', self.server.dev,
                    '-p', os.path.join(run_dir, 'fwknopd.pid'), '-d', os.path.join(run_dir, 'digest.cache')]
        else:
            argv = [sys.executable, os.path.join(installed_collection(), 'scripts', 'portknock-fwknopd'),
                    '-f', '-c', conf, '-a', access, '-i', self.server.dev,
                    '-p', os.path.join(run_dir, 'fwknopd.pid'), '-d', os.path.join(run_dir, 'digest.cache'),
                    '--state-file', os.path.join(run_dir, 'state.json')]
            for port in PORTS.values():
                argv += ['-K', 'tcp/%d=recent:pkspa%d' % (port, port)]
        with open(self.log, 'w') as out:
            self.procs.append(self.server.spawn(argv, stdout=out, stderr=subprocess.STDOUT))
        started = 'Starting fwknopd main event loop' if self.kind == 'fwknopd' else 'starting up, listening on'
        self.wait(lambda: started in self.text(), '%s started' % self.kind)

    def text(self):
        with open(self.log) as handle:
            return handle.read()

    def wait(self, predicate, what):
        deadline = time.time() + WAIT
        while time.time() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError('never: %s\n%s' % (what, self.text() if os.path.exists(self.log) else ''))

    def counter(self, chain, name):
        out = self.server.run('iptables -w -t mangle -L %s -v -n -x' % chain, check=True).stdout
        for line in out.splitlines():
            if '/* %s */' % name in line:
                return int(line.split()[0])
        raise AssertionError('no counter %s in\n%s' % (name, out))

    def spa_packets(self):
        """UDP datagrams that reached the SPA port."""
        return self.counter('PREROUTING', 'pk-spa')

    def connections(self, port):
        """New TCP connections sshd accepted on ``port``."""
        return self.counter('OUTPUT', 'pk-conn-%d' % port)

    def stop(self):
        for proc in self.procs:
            stop_process(proc)

    # --- client side --------------------------------------------------------------------
    def connects(self, port, timeout=3):
        """True when a TCP connection from the client namespace to the server's sshd gets a banner."""
        code = ('import socket,sys\ns=socket.create_connection((sys.argv[1], int(sys.argv[2])), %d)\n'
                'sys.exit(0 if s.recv(64).startswith(b"SSH-") else 3)' % timeout)
        return self.client.spawn([sys.executable, '-c', code, self.server.addr4, str(port)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).wait(timeout + 10) == 0

    def run_client(self, argv, env=None, timeout=120):
        proc = self.client.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                                 env=env or self.env(), stdin=subprocess.DEVNULL)
        out = proc.communicate(timeout=timeout)[0]
        return proc.returncode, out

    def env(self, **extra):
        env = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ.get('PATH', ''), HOME=self.work)
        for name in ('KNOCK_SPA_KEY', 'KNOCK_SPA_HMAC_KEY', 'PORTKNOCK_SEQUENCE'):
            env.pop(name, None)
        env.update(extra)
        return env


@pytest.fixture(scope='module')
def keys():
    return base64.b64encode(os.urandom(32)).decode(), base64.b64encode(os.urandom(64)).decode()


def _kinds():
    return ['fwknopd', 'bundled']


@pytest.fixture(scope='module', params=_kinds())
def side(request, keys):
    if os.geteuid() != 0 or not shutil.which('ip') or not shutil.which('iptables') or SSHD is None:
        pytest.skip('needs root, ip, iptables and sshd for network namespaces')
    if request.param == 'fwknopd' and FWKNOPD is None:
        pytest.skip("Debian's fwknopd (fwknop-server) is not installed")
    if request.param == 'bundled' and not os.path.exists(os.path.join(installed_collection(), 'scripts',
                                                                      'portknock-fwknopd')):
        pytest.fail('the installed collection has no scripts/portknock-fwknopd')
    installed_collection()
    work = tempfile.mkdtemp(prefix='pk-spa-%s-' % request.param)
    os.chmod(work, 0o700)
    client_key = os.path.join(work, 'id')
    subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', client_key], check=True)
    shutil.copy(client_key + '.pub', os.path.join(work, 'authorized_keys'))
    instance = None
    try:
        with netns_pair('spac') as (server, client):
            instance = Side(request.param, server, client, work, keys)
            instance.client_key = client_key
            instance.firewall()
            instance.sshd()
            instance.daemon()
            yield instance
    finally:
        if instance is not None:
            instance.stop()
        kill_processes_naming(work)
        shutil.rmtree(work, ignore_errors=True)


def knock_cli():
    return [sys.executable, os.path.join(installed_collection(), 'scripts', 'knock')]


def key_file(side, hmac_b64=None, key_b64=None):
    return write_private(os.path.join(side.work, 'fwknoprc'),
                         '# keys of the lab server\n[default]\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n'
                         'HMAC_DIGEST_TYPE SHA256\n[lab]\nSPA_SERVER_PORT %d\n'
                         % (key_b64 or side.key_b64, hmac_b64 or side.hmac_b64, SPA_PORT))


# --- test 2: the collection's sender against the SPA server -------------------------------------

def test_cli_with_key_file_opens_the_port(side):
    port = PORTS['cli']
    assert not side.connects(port)
    before = side.spa_packets()
    code, out = side.run_client(knock_cli() + ['--spa', '-v', '--key-file', key_file(side), '-n', 'lab',
                                               '-A', 'tcp/%d' % port, '-D', side.server.addr4])
    assert code == 0, out
    assert side.spa_packets() - before == 1
    assert 'for %s' % side.client.addr4 in out          # default -a: the address the kernel picks
    assert side.key_b64 not in out and side.hmac_b64 not in out
    side.wait(lambda: side.connects(port), 'port %d open after the SPA packet' % port)


def test_cli_with_keys_in_the_environment_opens_the_port(side):
    port = PORTS['env']
    assert not side.connects(port)
    code, out = side.run_client(knock_cli() + ['--spa', '-A', 'tcp/%d' % port, '-a', side.client.addr4,
                                               side.server.addr4],
                                env=side.env(KNOCK_SPA_KEY=side.key_b64, KNOCK_SPA_HMAC_KEY=side.hmac_b64))
    assert code == 0, out
    side.wait(lambda: side.connects(port), 'port %d open after the SPA packet' % port)


def test_plain_ssh_with_knock_proxy_spa(side):
    port = PORTS['proxy']
    assert not side.connects(port)
    before = side.spa_packets()
    proxy = ' '.join(knock_cli() + ['--proxy', '--spa', '--key-file', key_file(side), '%h', '%p'])
    code, out = side.run_client(['ssh'] + SSH_OPTS + ['-i', side.client_key, '-p', str(port),
                                                      '-o', 'ProxyCommand=' + proxy,
                                                      'root@%s' % side.server.addr4, 'echo spa-ok'])
    assert code == 0 and 'spa-ok' in out, out
    assert side.spa_packets() - before == 1


def test_cli_wrong_key_leaves_the_port_closed(side):
    port = PORTS['wrong_key']
    bad = base64.b64encode(os.urandom(32)).decode()
    code, out = side.run_client(knock_cli() + ['--proxy', '--spa', '--connect-timeout', '3', '--key-file',
                                               key_file(side, key_b64=bad), side.server.addr4, str(port)])
    assert code == 1
    assert 'SPA packet sent but port stayed closed: %s port %d' % (side.server.addr4, port) in out
    assert bad not in out
    assert not side.connects(port)


# --- tests 2 and 3: the connection plugin --------------------------------------------------------

def inventory(side, port, hmac_key=None):
    path = os.path.join(side.work, 'inventory-%d.yml' % port)
    return write_private(path, '\n'.join([
        'all:',
        '  hosts:',
        '    lab_spa: {ansible_host: "%s", ansible_port: %d}' % (side.server.addr4, port),
        '  children:',
        '    spa:',
        '      hosts: {lab_spa: {}}',
        '  vars:',
        '    ansible_user: root',
        '    ansible_python_interpreter: /usr/bin/python3',
        '    ansible_ssh_private_key_file: %s' % side.client_key,
        '    ansible_ssh_common_args: "%s"' % ' '.join(SSH_OPTS[:6]),
        '    ansible_timeout: 6',
        '    ansible_connection: portknock.knock.ssh',
        '    knock_spa_key: "%s"' % side.key_b64,
        '    knock_spa_hmac_key: "%s"' % (hmac_key or side.hmac_b64),
        '']))


def playbook(side, inv, *args):
    play = os.path.join(side.work, 'play.yml')
    with open(play, 'w') as handle:
        handle.write(PLAY)
    env = side.env(ANSIBLE_HOST_KEY_CHECKING='False', ANSIBLE_NOCOLOR='1',
                   ANSIBLE_SSH_CONTROL_PATH_DIR=os.path.join(side.work, 'cp-%s' % os.path.basename(inv)),
                   ANSIBLE_LOCAL_TEMP=os.path.join(side.work, 'local'))
    return side.run_client([os.path.join(VENV_BIN, 'ansible-playbook'), '-i', inv, play] + list(args), env=env,
                           timeout=240)


def test_connection_plugin_converges_with_one_spa_packet_per_new_connection(side):
    port = PORTS['play']
    assert not side.connects(port)
    spa_before, conn_before = side.spa_packets(), side.connections(port)
    code, out = playbook(side, inventory(side, port), '-vvv')
    assert code == 0, out
    assert re.search(r'lab_spa\s*:\s*ok=\d+\s+changed=\d+\s+unreachable=0\s+failed=0', out), out
    counts = (side.spa_packets() - spa_before, side.connections(port) - conn_before)
    # reset_connection: two new TCP connections, one SPA packet each
    assert counts == (2, 2), '(SPA packets, new ssh connections): %r\n%s' % (counts, out)
    # the keys never show, not even with -vvv (the proxy gets them in its environment)
    assert side.key_b64 not in out and side.hmac_b64 not in out
    assert '--spa' in out and 'KNOCK_SPA' not in out


def test_connection_plugin_wrong_hmac_key_fails_clearly(side):
    port = PORTS['wrong_hmac']
    bad = base64.b64encode(os.urandom(64)).decode()
    spa_before = side.spa_packets()
    code, out = playbook(side, inventory(side, port, hmac_key=bad))
    assert code == 4, out
    assert ('the SPA packet was sent to %s (udp/%d) but port %d stayed closed' % (side.server.addr4, SPA_PORT, port)
            in out), out
    assert bad not in out
    assert side.spa_packets() - spa_before >= 1
    assert not side.connects(port)
