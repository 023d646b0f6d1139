# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""portknock.knock.recent_knock with real packets between two network namespaces.

Server ns (the door, applied by running the module inside it with ``ansible -c local``)
and client ns joined by a veth; 10.99.2.0/24 and fd42:99:2::/64.  One fresh pair of
namespaces per backend: iptables-nft (the host default, ``backend: auto``),
iptables-legacy (``backend: iptables`` with a PATH whose ``iptables*`` are the legacy
binaries, written with python-iptables) and native nftables.

Needs root.  Run:
  cd /work/main && .venv/bin/python -m pytest tests/integration/test_recent_knock_netns.py -m integration
"""

from __future__ import absolute_import, division, print_function

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import uuid

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = '/work/collections'
VENV_BIN = os.path.join(REPO, '.venv', 'bin')
NET4 = '10.99.2.'
NET6 = 'fd42:99:2::'
SERVER4, SERVER6 = NET4 + '1', NET6 + '1'
CLIENT4, CLIENT6 = NET4 + '2', NET6 + '2'
OTHER4, OTHER6 = NET4 + '3', NET6 + '3'
SCAN4 = [NET4 + str(n) for n in range(100, 230)]   # 130 sources > ip_list_tot=100
LISTEN_PORTS = (22, 2222, 2223, 2224)

SEED = dict(name='seed', sequence=[1600], open_window=5, port=22)
MULTI = dict(name='multi', sequence=[7001, '7002:udp', 7001, 7003], step_timeout=2, open_window=5, port=2222)
TCP3 = dict(name='tcp3', sequence='7201,7202,7203', step_timeout=2, open_window=5, port=2223)
SCAN = dict(name='scan', sequence=[7301, 7302], step_timeout=10, open_window=5, port=2224)

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason='needs root (network namespaces)')]

LISTENER = textwrap.dedent('''
    import socket, threading
    def serve(fam, addr, port):
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((addr, port)); s.listen(64)
        while True:
            c, _ = s.accept(); c.close()
    for port in %r:
        threading.Thread(target=serve, args=(socket.AF_INET6, '::', port), daemon=True).start()
        threading.Thread(target=serve, args=(socket.AF_INET, '0.0.0.0', port), daemon=True).start()
    threading.Event().wait()
''' % (LISTEN_PORTS,))

# Runs in the client ns: a list of actions, prints the list of connect results.
CLIENT = textwrap.dedent('''
    import json, socket, sys, time
    from ansible_collections.portknock.knock.plugins.module_utils.knock_sender import send_knocks
    results = []
    for action in json.loads(sys.argv[1]):
        if action[0] == 'knock':
            _, address, steps, source = action
            send_knocks(address, steps, source=source)
        elif action[0] == 'sleep':
            time.sleep(action[1])
        elif action[0] == 'connect':
            _, address, port, source = action
            fam = socket.AF_INET6 if ':' in address else socket.AF_INET
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.settimeout(0.6)
            try:
                if source:
                    s.bind((source, 0))
                s.connect((address, port))
                results.append(True)
            except OSError:
                results.append(False)
            finally:
                s.close()
    print(json.dumps(results))
''')


def sh(*cmd, **kwargs):
    kwargs.setdefault('check', True)
    return subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE,  # pylint: disable=subprocess-run-check
                          universal_newlines=True, **kwargs)


class Lab(object):
    def __init__(self, backend):
        tag = uuid.uuid4().hex[:4]
        self.backend = backend
        self.server = 'pk-rk-srv-%s' % tag
        self.client = 'pk-rk-cli-%s' % tag
        self.veth_s, self.veth_c = 'pkrk2s%s' % tag, 'pkrk2c%s' % tag
        self.tmp = tempfile.mkdtemp(prefix='pk-rk-')
        self.listener = None
        self.path = os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')
        if backend == 'legacy':
            # this host's iptables is the nft variant: make the module see a legacy host
            bindir = os.path.join(self.tmp, 'bin')
            os.mkdir(bindir)
            for tool in ('iptables', 'ip6tables'):
                for suffix in ('', '-save', '-restore'):
                    os.symlink('/usr/sbin/%s-legacy%s' % (tool, suffix), os.path.join(bindir, tool + suffix))
            self.path = bindir + ':' + self.path
        self.path = VENV_BIN + ':' + self.path

    def start(self):
        sh('ip', 'netns', 'add', self.server)
        sh('ip', 'netns', 'add', self.client)
        sh('ip', 'link', 'add', self.veth_s, 'type', 'veth', 'peer', 'name', self.veth_c)
        sh('ip', 'link', 'set', self.veth_s, 'netns', self.server)
        sh('ip', 'link', 'set', self.veth_c, 'netns', self.client)
        for ns, dev, a4, a6 in ((self.server, self.veth_s, [SERVER4], [SERVER6]),
                                (self.client, self.veth_c, [CLIENT4, OTHER4] + SCAN4, [CLIENT6, OTHER6])):
            batch = ''.join('addr add %s/24 dev %s\n' % (a, dev) for a in a4)
            batch += ''.join('addr add %s/64 dev %s nodad\n' % (a, dev) for a in a6)
            batch += 'link set lo up\nlink set %s up\n' % dev
            sh('ip', '-n', ns, '-batch', '-', input=batch)
        self.listener = subprocess.Popen(['ip', 'netns', 'exec', self.server, sys.executable, '-c', LISTENER])
        return self

    def close(self):
        if self.listener is not None:
            self.listener.kill()
            self.listener.wait()
        for ns in (self.server, self.client):
            sh('ip', 'netns', 'del', ns, check=False)
        sh('ip', 'link', 'del', self.veth_s, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def srv(self, *cmd, **kwargs):
        return sh('ip', 'netns', 'exec', self.server, *cmd, **kwargs)

    def module(self, args, check=False, diff=False, callback='oneline', python='/usr/bin/python3', path=None):
        """Run the module in the server ns; returns the module result dict (or the output
        of another stdout ``callback``: oneline does not show diffs)."""
        args = dict(args)
        if self.backend == 'nftables':
            args.setdefault('backend', 'nftables')
        elif self.backend == 'legacy':
            args.setdefault('backend', 'iptables')
        env = dict(os.environ, PATH=path or self.path, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
                   ANSIBLE_STDOUT_CALLBACK=callback, ANSIBLE_LOAD_CALLBACK_PLUGINS='1',
                   ANSIBLE_LOCALHOST_WARNING='0', ANSIBLE_INVENTORY_UNPARSED_WARNING='0')
        cmd = ['ip', 'netns', 'exec', self.server, os.path.join(VENV_BIN, 'ansible'), 'localhost', '-c', 'local',
               '-e', 'ansible_python_interpreter=%s' % python,
               '-m', 'portknock.knock.recent_knock', '-a', json.dumps(args)]
        if check:
            cmd.append('--check')
        if diff:
            cmd.append('--diff')
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=env,
                              check=False)
        if callback != 'oneline':
            return proc.stdout
        for line in proc.stdout.splitlines():
            if line.startswith('localhost | ') and ' => ' in line:
                head, body = line.split(' => ', 1)
                result = json.loads(body)
                if 'FAILED' in head:
                    result['failed'] = True
                return result
        raise AssertionError('no module result in ansible output:\n%s\n%s' % (proc.stdout, proc.stderr))

    def client_run(self, actions):
        env = dict(os.environ, PYTHONPATH=COLLECTIONS)
        proc = sh('ip', 'netns', 'exec', self.client, sys.executable, '-c', CLIENT, json.dumps(actions), env=env)
        return json.loads(proc.stdout)

    def firewall_dump(self):
        """Everything the door could have touched in the server ns, as text."""
        parts = []
        for tool in ('iptables-nft-save', 'ip6tables-nft-save', 'iptables-legacy-save', 'ip6tables-legacy-save'):
            out = self.srv(tool).stdout
            # legacy chains carry packet counters (IPv6 ND moves them): not the door's business
            parts.append(re.sub(r'\[\d+:\d+\]', '[0:0]', '\n'.join(
                line for line in out.splitlines() if not line.startswith('#'))))
        parts.append(self.srv('nft', '-t', 'list', 'ruleset').stdout)
        parts.append(' '.join(sorted(self.srv('ls', '/proc/net/xt_recent', check=False).stdout.split())))
        return '\n'.join(parts)


@pytest.fixture(scope='module', params=['iptables-nft', 'legacy', 'nftables'])
def lab(request):
    lab = Lab(request.param)
    try:
        lab.start()
        for door in (SEED, MULTI, TCP3):
            result = lab.module(door)
            assert not result.get('failed'), result
            assert result['changed'], result
        yield lab
    finally:
        lab.close()


def _client(address):
    # always name the source: with two addresses in the same prefix the kernel may pick either
    return CLIENT6 if ':' in address else CLIENT4


def knock(address, steps, source=None):
    return ['knock', address, steps, source or _client(address)]


def connect(address, port, source=None):
    return ['connect', address, port, source or _client(address)]


def test_where_the_door_lives(lab):
    dump = lab.firewall_dump()
    if lab.backend == 'iptables-nft':
        assert '-A INPUT -j PK-seed' in lab.srv('iptables', '-S').stdout
        assert '-A INPUT -j PK-seed' in lab.srv('ip6tables', '-S').stdout
        assert 'PK-' not in lab.srv('iptables-legacy-save').stdout   # no hidden legacy rule set
        assert 'portknock_' not in dump
    elif lab.backend == 'legacy':
        assert '-A INPUT -j PK-seed' in lab.srv('iptables-legacy', '-S').stdout
        assert '-A INPUT -j PK-seed' in lab.srv('ip6tables-legacy', '-S').stdout
        assert 'PK-' not in lab.srv('nft', 'list', 'ruleset').stdout
        result = lab.module(SEED)
        assert 'python-iptables' in result['backend_details']
    else:
        assert 'PK-' not in dump
        out = lab.srv('nft', '-t', 'list', 'table', 'inet', 'portknock_seed').stdout
        assert 'hook input priority filter - 10' in out
    for name in ('seed', 'multi', 'tcp3'):
        assert name in dump


def test_seed_recipe_ipv4(lab):
    results = lab.client_run([
        connect(SERVER4, 22),                       # no knock: refused
        knock(SERVER4, [1600]),
        connect(SERVER4, 22),                       # knocked: open
        connect(SERVER4, 22, OTHER4),               # another address: still closed
        ['sleep', 6.2],
        connect(SERVER4, 22),                       # window over
    ])
    assert results == [False, True, False, False]


def test_seed_recipe_ipv6(lab):
    results = lab.client_run([
        connect(SERVER6, 22),
        knock(SERVER6, [1600]),
        connect(SERVER6, 22),
        connect(SERVER6, 22, OTHER6),
    ])
    assert results == [False, True, False]


def test_three_step_tcp_door(lab):
    results = lab.client_run([
        knock(SERVER4, '7201,7203,7202'),           # wrong order
        connect(SERVER4, 2223),
        knock(SERVER4, '7201,7202'),                # incomplete
        connect(SERVER4, 2223),
        knock(SERVER4, '7201,7202,7203', OTHER4),   # right order, other address
        connect(SERVER4, 2223),
        knock(SERVER6, '7201,7202,7203'),
        connect(SERVER6, 2223),
        connect(SERVER4, 2223, OTHER4),
    ])
    assert results == [False, False, False, True, True]


def test_udp_step_and_repeated_port(lab):
    results = lab.client_run([
        knock(SERVER4, [7001, 7001, '7002:udp', 7003]),   # wrong order (7001 twice first)
        connect(SERVER4, 2222),
        knock(SERVER4, [7001, '7002:udp', 7001, 7003]),
        connect(SERVER4, 2222),
        knock(SERVER6, [7001, '7002:udp', 7001, 7003]),
        connect(SERVER6, 2222),
        connect(SERVER4, 2223),                           # another door stays closed
    ])
    assert results == [False, True, True, False]


def test_too_slow_step_does_not_open(lab):
    results = lab.client_run([
        knock(SERVER4, [7201]),
        ['sleep', 2.5],                                   # step_timeout is 2
        knock(SERVER4, [7202, 7203]),
        connect(SERVER4, 2223),
    ])
    assert results == [False]


def test_second_run_changes_nothing_and_check_mode_predicts(lab):
    before = lab.firewall_dump()
    for door in (SEED, MULTI, TCP3):
        result = lab.module(door)
        assert result['changed'] is False, result
    changed = dict(SEED, open_window=7)
    result = lab.module(changed, check=True)
    assert result['changed'] is True
    # the sequence is secret: masked in everything the module returns
    assert '1600' not in json.dumps(result)
    out = lab.module(changed, check=True, diff=True, callback='default')
    assert '--- before' in out and '+++ after' in out, out
    assert '+-A PK-seed -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -m recent --rcheck --seconds 7 ' in out \
        or '+\t\ttimeout 7s' in out, out
    assert '1600' not in out
    assert lab.firewall_dump() == before                  # check mode changed nothing


def test_bad_input_changes_nothing(lab):
    before = lab.firewall_dump()
    result = lab.module(dict(SEED, port=70000))
    assert result.get('failed') and '70000' in result['msg']
    result = lab.module(dict(SEED, sequence=[1600, 22]))
    assert result.get('failed') and 'also a protected port' in result['msg']
    assert lab.firewall_dump() == before


def test_scan_from_many_sources(lab):
    """xt_recent keeps ip_list_tot=100 addresses per list: a scan from 130 sources evicts
    a knocker in the middle of its sequence; nftables sets (size 65535) keep it."""
    result = lab.module(SCAN)
    assert result['changed'] and not result.get('failed'), result
    try:
        actions = [knock(SERVER4, [7301])]
        actions += [knock(SERVER4, [7301], source) for source in SCAN4]
        actions += [knock(SERVER4, [7302]), connect(SERVER4, 2224)]
        results = lab.client_run(actions)
        if lab.backend == 'nftables':
            assert results == [True]
        else:
            assert result['xt_recent_ip_list_tot'] == 100
            assert results == [False]
    finally:
        assert not lab.module(dict(name='scan', state='absent')).get('failed')


BROKEN_RESTORE = '''#!/bin/sh
# the real restore, fed the module's script with one rule the kernel side rejects before COMMIT
sed 's/^COMMIT$/-A PK-no-such-chain -j DROP\\nCOMMIT/' | exec /usr/sbin/%s "$@"
'''


def test_rejected_change_leaves_the_rules_as_they_were(lab):
    if lab.backend != 'iptables-nft':
        pytest.skip('iptables-nft host only')
    bindir = os.path.join(lab.tmp, 'broken')
    os.mkdir(bindir)
    for tool in ('iptables-nft-restore', 'ip6tables-nft-restore'):
        with open(os.path.join(bindir, tool), 'w') as handle:
            handle.write(BROKEN_RESTORE % tool)
        os.chmod(os.path.join(bindir, tool), 0o755)
    before = lab.firewall_dump()
    result = lab.module(dict(SEED, open_window=9), path=bindir + ':' + lab.path)
    assert result.get('failed') and 'rejected' in result['msg'], result
    assert lab.firewall_dump() == before
    assert lab.module(SEED)['changed'] is False


def test_legacy_without_python_iptables_falls_back_to_restore(lab):
    if lab.backend != 'legacy':
        pytest.skip('legacy hosts only')
    door = dict(name='fallback', sequence=[7401], port=2224)
    try:
        # the venv's Python has no python-iptables
        result = lab.module(door, python=sys.executable)
        assert result['changed'] and 'iptables-legacy-restore' in result['backend_details'], result
        # python-iptables writes exactly the same rules: nothing to change
        result = lab.module(door)
        assert result['changed'] is False and 'python-iptables' in result['backend_details'], result
        assert '-A INPUT -j PK-fallback' in lab.srv('iptables-legacy', '-S').stdout
        assert 'PK-fallback' not in lab.srv('nft', 'list', 'ruleset').stdout
    finally:
        assert lab.module(dict(name='fallback', state='absent'), python=sys.executable)['changed']


def test_zz_absent_leaves_no_trace(lab):
    for name in ('seed', 'multi', 'tcp3'):
        result = lab.module(dict(name=name, state='absent'), diff=True)
        assert result['changed'] is True, result
        assert not result.get('failed'), result
        assert lab.module(dict(name=name, state='absent'))['changed'] is False
    dump = lab.firewall_dump()
    for mark in ('PK-', 'PK_', 'PK6_', 'portknock_'):
        assert mark not in dump, dump
    assert lab.client_run([connect(SERVER4, 22)]) == [True]   # no door: the port is open again
