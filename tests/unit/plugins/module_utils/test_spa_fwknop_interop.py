# -*- coding: utf-8 -*-
"""The SPA codec against Debian's real fwknop 2.6.10 client and server.

1. Packets written by ``fwknop`` (keys in an rc file given with ``--rc-file``, ``-T -B FILE``:
   built, saved, never sent) decode and verify with the codec; wrong keys are refused.
2. Packets made by the codec are accepted by ``fwknopd`` running in a network namespace
   (tests/integration/netns_lab.py): sent over UDP 62201 from the client namespace,
   fwknopd logs "Added access rule" and the rule is in the namespace's FWKNOP_INPUT chain.

Each part skips cleanly when its binaries (or root, for the namespaces) are missing.
"""
from __future__ import absolute_import, division, print_function

import base64
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from ansible_collections.portknock.knock.plugins.module_utils import spa

from lab_util import stop_process, write_private   # tests/integration (tests/conftest.py)
from netns_lab import netns_pair

FWKNOP = shutil.which('fwknop')
FWKNOPD = shutil.which('fwknopd') or (os.path.exists('/usr/sbin/fwknopd') and '/usr/sbin/fwknopd') or None
ALL = list(spa.DIGESTS)
SKEW = 2           # the client's time(NULL) and ours can disagree by a second here
WAIT = 20          # seconds to wait for fwknopd's log line (a deadline, not a measurement)

needs_client = pytest.mark.skipif(FWKNOP is None, reason='Debian fwknop client (fwknop-client) not installed')


@pytest.fixture(scope='module')
def keys():
    """Fresh keys for this run: raw bytes and their base64, only ever written to 0600 files."""
    key, hmac_key = os.urandom(32), os.urandom(64)
    return key, hmac_key, base64.b64encode(key).decode(), base64.b64encode(hmac_key).decode()


def fwknop_packet(tmp_path, keys, args, digest='sha256', hmac_digest='sha256'):
    """Run Debian's client in test mode with an rc file; return (packet text, t0, t1)."""
    key_b64, hmac_b64 = keys[2:]
    rc = write_private(tmp_path / 'fwknoprc', '[default]\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nUSE_HMAC Y\n'
                       'DIGEST_TYPE %s\nHMAC_DIGEST_TYPE %s\n'
                       % (key_b64, hmac_b64, digest.upper(), hmac_digest.upper()))
    out = tmp_path / 'packet'
    t0 = int(time.time())
    res = subprocess.run([FWKNOP, '--rc-file', rc, '--no-save-args', '-T', '-B', str(out),
                          '-D', '10.231.250.2'] + list(args),
                         env=dict(os.environ, HOME=str(tmp_path)), stdout=subprocess.PIPE, check=False,
                         stderr=subprocess.STDOUT, universal_newlines=True, timeout=30)
    t1 = int(time.time())
    assert res.returncode == 0, res.stdout
    return out.read_text().strip(), t0, t1


@needs_client
@pytest.mark.parametrize('digest, hmac_digest', [(d, 'sha256') for d in ALL] + [('sha256', h) for h in ALL if h != 'sha256'])
def test_fwknop_client_packets_decode(tmp_path, keys, digest, hmac_digest):
    key, hmac_key = keys[:2]
    packet, t0, t1 = fwknop_packet(tmp_path, keys, ['-A', 'tcp/22,udp/53', '-a', '10.231.250.1', '-U', 'alice'],
                                   digest, hmac_digest)
    msg = spa.decode(packet, key, hmac_key, hmac_digest)
    assert msg.source == '10.231.250.1' and msg.access_string == 'tcp/22,udp/53'
    assert t0 - SKEW <= msg.timestamp <= t1 + SKEW
    assert (msg.username, msg.client_timeout, msg.message_type, msg.version) == ('alice', 0, 1, '3.0.0')
    assert msg.digest_type == digest
    assert msg.spa_digest == spa.replay_digest(packet)


@needs_client
@pytest.mark.parametrize('args, source, timeout, offset', [
    (['-a', '10.231.250.1', '-f', '45'], '10.231.250.1', 45, 0),
    (['-s'], '0.0.0.0', 0, 0),
    (['-a', '10.231.250.1', '--time-offset-minus', '10m'], '10.231.250.1', 0, -600),
    (['-a', '10.231.250.1', '--time-offset-plus', '90s', '-f', '7313'], '10.231.250.1', 7313, 90),
])
def test_fwknop_client_options(tmp_path, keys, args, source, timeout, offset):
    key, hmac_key = keys[:2]
    packet, t0, t1 = fwknop_packet(tmp_path, keys, ['-A', 'tcp/22'] + args)
    msg = spa.decode(packet, key, hmac_key)
    assert msg.source == source and msg.access == (spa.Access('tcp', 22),)
    assert (msg.client_timeout, msg.message_type) == (timeout, 3 if timeout else 1)
    assert t0 + offset - SKEW <= msg.timestamp <= t1 + offset + SKEW


@needs_client
def test_our_encoder_writes_the_same_bytes_as_fwknop(tmp_path, keys):
    """Same fields and salt as a client packet: byte for byte the same packet."""
    key, hmac_key = keys[:2]
    packet = fwknop_packet(tmp_path, keys, ['-A', 'tcp/22,udp/53', '-a', '10.231.250.1', '-U', 'alice',
                                                  '-f', '45'], 'sha3_256', 'sha512')[0]
    msg = spa.decode(packet, key, hmac_key, 'sha512')
    body = spa.B64_SALT_PREFIX + packet[:-spa._b64_len('sha512')]
    salt = base64.b64decode(body + '=' * (-len(body) % 4))[8:16]
    assert spa.encode(msg.source, msg.access, key, hmac_key, client_timeout=45, username='alice',
                      timestamp=msg.timestamp, rand_value=msg.rand_value, salt=salt,
                      digest_type='sha3_256', hmac_digest_type='sha512') == packet


@needs_client
def test_fwknop_client_packets_with_wrong_keys_are_refused(tmp_path, keys):
    key, hmac_key = keys[:2]
    packet = fwknop_packet(tmp_path, keys, ['-A', 'tcp/22', '-a', '10.231.250.1'])[0]
    with pytest.raises(spa.SpaError, match='HMAC'):
        spa.decode(packet, key, os.urandom(64))
    with pytest.raises(spa.SpaError, match='HMAC'):
        spa.decode(packet, key, hmac_key, 'sha384')
    with pytest.raises(spa.SpaError, match='decrypt'):
        spa.decode(packet, os.urandom(32), hmac_key)
    with pytest.raises(spa.SpaError):          # no HMAC expected: the HMAC is garbage ciphertext
        spa.decode(packet, key, None)


# --- our packets against fwknopd in a network namespace ---------------------------------

# One stanza per HMAC type (fwknopd tries the next stanza when one does not authenticate);
# each opens its own ports, so the rule that appears says which stanza accepted the packet.
HMAC_PORTS = {'sha256': 22, 'md5': 4187, 'sha1': 9421, 'sha384': 6113, 'sha512': 2719,
              'sha3_256': 8053, 'sha3_512': 5381}
DIGEST_PORTS = {'md5': 7313, 'sha1': 3163, 'sha256': 1733, 'sha384': 4441, 'sha512': 6007,
                'sha3_256': 2903, 'sha3_512': 8861}
EXTRA_PORTS = {'timeout': 3319, 'replay': 5003, 'wrong_hmac': 6661, 'wrong_key': 2237, 'sentinel': 7001,
               'log': 7002}


class Fwknopd(object):
    def __init__(self, server, client, proc, log, digest_file):
        self.server, self.client, self.proc, self.log, self.digest_file = server, client, proc, log, digest_file

    def text(self):
        with open(self.log) as handle:
            return handle.read()

    def wait_for(self, pattern):
        deadline = time.time() + WAIT
        while time.time() < deadline:
            match = re.search(pattern, self.text())
            if match:
                return match
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError('fwknopd never logged %r; its log:\n%s' % (pattern, self.text()))

    def send(self, data):
        """Send one UDP datagram from the client namespace to fwknopd's address, port 62201."""
        code = ('import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); '
                's.sendto(sys.stdin.buffer.read(), (sys.argv[1], %d))' % spa.DEFAULT_SPA_PORT)
        proc = self.client.spawn([sys.executable, '-c', code, self.server.addr4], stdin=subprocess.PIPE)
        proc.communicate(data.encode('ascii'), timeout=30)
        assert proc.returncode == 0

    def opened(self, port, proto='tcp'):
        """fwknopd's log line for a rule opening ``proto/port``, or None."""
        return re.search(r'Added access rule to FWKNOP_INPUT for (\S+) -> \S+ %s/%d, expires at (\d+)'
                         % (proto, port), self.text())

    def wait_opened(self, port, proto='tcp'):
        self.wait_for(r'Added access rule to FWKNOP_INPUT for \S+ -> \S+ %s/%d,' % (proto, port))
        return self.opened(port, proto)

    def chain(self):
        return self.server.run('iptables -w -S FWKNOP_INPUT', check=True).stdout


@pytest.fixture(scope='module')
def fwknopd(tmp_path_factory, keys):
    if FWKNOPD is None:
        pytest.skip('Debian fwknopd (fwknop-server) not installed')
    if os.geteuid() != 0 or shutil.which('ip') is None or shutil.which('iptables') is None:
        pytest.skip('needs root, ip and iptables for a network namespace')
    key_b64, hmac_b64 = keys[2:]
    work = tmp_path_factory.mktemp('fwknopd')
    os.chmod(str(work), 0o700)
    stanzas = []
    for hmac_digest, port in HMAC_PORTS.items():
        ports = ['tcp/%d' % port]
        if hmac_digest == 'sha256':
            ports += ['tcp/%d' % p for p in list(DIGEST_PORTS.values()) + list(EXTRA_PORTS.values())] + ['udp/53']
        stanzas.append('SOURCE ANY\nOPEN_PORTS %s\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nHMAC_DIGEST_TYPE %s\n'
                       'FW_ACCESS_TIMEOUT 30\n' % (', '.join(ports), key_b64, hmac_b64, hmac_digest.upper()))
    access = write_private(work / 'access.conf', '\n'.join(stanzas))
    run_dir = work / 'run'
    run_dir.mkdir(mode=0o700)
    digest_file = str(run_dir / 'digest.cache')
    log = str(work / 'fwknopd.log')
    with netns_pair('spa') as (server, client):
        conf = write_private(work / 'fwknopd.conf', 'PCAP_INTF %s;\nPCAP_FILTER udp port %d;\nFWKNOP_RUN_DIR %s;\n'
                             'ENABLE_IPT_FORWARDING N;\nENABLE_DIGEST_PERSISTENCE Y;\n'
                             % (server.dev, spa.DEFAULT_SPA_PORT, run_dir))
        with open(log, 'w') as out:
            proc = server.spawn([FWKNOPD, '-f', '-v', '-c', conf, '-a', access, '-i', server.dev,
                                 '-p', str(run_dir / 'fwknopd.pid'), '-d', digest_file],
                                stdout=out, stderr=subprocess.STDOUT)
        daemon = Fwknopd(server, client, proc, log, digest_file)
        try:
            daemon.wait_for(r'Starting fwknopd main event loop')
            yield daemon
        finally:
            stop_process(proc)


def _ours(keys, fwknopd, port, proto='tcp', **kwargs):
    key, hmac_key = keys[:2]
    return spa.encode(fwknopd.client.addr4, '%s/%d' % (proto, port), kwargs.pop('key', key),
                      kwargs.pop('hmac_key', hmac_key), **kwargs)


def _opened_for_the_client(fwknopd, keys, port, **kwargs):
    """Send our packet for tcp/``port``; fwknopd must open it for the client's address."""
    fwknopd.send(_ours(keys, fwknopd, port, **kwargs))
    assert fwknopd.wait_opened(port).group(1) == fwknopd.client.addr4
    return port


@pytest.mark.integration
@pytest.mark.parametrize('hmac_digest', ALL)
def test_fwknopd_accepts_our_packets_for_every_hmac_type(fwknopd, keys, hmac_digest):
    port = _opened_for_the_client(fwknopd, keys, HMAC_PORTS[hmac_digest], hmac_digest_type=hmac_digest)
    assert re.search(r'-A FWKNOP_INPUT -s %s/32 -p tcp -m tcp --dport %d .*-j ACCEPT'
                     % (re.escape(fwknopd.client.addr4), port), fwknopd.chain())


@pytest.mark.integration
@pytest.mark.parametrize('digest', ALL)
def test_fwknopd_accepts_our_packets_for_every_digest_type(fwknopd, keys, digest):
    _opened_for_the_client(fwknopd, keys, DIGEST_PORTS[digest], digest_type=digest)


@pytest.mark.integration
def test_fwknopd_honours_our_client_timeout_and_udp_access(fwknopd, keys):
    data = _ours(keys, fwknopd, EXTRA_PORTS['timeout'], client_timeout=217)   # under MAX_FW_TIMEOUT (300)
    sent = spa.decode(data, *keys[:2]).timestamp
    fwknopd.send(data)
    expires = int(fwknopd.wait_opened(EXTRA_PORTS['timeout']).group(2))
    assert 217 - SKEW <= expires - sent < 217 + 60   # not the stanza's FW_ACCESS_TIMEOUT of 30
    fwknopd.send(_ours(keys, fwknopd, 53, proto='udp'))
    assert fwknopd.wait_opened(53, 'udp')


@pytest.mark.integration
def test_fwknopd_refuses_a_replay_and_keeps_our_replay_digest(fwknopd, keys):
    data = _ours(keys, fwknopd, EXTRA_PORTS['replay'])
    fwknopd.send(data)
    fwknopd.wait_opened(EXTRA_PORTS['replay'])
    fwknopd.send(data)
    fwknopd.wait_for(r'Replay detected from source IP: %s' % re.escape(fwknopd.client.addr4))
    assert len(re.findall(r'Added access rule .* tcp/%d,' % EXTRA_PORTS['replay'], fwknopd.text())) == 1
    with open(fwknopd.digest_file) as handle:
        assert spa.replay_digest(data) in handle.read().split()


@pytest.mark.integration
def test_fwknopd_refuses_our_packets_with_wrong_keys(fwknopd, keys):
    fwknopd.send(_ours(keys, fwknopd, EXTRA_PORTS['wrong_hmac'], hmac_key=os.urandom(64)))
    fwknopd.send(_ours(keys, fwknopd, EXTRA_PORTS['wrong_key'], key=os.urandom(32)))
    fwknopd.send(_ours(keys, fwknopd, EXTRA_PORTS['sentinel']))
    fwknopd.wait_opened(EXTRA_PORTS['sentinel'])    # processed in order: the two before were seen
    assert fwknopd.opened(EXTRA_PORTS['wrong_hmac']) is None
    assert fwknopd.opened(EXTRA_PORTS['wrong_key']) is None
    log = fwknopd.text()     # -v says why: the HMAC (every stanza), then the decryption (right HMAC key)
    assert 'FKO_ERROR_INVALID_DATA_HMAC_COMPAREFAIL' in log and 'Decryption failed' in log


@pytest.mark.integration
def test_fwknopd_log_has_no_key(fwknopd, keys):
    fwknopd.send(_ours(keys, fwknopd, EXTRA_PORTS['log']))
    fwknopd.wait_opened(EXTRA_PORTS['log'])
    log = fwknopd.text()
    assert keys[2] not in log and keys[3] not in log
