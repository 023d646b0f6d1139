# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The seed's ``-m recent`` door, built by hand with iptables in a lab host (lab_hosts.LabHost).

    door = RecentDoor(host)       # knock TCP 1600 opens ports 22 and 2007 for 5 s (v4 and v6)
    door.build()                  # (re)build: fresh rules, zero counters, empty recent list
    door.start_echo()             # an echo listener on 2007, behind the door
    door.knocks(4), door.counters(6), door.new_connections(port=22, family=4)

Port 22 is the host's sshd, the one the controller uses: once the door is built, plain ssh
from the controller is dropped unless it knocked.  Tests reach the host with podman exec.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import time

KNOCK_PORT = 1600
SSH_PORT = 22
ECHO_PORT = 2007
COUNT_PORTS = (('udp', 1601), ('tcp', 1602), ('tcp', 1603))
PROTECTED = (SSH_PORT, ECHO_PORT)
WINDOW = 5
# One list per family: the kernel keeps one address mask per list (the first rule's), so an
# ip6tables rule on a list an iptables rule created would compare IPv6 sources by 32 bits.
RECENT_LISTS = {'iptables': 'K', 'ip6tables': 'K6'}

ECHO_SERVER = r'''
import socket, threading
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


def door_rules(recent_list):
    """The INPUT rules of the door, in order (the same for iptables and ip6tables but the list)."""
    rules = [
        # connections let in stay in after the window closes
        '-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
        '-A INPUT -p tcp --dport %d -m recent --set --name %s' % (KNOCK_PORT, recent_list),
    ]
    rules += ['-A INPUT -p %s --dport %d' % (proto, port) for proto, port in COUNT_PORTS]   # counting only
    for port in PROTECTED:
        rules.append('-A INPUT -p tcp --dport %d -m conntrack --ctstate NEW -m recent --rcheck --seconds %d --name %s -j ACCEPT'
                     % (port, WINDOW, recent_list))
        rules.append('-A INPUT -p tcp --dport %d -j DROP' % port)
    return rules


class RecentDoor(object):
    def __init__(self, host):
        self.host = host
        self.echo = None

    def build(self):
        """Fresh door: flushed INPUT, the rules again (counters at 0), an empty recent list."""
        script = []
        for tool in ('iptables', 'ip6tables'):
            script.append('%s -F INPUT' % tool)
            script += ['%s %s' % (tool, rule) for rule in door_rules(RECENT_LISTS[tool])]
            script.append('echo / > /proc/net/xt_recent/%s' % RECENT_LISTS[tool])
        self.host.run(' && '.join(script), check=True)

    def open_port(self, port):
        """Let NEW connections to ``port`` in without a knock (first rule), v4 and v6."""
        self.host.run('iptables -I INPUT -p tcp --dport %d -j ACCEPT && ip6tables -I INPUT -p tcp --dport %d -j ACCEPT'
                      % (port, port), check=True)

    def close_port(self, port):
        self.host.run('iptables -D INPUT -p tcp --dport %d -j ACCEPT && ip6tables -D INPUT -p tcp --dport %d -j ACCEPT'
                      % (port, port), check=True)

    def _listing(self, family):
        tool = 'iptables' if family == 4 else 'ip6tables'
        return self.host.run('%s -nvxL INPUT' % tool, check=True).stdout

    def counters(self, family=4):
        """{(proto, port): packets} of the knock/count rules (the ones without a verdict)."""
        found = {}
        for line in self._listing(family).splitlines():
            fields = line.split()
            if not fields or not fields[0].isdigit():
                continue
            match = re.search(r'(tcp|udp) dpt:(\d+)', line)
            if not match or 'CHECK' in line or 'DROP' in line or 'ACCEPT' in line:
                continue
            found[(match.group(1), int(match.group(2)))] = int(fields[0])
        return found

    def new_connections(self, port=SSH_PORT, family=4):
        """NEW TCP connections let through the door to ``port`` (packets of its rcheck ACCEPT)."""
        for line in self._listing(family).splitlines():
            if 'CHECK' in line and re.search(r'tcp dpt:%d\s' % port, line + ' '):
                return int(line.split()[0])
        raise AssertionError('no door rule for port %d on %s' % (port, self.host.name))

    def knocks(self, family=4):
        return self.counters(family).get(('tcp', KNOCK_PORT), 0)

    def recent_sources(self):
        """The recent list as the kernel shows it (one ``src=ADDRESS ...`` line per source)."""
        return self.host.run('cat %s' % ' '.join('/proc/net/xt_recent/' + name for name in sorted(RECENT_LISTS.values())),
                             check=True).stdout

    def start_echo(self, timeout=10):
        """The echo listener on ECHO_PORT (v4 and v6), behind the door."""
        if self.echo is None or self.echo.poll() is not None:
            self.host.run('cat > /root/pk-echo.py', stdin=ECHO_SERVER, check=True)
            self.echo = self.host.spawn('echo $$ > /run/pk-echo.pid; exec python3 /root/pk-echo.py')
        deadline = time.time() + timeout
        while time.time() < deadline:
            if re.search(r':%d\s' % ECHO_PORT, self.host.run('ss -Htln').stdout):
                return
            time.sleep(0.2)
        raise AssertionError('nothing listens on port %d on %s' % (ECHO_PORT, self.host.name))

    def stop_echo(self):
        if self.echo is not None:
            self.host.run('kill "$(cat /run/pk-echo.pid)"')
            self.echo.kill()
            self.echo.wait()
            self.echo = None
