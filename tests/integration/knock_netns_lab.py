# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A two-namespace lab for the knock client tests (subnet 10.99.3.0/24, fd42:99:3::/64).

client ns <-veth-> server ns; the server ns has the seed's ``-m recent`` door
(knock TCP 1600 opens the protected ports for 5 s), counting rules for extra
knock ports, and optionally an echo listener and an sshd.  Everything is
removed by ``close()`` (use the ``lab`` context manager).
"""

from __future__ import absolute_import, division, print_function

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

V4_NET = '10.99.3.'
V6_NET = 'fd42:99:3::'
KNOCK_PORT = 1600
SSH_PORT = 22
ECHO_PORT = 2007
COUNT_PORTS = (('udp', 1601), ('tcp', 1602), ('tcp', 1603))
WINDOW = 5

ECHO_SERVER = r'''
import socket, sys, threading
def serve(fam, addr):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, %d)); s.listen(16)
    while True:
        c, _ = s.accept()
        threading.Thread(target=echo, args=(c,), daemon=True).start()
def echo(c):
    while True:
        d = c.recv(65536)
        if not d:
            c.shutdown(socket.SHUT_WR); c.close(); return
        c.sendall(d)
threading.Thread(target=serve, args=(socket.AF_INET6, '::'), daemon=True).start()
serve(socket.AF_INET, '0.0.0.0')
''' % ECHO_PORT


def run(*cmd, **kwargs):
    kwargs.setdefault('check', True)
    kwargs.setdefault('stdout', subprocess.PIPE)
    kwargs.setdefault('stderr', subprocess.PIPE)
    kwargs.setdefault('universal_newlines', True)
    return subprocess.run(list(cmd), **kwargs)  # pylint: disable=subprocess-run-check


class Lab(object):
    def __init__(self, index=1):
        tag = uuid.uuid4().hex[:6]
        self.client = 'pk-s3c-%s' % tag
        self.server = 'pk-s3s-%s' % tag
        self.veth_c = 'pk3c%s' % tag
        self.veth_s = 'pk3s%s' % tag
        self.client4 = V4_NET + str(index * 10 + 1)
        self.server4 = V4_NET + str(index * 10 + 2)
        self.client6 = V6_NET + str(index * 10 + 1)
        self.server6 = V6_NET + str(index * 10 + 2)
        self.tmp = tempfile.mkdtemp(prefix='pk-s3-')
        self.procs = []

    # --- namespaces -------------------------------------------------------
    def start(self):
        run('ip', 'netns', 'add', self.client)
        run('ip', 'netns', 'add', self.server)
        run('ip', 'link', 'add', self.veth_c, 'type', 'veth', 'peer', 'name', self.veth_s)
        run('ip', 'link', 'set', self.veth_c, 'netns', self.client)
        run('ip', 'link', 'set', self.veth_s, 'netns', self.server)
        for ns, dev, a4, a6 in ((self.client, self.veth_c, self.client4, self.client6),
                                (self.server, self.veth_s, self.server4, self.server6)):
            self.ns(ns, 'ip', 'addr', 'add', a4 + '/24', 'dev', dev)
            self.ns(ns, 'ip', 'addr', 'add', a6 + '/64', 'dev', dev, 'nodad')
            self.ns(ns, 'ip', 'link', 'set', 'lo', 'up')
            self.ns(ns, 'ip', 'link', 'set', dev, 'up')
        self.door()
        return self

    def ns(self, ns, *cmd, **kwargs):
        return run('ip', 'netns', 'exec', ns, *cmd, **kwargs)

    def door(self):
        """The seed recipe, by hand, for IPv4 and IPv6, plus counting rules."""
        for tool in ('iptables', 'ip6tables'):
            rules = [
                # connections let in stay in after the window closes
                ['-A', 'INPUT', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT'],
                ['-A', 'INPUT', '-p', 'tcp', '--dport', str(KNOCK_PORT), '-m', 'recent', '--set', '--name', 'K'],
            ]
            for proto, port in COUNT_PORTS:
                rules.append(['-A', 'INPUT', '-p', proto, '--dport', str(port)])
            for port in (SSH_PORT, ECHO_PORT):
                rules.append(['-A', 'INPUT', '-p', 'tcp', '--dport', str(port), '-m', 'recent', '--rcheck',
                              '--seconds', str(WINDOW), '--name', 'K', '-j', 'ACCEPT'])
                rules.append(['-A', 'INPUT', '-p', 'tcp', '--dport', str(port), '-j', 'DROP'])
            for rule in rules:
                self.ns(self.server, tool, *rule)

    def counters(self, family=4):
        """{(proto, port): packets} for the knock/count rules of the server ns."""
        tool = 'iptables' if family == 4 else 'ip6tables'
        out = self.ns(self.server, tool, '-nvxL', 'INPUT').stdout
        found = {}
        for line in out.splitlines():
            fields = line.split()
            if not fields or not fields[0].isdigit():
                continue
            match = re.search(r'(tcp|udp) dpt:(\d+)', line)
            if not match or 'rcheck' in line or 'DROP' in line or 'ACCEPT' in line:
                continue
            found[(match.group(1), int(match.group(2)))] = int(fields[0])
        return found

    def new_connections(self, port=SSH_PORT, family=4):
        """NEW TCP connections let through the door to ``port`` (its rcheck ACCEPT counter)."""
        tool = 'iptables' if family == 4 else 'ip6tables'
        out = self.ns(self.server, tool, '-nvxL', 'INPUT').stdout
        for line in out.splitlines():
            if 'recent: CHECK' in line and re.search(r'tcp dpt:%d\s' % port, line + ' '):
                return int(line.split()[0])
        raise AssertionError('no door rule for port %d' % port)

    def knocks(self, family=4):
        return self.counters(family).get(('tcp', KNOCK_PORT), 0)

    def all_knocks(self):
        return self.knocks(4) + self.knocks(6)

    def clear_recent(self):
        with open('/dev/null') as devnull:
            self.ns(self.server, 'sh', '-c', 'echo / > /proc/net/xt_recent/K', stdin=devnull)
            try:
                self.ns(self.server, 'sh', '-c', 'echo / > /proc/net/ip6t_recent/K 2>/dev/null || true')
            except subprocess.CalledProcessError:
                pass

    # --- servers ----------------------------------------------------------
    def spawn(self, ns, *cmd, **kwargs):
        proc = subprocess.Popen(['ip', 'netns', 'exec', ns] + list(cmd), **kwargs)
        self.procs.append(proc)
        return proc

    def start_echo(self):
        self.spawn(self.server, sys.executable, '-c', ECHO_SERVER)
        self.wait_listen(ECHO_PORT)

    def wait_listen(self, port, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = self.ns(self.server, 'ss', '-Htln').stdout
            if re.search(r':%d\s' % port, out):
                return
            time.sleep(0.1)
        raise RuntimeError('nothing listens on port %d in %s' % (port, self.server))

    def start_sshd(self):
        os.makedirs('/run/sshd', exist_ok=True)
        key = os.path.join(self.tmp, 'client_key')
        hostkey = os.path.join(self.tmp, 'host_key')
        run('ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', key)
        run('ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', hostkey)
        shutil.copy(key + '.pub', os.path.join(self.tmp, 'authorized_keys'))
        config = os.path.join(self.tmp, 'sshd_config')
        with open(config, 'w') as handle:
            handle.write('\n'.join([
                'Port %d' % SSH_PORT, 'ListenAddress 0.0.0.0', 'ListenAddress ::',
                'HostKey ' + hostkey, 'PidFile ' + os.path.join(self.tmp, 'sshd.pid'),
                'AuthorizedKeysFile ' + os.path.join(self.tmp, 'authorized_keys'),
                'UsePAM no', 'PermitRootLogin yes', 'StrictModes no', 'PasswordAuthentication no',
                'MaxStartups 100', 'MaxSessions 100', 'Subsystem sftp internal-sftp', '']))
        self.spawn(self.server, '/usr/sbin/sshd', '-D', '-e', '-f', config,
                   stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.tmp, 'sshd.log'), 'w'))
        self.wait_listen(SSH_PORT)
        self.client_key = key
        return key

    def close(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        # ssh masters / proxies left in the client namespace
        for ns in (self.client, self.server):
            try:
                pids = run('ip', 'netns', 'pids', ns, check=False).stdout.split()
            except OSError:
                pids = []
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
        for ns in (self.client, self.server):
            run('ip', 'netns', 'del', ns, check=False)
        run('ip', 'link', 'del', self.veth_c, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextlib.contextmanager
def lab(index=1, echo=False, sshd=False):
    instance = Lab(index)
    try:
        instance.start()
        if echo:
            instance.start_echo()
        if sshd:
            instance.start_sshd()
        yield instance
    finally:
        instance.close()
