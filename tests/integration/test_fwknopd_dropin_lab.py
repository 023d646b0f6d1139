# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""portknock-fwknopd (the bundled drop-in for fwknopd) with real packets: issue 14, tests 1 and 4.

The last test does the same on two lab hosts (lab_hosts.py): the daemon installed as role
host_python ships it (module_utils + scripts under /opt/pk, python3-cryptography), Debian's
fwknop-client on the other host; open, replay refused, kill -9 still closes on time.

Two network namespaces (netns_lab.py): the server runs the INSTALLED collection's
``scripts/portknock-fwknopd`` in the foreground with a fwknopd.conf/access.conf of its own,
a TCP listener on DOOR_PORT, and a firewall that drops DOOR_PORT except for the kernel door's
addresses, and drops the SPA port too (the capture sees SPA packets before netfilter).  One
server per kernel-door variant: nftables sets (element timeout), iptables-nft and
iptables-legacy ``-m recent`` lists.  The client sends with Debian's ``fwknop`` 2.6.10
(``--rc-file``; the packet is saved with ``-B`` to be resent byte for byte) and, for IPv6
(which fwknop 2.6.10 refuses), with the collection's encoder over a UDP socket.
"Open" means a real TCP connect to DOOR_PORT succeeds; the client's second address (not in
the stanza's SOURCE and not in the message) is the stranger.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ansible_collections.portknock.knock.plugins.module_utils import spa

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab_util import in_parallel, stop_process, wait_until, write_private  # noqa: E402
from netns_lab import netns_pair  # noqa: E402

pytestmark = pytest.mark.integration

FWKNOP = shutil.which('fwknop')
COLLECTION = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(spa.__file__))))
DAEMON = os.path.join(COLLECTION, 'scripts', 'portknock-fwknopd')
DOOR_PORT = 7313
SPA_PORT = spa.DEFAULT_SPA_PORT
TIMEOUT = 3            # FW_ACCESS_TIMEOUT (and the -m recent rules' --seconds)
MAX_AGE = 60           # MAX_SPA_PACKET_AGE
WAIT = 20              # deadline for a log line (never a measurement)
STRANGER = '10.231.250.253'

CONNECT = textwrap.dedent('''
    import socket, sys
    host, src = sys.argv[1], sys.argv[2]
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(0.6)
    if src != "-":
        s.bind((src, 0))
    try:
        s.connect((host, int(sys.argv[3]))); print("open")
    except OSError as e:
        print("closed", e); sys.exit(1)
    ''')
LISTEN = textwrap.dedent('''
    import socket
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", %d)); s.listen(64)
    while True:
        c, _a = s.accept(); c.close()
    ''' % DOOR_PORT)
SEND = ('import socket,sys; h=sys.argv[1]; f=socket.AF_INET6 if ":" in h else socket.AF_INET; '
        's=socket.socket(f, socket.SOCK_DGRAM); len(sys.argv) > 2 and s.bind((sys.argv[2], 0)); '
        's.sendto(sys.stdin.buffer.read(), (h, %d))' % SPA_PORT)

JUNK = ('import socket,sys; h, src, n = sys.argv[1], sys.argv[2], int(sys.argv[3]); '
        's=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((src, 0)); '
        '[s.sendto(b"A" * 120, (h, %d)) for _i in range(n)]' % SPA_PORT)

NFT = '''
table inet pkspa {
    set door4 { type ipv4_addr; flags timeout; }
    set door6 { type ipv6_addr; flags timeout; }
    chain input {
        type filter hook input priority 0; policy accept;
        udp dport %(spa)d drop
        tcp dport %(door)d ip saddr @door4 accept
        tcp dport %(door)d ip6 saddr @door6 accept
        tcp dport %(door)d drop
    }
}
''' % {'spa': SPA_PORT, 'door': DOOR_PORT}


def iptables_rules(variant):
    lines = []
    for binary in ('iptables-' + variant, 'ip6tables-' + variant):
        lines += ['%s -w -A INPUT -p udp --dport %d -j DROP' % (binary, SPA_PORT),
                  '%s -w -A INPUT -p tcp --dport %d -m recent --name pkspa --rcheck --seconds %d -j ACCEPT'
                  % (binary, DOOR_PORT, TIMEOUT),
                  '%s -w -A INPUT -p tcp --dport %d -j DROP' % (binary, DOOR_PORT)]
    return lines


VARIANTS = {
    'nftables': ('nft', 'tcp/%d=nft:inet/pkspa/door4/door6' % DOOR_PORT),
    'iptables-nft': ('iptables-nft', 'tcp/%d=recent:pkspa' % DOOR_PORT),
    'iptables-legacy': ('iptables-legacy', 'tcp/%d=recent:pkspa' % DOOR_PORT),
}


class Lab(object):
    """One server namespace running portknock-fwknopd, one client namespace."""

    def __init__(self, work, server, client, door_spec, keys):
        self.work, self.server, self.client, self.door_spec = work, server, client, door_spec
        self.key, self.hmac_key = keys
        self.proc = None
        self.log = str(work / 'daemon.log')
        self.digest_file = str(work / 'run' / 'digest.cache')
        self.rc = self.rc_file('good', self.key, self.hmac_key)
        self.sent = 0

    def rc_file(self, name, key, hmac_key):
        return write_private(self.work / ('%s.fwknoprc' % name),
                             '[default]\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nUSE_HMAC Y\n'
                             % (base64.b64encode(key).decode(), base64.b64encode(hmac_key).decode()))

    def text(self):
        with open(self.log) as handle:
            return handle.read()

    def start(self):
        self.sent = 0
        self.mark = len(self.text()) if os.path.exists(self.log) else 0
        with open(self.log, 'a') as out:
            self.proc = self.server.spawn(
                [DAEMON, '-f', '-c', str(self.work / 'fwknopd.conf'), '-a', str(self.work / 'access.conf'),
                 '-i', self.server.dev, '-d', self.digest_file, '-p', str(self.work / 'run' / 'fwknopd.pid'),
                 '--state-file', str(self.work / 'run' / 'state.json'), '-K', self.door_spec],
                stdout=out, stderr=subprocess.STDOUT)
        self.wait_log(r'starting up, listening on')

    def stop(self, sig=signal.SIGTERM):
        if self.proc is not None:
            stop_process(self.proc, 15, sig)
        self.proc = None

    def wait_log(self, pattern, count=1):
        """Wait until ``pattern`` appears ``count`` times in the log since the last start."""
        def seen():
            return len(re.findall(pattern, self.text()[self.mark:])) >= count
        if not wait_until(seen, WAIT, 0.05):
            raise AssertionError('the daemon never logged %r (x%d); its log:\n%s' % (pattern, count, self.text()))

    def decisions(self):
        return len(re.findall(r'SPA packet from \S+ (?:accepted|refused)', self.text()[self.mark:]))

    def expect_decision(self):
        """Wait for one more accepted/refused line; return it."""
        self.sent += 1
        want = self.sent
        if not wait_until(lambda: self.decisions() >= want, WAIT, 0.05):
            raise AssertionError('no decision for packet %d; log:\n%s' % (want, self.text()))
        return re.findall(r'SPA packet from [^\n]*', self.text()[self.mark:])[want - 1]

    def fwknop(self, *args, rc=None):
        """Debian's client in the client namespace: builds, saves (-B) and sends one SPA packet."""
        out = str(self.work / ('packet.%d' % time.time_ns()))
        res = self.client.run(' '.join(['HOME=%s' % self.work, FWKNOP, '--rc-file', rc or self.rc,
                                        '--no-save-args', '-D', self.server.addr4, '-B', out] + list(args)))
        assert res.returncode == 0, res.stdout
        with open(out, 'rb') as handle:
            return handle.read().strip()

    def send(self, data, host=None, src=None):
        proc = self.client.spawn([sys.executable, '-c', SEND, host or self.server.addr4] + ([src] if src else []),
                                 stdin=subprocess.PIPE)
        proc.communicate(data, timeout=30)
        assert proc.returncode == 0

    def is_open(self, host=None, src='-'):
        command = '%s -c %s %s %s %d' % (sys.executable, _quote(CONNECT), host or self.server.addr4, src, DOOR_PORT)
        return self.client.run(command).returncode == 0


def _quote(text):
    return "'" + text.replace("'", "'\\''") + "'"


@pytest.fixture(scope='module', params=sorted(VARIANTS))
def lab(request, tmp_path_factory):
    if os.geteuid() != 0 or shutil.which('ip') is None:
        pytest.skip('needs root and ip for network namespaces')
    if FWKNOP is None:
        pytest.skip("Debian's fwknop client (fwknop-client) is not installed")
    tool, door_spec = VARIANTS[request.param]
    if shutil.which(tool) is None:
        pytest.skip('%s is not installed' % tool)
    work = tmp_path_factory.mktemp('fwknopd-' + request.param)
    os.chmod(str(work), 0o700)
    (work / 'run').mkdir(mode=0o700)
    keys = (os.urandom(32), os.urandom(64))
    with netns_pair('fwk') as (server, client):
        client.run('ip addr add %s/32 dev %s' % (STRANGER, client.dev), check=True)
        server.run('ip route add %s/32 dev %s' % (STRANGER, server.dev), check=True)
        if tool == 'nft':
            server.run("nft -f - <<'EOF'\n%sEOF" % NFT, check=True)
        else:
            for line in iptables_rules(request.param.split('-', 1)[1]):
                server.run(line, check=True)
        write_private(work / 'fwknopd.conf', 'PCAP_INTF %s;\nPCAP_FILTER udp port %d;\nMAX_SPA_PACKET_AGE %d;\n'
                      'ENABLE_DIGEST_PERSISTENCE Y;\n' % (server.dev, SPA_PORT, MAX_AGE))
        write_private(work / 'access.conf', 'SOURCE %s, %s\nOPEN_PORTS tcp/%d\nREQUIRE_SOURCE_ADDRESS Y\n'
                      'KEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nFW_ACCESS_TIMEOUT %d\n'
                      % (client.addr4, client.addr6, DOOR_PORT, base64.b64encode(keys[0]).decode(),
                         base64.b64encode(keys[1]).decode(), TIMEOUT))
        listener = server.spawn([sys.executable, '-c', LISTEN])
        the_lab = Lab(work, server, client, door_spec, keys)
        the_lab.variant = request.param
        try:
            the_lab.start()
            yield the_lab
        finally:
            the_lab.stop(signal.SIGKILL)
            listener.kill()
            listener.wait()
            with open(the_lab.log) as handle:
                log = handle.read()
            assert base64.b64encode(keys[0]).decode() not in log
            assert base64.b64encode(keys[1]).decode() not in log


def test_fwknop_client_opens_for_the_authorized_source_only_and_closes_after_the_timeout(lab):
    assert not lab.is_open()
    packet = lab.fwknop('-A', 'tcp/%d' % DOOR_PORT, '-a', lab.client.addr4)
    line = lab.expect_decision()
    assert 'accepted' in line and lab.client.addr4 in line, line
    assert lab.is_open()
    assert not lab.is_open(src=STRANGER)               # the stranger: another source address
    assert wait_until(lambda: not lab.is_open(), TIMEOUT + 4, 0.3)
    lab.replayed = packet


def test_the_same_packet_resent_byte_for_byte_stays_closed_also_after_a_restart(lab):
    packet = getattr(lab, 'replayed', None) or lab.fwknop('-A', 'tcp/%d' % DOOR_PORT, '-a', lab.client.addr4)
    if not getattr(lab, 'replayed', None):
        lab.expect_decision()
    lab.send(packet)
    assert 'refused: replay' in lab.expect_decision()
    assert not lab.is_open()
    lab.stop()
    lab.start()
    lab.send(packet)
    assert 'refused: replay' in lab.expect_decision()
    assert not lab.is_open()
    with open(lab.digest_file) as handle:
        assert spa.replay_digest(packet) in handle.read().split()
    assert oct(os.stat(lab.digest_file).st_mode & 0o777) == '0o600'


def test_wrong_keys_old_packets_and_zero_address_stay_closed(lab):
    if lab.variant != 'nftables':
        pytest.skip('the refusals do not depend on the kernel door: checked once')
    cases = [
        (lab.rc_file('badhmac', lab.key, os.urandom(64)), ['-a', lab.client.addr4], 'bad HMAC'),
        (lab.rc_file('badkey', os.urandom(32), lab.hmac_key), ['-a', lab.client.addr4], 'decrypt failure'),
        (lab.rc, ['-a', lab.client.addr4, '--time-offset-minus', '5m'], 'too old'),
        (lab.rc, ['-s'], 'source address required'),
    ]
    for rc, args, reason in cases:
        lab.fwknop('-A', 'tcp/%d' % DOOR_PORT, *args, rc=rc)
        line = lab.expect_decision()
        assert 'refused: %s' % reason in line, line
        assert not lab.is_open()
    # a valid packet sent from the stranger's address: not in SOURCE
    lab.send(spa.encode(STRANGER, 'tcp/%d' % DOOR_PORT, lab.key, lab.hmac_key).encode('ascii'), src=STRANGER)
    line = lab.expect_decision()
    assert 'from %s refused: no stanza' % STRANGER in line, line
    assert not lab.is_open(src=STRANGER)
    # the same message sent from the authorized source: fwknopd opens the address in the message
    lab.send(spa.encode(STRANGER, 'tcp/%d' % DOOR_PORT, lab.key, lab.hmac_key).encode('ascii'))   # from addr4...
    assert 'accepted' in lab.expect_decision()     # ...fwknopd opens the message's address: the stranger's
    assert lab.is_open(src=STRANGER) and not lab.is_open()
    assert wait_until(lambda: not lab.is_open(src=STRANGER), TIMEOUT + 4, 0.3)
    lab.fwknop('-A', 'tcp/9421', '-a', lab.client.addr4)
    assert 'refused: port not allowed' in lab.expect_decision()


def test_ipv6_with_the_collections_encoder_opens_for_the_ipv6_source(lab):
    assert not lab.is_open(lab.server.addr6)
    lab.send(spa.encode(lab.client.addr6, 'tcp/%d' % DOOR_PORT, lab.key, lab.hmac_key).encode('ascii'),
             host=lab.server.addr6)
    line = lab.expect_decision()
    assert 'accepted' in line and lab.client.addr6 in line, line
    assert lab.is_open(lab.server.addr6)
    assert not lab.is_open()                    # the client's IPv4 address was not opened
    assert wait_until(lambda: not lab.is_open(lab.server.addr6), TIMEOUT + 4, 0.3)


def test_a_flooding_source_is_dropped_in_the_kernel_and_others_still_open(lab):
    """The penalty (20 refused packets in a second: 5 s) moves the flooder into the capture
    socket's filter: the daemon stops seeing its packets, then sees them again when it ends.
    The flooder is the client's IPv4 address (in SOURCE: its junk counts as failures); the
    legit packet meanwhile comes from its IPv6 address."""
    if lab.variant != 'nftables':
        pytest.skip('the capture filter does not depend on the kernel door: checked once')
    counters = str(lab.work / 'run' / 'counters.json')
    flooder = lab.client.addr4

    def knocks():
        with open(counters) as handle:
            return json.load(handle)['doors']['spa']['knocks'][0]

    def junk(count):
        assert lab.client.run('%s -c %s %s %s %d' % (sys.executable, _quote(JUNK), lab.server.addr4, flooder,
                                                     count)).returncode == 0
    lab.stop()
    lab.start()                                 # counters from 0
    try:
        junk(25)
        lab.wait_log(r'from %s refused: [^\n]*refused unexamined for 5 s' % re.escape(flooder))
        assert wait_until(lambda: os.path.exists(counters) and knocks() == 25, WAIT, 0.1)
        time.sleep(0.5)                         # the filter follows within 0.05 s
        junk(2000)
        lab.send(spa.encode(lab.client.addr6, 'tcp/%d' % DOOR_PORT, lab.key, lab.hmac_key).encode('ascii'),
                 host=lab.server.addr6)
        assert wait_until(lambda: lab.is_open(lab.server.addr6), WAIT, 0.1)   # another source: opens
        time.sleep(1.5)                         # counters are written at most once a second
        assert knocks() == 26, 'the daemon saw %d packets: the flooder was not dropped in the kernel' % knocks()
        time.sleep(5.0)                         # the penalty ends: the filter lets the source in again
        junk(1)
        assert wait_until(lambda: knocks() == 27, WAIT, 0.1), knocks()
    finally:
        lab.stop()
        lab.start()                             # the next test counts decisions from a fresh log mark


def test_kill_9_with_a_door_open_the_kernel_still_closes_it_on_time(lab):
    lab.fwknop('-A', 'tcp/%d' % DOOR_PORT, '-a', lab.client.addr4)
    assert 'accepted' in lab.expect_decision()
    assert lab.is_open()
    lab.stop(signal.SIGKILL)
    assert lab.is_open()                        # the daemon is gone: the kernel holds the door...
    assert wait_until(lambda: not lab.is_open(), TIMEOUT + 4, 0.3)   # ...and closes it
    lab.start()                                 # a restart after a crash: the state file is read


# --- one case on real lab hosts: the daemon installed as the role ships it ------------------

LAB_NAME = 'it-fwknopd'
KILL_TIMEOUT = 12
NO_SERVICE_START = "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d"


def _apt(host, packages):
    host.run(NO_SERVICE_START + ' && (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install '
             '-y -qq --no-install-recommends %s >/dev/null' % packages, check=True, timeout=600)


def test_lab_hosts_fwknop_client_against_the_installed_daemon_replay_and_kill_9():
    """Server: module_utils + scripts copied as role host_python does, python3-cryptography, nftables;
    client: Debian's fwknop-client.  Opens, resent packet stays closed, kill -9 still closes on time."""
    if os.geteuid() != 0 or not os.environ.get('PORTKNOCK_COLLECTION'):
        pytest.skip('needs root and the installed collection (source tools/bootstrap.sh)')
    from lab_hosts import lab as lab_hosts_lab   # noqa: E402
    key, hmac_key = os.urandom(32), os.urandom(64)
    key_b64, hmac_b64 = base64.b64encode(key).decode(), base64.b64encode(hmac_key).decode()
    with lab_hosts_lab(LAB_NAME, 2) as (server, client):
        def prepare(host, packages, install):
            if install:
                host.install_collection()
            _apt(host, packages)
        in_parallel(prepare, [(server, 'python3-cryptography nftables', True), (client, 'fwknop-client', False)])
        daemon = '/opt/pk/ansible_collections/portknock/knock/scripts/portknock-fwknopd'
        dev = server.run("ip -o -4 addr show | awk '$4 ~ /^%s\\// {print $2}'" % server.ipv4.replace('.', '\\.'),
                         check=True).stdout.strip()
        server.run("mkdir -p -m 0700 /etc/fwknop /run/fwknop && nft -f - <<'EOF'\n%sEOF" % NFT, check=True)
        server.run("umask 077 && printf 'PCAP_INTF %s;\\nMAX_SPA_PACKET_AGE %d;\\n' > /etc/fwknop/fwknopd.conf && "
                   "printf 'SOURCE %s\\nOPEN_PORTS tcp/%d\\nKEY_BASE64 %s\\nHMAC_KEY_BASE64 %s\\nFW_ACCESS_TIMEOUT %d\\n' "
                   "> /etc/fwknop/access.conf" % (dev, MAX_AGE, client.ipv4, DOOR_PORT, key_b64, hmac_b64, TIMEOUT),
                   check=True)
        server.spawn('exec python3 -c %s' % _quote(LISTEN))
        client.run("umask 077 && printf '[default]\\nKEY_BASE64 %s\\nHMAC_KEY_BASE64 %s\\nUSE_HMAC Y\\n' > /root/rc"
                   % (key_b64, hmac_b64), check=True)
        start = ('%s -f -K tcp/%d=nft:inet/pkspa/door4/door6 > /root/fwknopd.log 2>&1 & echo $! > /root/pid'
                 % (daemon, DOOR_PORT))

        def log():
            return server.run('cat /root/fwknopd.log').stdout

        def decisions():
            return len(re.findall(r'SPA packet from \S+ (?:accepted|refused)', log()))

        def is_open():
            return client.run('python3 -c %s %s - %d' % (_quote(CONNECT), server.ipv4, DOOR_PORT)).returncode == 0

        def started():
            assert wait_until(lambda: 'starting up' in log(), WAIT), log()
        try:
            server.run(start, check=True)
            started()
            assert not is_open()
            client.run('fwknop --rc-file /root/rc --no-save-args -A tcp/%d -a %s -D %s -B /root/packet'
                       % (DOOR_PORT, client.ipv4, server.ipv4), check=True)
            assert wait_until(lambda: decisions() >= 1, WAIT), log()
            assert 'accepted' in log() and is_open(), log()
            resend = _quote(SEND.replace('sys.stdin.buffer.read()', 'sys.stdin.buffer.read().strip()'))
            client.run('python3 -c %s %s < /root/packet' % (resend, server.ipv4), check=True)
            assert wait_until(lambda: decisions() >= 2, WAIT), log()
            assert 'refused: replay' in log(), log()
            assert wait_until(lambda: not is_open(), TIMEOUT + 4, 0.3)   # FW_ACCESS_TIMEOUT
            # a client timeout (-f) long enough for podman exec round trips on a loaded machine
            client.run('fwknop --rc-file /root/rc --no-save-args -A tcp/%d -a %s -D %s -f %d'
                       % (DOOR_PORT, client.ipv4, server.ipv4, KILL_TIMEOUT), check=True)
            assert wait_until(lambda: decisions() >= 3, WAIT), log()
            assert ', %d s' % KILL_TIMEOUT in log() and is_open(), log()
            server.run('kill -9 $(cat /root/pid)', check=True)
            assert is_open()                          # the kernel holds the door after kill -9 ...
            assert wait_until(lambda: not is_open(), KILL_TIMEOUT + 4, 0.3)   # ... and closes it on time
            assert key_b64 not in log() and hmac_b64 not in log()
        except AssertionError as exc:
            raise AssertionError('%s\ndaemon log on %s:\n%s' % (exc, server.name, log()))
