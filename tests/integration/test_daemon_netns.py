# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""End to end: the bundled daemon in a network namespace, knocked from another.

Needs root, iproute2, iptables/ip6tables, nft and Debian's ``knock`` client.
Run: cd /work/main && PYTHONPATH=/work/collections .venv/bin/python -m pytest -m integration \
         tests/integration/test_daemon_netns.py
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import signal
import subprocess
import textwrap
import time

import pytest

pytestmark = pytest.mark.integration

HERE = os.path.dirname(os.path.abspath(__file__))
COLLECTION = os.path.dirname(os.path.dirname(HERE))
SERVER_NS, CLIENT_NS = 'pk-d4-srv', 'pk-d4-cli'
SERVER_IF, CLIENT_IF = 'pkd4s', 'pkd4c'
SERVER4, KNOCKER4, OTHER4 = '10.99.4.1', '10.99.4.2', '10.99.4.3'
SERVER6, KNOCKER6, OTHER6 = 'fd42:99:4::1', 'fd42:99:4::2', 'fd42:99:4::3'
CMD_TIMEOUT = 3
PYTHON = '/usr/bin/python3'


def collections_root():
    """A directory holding ansible_collections/portknock/knock -> this collection."""
    parent = os.path.dirname(os.path.dirname(os.path.dirname(COLLECTION)))
    if os.path.basename(os.path.dirname(os.path.dirname(COLLECTION))) == 'ansible_collections':
        return parent
    for candidate in os.environ.get('PYTHONPATH', '').split(os.pathsep) + ['/work/collections']:
        if candidate and os.path.isdir(os.path.join(candidate, 'ansible_collections', 'portknock', 'knock')):
            return candidate
    pytest.skip('no ansible_collections/portknock/knock tree to run the daemon from')


def run(*args, **kwargs):
    check = kwargs.pop('check', True)
    return subprocess.run(list(args), check=check, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def in_ns(ns, *args, **kwargs):
    return run('ip', 'netns', 'exec', ns, *args, **kwargs)


def requirements():
    if os.geteuid() != 0:
        pytest.skip('needs root')
    for tool in ('ip', 'iptables', 'ip6tables', 'nft', 'knock'):
        if not shutil.which(tool):
            pytest.skip('needs %s' % tool)


@pytest.fixture(scope='module')
def netns():
    requirements()
    for ns in (SERVER_NS, CLIENT_NS):
        run('ip', 'netns', 'del', ns, check=False)
    listener = None
    try:
        run('ip', 'netns', 'add', SERVER_NS)
        run('ip', 'netns', 'add', CLIENT_NS)
        run('ip', 'link', 'add', SERVER_IF, 'netns', SERVER_NS, 'type', 'veth', 'peer', 'name', CLIENT_IF,
            'netns', CLIENT_NS)
        layout = ((SERVER_NS, SERVER_IF, [SERVER4 + '/24', SERVER6 + '/64']),
                  (CLIENT_NS, CLIENT_IF, [KNOCKER4 + '/24', OTHER4 + '/24', KNOCKER6 + '/64', OTHER6 + '/64']))
        for ns, ifname, addrs in layout:
            in_ns(ns, 'ip', 'link', 'set', 'lo', 'up')
            for addr in addrs:
                extra = ['nodad'] if ':' in addr else []
                in_ns(ns, 'ip', 'addr', 'add', addr, 'dev', ifname, *extra)
            in_ns(ns, 'ip', 'link', 'set', ifname, 'up')
        # a listener on port 22 (both families) inside the server namespace
        listener = subprocess.Popen(
            ['ip', 'netns', 'exec', SERVER_NS, PYTHON, '-c', textwrap.dedent('''
                import socket
                s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("::", 22)); s.listen(64)
                while True:
                    c, _ = s.accept(); c.close()
                ''')])
        yield
    finally:
        if listener is not None:
            listener.kill()
            listener.wait()
        for ns in (SERVER_NS, CLIENT_NS):
            run('ip', 'netns', 'del', ns, check=False)


def can_connect(source, dest, port=22, timeout=1.0):
    code = textwrap.dedent('''
        import socket, sys
        fam = socket.AF_INET6 if ":" in sys.argv[2] else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(%f)
        s.bind((sys.argv[1], 0))
        try:
            s.connect((sys.argv[2], %d)); print("open")
        except OSError as e:
            print("closed", e)
        ''' % (timeout, port))
    result = in_ns(CLIENT_NS, PYTHON, '-c', code, source, dest)
    return result.stdout.decode().startswith('open')


def wait_for(predicate, timeout, step=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def sender_knock(host, sequence, source):
    code = ('import sys; sys.path.insert(0, %r)\n'
            'from ansible_collections.portknock.knock.plugins.module_utils.knock_sender import knock\n'
            'knock(sys.argv[1], sys.argv[2], delay_ms=50, source=sys.argv[3])\n' % collections_root())
    in_ns(CLIENT_NS, PYTHON, '-c', code, host, sequence, source)


SEED_CONFIG = '''\
[options]
    LogFile = {log}

[openSSH]
    sequence    = 2222,3333,4444
    seq_timeout = 15
    tcpflags    = syn
    start_command = iptables -I INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
    start_command_6 = ip6tables -I INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
    cmd_timeout = {timeout}
    stop_command = iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
    stop_command_6 = ip6tables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT

[udpSSH]
    sequence    = 5001:udp,5002:udp,5003:udp
    seq_timeout = 15
    start_command = iptables -I INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
    cmd_timeout = {timeout}
    stop_command = iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
'''


class DaemonRun:
    def __init__(self, tmp_path, config, extra_args=()):
        self.dir = tmp_path
        self.conf = tmp_path / 'knockd.conf'
        self.log = tmp_path / 'knockd.log'
        self.out = tmp_path / 'stdout.txt'
        self.state = tmp_path / 'state.json'
        self.conf.write_text(config.format(log=self.log, timeout=CMD_TIMEOUT))
        launcher = os.path.join(collections_root(), 'ansible_collections', 'portknock', 'knock', 'scripts',
                                'portknock-knockd')
        self.args = ['ip', 'netns', 'exec', SERVER_NS, PYTHON, launcher, '-i', SERVER_IF, '-c', str(self.conf),
                     '-v', '--state-file', str(self.state)] + list(extra_args)
        self.process = None

    def start(self):
        before = self.output().count('listening on')
        self.handle = open(str(self.out), 'a')
        self.process = subprocess.Popen(self.args, stdout=self.handle, stderr=subprocess.STDOUT)
        assert wait_for(lambda: self.output().count('listening on') > before, 10), self.output()
        return self

    def output(self):
        return self.out.read_text() if self.out.exists() else ''

    def stop(self, sig=signal.SIGTERM):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None:
            self.handle.close()


@pytest.fixture
def firewall(netns):
    def reset():
        for tool in ('iptables', 'ip6tables'):
            in_ns(SERVER_NS, tool, '-F', 'INPUT', check=False)
        in_ns(SERVER_NS, 'nft', 'delete', 'table', 'inet', 'pkd4', check=False)
    reset()
    for tool in ('iptables', 'ip6tables'):
        in_ns(SERVER_NS, tool, '-A', 'INPUT', '-p', 'tcp', '--dport', '22', '-j', 'DROP')
    try:
        yield
    finally:
        reset()


@pytest.fixture
def daemon(tmp_path, firewall):
    run_ = DaemonRun(tmp_path, SEED_CONFIG).start()
    try:
        yield run_
    finally:
        run_.stop()


def test_debian_knock_client_opens_for_the_knocker_only_and_closes(daemon):
    assert not can_connect(KNOCKER4, SERVER4)
    in_ns(CLIENT_NS, 'knock', SERVER4, '2222', '3333', '4444')
    assert wait_for(lambda: can_connect(KNOCKER4, SERVER4), 3), daemon.output()
    opened = time.time()
    assert not can_connect(OTHER4, SERVER4)
    assert '%s: openSSH: OPEN SESAME' % KNOCKER4 in daemon.log.read_text()
    assert wait_for(lambda: not can_connect(KNOCKER4, SERVER4, timeout=0.3), CMD_TIMEOUT + 3)
    assert time.time() - opened >= CMD_TIMEOUT - 1
    log = daemon.log.read_text()
    for line in ('%s: openSSH: Stage 1' % KNOCKER4, '%s: openSSH: Stage 3' % KNOCKER4,
                 'openSSH: running command: iptables -I INPUT -s %s -p tcp --dport 22 -j ACCEPT' % KNOCKER4,
                 '%s: openSSH: command timeout' % KNOCKER4):
        assert line in log


def test_collection_sender_opens(daemon):
    sender_knock(SERVER4, '2222,3333,4444', OTHER4)
    assert wait_for(lambda: can_connect(OTHER4, SERVER4), 3), daemon.output()
    assert not can_connect(KNOCKER4, SERVER4)


def test_wrong_order_does_not_open(daemon):
    in_ns(CLIENT_NS, 'knock', SERVER4, '2222', '4444', '3333')
    time.sleep(1)
    assert not can_connect(KNOCKER4, SERVER4)
    assert 'OPEN SESAME' not in daemon.log.read_text()


def test_ipv6(daemon):
    assert not can_connect(KNOCKER6, SERVER6)
    assert not can_connect(OTHER6, SERVER6)
    in_ns(CLIENT_NS, 'knock', '-6', SERVER6, '2222', '3333', '4444')
    # knock has no source option: find which client address the kernel picked
    assert wait_for(lambda: 'OPEN SESAME' in daemon.log.read_text(), 3), daemon.output()
    knocker = KNOCKER6 if '%s: openSSH: OPEN SESAME' % KNOCKER6 in daemon.log.read_text() else OTHER6
    other = OTHER6 if knocker == KNOCKER6 else KNOCKER6
    assert wait_for(lambda: can_connect(knocker, SERVER6), 3), daemon.output()
    assert not can_connect(other, SERVER6)
    assert 'running command: ip6tables -I INPUT -s %s ' % knocker in daemon.log.read_text()
    assert wait_for(lambda: not can_connect(knocker, SERVER6, timeout=0.3), CMD_TIMEOUT + 3)


def test_ipv6_collection_sender(daemon):
    sender_knock(SERVER6, '2222,3333,4444', KNOCKER6)
    assert wait_for(lambda: can_connect(KNOCKER6, SERVER6), 3), daemon.output()
    assert not can_connect(OTHER6, SERVER6)


def test_udp(daemon):
    in_ns(CLIENT_NS, 'knock', '-u', SERVER4, '5001', '5002', '5003')
    assert wait_for(lambda: can_connect(KNOCKER4, SERVER4), 3), daemon.output()
    assert '%s: udpSSH: OPEN SESAME' % KNOCKER4 in daemon.log.read_text()


def test_sigterm_closes_open_doors(daemon):
    in_ns(CLIENT_NS, 'knock', SERVER4, '2222', '3333', '4444')
    assert wait_for(lambda: can_connect(KNOCKER4, SERVER4), 3)
    daemon.stop()
    assert not can_connect(KNOCKER4, SERVER4, timeout=0.3)


def test_restart_closes_doors_left_open(tmp_path, firewall):
    first = DaemonRun(tmp_path, SEED_CONFIG, ['--max-attempts', '100']).start()
    try:
        in_ns(CLIENT_NS, 'knock', SERVER4, '2222', '3333', '4444')
        assert wait_for(lambda: can_connect(KNOCKER4, SERVER4), 3)
    finally:
        first.stop(signal.SIGKILL)
    assert can_connect(KNOCKER4, SERVER4)   # the shell-command door outlived the daemon...
    second = DaemonRun(tmp_path, SEED_CONFIG).start()
    try:
        assert not can_connect(KNOCKER4, SERVER4, timeout=0.3)   # ...until the next start
    finally:
        second.stop()


def test_sighup_with_broken_config_keeps_running(daemon):
    good = daemon.conf.read_text()
    daemon.conf.write_text(good + '\n[broken]\n    sequence = 99999\n')
    daemon.process.send_signal(signal.SIGHUP)
    assert wait_for(lambda: 'keeping the running configuration' in daemon.log.read_text(), 5)
    assert daemon.process.poll() is None
    in_ns(CLIENT_NS, 'knock', SERVER4, '2222', '3333', '4444')
    assert wait_for(lambda: can_connect(KNOCKER4, SERVER4), 3), daemon.output()


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


def test_fail_closed_kernel_door_survives_kill_9(tmp_path, firewall):
    for tool in ('iptables', 'ip6tables'):
        in_ns(SERVER_NS, tool, '-F', 'INPUT')   # the nft table alone guards port 22 here
    in_ns(SERVER_NS, 'nft', '-f', '-', input=NFT_TABLE.encode())
    assert not can_connect(KNOCKER4, SERVER4)
    daemon = DaemonRun(tmp_path, SEED_CONFIG, ['--kernel-door', 'openSSH=nft:inet/pkd4/ssh4/ssh6']).start()
    try:
        in_ns(CLIENT_NS, 'knock', SERVER4, '2222', '3333', '4444')
        assert wait_for(lambda: can_connect(KNOCKER4, SERVER4), 3), daemon.output()
        opened = time.time()
        assert not can_connect(OTHER4, SERVER4)
        assert 'running command' not in daemon.log.read_text()
    finally:
        daemon.stop(signal.SIGKILL)
    assert can_connect(KNOCKER4, SERVER4)
    assert wait_for(lambda: not can_connect(KNOCKER4, SERVER4, timeout=0.3), CMD_TIMEOUT + 2)
    assert time.time() - opened <= CMD_TIMEOUT + 2.5


def test_fail_closed_recent_list_survives_kill_9(tmp_path, firewall):
    in_ns(SERVER_NS, 'iptables', '-I', 'INPUT', '-p', 'tcp', '--dport', '22', '-m', 'recent', '--name', 'pkd4',
          '--rcheck', '--seconds', str(CMD_TIMEOUT), '-j', 'ACCEPT')
    assert not can_connect(KNOCKER4, SERVER4)
    daemon = DaemonRun(tmp_path, SEED_CONFIG, ['-K', 'openSSH=recent:pkd4']).start()
    try:
        in_ns(CLIENT_NS, 'knock', SERVER4, '2222', '3333', '4444')
        assert wait_for(lambda: can_connect(KNOCKER4, SERVER4), 3), daemon.output()
        opened = time.time()
        assert not can_connect(OTHER4, SERVER4)
    finally:
        daemon.stop(signal.SIGKILL)
    assert wait_for(lambda: not can_connect(KNOCKER4, SERVER4, timeout=0.3), CMD_TIMEOUT + 2)
    assert time.time() - opened <= CMD_TIMEOUT + 2.5


def test_reknock_extends_the_open_door(daemon):
    in_ns(CLIENT_NS, 'knock', SERVER4, '2222', '3333', '4444')
    assert wait_for(lambda: can_connect(KNOCKER4, SERVER4), 3), daemon.output()
    time.sleep(CMD_TIMEOUT - 1)
    in_ns(CLIENT_NS, 'knock', SERVER4, '2222', '3333', '4444')
    reknocked = time.time()
    assert wait_for(lambda: 'door already open, extended' in daemon.log.read_text(), 3), daemon.output()
    time.sleep(max(0, reknocked + CMD_TIMEOUT - 1 - time.time()))
    assert can_connect(KNOCKER4, SERVER4)     # still open after the first knock's cmd_timeout
    assert wait_for(lambda: not can_connect(KNOCKER4, SERVER4, timeout=0.3), 4)
    rules = in_ns(SERVER_NS, 'iptables', '-S', 'INPUT').stdout.decode()
    assert KNOCKER4 not in rules              # exactly one rule was added and removed
    assert daemon.log.read_text().count('running command: iptables -I') == 1


def test_sequence_timeout_on_time(daemon):
    sender_knock(SERVER4, '2222,3333', KNOCKER4)
    # seq_timeout is 15 s in the seed stanza: the timeout is logged without any further packet
    assert wait_for(lambda: 'openSSH: sequence timeout (stage 2)' in daemon.log.read_text(), 18), daemon.output()


def test_new_interface_address_is_picked_up(daemon):
    new_address = '10.99.4.10'
    in_ns(SERVER_NS, 'ip', 'addr', 'add', new_address + '/24', 'dev', SERVER_IF)
    try:
        time.sleep(0.5)
        in_ns(CLIENT_NS, 'knock', new_address, '2222', '3333', '4444')
        assert wait_for(lambda: can_connect(KNOCKER4, new_address), 3), daemon.output()
    finally:
        in_ns(SERVER_NS, 'ip', 'addr', 'del', new_address + '/24', 'dev', SERVER_IF, check=False)


def test_daemon_mode_writes_and_removes_the_pid_file(tmp_path, firewall):
    pidfile = tmp_path / 'knockd.pid'
    run_ = DaemonRun(tmp_path, SEED_CONFIG, ['-d', '-p', str(pidfile)])
    result = subprocess.run(run_.args, check=False, timeout=20)
    assert result.returncode == 0
    assert wait_for(pidfile.exists, 5)
    pid = int(pidfile.read_text())
    try:
        assert wait_for(lambda: 'starting up, listening on %s' % SERVER_IF in run_.log.read_text(), 5)
        in_ns(CLIENT_NS, 'knock', SERVER4, '2222', '3333', '4444')
        assert wait_for(lambda: can_connect(KNOCKER4, SERVER4), 3), run_.log.read_text()
    finally:
        os.kill(pid, signal.SIGTERM)
    assert wait_for(lambda: not pidfile.exists(), 10)
    assert not can_connect(KNOCKER4, SERVER4, timeout=0.3)


def test_one_time_sequences_file_is_used_like_knockd(tmp_path, firewall):
    sequences = tmp_path / 'otp'
    sequences.write_text(' 6001,6002,6003\n 6011,6012,6013\n')
    config = SEED_CONFIG + textwrap.dedent('''
        [otpSSH]
            one_time_sequences = {otp}
            seq_timeout = 15
            tcpflags = syn
            start_command = iptables -I INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
            cmd_timeout = {timeout}
            stop_command = iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
        ''').replace('{otp}', str(sequences))
    daemon = DaemonRun(tmp_path, config).start()
    try:
        in_ns(CLIENT_NS, 'knock', SERVER4, '6001', '6002', '6003')
        assert wait_for(lambda: can_connect(KNOCKER4, SERVER4), 3), daemon.output()
        assert sequences.read_text() == '#6001,6002,6003\n 6011,6012,6013\n'
        assert wait_for(lambda: not can_connect(KNOCKER4, SERVER4, timeout=0.3), CMD_TIMEOUT + 3)
        in_ns(CLIENT_NS, 'knock', SERVER4, '6001', '6002', '6003')    # replay: refused
        time.sleep(1)
        assert not can_connect(KNOCKER4, SERVER4, timeout=0.3)
        in_ns(CLIENT_NS, 'knock', SERVER4, '6011', '6012', '6013')
        assert wait_for(lambda: can_connect(KNOCKER4, SERVER4), 3), daemon.output()
        assert 'no more sequences left in the one time sequences file for door otpSSH' in daemon.log.read_text()
    finally:
        daemon.stop()


def test_sighup_with_a_new_sequence(daemon):
    daemon.conf.write_text(daemon.conf.read_text().replace('2222,3333,4444', '7001,7002,7003'))
    daemon.process.send_signal(signal.SIGHUP)
    assert wait_for(lambda: 'Re-reading config file' in daemon.log.read_text(), 5)
    time.sleep(0.5)
    in_ns(CLIENT_NS, 'knock', SERVER4, '2222', '3333', '4444')
    time.sleep(1)
    assert not can_connect(KNOCKER4, SERVER4, timeout=0.3)
    in_ns(CLIENT_NS, 'knock', SERVER4, '7001', '7002', '7003')
    assert wait_for(lambda: can_connect(KNOCKER4, SERVER4), 3), daemon.output()


PARITY_CONFIG = '''\
[options]
    LogFile = {log}

[openSSH]
    sequence    = 2222,3333,4444
    seq_timeout = 15
    tcpflags    = syn
    start_command = echo start %IP%
    cmd_timeout = 2
    stop_command = echo stop %IP%

[udpSSH]
    sequence    = 5001:udp,5002:udp,5003:udp
    seq_timeout = 15
    start_command = echo udp %IP%
'''


def knockd_lines(text):
    """The log lines both daemons must write the same (timestamps dropped)."""
    keep = ('Stage', 'OPEN SESAME', 'running command', 'command timeout')
    return [line.split('] ', 1)[-1] for line in text.splitlines() if any(word in line for word in keep)]


def test_same_log_lines_as_debian_knockd(tmp_path, firewall):
    if not shutil.which('knockd'):
        pytest.skip('needs Debian knockd')
    ours = DaemonRun(tmp_path, PARITY_CONFIG)
    theirs_dir = tmp_path / 'debian'
    theirs_dir.mkdir()
    theirs_log = theirs_dir / 'knockd.log'
    theirs_conf = theirs_dir / 'knockd.conf'
    theirs_conf.write_text(PARITY_CONFIG.format(log=theirs_log))
    knockd = subprocess.Popen(['ip', 'netns', 'exec', SERVER_NS, 'knockd', '-i', SERVER_IF, '-c', str(theirs_conf)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ours.start()
    try:
        assert wait_for(lambda: theirs_log.exists() and 'starting up' in theirs_log.read_text(), 5)
        time.sleep(0.5)
        in_ns(CLIENT_NS, 'knock', SERVER4, '2222', '3333', '4444')
        time.sleep(0.5)
        in_ns(CLIENT_NS, 'knock', SERVER4, '2222', '4444', '3333')
        time.sleep(0.5)
        in_ns(CLIENT_NS, 'knock', '-u', SERVER4, '5001', '5002', '5003')
        time.sleep(3)
        expected = knockd_lines(theirs_log.read_text())
        assert '%s: openSSH: OPEN SESAME' % KNOCKER4 in expected
        assert '%s: openSSH: command timeout' % KNOCKER4 in expected
        assert 'udpSSH: running command: echo udp %s' % KNOCKER4 in expected
        assert knockd_lines(ours.log.read_text()) == expected
    finally:
        knockd.terminate()
        knockd.wait()
        ours.stop()
