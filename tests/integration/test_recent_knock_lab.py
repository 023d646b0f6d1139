# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""portknock.knock.recent_knock with real packets between lab hosts.

Lab ``it-recent`` (5 hosts, made by lab/pklab.py through lab_hosts.py): one server per
backend, each running the module over ssh with ``ansible -i <lab inventory>``:

* host 1: iptables-nft (the hosts' default, ``backend: auto``);
* host 2: a real iptables-legacy host (``update-alternatives`` to the legacy binaries before
  any rule exists, python3-iptables from apt; ``backend: auto``);
* host 3: native nftables (``backend: nftables``);
* host 4: the client (knocks and connects; 130 extra IPv4 addresses for the scan);
* host 5: "another address".

The doors protect ports 2022-2224 (a python listener on each server), never 22: the
controller's ssh to the servers stays open.  The lab is always removed.
Run as root, as CI does:
  source tools/bootstrap.sh
  PYTHONPATH=$ANSIBLE_COLLECTIONS_PATH python -m pytest -q -m integration tests/integration/test_recent_knock_lab.py
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import shlex
import subprocess
import tempfile
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

import lab_hosts
from lab_hosts import STATE, lab as make_lab

LAB = 'it-recent'
BACKENDS = ('iptables-nft', 'legacy', 'nftables')
LISTEN_PORTS = (2022, 2222, 2223, 2224)
SCAN_HOSTS = range(100, 230)   # 130 sources > ip_list_tot=100, in the lab's own /24
CLIENT_SCRIPT = '/root/pk_client.py'
NO_IPTC_PYTHON = '/usr/local/bin/python3-no-iptc'

SEED = dict(name='seed', sequence=[1600], open_window=5, port=2022)
MULTI = dict(name='multi', sequence=[7001, '7002:udp', 7001, 7003], step_timeout=2, open_window=5, port=2222)
TCP3 = dict(name='tcp3', sequence='7201,7202,7203', step_timeout=2, open_window=5, port=2223)
SCAN = dict(name='scan', sequence=[7301, 7302], step_timeout=10, open_window=5, port=2224)

pytestmark = lab_hosts.LAB_TEST

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

# Runs on the client (or the other) host: a list of actions, prints the list of connect results.
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
                s.bind((source, 0))
                s.connect((address, port))
                results.append(True)
            except OSError:
                results.append(False)
            finally:
                s.close()
    print(json.dumps(results))
''')

BROKEN_RESTORE = '''#!/bin/sh
# the real restore, fed the module's script with one rule the kernel side rejects before COMMIT
sed 's/^COMMIT$/-A PK-no-such-chain -j DROP\\nCOMMIT/' | exec /usr/sbin/%s "$@"
'''


class Server(object):
    """One lab host with one backend; the module runs on it over ssh."""

    def __init__(self, backend, host, inventory):
        self.backend = backend
        self.host = host
        self.inventory = inventory

    def module(self, args, check=False, diff=False, callback='oneline', python='/usr/bin/python3'):
        """Run the module on the host; returns the module result dict (or the output of another
        stdout ``callback``: oneline does not show diffs)."""
        args = dict(args)
        if self.backend == 'nftables':
            args.setdefault('backend', 'nftables')
        env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK=callback, ANSIBLE_LOAD_CALLBACK_PLUGINS='1',
                   ANSIBLE_HOST_KEY_CHECKING='False', ANSIBLE_PIPELINING='True', ANSIBLE_INVENTORY_UNPARSED_WARNING='0')
        cmd = ['ansible', '-i', self.inventory, self.host.name, '-e', 'ansible_python_interpreter=%s' % python,
               '-m', 'portknock.knock.recent_knock', '-a', json.dumps(args)]
        if check:
            cmd.append('--check')
        if diff:
            cmd.append('--diff')
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=env,
                              check=False, timeout=180)
        if callback != 'oneline':
            return proc.stdout
        for line in proc.stdout.splitlines():
            if line.startswith(self.host.name + ' | ') and ' => ' in line:
                head, body = line.split(' => ', 1)
                result = json.loads(body)
                if 'FAILED' in head or 'UNREACHABLE' in head:
                    result['failed'] = True
                return result
        raise AssertionError('no module result in ansible output:\n%s\n%s' % (proc.stdout, proc.stderr))

    def out(self, command):
        return self.host.run(command).stdout

    def firewall_dump(self):
        """Everything the door could have touched on the host, as text."""
        parts = []
        for tool in ('iptables-nft-save', 'ip6tables-nft-save', 'iptables-legacy-save', 'ip6tables-legacy-save'):
            out = self.out(tool + ' 2>/dev/null')
            # legacy chains carry packet counters (IPv6 ND moves them): not the door's business
            parts.append(re.sub(r'\[\d+:\d+\]', '[0:0]', '\n'.join(
                line for line in out.splitlines() if not line.startswith('#'))))
        # packet counters move with the controller's ssh and other traffic: not the door's business
        nft = re.sub(r'counter packets \d+ bytes \d+', 'counter', self.out('nft -t list ruleset 2>/dev/null'))
        # nft places its "managed by iptables-nft" warning (and line breaks) as it likes
        parts.append(' '.join(re.sub(r'# Warning: table [^\n]* do not touch!', ' ', nft).split()))
        parts.append(' '.join(sorted(self.out('ls /proc/net/xt_recent').split())))
        return '\n'.join(parts)


class Lab(object):
    def __init__(self, hosts):
        inventory = os.path.join(STATE, 'labs', LAB, 'inventory.yml')
        self.servers = dict((backend, Server(backend, host, inventory)) for backend, host in zip(BACKENDS, hosts))
        self.client, self.other = hosts[3], hosts[4]
        self.scan4 = ['%s.%d' % (self.client.ipv4.rsplit('.', 1)[0], n) for n in SCAN_HOSTS]

    def prepare(self):
        legacy = self.servers['legacy'].host
        jobs = [lambda: legacy.run(
            'update-alternatives --set iptables /usr/sbin/iptables-legacy'
            ' && update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy'
            ' && iptables --version | grep -q legacy'
            ' && DEBIAN_FRONTEND=noninteractive apt-get update -qq'
            ' && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-iptables'
            ' && /usr/bin/python3 -c "import iptc"'
            " && printf '#!/bin/sh\\nexec /usr/bin/python3 -S \"$@\"\\n' > %s && chmod 755 %s"
            % (NO_IPTC_PYTHON, NO_IPTC_PYTHON), check=True, timeout=600)]
        for host in (self.client, self.other):
            jobs.append(lambda host=host: self._prepare_knocker(host))
        with ThreadPoolExecutor(len(jobs)) as pool:
            for future in [pool.submit(job) for job in jobs]:
                future.result()
        for server in self.servers.values():
            server.host.spawn('exec python3 -c %s' % shlex.quote(LISTENER))

    def _prepare_knocker(self, host):
        host.install_collection()
        with tempfile.NamedTemporaryFile('w', suffix='.py') as handle:
            handle.write(CLIENT)
            handle.flush()
            host.put(handle.name, CLIENT_SCRIPT)
        if host is self.client:
            batch = ''.join('addr add %s/24 dev eth0\n' % a for a in self.scan4)
            host.run('ip -batch -', check=True, stdin=batch)

    def _run_actions(self, host, actions):
        res = host.run('PYTHONPATH=/opt/pk python3 %s %s' % (CLIENT_SCRIPT, shlex.quote(json.dumps(actions))),
                       check=True)
        return json.loads(res.stdout.strip().splitlines()[-1])

    def knocker_run(self, actions):
        """Run actions (each tagged with the host that does it, consecutive ones in one go)."""
        results, batch, who = [], [], None
        for host, action in actions:
            if who is not None and host is not who:
                results += self._run_actions(who, batch)
                batch = []
            who = host
            batch.append(action)
        if batch:
            results += self._run_actions(who, batch)
        return results


@pytest.fixture(scope='module')
def lab():
    with make_lab(LAB, 5) as hosts:
        the_lab = Lab(hosts)
        the_lab.prepare()

        def apply(server):
            for door in (SEED, MULTI, TCP3):
                result = server.module(door)
                assert not result.get('failed'), result
                assert result['changed'], result

        with ThreadPoolExecutor(len(BACKENDS)) as pool:
            for future in [pool.submit(apply, server) for server in the_lab.servers.values()]:
                future.result()
        yield the_lab


@pytest.fixture(scope='module', params=BACKENDS)
def srv(request, lab):
    return lab.servers[request.param]


def _address(server, family):
    return server.host.ipv6 if family == 6 else server.host.ipv4


def knock(lab, server, steps, family=4, host=None):
    host = host or lab.client
    source = host.ipv6 if family == 6 else host.ipv4
    return host, ['knock', _address(server, family), steps, source]


def connect(lab, server, port, family=4, host=None):
    host = host or lab.client
    source = host.ipv6 if family == 6 else host.ipv4
    return host, ['connect', _address(server, family), port, source]


def test_where_the_door_lives(lab, srv):
    dump = srv.firewall_dump()
    if srv.backend == 'iptables-nft':
        assert '-A INPUT -j PK-seed' in srv.out('iptables -S')
        assert '-A INPUT -j PK-seed' in srv.out('ip6tables -S')
        assert 'PK-' not in srv.out('iptables-legacy-save')   # no hidden legacy rule set
        assert 'portknock_' not in dump
    elif srv.backend == 'legacy':
        assert 'legacy' in srv.out('iptables --version')        # a real legacy host
        assert '-A INPUT -j PK-seed' in srv.out('iptables-legacy -S')
        assert '-A INPUT -j PK-seed' in srv.out('ip6tables-legacy -S')
        assert 'PK-' not in srv.out('nft list ruleset')
        result = srv.module(SEED)
        assert 'python-iptables' in result['backend_details'], result
    else:
        assert 'PK-' not in dump
        out = srv.out('nft -t list table inet portknock_seed')
        assert 'hook input priority filter - 10' in out
    for name in ('seed', 'multi', 'tcp3'):
        assert name in dump


def test_seed_recipe_ipv4(lab, srv):
    results = lab.knocker_run([
        connect(lab, srv, 2022),                         # no knock: refused
        knock(lab, srv, [1600]),
        connect(lab, srv, 2022),                         # knocked: open
        connect(lab, srv, 2022, host=lab.other),         # another address: still closed
        (lab.client, ['sleep', 6.2]),
        connect(lab, srv, 2022),                         # window over
    ])
    assert results == [False, True, False, False]


def test_seed_recipe_ipv6(lab, srv):
    results = lab.knocker_run([
        connect(lab, srv, 2022, 6),
        knock(lab, srv, [1600], 6),
        connect(lab, srv, 2022, 6),
        connect(lab, srv, 2022, 6, host=lab.other),
    ])
    assert results == [False, True, False]


def test_three_step_tcp_door(lab, srv):
    results = lab.knocker_run([
        knock(lab, srv, '7201,7203,7202'),               # wrong order
        connect(lab, srv, 2223),
        knock(lab, srv, '7201,7202'),                    # incomplete
        connect(lab, srv, 2223),
        knock(lab, srv, '7201,7202,7203', host=lab.other),   # right order, other address
        connect(lab, srv, 2223),
        knock(lab, srv, '7201,7202,7203', 6),
        connect(lab, srv, 2223, 6),
        connect(lab, srv, 2223, host=lab.other),
    ])
    assert results == [False, False, False, True, True]


def test_udp_step_and_repeated_port(lab, srv):
    results = lab.knocker_run([
        knock(lab, srv, [7001, 7001, '7002:udp', 7003]),     # wrong order (7001 twice first)
        connect(lab, srv, 2222),
        knock(lab, srv, [7001, '7002:udp', 7001, 7003]),
        connect(lab, srv, 2222),
        knock(lab, srv, [7001, '7002:udp', 7001, 7003], 6),
        connect(lab, srv, 2222, 6),
        connect(lab, srv, 2223),                             # another door stays closed
    ])
    assert results == [False, True, True, False]


def test_too_slow_step_does_not_open(lab, srv):
    results = lab.knocker_run([
        knock(lab, srv, [7201]),
        (lab.client, ['sleep', 2.5]),                        # step_timeout is 2
        knock(lab, srv, [7202, 7203]),
        connect(lab, srv, 2223),
    ])
    assert results == [False]


def test_second_run_changes_nothing_and_check_mode_predicts(lab, srv):
    before = srv.firewall_dump()
    for door in (SEED, MULTI, TCP3):
        result = srv.module(door)
        assert result['changed'] is False, result
    changed = dict(SEED, open_window=7)
    result = srv.module(changed, check=True)
    assert result['changed'] is True
    # the sequence is secret: masked in everything the module returns
    assert '1600' not in json.dumps(result)
    out = srv.module(changed, check=True, diff=True, callback='default')
    assert '--- before' in out and '+++ after' in out, out
    assert '+-A PK-seed -p tcp -m tcp --dport 2022 -m conntrack --ctstate NEW -m recent --rcheck --seconds 7 ' in out \
        or '+\t\ttimeout 7s' in out, out
    assert '1600' not in out
    assert srv.firewall_dump() == before                  # check mode changed nothing


def test_bad_input_changes_nothing(lab, srv):
    before = srv.firewall_dump()
    result = srv.module(dict(SEED, port=70000))
    assert result.get('failed') and '70000' in result['msg']
    result = srv.module(dict(SEED, sequence=[1600, 2022]))
    assert result.get('failed') and 'also a protected port' in result['msg']
    assert srv.firewall_dump() == before


def test_scan_from_many_sources(lab, srv):
    """xt_recent keeps ip_list_tot=100 addresses per list: a scan from 130 sources evicts
    a knocker in the middle of its sequence; nftables sets (size 65535) keep it."""
    result = srv.module(SCAN)
    assert result['changed'] and not result.get('failed'), result
    try:
        actions = [knock(lab, srv, [7301])]
        actions += [(lab.client, ['knock', srv.host.ipv4, [7301], source]) for source in lab.scan4]
        actions += [knock(lab, srv, [7302]), connect(lab, srv, 2224)]
        results = lab.knocker_run(actions)
        if srv.backend == 'nftables':
            assert results == [True]
        else:
            assert result['xt_recent_ip_list_tot'] == 100
            assert results == [False]
    finally:
        assert not srv.module(dict(name='scan', state='absent')).get('failed')


def test_rejected_change_leaves_the_rules_as_they_were(lab, srv):
    if srv.backend != 'iptables-nft':
        pytest.skip('iptables-nft host only')
    host = srv.host
    tools = ('iptables-nft-restore', 'ip6tables-nft-restore')
    before = srv.firewall_dump()
    try:
        # /usr/local/sbin comes before /usr/sbin on the PATH the module gets over ssh
        for tool in tools:
            host.run('cat > /usr/local/sbin/%s && chmod 755 /usr/local/sbin/%s' % (tool, tool),
                     check=True, stdin=BROKEN_RESTORE % tool)
        result = srv.module(dict(SEED, open_window=9))
        assert result.get('failed') and 'rejected' in result['msg'], result
    finally:
        host.run('rm -f ' + ' '.join('/usr/local/sbin/' + tool for tool in tools), check=True)
    assert srv.firewall_dump() == before
    assert srv.module(SEED)['changed'] is False


def test_legacy_without_python_iptables_falls_back_to_restore(lab, srv):
    if srv.backend != 'legacy':
        pytest.skip('legacy hosts only')
    door = dict(name='fallback', sequence=[7401], port=2224)
    try:
        # python3 -S does not see dist-packages: no python-iptables
        result = srv.module(door, python=NO_IPTC_PYTHON)
        assert result['changed'] and 'iptables-legacy-restore' in result['backend_details'], result
        # python-iptables writes exactly the same rules: nothing to change
        result = srv.module(door)
        assert result['changed'] is False and 'python-iptables' in result['backend_details'], result
        assert '-A INPUT -j PK-fallback' in srv.out('iptables-legacy -S')
        assert 'PK-fallback' not in srv.out('nft list ruleset')
    finally:
        assert srv.module(dict(name='fallback', state='absent'), python=NO_IPTC_PYTHON)['changed']


MANY = [dict(name='many%d' % i, sequence=[7413 + 11 * i, 7187 + 7 * i, 7521 + 5 * i], port=3000 + i, open_window=5)
        for i in range(4)]


def test_doors_in_one_call_idempotent_check_and_absent(lab, srv):
    """The ``doors`` form on a real kernel: one call applies all, a second changes nothing (the
    live rules read back as the single-door form sees them), check mode predicts, absent removes."""
    before = srv.firewall_dump()
    result = srv.module(dict(doors=MANY))
    assert result['changed'] is True and not result.get('failed'), result
    assert [door['name'] for door in result['doors']] == [door['name'] for door in MANY]
    result = srv.module(dict(doors=MANY))
    assert result['changed'] is False and not result.get('failed'), result
    assert srv.module(MANY[2])['changed'] is False
    after = srv.firewall_dump()
    changed = [MANY[0], dict(MANY[1], open_window=9)] + MANY[2:]
    result = srv.module(dict(doors=changed), check=True)
    assert result['changed'] is True and srv.firewall_dump() == after
    assert '7413' not in json.dumps(result)
    result = srv.module(dict(doors=[dict(name=door['name'], state='absent') for door in MANY]))
    assert result['changed'] is True and not result.get('failed'), result
    assert srv.firewall_dump() == before


def test_zz_absent_leaves_no_trace(lab, srv):
    for name in ('seed', 'multi', 'tcp3'):
        result = srv.module(dict(name=name, state='absent'), diff=True)
        assert result['changed'] is True, result
        assert not result.get('failed'), result
        assert srv.module(dict(name=name, state='absent'))['changed'] is False
    dump = srv.firewall_dump()
    for mark in ('PK-', 'PK_', 'PK6_', 'portknock_'):
        assert mark not in dump, dump
    assert lab.knocker_run([connect(lab, srv, 2022)]) == [True]   # no door: the port is open again
