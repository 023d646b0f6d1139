# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network-namespace labs for tests that need a bare kernel rather than a lab host.

    with netns_pair('spa') as (server, client):     # two namespaces joined by a veth pair
        server.run('fwknopd -f ...')                 # ip netns exec <ns> sh -c ...
        client.addr4, server.addr6                   # 10.231.250.x / fd42:706b:6c61::fa:x

Addresses come from the lab's own ranges (block 250, which pklab never gives a lab), so the
standing blackhole routes of the lab tool guard them too; every namespace gets them as well
(inside, only the veth's own route carries lab traffic), and `route_ok()` is checked before
the pair is handed out.  Both namespaces are removed on exit, also when the test fails.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import itertools
import os
import subprocess

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
PKLAB = os.path.join(REPO, 'lab', 'pklab.py')
BLOCK = 250
_serial = itertools.count(1)


class Namespace(object):
    def __init__(self, name, dev, addr4, addr6):
        self.name, self.dev, self.addr4, self.addr6 = name, dev, addr4, addr6

    def run(self, command, check=False, timeout=60):
        res = subprocess.run(['ip', 'netns', 'exec', self.name, 'sh', '-c', command], timeout=timeout, check=False,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        if check and res.returncode != 0:
            raise AssertionError('%s: %s failed (%d):\n%s' % (self.name, command, res.returncode, res.stdout))
        return res

    def spawn(self, argv, **kw):
        return subprocess.Popen(['ip', 'netns', 'exec', self.name] + list(argv), **kw)

    def route_ok(self, addr):
        """True when the kernel in this namespace sends to `addr` through the pair's veth."""
        out = self.run('ip -o route get %s' % addr).stdout
        return (' dev %s ' % self.dev) in (out + ' ')


def _sh(*argv):
    subprocess.run(list(argv), check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@contextlib.contextmanager
def netns_pair(tag):
    """Two namespaces `pkt-<tag>-<n>-s` / `-c`, veth between them, IPv4 + IPv6 lab addresses."""
    n = '%d%d' % (os.getpid() % 1000, next(_serial))
    names = ['pkt-%s-%s-s' % (tag, n), 'pkt-%s-%s-c' % (tag, n)]
    subprocess.run(['python3', PKLAB, 'guard'], check=True)   # standing blackhole routes
    host = int(n) % 60
    pairs = []
    try:
        for i, name in enumerate(names):
            _sh('ip', 'netns', 'add', name)
            _sh('ip', '-n', name, 'link', 'set', 'lo', 'up')
        _sh('ip', 'link', 'add', 'pkv%ss' % n, 'netns', names[0], 'type', 'veth', 'peer', 'name', 'pkv%sc' % n,
            'netns', names[1])
        for i, name in enumerate(names):
            dev = 'pkv%s%s' % (n, 'sc'[i])
            addr4 = '10.231.%d.%d' % (BLOCK, 4 * host + 1 + i)
            addr6 = 'fd42:706b:6c61::%x:%x' % (BLOCK, 4 * host + 1 + i)
            _sh('ip', '-n', name, 'addr', 'add', addr4 + '/30', 'dev', dev)
            _sh('ip', '-n', name, 'addr', 'add', addr6 + '/126', 'dev', dev, 'nodad')
            _sh('ip', '-n', name, 'link', 'set', dev, 'up')
            for net in ('10.231.0.0/16', 'fd42:706b:6c61::/64'):
                _sh('ip', '-n', name, 'route', 'replace', 'blackhole', net, 'metric', '4242')
            pairs.append(Namespace(name, dev, addr4, addr6))
        server, client = pairs
        for a, b in ((server, client), (client, server)):
            for addr in (b.addr4, b.addr6):
                if not a.route_ok(addr):
                    raise AssertionError('%s would not send to %s through %s' % (a.name, addr, a.dev))
        yield server, client
    finally:
        for name in names:
            pids = subprocess.run(['ip', 'netns', 'pids', name], stdout=subprocess.PIPE, check=False,
                                  universal_newlines=True).stdout.split()
            for pid in pids:
                subprocess.run(['kill', '-9', pid], stderr=subprocess.DEVNULL, check=False)
            subprocess.run(['ip', 'netns', 'del', name], stderr=subprocess.DEVNULL, check=False)
