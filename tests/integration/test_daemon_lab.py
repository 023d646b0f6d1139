# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""End to end: the bundled daemon on a lab host, knocked from other lab hosts.

Lab ``it-daemon`` (3 hosts, one lab for the whole module): the server runs the daemon of
the INSTALLED collection from /opt/pk in the foreground (its own config per test) and
guards its sshd (port 22) with iptables; the client knocks with Debian's ``knock`` (knockd
installed, never started there) and with the collection's ``scripts/knock``; the third host
is "another address" that must stay shut out.  The lab is always removed.
Run as root: source tools/bootstrap.sh &&
    PYTHONPATH=$ANSIBLE_COLLECTIONS_PATH python -m pytest -q -m integration tests/integration/test_daemon_lab.py
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys
import textwrap
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from knockd_conf_text import conf, section  # noqa: E402
from lab_hosts import COLLECTION_ON_HOST, lab  # noqa: E402
from lab_util import in_parallel, wait_until  # noqa: E402

pytestmark = pytest.mark.integration

LAB = 'it-daemon'
REMOTE = COLLECTION_ON_HOST + '/ansible_collections/portknock/knock'
LAUNCHER = REMOTE + '/scripts/portknock-knockd'
PK_KNOCK = REMOTE + '/scripts/knock'
CMD_TIMEOUT = 3
LONG_CMD_TIMEOUT = 6   # tests that check a door after some podman exec round trips (slow on a loaded machine)
SEQ_TIMEOUT_SHORT = 4
NO_SERVICE_START = "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d"


def wait_for(predicate, timeout, step=0.2):   # each check is a podman exec or two
    return wait_until(predicate, timeout, step)


CONNECT = textwrap.dedent('''
    import socket, sys
    fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(float(sys.argv[2]))
    try:
        s.connect((sys.argv[1], 22)); print("open")
    except OSError as e:
        print("closed", e)
    ''')


def can_connect(source_host, dest, timeout=1.0):
    return source_host.run("python3 -c '%s' %s %s" % (CONNECT, dest, timeout)).stdout.startswith('open')


class Lab(object):
    """The three hosts and the server's interface."""

    def __init__(self, hosts):
        self.server, self.client, self.other = hosts
        self.ifname = self.server.run("ip -o -4 addr show | awk '$4 ~ /^%s\\// {print $2}'" % self.server.ipv4,
                                      check=True).stdout.strip()
        self.prefix = self.server.run("ip -o -4 addr show dev %s | awk '{print $4}' | cut -d/ -f2" % self.ifname,
                                      check=True).stdout.split()[0]

    def knock(self, *args):
        """Debian's knock client on the client host."""
        self.client.run('knock ' + ' '.join(args), check=True)

    def pk_knock(self, host, *args):
        """The collection's knock client."""
        host.run('python3 %s %s' % (PK_KNOCK, ' '.join(args)), check=True)


def _prepare(host, knockd):
    host.install_collection()
    if knockd:
        host.run(NO_SERVICE_START + ' && apt-get update -qq && DEBIAN_FRONTEND=noninteractive '
                 'apt-get install -y -qq --no-install-recommends knockd >/dev/null && '
                 '(systemctl disable --now knockd >/dev/null 2>&1 || true)', check=True, timeout=600)


@pytest.fixture(scope='module')
def hosts():
    with lab(LAB, 3) as made:
        in_parallel(_prepare, [(host, index < 2) for index, host in enumerate(made)])
        yield Lab(made)


def ssh_rule(tool, change):
    """The start (-I) or stop (-D) command of the SSH doors: ``tool`` lets the knocker in to port 22."""
    return '%s -%s INPUT -s %%IP%% -p tcp --dport 22 -j ACCEPT' % (tool, change)


SEED_CONFIG = conf(
    section('options', 'LogFile = {log}'),
    section('openSSH', sequence='3371,2459,4126', seq_timeout=15, tcpflags='syn',
            start_command=ssh_rule('iptables', 'I'), start_command_6=ssh_rule('ip6tables', 'I'), cmd_timeout='{timeout}',
            stop_command=ssh_rule('iptables', 'D'), stop_command_6=ssh_rule('ip6tables', 'D')),
    section('udpSSH', sequence='5001:udp,5002:udp,5003:udp', seq_timeout=15, start_command=ssh_rule('iptables', 'I'),
            cmd_timeout='{timeout}', stop_command=ssh_rule('iptables', 'D')),
    section('shortSeq', sequence='8101,8102,8103', seq_timeout='{seq_timeout}', tcpflags='syn', start_command='true'))


class DaemonRun(object):
    """The daemon in the foreground on the server host, files under its own directory there."""

    def __init__(self, server, ifname, directory, config, extra_args=(), cmd_timeout=CMD_TIMEOUT):
        self.server = server
        self.dir = directory
        self.conf = directory + '/knockd.conf'
        self.log = directory + '/knockd.log'
        self.out = directory + '/stdout.txt'
        self.state = directory + '/state.json'
        self.pidfile = directory + '/fg.pid'
        server.run('mkdir -p %s' % directory, check=True)
        self.write_conf(config.format(log=self.log, timeout=cmd_timeout, seq_timeout=SEQ_TIMEOUT_SHORT))
        self.command = 'python3 %s -i %s -c %s -v --state-file %s %s' % (
            LAUNCHER, ifname, self.conf, self.state, ' '.join(extra_args))
        self.process = None
        self.pid = None

    def write_conf(self, text):
        self.server.run('cat > %s' % self.conf, stdin=text, check=True)

    def read_conf(self):
        return self.server.run('cat %s' % self.conf, check=True).stdout

    def read_log(self):
        return self.server.run('cat %s 2>/dev/null' % self.log).stdout

    def output(self):
        return self.server.run('cat %s 2>/dev/null' % self.out).stdout

    def start(self):
        before = self.output().count('listening on')
        self.process = self.server.spawn('echo $$ > %s; exec %s >> %s 2>&1' % (self.pidfile, self.command, self.out))
        assert wait_for(lambda: self.output().count('listening on') > before, 10), self.output()
        self.pid = int(self.server.run('cat %s' % self.pidfile, check=True).stdout)
        return self

    def signal(self, name):
        self.server.run('kill -%s %d' % (name, self.pid), check=True)

    def running(self):
        return self.server.run('kill -0 %d' % self.pid).returncode == 0

    def stop(self, name='TERM'):
        if self.pid is not None and self.running():
            self.signal(name)
            if not wait_for(lambda: not self.running(), 10):
                self.signal('KILL')
        if self.process is not None:
            try:
                self.process.wait(10)
            except Exception:  # pylint: disable=broad-except
                self.process.kill()
                self.process.wait()
            self.process.stdout.close()


@pytest.fixture
def workdir(request):
    return '/tmp/pkt/' + request.node.name


@pytest.fixture
def firewall(hosts):
    server = hosts.server

    def reset():
        server.run('iptables -F INPUT; ip6tables -F INPUT; nft delete table inet pkd4 2>/dev/null; true')
    reset()
    server.run('iptables -A INPUT -p tcp --dport 22 -j DROP && ip6tables -A INPUT -p tcp --dport 22 -j DROP',
               check=True)
    try:
        yield hosts
    finally:
        reset()


def new_daemon(lab_, workdir, config=SEED_CONFIG, extra_args=(), cmd_timeout=CMD_TIMEOUT):
    return DaemonRun(lab_.server, lab_.ifname, workdir, config, extra_args, cmd_timeout)


@pytest.fixture
def daemon(firewall, workdir):
    run_ = new_daemon(firewall, workdir).start()
    try:
        yield run_
    finally:
        run_.stop()


def test_debian_knock_client_opens_for_the_knocker_only_and_closes(firewall, daemon):
    lab_ = firewall
    server4, knocker4 = lab_.server.ipv4, lab_.client.ipv4
    assert not can_connect(lab_.client, server4)
    lab_.knock(server4, '3371', '2459', '4126')
    assert wait_for(lambda: can_connect(lab_.client, server4), 3), daemon.output()
    opened = time.time()
    assert not can_connect(lab_.other, server4)
    assert '%s: openSSH: OPEN SESAME' % knocker4 in daemon.read_log()
    assert wait_for(lambda: not can_connect(lab_.client, server4, timeout=0.3), CMD_TIMEOUT + 3)
    assert time.time() - opened >= CMD_TIMEOUT - 1
    log = daemon.read_log()
    for line in ('%s: openSSH: Stage 1' % knocker4, '%s: openSSH: Stage 3' % knocker4,
                 'openSSH: running command: iptables -I INPUT -s %s -p tcp --dport 22 -j ACCEPT' % knocker4,
                 '%s: openSSH: command timeout' % knocker4):
        assert line in log


def test_collection_client_opens(firewall, daemon):
    lab_ = firewall
    lab_.pk_knock(lab_.other, '-d', '50', lab_.server.ipv4, '3371', '2459', '4126')
    assert wait_for(lambda: can_connect(lab_.other, lab_.server.ipv4), 3), daemon.output()
    assert not can_connect(lab_.client, lab_.server.ipv4)


def test_wrong_order_does_not_open(firewall, daemon):
    lab_ = firewall
    lab_.knock(lab_.server.ipv4, '3371', '4126', '2459')
    time.sleep(1)
    assert not can_connect(lab_.client, lab_.server.ipv4)
    assert 'OPEN SESAME' not in daemon.read_log()


def test_ipv6(firewall, daemon):
    lab_ = firewall
    server6 = lab_.server.ipv6
    assert not can_connect(lab_.client, server6)
    assert not can_connect(lab_.other, server6)
    lab_.knock('-6', server6, '3371', '2459', '4126')
    assert wait_for(lambda: can_connect(lab_.client, server6), 3), daemon.output()
    assert not can_connect(lab_.other, server6)
    log = daemon.read_log()
    assert '%s: openSSH: OPEN SESAME' % lab_.client.ipv6 in log
    assert 'running command: ip6tables -I INPUT -s %s ' % lab_.client.ipv6 in log
    assert wait_for(lambda: not can_connect(lab_.client, server6, timeout=0.3), CMD_TIMEOUT + 3)


def test_ipv6_collection_client(firewall, daemon):
    lab_ = firewall
    lab_.pk_knock(lab_.client, '-6', '-d', '50', lab_.server.ipv6, '3371', '2459', '4126')
    assert wait_for(lambda: can_connect(lab_.client, lab_.server.ipv6), 3), daemon.output()
    assert not can_connect(lab_.other, lab_.server.ipv6)


def test_udp(firewall, daemon):
    lab_ = firewall
    lab_.knock('-u', lab_.server.ipv4, '5001', '5002', '5003')
    assert wait_for(lambda: can_connect(lab_.client, lab_.server.ipv4), 3), daemon.output()
    assert '%s: udpSSH: OPEN SESAME' % lab_.client.ipv4 in daemon.read_log()


def test_sigterm_closes_open_doors(firewall, daemon):
    lab_ = firewall
    lab_.knock(lab_.server.ipv4, '3371', '2459', '4126')
    assert wait_for(lambda: can_connect(lab_.client, lab_.server.ipv4), 3)
    daemon.stop()
    assert not can_connect(lab_.client, lab_.server.ipv4, timeout=0.3)


def test_restart_closes_doors_left_open(firewall, workdir):
    lab_ = firewall
    first = new_daemon(lab_, workdir, extra_args=['--max-attempts', '100']).start()
    try:
        lab_.knock(lab_.server.ipv4, '3371', '2459', '4126')
        assert wait_for(lambda: can_connect(lab_.client, lab_.server.ipv4), 3)
    finally:
        first.stop('KILL')
    assert can_connect(lab_.client, lab_.server.ipv4)   # the shell-command door outlived the daemon...
    second = new_daemon(lab_, workdir).start()
    try:
        assert not can_connect(lab_.client, lab_.server.ipv4, timeout=0.3)   # ...until the next start
    finally:
        second.stop()


def test_sighup_with_broken_config_keeps_running(firewall, daemon):
    lab_ = firewall
    daemon.write_conf(daemon.read_conf() + '\n[broken]\n    sequence = 99999\n')
    daemon.signal('HUP')
    assert wait_for(lambda: 'keeping the running configuration' in daemon.read_log(), 5)
    assert daemon.running()
    lab_.knock(lab_.server.ipv4, '3371', '2459', '4126')
    assert wait_for(lambda: can_connect(lab_.client, lab_.server.ipv4), 3), daemon.output()


NFT_TABLE = '''
table inet pkd4 {
    set ssh4 { type ipv4_addr; flags timeout; }
    set ssh6 { type ipv6_addr; flags timeout; }
    chain input {
        type filter hook input priority -10; policy accept;
        ip saddr @ssh4 tcp dport 22 accept
        ip6 saddr @ssh6 tcp dport 22 accept
        tcp dport 22 drop
    }
}
'''


def opened_then_killed(lab_, daemon):
    """The client knocks openSSH's sequence; once port 22 lets it in, kill -9 the daemon (also when
    the door never opened).  Returns when the door was seen open."""
    try:
        lab_.knock(lab_.server.ipv4, '3371', '2459', '4126')
        assert wait_for(lambda: can_connect(lab_.client, lab_.server.ipv4), 3), daemon.output()
        return time.time()
    finally:
        daemon.stop('KILL')


def test_fail_closed_kernel_door_survives_kill_9(firewall, workdir):
    lab_ = firewall
    server4 = lab_.server.ipv4
    lab_.server.run('iptables -F INPUT && ip6tables -F INPUT', check=True)   # the nft table alone guards port 22
    lab_.server.run('nft -f -', stdin=NFT_TABLE, check=True)
    assert not can_connect(lab_.client, server4)
    daemon = new_daemon(lab_, workdir, extra_args=['--kernel-door', 'openSSH=nft:inet/pkd4/ssh4/ssh6'],
                        cmd_timeout=LONG_CMD_TIMEOUT).start()
    opened = opened_then_killed(lab_, daemon)
    assert can_connect(lab_.client, server4)   # the kernel door outlived the daemon...
    assert not can_connect(lab_.other, server4)
    assert 'running command' not in daemon.read_log()
    # ...and closes on time by itself
    assert wait_for(lambda: not can_connect(lab_.client, server4, timeout=0.3), LONG_CMD_TIMEOUT + 2)
    assert time.time() - opened <= LONG_CMD_TIMEOUT + 2.5


def test_fail_closed_recent_list_survives_kill_9(firewall, workdir):
    lab_ = firewall
    server4 = lab_.server.ipv4
    lab_.server.run('iptables -I INPUT -p tcp --dport 22 -m recent --name pkd4 --rcheck --seconds %d -j ACCEPT'
                    % CMD_TIMEOUT, check=True)
    assert not can_connect(lab_.client, server4)
    daemon = new_daemon(lab_, workdir, extra_args=['-K', 'openSSH=recent:pkd4']).start()
    opened = opened_then_killed(lab_, daemon)
    assert not can_connect(lab_.other, server4)
    assert wait_for(lambda: not can_connect(lab_.client, server4, timeout=0.3), CMD_TIMEOUT + 2)
    assert time.time() - opened <= CMD_TIMEOUT + 2.5


def test_reknock_extends_the_open_door(firewall, workdir):
    lab_ = firewall
    server4 = lab_.server.ipv4
    daemon = new_daemon(lab_, workdir, cmd_timeout=LONG_CMD_TIMEOUT).start()
    try:
        lab_.knock(server4, '3371', '2459', '4126')
        assert wait_for(lambda: can_connect(lab_.client, server4), 3), daemon.output()
        opened = time.time()    # the door opened before this
        time.sleep(max(0, opened + LONG_CMD_TIMEOUT - 2 - time.time()))
        lab_.knock(server4, '3371', '2459', '4126')
        reknocked = time.time()
        assert reknocked < opened + LONG_CMD_TIMEOUT, 'machine too slow to re-knock in time'
        assert wait_for(lambda: 'door already open, extended' in daemon.read_log(), 3), daemon.output()
        time.sleep(max(0, opened + LONG_CMD_TIMEOUT + 0.5 - time.time()))
        assert can_connect(lab_.client, server4)     # still open after the first knock's cmd_timeout
        assert wait_for(lambda: not can_connect(lab_.client, server4, timeout=0.3),
                        reknocked + LONG_CMD_TIMEOUT + 3 - time.time())
        rules = lab_.server.run('iptables -S INPUT', check=True).stdout
        assert lab_.client.ipv4 not in rules         # exactly one rule was added and removed
        assert daemon.read_log().count('running command: iptables -I') == 1
    finally:
        daemon.stop()


def test_sequence_timeout_on_time(firewall, daemon):
    lab_ = firewall
    lab_.pk_knock(lab_.client, '-d', '50', lab_.server.ipv4, '8101', '8102')
    knocked = time.time()
    # the timeout is logged without any further packet, seq_timeout seconds after the first knock
    assert wait_for(lambda: 'shortSeq: sequence timeout (stage 2)' in daemon.read_log(),
                    SEQ_TIMEOUT_SHORT + 3, step=0.1), daemon.output()
    assert SEQ_TIMEOUT_SHORT - 1 <= time.time() - knocked <= SEQ_TIMEOUT_SHORT + 2


def test_new_interface_address_is_picked_up(firewall, daemon):
    lab_ = firewall
    new_address = '%s.250' % lab_.server.ipv4.rsplit('.', 1)[0]
    lab_.server.run('ip addr add %s/%s dev %s' % (new_address, lab_.prefix, lab_.ifname), check=True)
    try:
        time.sleep(0.5)
        lab_.knock(new_address, '3371', '2459', '4126')
        assert wait_for(lambda: can_connect(lab_.client, new_address), 3), daemon.output()
    finally:
        lab_.server.run('ip addr del %s/%s dev %s' % (new_address, lab_.prefix, lab_.ifname))


def test_daemon_mode_writes_and_removes_the_pid_file(firewall, workdir):
    lab_ = firewall
    server = lab_.server
    pidfile = workdir + '/knockd.pid'
    run_ = new_daemon(lab_, workdir, extra_args=['-d', '-p', pidfile])
    result = server.run(run_.command, timeout=20)
    assert result.returncode == 0, result.stdout

    def pid_exists():
        return server.run('test -s %s' % pidfile).returncode == 0
    assert wait_for(pid_exists, 5)
    pid = int(server.run('cat %s' % pidfile, check=True).stdout)
    try:
        assert wait_for(lambda: 'starting up, listening on %s' % lab_.ifname in run_.read_log(), 5)
        lab_.knock(server.ipv4, '3371', '2459', '4126')
        assert wait_for(lambda: can_connect(lab_.client, server.ipv4), 3), run_.read_log()
    finally:
        server.run('kill -TERM %d' % pid)
    assert wait_for(lambda: server.run('test -e %s' % pidfile).returncode != 0, 10)
    assert not can_connect(lab_.client, server.ipv4, timeout=0.3)


def test_one_time_sequences_file_is_used_like_knockd(firewall, workdir):
    lab_ = firewall
    server, server4 = lab_.server, lab_.server.ipv4
    sequences = workdir + '/otp'
    server.run('mkdir -p %s && cat > %s' % (workdir, sequences), stdin=' 6001,6002,6003\n 6011,6012,6013\n',
               check=True)
    config = SEED_CONFIG + textwrap.dedent('''
        [otpSSH]
            one_time_sequences = {otp}
            seq_timeout = 15
            tcpflags = syn
            start_command = iptables -I INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
            cmd_timeout = {timeout}
            stop_command = iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
        ''').replace('{otp}', sequences)
    daemon = new_daemon(lab_, workdir, config).start()
    try:
        lab_.knock(server4, '6001', '6002', '6003')
        assert wait_for(lambda: can_connect(lab_.client, server4), 3), daemon.output()
        assert server.run('cat %s' % sequences).stdout == '#6001,6002,6003\n 6011,6012,6013\n'
        assert wait_for(lambda: not can_connect(lab_.client, server4, timeout=0.3), CMD_TIMEOUT + 3)
        lab_.knock(server4, '6001', '6002', '6003')    # replay: refused
        time.sleep(1)
        assert not can_connect(lab_.client, server4, timeout=0.3)
        lab_.knock(server4, '6011', '6012', '6013')
        assert wait_for(lambda: can_connect(lab_.client, server4), 3), daemon.output()
        assert 'no more sequences left in the one time sequences file for door otpSSH' in daemon.read_log()
    finally:
        daemon.stop()


def test_sighup_with_a_new_sequence(firewall, daemon):
    lab_ = firewall
    server4 = lab_.server.ipv4
    daemon.write_conf(daemon.read_conf().replace('3371,2459,4126', '7003,7001,7002'))
    daemon.signal('HUP')
    assert wait_for(lambda: 'Re-reading config file' in daemon.read_log(), 5)
    time.sleep(0.5)
    lab_.knock(server4, '3371', '2459', '4126')
    time.sleep(1)
    assert not can_connect(lab_.client, server4, timeout=0.3)
    lab_.knock(server4, '7003', '7001', '7002')
    assert wait_for(lambda: can_connect(lab_.client, server4), 3), daemon.output()


PARITY_CONFIG = conf(
    section('options', 'LogFile = {log}'),
    section('openSSH', sequence='3371,2459,4126', seq_timeout=15, tcpflags='syn', start_command='echo start %IP%',
            cmd_timeout=2, stop_command='echo stop %IP%'),
    section('udpSSH', sequence='5001:udp,5002:udp,5003:udp', seq_timeout=15, start_command='echo udp %IP%'))


def knockd_lines(text):
    """The log lines both daemons must write the same (timestamps dropped)."""
    keep = ('Stage', 'OPEN SESAME', 'running command', 'command timeout')
    return [line.split('] ', 1)[-1] for line in text.splitlines() if any(word in line for word in keep)]


def test_same_log_lines_as_debian_knockd(firewall, workdir):
    lab_ = firewall
    server, server4, knocker4 = lab_.server, lab_.server.ipv4, lab_.client.ipv4
    ours = new_daemon(lab_, workdir, PARITY_CONFIG)
    theirs_dir = workdir + '/debian'
    theirs_log = theirs_dir + '/knockd.log'
    theirs_conf = theirs_dir + '/knockd.conf'
    server.run('mkdir -p %s && cat > %s' % (theirs_dir, theirs_conf), stdin=PARITY_CONFIG.format(log=theirs_log),
               check=True)
    knockd = server.spawn('echo $$ > %s/pid; exec knockd -i %s -c %s >/dev/null 2>&1'
                          % (theirs_dir, lab_.ifname, theirs_conf))
    ours.start()
    try:
        assert wait_for(lambda: 'starting up' in server.run('cat %s 2>/dev/null' % theirs_log).stdout, 5)
        time.sleep(0.5)
        lab_.knock(server4, '3371', '2459', '4126')
        time.sleep(0.5)
        lab_.knock(server4, '3371', '4126', '2459')
        time.sleep(0.5)
        lab_.knock('-u', server4, '5001', '5002', '5003')
        time.sleep(3)
        expected = knockd_lines(server.run('cat %s' % theirs_log, check=True).stdout)
        assert '%s: openSSH: OPEN SESAME' % knocker4 in expected
        assert '%s: openSSH: command timeout' % knocker4 in expected
        assert 'udpSSH: running command: echo udp %s' % knocker4 in expected
        assert knockd_lines(ours.read_log()) == expected
    finally:
        server.run('kill -TERM $(cat %s/pid)' % theirs_dir)
        knockd.wait(10)
        knockd.stdout.close()
        ours.stop()


def test_failed_stop_command_is_retried_until_the_door_closes(firewall, workdir):
    """Issue 11 item 12: the first stop command fails; the door must not stay open."""
    lab_ = firewall
    server4 = lab_.server.ipv4
    marker = workdir + '/stop-may-succeed'
    flaky_stop = ('test -e %s && iptables -D INPUT -s %%IP%% -p tcp --dport 22 -j ACCEPT || (touch %s; exit 1)'
                  % (marker, marker))
    config = SEED_CONFIG.replace('    stop_command = iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT\n',
                                 '    stop_command = %s\n' % flaky_stop, 1)
    assert flaky_stop in config
    lab_.server.run('rm -f %s' % marker)
    daemon = new_daemon(lab_, workdir, config).start()
    try:
        lab_.knock(server4, '3371', '2459', '4126')
        assert wait_for(lambda: can_connect(lab_.client, server4), 3), daemon.output()
        assert wait_for(lambda: 'openSSH: stop command failed (1), retry 1 of 10 in 1 s' in daemon.read_log(),
                        CMD_TIMEOUT + 5), daemon.output()
        assert wait_for(lambda: 'openSSH: stop command succeeded (retry 1)' in daemon.read_log(), 10), daemon.output()
        assert not can_connect(lab_.client, server4, timeout=0.3)
        assert lab_.client.ipv4 not in lab_.server.run('iptables -S INPUT', check=True).stdout
        left = lab_.server.run(
            "python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); from ansible_collections.portknock.knock."
            "plugins.module_utils.knockd_daemon.actions import read_state_file; print(read_state_file(sys.argv[2]))'"
            " %s %s" % (COLLECTION_ON_HOST, daemon.state), check=True).stdout.strip()
        assert left == '[]', left       # the door left the state file once its stop command succeeded
    finally:
        daemon.stop()
