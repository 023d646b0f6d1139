# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""scripts/portknock-firewall on real lab hosts: the boot restore and the knockd door chains.

Lab ``it-hostfw`` (2 hosts, lab/pklab.py through lab_hosts.py): host 1 gets the recent_knock
role (an iptables door on 2022 over IPv4 and IPv6, an nftables door on 2023, the boot unit),
host 2 knocks.  Then:

* the saved IPv4 file is damaged and host 1 restarts (a boot): the boot unit fails naming
  ipv4, the IPv6 and nft doors are loaded anyway, and knocking still gets in;
* the knockd door chains are set up again and again (``chains apply`` with changing static
  rules, ``chains start``) while another process samples the chain: never without its DROP.

The doors protect 2022/2023 (a listener unit), never 22.  The lab is always removed.
  source tools/bootstrap.sh
  PYTHONPATH=$ANSIBLE_COLLECTIONS_PATH python -m pytest -q -m integration tests/integration/test_host_firewall_lab.py
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import socket
import subprocess
import tempfile
import time

import pytest

import lab_hosts
from lab_hosts import LAB_PODMAN, PODMAN_ENV, REPO, STATE, lab

pytestmark = lab_hosts.LAB_TEST

LAB = 'it-hostfw'
IPT_SEQUENCE = [7313, 4187, 9421]
NFT_SEQUENCE = [8513, 6187, 8921]
CLI = '/usr/lib/portknock/ansible_collections/portknock/knock/scripts/portknock-firewall'
CONFIG = '/etc/portknock/recent_knock'
LISTENER = '''[Unit]
Description=lab listener on 2022 and 2023 (IPv4 and IPv6)
[Service]
ExecStart=/usr/bin/python3 -c "import socket,threading\\ndef serve(port):\\n s=socket.socket(socket.AF_INET6)\\n \
s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\\n s.bind(('::',port)); s.listen(64)\\n while True:\\n  \
c,_=s.accept(); c.close()\\nts=[threading.Thread(target=serve,args=(p,)) for p in (2022,2023)]\\n\
[t.start() for t in ts]\\n[t.join() for t in ts]"
[Install]
WantedBy=multi-user.target
'''
PLAY = '''
- hosts: %(server)s
  gather_facts: false
  vars:
    recent_knock_rollback_timeout: 0
    recent_knock_doors:
      - {name: ipt, sequence: %(ipt)s, port: 2022, open_window: 10, backend: iptables}
      - {name: web, sequence: %(nft)s, port: 2023, open_window: 10, backend: nftables}
  roles:
    - role: portknock.knock.recent_knock
'''


@pytest.fixture(scope='module')
def hosts():
    with lab(LAB, 2) as hosts:
        server, client = hosts
        server.run("cat > /etc/systemd/system/pk-listen.service <<'EOF'\n%sEOF\n"
                   "systemctl daemon-reload && systemctl enable --now pk-listen.service" % LISTENER, check=True)
        client.install_collection()
        yield hosts


def converge(server):
    with tempfile.NamedTemporaryFile('w', suffix='.yml', dir=os.path.join(STATE, 'labs', LAB), delete=False) as play:
        play.write(PLAY % dict(server=server.name, ipt=json.dumps(IPT_SEQUENCE), nft=json.dumps(NFT_SEQUENCE)))
    try:
        res = subprocess.run(['ansible-playbook', '-i', os.path.join(STATE, 'labs', LAB, 'inventory.yml'), play.name],
                             cwd=REPO, env=dict(PODMAN_ENV, ANSIBLE_NOCOLOR='1'), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    finally:
        os.unlink(play.name)
    assert res.returncode == 0, res.stdout[-4000:]
    return res.stdout


@pytest.fixture(scope='module')
def converged(hosts):
    return converge(hosts[0])


def knock_and_connect(client, family, address, sequence, port):
    """Closed before the knock, open after it (connect results as a pair)."""
    knock = '/opt/pk/ansible_collections/portknock/knock/scripts/knock'
    before = client.run('nc -%s -z -w 2 %s %d' % (family, address, port)).returncode == 0
    client.run('python3 %s -%s %s %s' % (knock, family, address, ' '.join(str(p) for p in sequence)), check=True)
    time.sleep(0.3)
    after = client.run('nc -%s -z -w 2 %s %d' % (family, address, port)).returncode == 0
    return before, after


def ssh_answers(server):
    """The controller reaches the host's ssh again (its neighbour entry of the old container may be stale)."""
    try:
        socket.create_connection((server.ipv4, 22), 2).close()
        return True
    except (OSError, socket.timeout):
        return False


def boot(server, client):
    """Restart the container (a new network namespace: an empty firewall) and wait for the boot unit.

    The restarted container has a new MAC address: the client forgets its neighbour entries and
    connects to its ssh until it answers, so its knocks are not sent to the old one."""
    subprocess.run([LAB_PODMAN, 'restart', server.container], env=PODMAN_ENV, check=True, stdout=subprocess.DEVNULL)
    deadline = time.time() + 120
    while True:
        state = server.run('systemctl is-active portknock-recent-knock.service').stdout.strip()
        listening = server.run('ss -ltnH "sport = :2022"').stdout.strip()   # the listener is up too
        if state in ('active', 'failed') and listening and ssh_answers(server):
            client.run('ip neigh flush all')
            if all(client.run('nc -%s -z -w 2 %s 22' % (family, address)).returncode == 0
                   for family, address in (('4', server.ipv4), ('6', server.ipv6))):
                return state
        assert time.time() < deadline, 'the boot unit did not run: %s' % state
        time.sleep(1)


def test_saved_files_are_private(hosts, converged):
    server = hosts[0]
    out = server.run('stat -c "%%n %%a" %s/rules.v4 %s/rules.v6 %s/rules.nft' % (CONFIG, CONFIG, CONFIG), check=True).stdout
    assert sorted(line.split()[1] for line in out.splitlines()) == ['600', '600', '600'], out
    assert server.run('ls -a %s | grep -c "\\.tmp$"' % CONFIG).stdout.strip() == '0'


def test_a_broken_saved_ipv4_file_at_boot_still_loads_ipv6_and_nft(hosts, converged):
    server, client = hosts
    server.run("sed -i 's/^COMMIT$/-I INPUT 1 -j ACCEPT\\nCOMMIT/' %s/rules.v4" % CONFIG, check=True)
    assert boot(server, client) == 'failed'
    log = server.run('journalctl -b -u portknock-recent-knock.service --no-pager -o cat').stdout
    assert 'FAILED for ipv4' in log and 'ipv6: loaded' in log and 'nft: loaded' in log, log
    for port in IPT_SEQUENCE + NFT_SEQUENCE:
        assert str(port) not in log, 'a knock port in the journal'
    assert 'PK-ipt' not in server.run('iptables-save -t filter').stdout             # the damaged family: nothing half
    assert '-A INPUT -j PK-ipt' in server.run('ip6tables-save -t filter').stdout
    assert server.run('nft -t list table inet portknock_web').returncode == 0
    # reachable by knocking: the IPv6 iptables door, and the nft door over IPv4 and IPv6
    assert knock_and_connect(client, '6', server.ipv6, IPT_SEQUENCE, 2022) == (False, True)
    assert knock_and_connect(client, '4', server.ipv4, NFT_SEQUENCE, 2023) == (False, True)
    assert knock_and_connect(client, '6', server.ipv6, NFT_SEQUENCE, 2023) == (False, True)


def test_the_next_run_repairs_the_saved_file_and_the_next_boot_loads_everything(hosts, converged):
    server, client = hosts
    out = converge(server)          # the role applies the doors again and saves them
    assert 'changed' in out and '-A INPUT -j PK-ipt' in server.run('iptables-save -t filter').stdout
    server.run("%s --dir %s restore" % (CLI, CONFIG), check=True)   # restoring twice: one jump each
    for binary in ('iptables', 'ip6tables'):
        assert server.run('%s -S INPUT | grep -c -- "-j PK-ipt$"' % binary).stdout.strip() == '1'
    assert boot(server, client) == 'active'
    assert '-A INPUT -j PK-ipt' in server.run('iptables-save -t filter').stdout
    assert knock_and_connect(client, '4', server.ipv4, IPT_SEQUENCE, 2022) == (False, True)


def test_knockd_chain_set_up_never_lacks_the_drop(hosts, converged):
    server = hosts[0]
    chain = 'PK-kd-KD'

    def spec(allow):
        entries = []
        for family, binary in (('ipv4', '/usr/sbin/iptables'), ('ipv6', '/usr/sbin/ip6tables')):
            static = ['-s %s -m comment --comment pk-static -j ACCEPT' % net for net in allow[family]]
            entries.append({'door': 'kd', 'family': family, 'binary': binary, 'chain': chain, 'state': 'present',
                            'jump': '-p tcp -m multiport --dports 2024 -m conntrack --ctstate NEW -j %s' % chain,
                            'static': static + ['-m comment --comment pk-static -j DROP']})
        return json.dumps(entries)

    specs = [spec({'ipv4': ['10.231.0.%d/32' % n], 'ipv6': ['fd42:706b:6c61::%x/128' % n]}) for n in (1, 2)]
    for n, text in enumerate(specs):
        server.run("cat > /tmp/pk-chains-%d.json <<'EOF'\n%s\nEOF" % (n, text), check=True)
    server.run('%s chains apply /tmp/pk-chains-0.json' % CLI, check=True)
    server.run('iptables -w -I %s 1 -s 10.231.0.77/32 -j ACCEPT' % chain, check=True)    # a knocker
    server.run('%s chains apply /tmp/pk-chains-1.json' % CLI, check=True)
    assert '10.231.0.77' in server.run('iptables -w -S %s' % chain).stdout               # apply keeps knockers
    runs = ' '.join(['apply /tmp/pk-chains-0.json', 'apply /tmp/pk-chains-1.json'] * 10
                    + ['start /tmp/pk-chains-1.json', 'start /tmp/pk-chains-0.json'] * 3)
    sampled = server.run(
        "( while [ ! -e /tmp/pk-done ]; do iptables -w -S %(chain)s | tail -n 1; ip6tables -w -S %(chain)s | tail -n 1; "
        "done ) > /tmp/pk-samples & "
        "set -- %(runs)s; changed=0; while [ $# -gt 0 ]; do "
        "%(cli)s chains $1 $2 | grep -q changed && changed=$((changed + 1)); shift 2; done; "
        "touch /tmp/pk-done; wait; echo $changed $(wc -l < /tmp/pk-samples) "
        "$(grep -c -v -e '--comment pk-static -j DROP$' /tmp/pk-samples); rm -f /tmp/pk-samples /tmp/pk-done"
        % dict(chain=chain, runs=runs, cli=CLI), timeout=600, check=True).stdout
    changed, total, open_samples = (int(n) for n in sampled.split())
    assert changed == 26 and total > 50 and open_samples == 0, sampled
    # the first start forgot the knocker
    assert '10.231.0.77' not in server.run('iptables -w -S %s' % chain).stdout
    assert server.run('iptables -w -S INPUT | grep -c -- "-j %s$"' % chain).stdout.strip() == '1'
