# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The SPA sender: fwknoprc-style key files, keys from the environment, one datagram on loopback."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import os
import socket

import pytest

from ansible_collections.portknock.knock.plugins.module_utils import spa, spa_client
from ansible_collections.portknock.knock.plugins.module_utils.knock_sender import KnockSendError

KEY, HMAC_KEY = os.urandom(32), os.urandom(64)
KEY_B64, HMAC_B64 = base64.b64encode(KEY).decode(), base64.b64encode(HMAC_KEY).decode()


def rc(tmp_path, text, mode=0o600, name='fwknoprc'):
    path = tmp_path / name
    path.write_text(text)
    os.chmod(str(path), mode)
    return str(path)


def test_default_and_named_stanzas_as_fwknop_reads_them(tmp_path):
    path = rc(tmp_path, '# my servers\n[default]\nKEY_BASE64  %s\nHMAC_KEY_BASE64 %s\nHMAC_DIGEST_TYPE SHA512\n'
                        'VERBOSE Y\n\n[web]\nSPA_SERVER web.example\nSPA_SERVER_PORT 40111\nACCESS tcp/22\n'
                        'ALLOW_IP source\nFW_TIMEOUT 45\n' % (KEY_B64, HMAC_B64))
    default = spa_client.load_rc_file(path)
    assert (default.keys.key, default.keys.hmac_key, default.keys.hmac_digest_type) == (KEY, HMAC_KEY, 'sha512')
    assert (default.spa_port, default.access, default.server) == (None, None, None)
    web = spa_client.load_rc_file(path, 'web')
    assert web.keys.key == KEY and web.keys.hmac_digest_type == 'sha512'
    assert (web.spa_port, web.access, web.server, web.allow_ip, web.fw_timeout) == (
        40111, 'tcp/22', 'web.example', '0.0.0.0', 45)


def test_lines_before_a_stanza_are_default_and_raw_keys_work(tmp_path):
    path = rc(tmp_path, 'KEY secret-passphrase\nHMAC_KEY another-one\n')
    keys = spa_client.load_rc_file(path).keys
    assert (keys.key, keys.hmac_key) == (b'secret-passphrase', b'another-one')


@pytest.mark.parametrize('text, message', [
    ('[default]\nKEY_BASE64 %s\n' % KEY_B64, 'has no HMAC_KEY_BASE64 (or HMAC_KEY)'),
    ('[default]\nKEY_BASE64 x%s\nHMAC_KEY_BASE64 %s\n' % (KEY_B64, HMAC_B64), 'line 2: KEY_BASE64 is not base64'),
    ('KEY_BASE64 %s\nHMAC_KEY_BASE64 *%s\n' % (KEY_B64, HMAC_B64[1:]), 'line 2: HMAC_KEY_BASE64 is not base64'),
    ('KEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nHMAC_DIGEST_TYPE SHA999\n' % (KEY_B64, HMAC_B64), 'line 3: HMAC_DIGEST_TYPE'),
    ('KEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nSPA_SERVER_PORT 70000\n' % (KEY_B64, HMAC_B64), 'line 3: SPA_SERVER_PORT'),
    ('KEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nUSE_GPG Y\n' % (KEY_B64, HMAC_B64), 'line 3: USE_GPG is not supported'),
    ('KEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nUSE_HMAC N\n' % (KEY_B64, HMAC_B64), 'always signs'),
    ('KEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nSPA_SERVER_PROTO tcp\n' % (KEY_B64, HMAC_B64), 'only UDP'),
    ('KEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nALLOW_IP resolve\n' % (KEY_B64, HMAC_B64), 'ALLOW_IP resolve'),
    ('KEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nFW_TIMEOUT soon\n' % (KEY_B64, HMAC_B64), 'line 3: FW_TIMEOUT'),
    ('%s\n' % KEY_B64, 'line 1: the line is not "VARIABLE value"'),
    ('KEY_BASE64\n', "line 1: 'KEY_BASE64' is not"),
])
def test_bad_files_name_the_file_and_line_never_the_key(tmp_path, text, message):
    path = rc(tmp_path, text)
    with pytest.raises(spa.SpaError) as err:
        spa_client.load_rc_file(path)
    assert path in str(err.value) and message in str(err.value)
    assert KEY_B64[2:] not in str(err.value) and HMAC_B64[2:-2] not in str(err.value)


def test_missing_stanza_and_missing_file(tmp_path):
    path = rc(tmp_path, 'KEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n' % (KEY_B64, HMAC_B64))
    with pytest.raises(spa.SpaError, match=r'has no stanza \[db\]'):
        spa_client.load_rc_file(path, 'db')
    with pytest.raises(spa.SpaError, match='SPA key file .*nope: No such file'):
        spa_client.load_rc_file(str(tmp_path / 'nope'))


@pytest.mark.parametrize('mode', [0o640, 0o604, 0o660, 0o644, 0o602])
def test_a_key_file_others_can_access_is_refused(tmp_path, mode):
    path = rc(tmp_path, 'KEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n' % (KEY_B64, HMAC_B64), mode)
    with pytest.raises(spa.SpaError, match=r'accessible by others \(mode %04o\): chmod 600 it' % mode):
        spa_client.load_rc_file(path)


def test_keys_from_the_environment():
    assert spa_client.keys_from_environment({}) is None
    keys = spa_client.keys_from_environment({'KNOCK_SPA_KEY': KEY_B64, 'KNOCK_SPA_HMAC_KEY': HMAC_B64,
                                             'KNOCK_SPA_HMAC_DIGEST_TYPE': 'sha384'})
    assert (keys.key, keys.hmac_key, keys.hmac_digest_type) == (KEY, HMAC_KEY, 'sha384')
    assert KEY_B64 not in repr(keys) and 'KEY' not in repr(keys).replace('<key', '')
    with pytest.raises(spa.SpaError, match=r'\$KNOCK_SPA_KEY is set but \$KNOCK_SPA_HMAC_KEY is not'):
        spa_client.keys_from_environment({'KNOCK_SPA_KEY': KEY_B64})
    with pytest.raises(spa.SpaError) as err:
        spa_client.keys_from_environment({'KNOCK_SPA_KEY': KEY_B64 + '!', 'KNOCK_SPA_HMAC_KEY': HMAC_B64})
    assert '$KNOCK_SPA_KEY is not base64' in str(err.value) and KEY_B64 not in str(err.value)


def _receiver(family=socket.AF_INET, address='127.0.0.1'):
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((address, 0))
    sock.settimeout(5)
    return sock


@pytest.mark.parametrize('family, address', [(socket.AF_INET, '127.0.0.1'), (socket.AF_INET6, '::1')])
def test_send_spa_is_one_datagram_that_decodes(family, address):
    receiver = _receiver(family, address)
    try:
        port = receiver.getsockname()[1]
        keys = spa_client.SpaKeys(KEY, HMAC_KEY, 'sha512')
        claim = spa_client.send_spa(address, keys, 'tcp/22,udp/53', spa_port=port, client_timeout=60, username='bob')
        data, sender = receiver.recvfrom(2000)
        receiver.settimeout(0.2)
        with pytest.raises(socket.timeout):
            receiver.recvfrom(2000)            # exactly one datagram
    finally:
        receiver.close()
    assert claim == address == sender[0]      # default claim: the address the kernel picks toward the host
    msg = spa.decode(data, KEY, HMAC_KEY, 'sha512')
    assert (msg.source, msg.access_string, msg.client_timeout, msg.username) == (address, 'tcp/22,udp/53', 60, 'bob')


def test_send_spa_claims_what_it_is_told():
    receiver = _receiver()
    try:
        port = receiver.getsockname()[1]
        keys = spa_client.SpaKeys(KEY, HMAC_KEY)
        assert spa_client.send_spa('127.0.0.1', keys, 'tcp/22', spa_port=port, allow_ip='0.0.0.0') == '0.0.0.0'
        assert spa.decode(receiver.recvfrom(2000)[0], KEY, HMAC_KEY).source == '0.0.0.0'
        assert spa_client.send_spa('127.0.0.1', keys, 'tcp/22', spa_port=port, source='127.0.0.1') == '127.0.0.1'
        assert spa.decode(receiver.recvfrom(2000)[0], KEY, HMAC_KEY).source == '127.0.0.1'
    finally:
        receiver.close()


def test_send_spa_errors():
    keys = spa_client.SpaKeys(KEY, HMAC_KEY)
    with pytest.raises(spa.SpaError, match='SPA access'):
        spa_client.send_spa('127.0.0.1', keys, 'icmp/1', spa_port=9)
    with pytest.raises(KnockSendError, match="cannot use source address '10.231.250.250'"):
        spa_client.send_spa('127.0.0.1', keys, 'tcp/22', spa_port=9, source='10.231.250.250')


def test_random_key_files_only_ever_raise_spa_error(tmp_path):
    import random
    rng = random.Random(14)
    words = ['[default]', '[x]', '[', 'KEY_BASE64', 'HMAC_KEY_BASE64', 'KEY', 'HMAC_KEY', 'HMAC_DIGEST_TYPE',
             'SPA_SERVER_PORT', 'ACCESS', 'ALLOW_IP', 'FW_TIMEOUT', 'USE_HMAC', 'SPOOF_USER', KEY_B64, HMAC_B64,
             'sha256', '0', '-1', '99999', 'source', 'resolve', 'tcp/22', '#', ';', '\t', ' ', '=', '\u00e9', '\x00']
    path = str(tmp_path / 'rc')
    for dummy in range(400):
        lines = [' '.join(rng.choice(words) for dummy in range(rng.randint(0, 3))) for dummy in range(rng.randint(0, 6))]
        data = '\n'.join(lines).encode('utf-8') if rng.random() < 0.9 else os.urandom(rng.randint(0, 64))
        with open(path, 'wb') as handle:
            handle.write(data)
        os.chmod(path, 0o600)
        try:
            settings = spa_client.load_rc_file(path, rng.choice([None, 'x']))
        except spa.SpaError as exc:
            assert KEY_B64[2:] not in str(exc) and HMAC_B64[2:-2] not in str(exc)
        else:
            assert settings.keys.key and settings.keys.hmac_key
