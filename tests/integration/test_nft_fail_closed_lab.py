# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nftables doors fail closed, and open through a host's own DROP policy (or say why not).

Lab ``it-nftfc`` (2 hosts, lab/pklab.py through lab_hosts.py): ``srv`` gets a host firewall
and a ``recent_knock`` door (nftables backend) on its own sshd, port 22; ``cli`` knocks (the
collection's knock sender) and connects (a real TCP connect to sshd) over IPv4 and IPv6.  The
module runs from here with ansible-playbook over ``portknock.knock.ssh``, which knocks before
each new connection: once the door exists, the controller gets in like anyone else.  The
controller (10.231.0.1, fd42:706b:6c61::1) is the host firewalls' management allowlist.

* the role's nftables baseline + a door, the door's table deleted: port 22 closed to everyone;
* the seed's baseline (iptables INPUT policy DROP on iptables-nft), and a Debian nftables.conf
  with ``policy drop``: the module fails saying what to add; with integrate_input_chain it
  inserts its rule, a knock opens port 22 over IPv4 and IPv6, state=absent removes it again.

Knock sequences never go through argv: the playbook and the client's actions are files/stdin.
Run as root:
  source tools/bootstrap.sh
  PYTHONPATH=$ANSIBLE_COLLECTIONS_PATH python -m pytest -q -m integration tests/integration/test_nft_fail_closed_lab.py
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import shutil
import subprocess
import tempfile
import textwrap

import jinja2
import pytest

import lab_hosts

pytestmark = lab_hosts.LAB_TEST

LAB = 'it-nftfc'
CONTROLLER = ('10.231.0.1', 'fd42:706b:6c61::1')
SEQUENCE = [7313, 4187, 9421]
DOOR = dict(name='fc', sequence=SEQUENCE, step_timeout=5, open_window=10, port=22, backend='nftables')
SSH_COMMON_ARGS = '-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR'
TEMPLATES = os.path.join(lab_hosts.REPO, 'roles', 'recent_knock', 'templates')
CLIENT_SCRIPT = '/root/pk_fc_client.py'
MARK_RULE = '-m mark --mark 0x20000000/0x20000000 -m comment --comment portknock_fc -j ACCEPT'

# On the client: actions (JSON on stdin) -> JSON list of connect results.
CLIENT = textwrap.dedent('''
    import json, socket, sys, time
    from ansible_collections.portknock.knock.plugins.module_utils.knock_sender import send_knocks
    results = []
    for action in json.load(sys.stdin):
        if action[0] == 'knock':
            send_knocks(action[1], action[2], source=action[3])
        elif action[0] == 'connect':
            fam = socket.AF_INET6 if ':' in action[1] else socket.AF_INET
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.settimeout(1.5)
            try:
                s.bind((action[3], 0))
                s.connect((action[1], action[2]))
                results.append(s.recv(4).startswith(b'SSH'))    # sshd itself answered
            except OSError:
                results.append(False)
            finally:
                s.close()
    print(json.dumps(results))
''')

# The seed's baseline firewall: INPUT policy DROP, loopback, ESTABLISHED/RELATED, ICMP,
# the management allowlist on ssh (iptables on iptables-nft, both families).
SEED_BASELINE = ' && '.join(
    '{t} -P INPUT DROP && {t} -A INPUT -i lo -j ACCEPT'
    ' && {t} -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'
    ' && {t} -A INPUT -p {icmp} -j ACCEPT && {t} -A INPUT -s {mgmt} -p tcp --dport 22 -j ACCEPT'.format(
        t=tool, icmp=icmp, mgmt=mgmt)
    for tool, icmp, mgmt in (('iptables', 'icmp', CONTROLLER[0]), ('ip6tables', 'ipv6-icmp', CONTROLLER[1])))

# Debian's /etc/nftables.conf, made strict.
DEBIAN_NFTABLES_CONF = '''flush ruleset
table inet filter {
\tchain input {
\t\ttype filter hook input priority filter; policy drop;
\t\tct state established,related accept
\t\tiif "lo" accept
\t\tmeta l4proto { icmp, ipv6-icmp } accept
\t\tip saddr %s tcp dport 22 accept
\t\tip6 saddr %s tcp dport 22 accept
\t}
\tchain forward {
\t\ttype filter hook forward priority filter; policy drop;
\t}
\tchain output {
\t\ttype filter hook output priority filter;
\t}
}
''' % CONTROLLER

PLAY = '''
- hosts: srv
  gather_facts: false
  tasks:
    - portknock.knock.recent_knock: "{{ door_args }}"
      ignore_errors: true
'''


def role_baseline_nft():
    """The role's baseline.nft.j2 rendered for the lab (controller as the management allowlist)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True, keep_trailing_newline=True)
    env.tests['search'] = lambda value, pattern: re.search(pattern, value) is not None
    return env.get_template('baseline.nft.j2').render(
        ansible_managed='test', recent_knock_doors=[DOOR], recent_knock_management_ports=[22],
        recent_knock_management_networks=list(CONTROLLER))


class Lab(object):
    def __init__(self, hosts):
        self.srv, self.cli = hosts
        self.tmp = tempfile.mkdtemp(prefix='pk-nftfc-')      # 0700: the inventory holds the sequence
        inventory = ['[all:vars]', 'ansible_user=root', 'ansible_python_interpreter=/usr/bin/python3',
                     'ansible_ssh_private_key_file=%s' % self.srv.key,
                     "ansible_ssh_common_args='%s'" % SSH_COMMON_ARGS,
                     'ansible_connection=portknock.knock.ssh', 'knock_sequence=%s' % json.dumps(SEQUENCE),
                     '[all]', 'srv ansible_host=%s' % self.srv.ipv4]
        self.inventory = self.write('inventory', '\n'.join(inventory) + '\n')
        self.play = self.write('play.yml', PLAY)

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, 'w') as handle:
            handle.write(text)
        return path

    def module(self, check=False, **args):
        """Run recent_knock on srv (ansible-playbook, oneline callback); the task's result."""
        door_args = dict(DOOR, **args)
        extra = self.write('vars.json', json.dumps(dict(door_args=door_args)))
        env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK='oneline', ANSIBLE_LOAD_CALLBACK_PLUGINS='1',
                   ANSIBLE_HOST_KEY_CHECKING='False', ANSIBLE_PIPELINING='True',
                   ANSIBLE_SSH_CONTROL_PATH_DIR=os.path.join(self.tmp, 'cp'))
        proc = subprocess.run(['ansible-playbook', '-i', self.inventory, '-e', '@' + extra, self.play]
                              + (['--check'] if check else []),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, env=env,
                              check=False, timeout=180)
        for line in proc.stdout.splitlines():
            if line.startswith('srv | ') and ' => ' in line:
                head, body = line.split(' => ', 1)
                result = json.loads(body)
                if 'FAILED' in head or 'UNREACHABLE' in head:
                    result['failed'] = True
                return result
        raise AssertionError('no module result:\n%s\n%s' % (proc.stdout[-3000:], proc.stderr[-3000:]))

    def reset_firewall(self):
        self.srv.run('nft flush ruleset && iptables -P INPUT ACCEPT && ip6tables -P INPUT ACCEPT', check=True)

    def knock_and_connect(self, knock):
        """[connect v4, connect v6] from the client, after knocking on both families if ``knock``."""
        actions = []
        for src, dst in ((self.cli.ipv4, self.srv.ipv4), (self.cli.ipv6, self.srv.ipv6)):
            if knock:
                actions.append(['knock', dst, SEQUENCE, src])
            actions.append(['connect', dst, 22, src])
        res = self.cli.run('PYTHONPATH=%s python3 %s' % (lab_hosts.COLLECTION_ON_HOST, CLIENT_SCRIPT),
                           check=True, stdin=json.dumps(actions))
        return json.loads(res.stdout.strip().splitlines()[-1])

    def ruleset(self):
        """The whole ruleset without counters (the controller's ssh moves them)."""
        text = self.srv.run('nft -t list ruleset 2>/dev/null', check=True).stdout
        return re.sub(r'counter packets \d+ bytes \d+', 'counter', text)

    def tables(self):
        return self.srv.run('nft list tables', check=True).stdout.split()

    def iptables_input(self):
        return self.srv.run('iptables -S INPUT; ip6tables -S INPUT', check=True).stdout


@pytest.fixture(scope='module')
def lab():
    with lab_hosts.lab(LAB, 2) as hosts:
        the_lab = Lab(hosts)
        try:
            the_lab.cli.install_collection()
            the_lab.cli.run('cat > %s' % CLIENT_SCRIPT, check=True, stdin=CLIENT)
            the_lab.srv.run('systemctl is-active ssh || systemctl start ssh', check=True)
            yield the_lab
        finally:
            shutil.rmtree(the_lab.tmp, ignore_errors=True)


def test_role_baseline_door_table_gone_means_port_closed(lab):
    lab.reset_firewall()
    lab.srv.run('nft -f -', check=True, stdin=role_baseline_nft())
    try:
        result = lab.module()
        assert result.get('changed') and not result.get('failed'), result
        assert lab.knock_and_connect(knock=False) == [False, False]
        assert lab.knock_and_connect(knock=True) == [True, True]
        lab.srv.run('nft delete table inet portknock_fc', check=True)    # the door is gone
        assert 'portknock_baseline' in lab.tables()
        # closed to everyone, knock or not (the baseline accepted the port itself before: open)
        assert lab.knock_and_connect(knock=False) == [False, False]
        assert lab.knock_and_connect(knock=True) == [False, False]
        # the way back stays: the management allowlist still reaches ssh
        assert not lab.module(state='absent').get('failed')
    finally:
        lab.reset_firewall()


@pytest.mark.parametrize('firewall', ['seed-iptables-nft', 'debian-nftables-conf'])
def test_host_drop_policy_fails_or_integrates(lab, firewall):
    lab.reset_firewall()
    if firewall == 'seed-iptables-nft':
        lab.srv.run(SEED_BASELINE, check=True)
    else:
        lab.srv.run('nft -f -', check=True, stdin=DEBIAN_NFTABLES_CONF)
    before = lab.ruleset()
    try:
        # without the option: a clear failure, nothing changed (before: "changed", and port 22 stayed shut)
        result = lab.module()
        assert result.get('failed') and 'cannot open' in result['msg'], result
        assert 'integrate_input_chain' in result['msg'] and 'meta mark & 0x20000000' in result['msg'], result
        for step in SEQUENCE:
            assert str(step) not in result['msg']
        assert lab.ruleset() == before
        result = lab.module(check=True)                                   # check mode predicts it
        assert result.get('failed') and 'cannot open' in result['msg'], result
        # with it: the door's rule in the host's chain, and the door really opens
        result = lab.module(integrate_input_chain=True)
        assert result.get('changed') and not result.get('failed'), result
        if firewall == 'seed-iptables-nft':
            assert lab.iptables_input().count(MARK_RULE) == 2                # ip and ip6 filter INPUT
        else:
            assert 'comment "portknock_fc"' in lab.srv.run('nft list chain inet filter input', check=True).stdout
        assert lab.knock_and_connect(knock=False) == [False, False]
        assert lab.knock_and_connect(knock=True) == [True, True]
        # idempotent (through a new, knocking connection)
        result = lab.module(integrate_input_chain=True)
        assert result.get('changed') is False and not result.get('failed'), result
        # absent: table and rule gone, the host's firewall as it was, port 22 closed again
        result = lab.module(state='absent')
        assert result.get('changed') and not result.get('failed'), result
        assert lab.ruleset() == before
        assert lab.knock_and_connect(knock=True) == [False, False]
    finally:
        lab.reset_firewall()
