# -*- coding: utf-8 -*-
"""The SPA codec: fwknop 2.6.10 vectors, round trips, refusals and fuzzing (only SpaError)."""
from __future__ import absolute_import, division, print_function

import base64
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.portknock.knock.plugins.module_utils import spa
from ansible_collections.portknock.knock.plugins.module_utils.sequence import KnockValueError

# Test-only keys (made for these vectors, used nowhere else).
KEY_B64 = 'bhiSjhJD58p8vAw8dY5W0XfU47And08TneOnWj03s58='
HMAC_KEY_B64 = 'C7/hu0J/w/VIRQEQ/uiRsqYdkELIpZ+CHkP2M9JTH5GbKQ1FjdloTyajkN1wcpOJVE3oDXzaCJca4fbq86sC/Q=='
KEY = spa.key_from_base64(KEY_B64)
HMAC_KEY = spa.hmac_key_from_base64(HMAC_KEY_B64)
OTHER_KEY = bytes(bytearray(range(7, 39)))
ALL = list(spa.DIGESTS)

# Made by Debian's fwknop 2.6.10 client with the keys above:
#   fwknop --rc-file RC -A tcp/22,udp/53 -a 10.231.250.1 -D 10.231.250.2 -U alice -T -B FILE
FWKNOP_ACCESS = (
    '8J7Vgvc6I7+7otYCCC7rDt8M5P6gTSoRr2mV7YDpAyvm8u/F9Kmman+gOrcmq/qgZ+h8O73egEVZABVMwI2B2OUBtVvY'
    'fIVIIAFzgSOaEw+maSvwP3g8oAvzwxMopcwUcNqJV6f1Fk7ahwA18iCirVHq8570SXGTuopTT3/72n5kLsEDF5mwWExA'
    'PUcy0S7EJkDH+dvKlu7HlHxvXwcbADA4BC/mQK9pE')
# ... and with "-f 45 -m sha3_512 --hmac-digest-type sha384" (client timeout access, type 3)
FWKNOP_TIMEOUT = (
    '8vP5o1QcK9kMMLbyy0MfYQhczbdYymehCfXBAZiRLzCU3xqtCcHFZTUoyzNZPSwmjio/lMdc+R49ddT6VX3ZP6cCyli0'
    'VwJYaolTh/FdTgSLTRZtNKpqMx/F8PxeCABBMyuhcakz9BbnIkmIUnOQ/4qr9qEDfUS7mLbvMove6yS1aSKddhaEjPkT'
    'ls5qJKORyHRC72q+zBLedmJbpZBgSexWn1/wcK2SchFL9BZASoUINbg834ZNmNqwf0NWAUByuI/TZLO0gCU8kax+Ro1M'
    'KppvGlxYxP/YMpR38ELGTP4sXOxBVRAMy2')
ACCESS = (spa.Access('tcp', 22), spa.Access('udp', 53))


def salt_of(packet, hmac_digest='sha256'):
    body = packet[:-spa._b64_len(hmac_digest)]
    raw = base64.b64decode(spa.B64_SALT_PREFIX + body + '=' * (-len(spa.B64_SALT_PREFIX + body) % 4))
    return raw[8:16]


def test_fwknop_access_vector():
    msg = spa.decode(FWKNOP_ACCESS, KEY, HMAC_KEY)
    assert msg.source == '10.231.250.1'
    assert msg.access == ACCESS and msg.access_string == 'tcp/22,udp/53'
    assert (msg.timestamp, msg.client_timeout, msg.username) == (1796159368, 0, 'alice')
    assert (msg.message_type, msg.version, msg.rand_value) == (1, '3.0.0', '4656970931600805')
    assert msg.digest_type == 'sha256'
    assert msg.spa_digest == spa.replay_digest(FWKNOP_ACCESS) == spa.replay_digest(FWKNOP_ACCESS.encode())


def test_fwknop_client_timeout_vector():
    msg = spa.decode(FWKNOP_TIMEOUT.encode('ascii'), KEY, HMAC_KEY, 'SHA384')
    assert (msg.message_type, msg.client_timeout, msg.digest_type) == (3, 45, 'sha3_512')
    assert msg.access == ACCESS and msg.source == '10.231.250.1'


@pytest.mark.parametrize('packet, kwargs, hmac_digest', [
    (FWKNOP_ACCESS, {}, 'sha256'),
    (FWKNOP_TIMEOUT, {'client_timeout': 45, 'digest_type': 'sha3_512'}, 'sha384')])
def test_our_encoder_reproduces_fwknop_byte_for_byte(packet, kwargs, hmac_digest):
    """Same fields, same salt: the very bytes fwknop's client wrote (field order, base64, HMAC)."""
    msg = spa.decode(packet, KEY, HMAC_KEY, hmac_digest)
    ours = spa.encode(msg.source, 'tcp/22,udp/53', KEY, HMAC_KEY, username='alice',
                      timestamp=msg.timestamp, rand_value=msg.rand_value,
                      salt=salt_of(packet, hmac_digest), hmac_digest_type=hmac_digest, **kwargs)
    assert ours == packet


def test_replay_digest_is_sha256_of_the_packet_data():
    import hashlib
    expected = base64.b64encode(hashlib.sha256(FWKNOP_ACCESS.encode()).digest()).decode().rstrip('=')
    assert spa.replay_digest(FWKNOP_ACCESS) == expected


def test_key_derivation_is_openssl_evp_bytestokey_md5():
    import hashlib
    salt = b'\x01\x02\x03\x04\x05\x06\x07\x08'
    d1 = hashlib.md5(KEY + salt).digest()
    d2 = hashlib.md5(d1 + KEY + salt).digest()
    d3 = hashlib.md5(d2 + KEY + salt).digest()
    assert spa.derive_key_iv(KEY, salt) == (d1 + d2, d3)


@pytest.mark.parametrize('digest', ALL)
@pytest.mark.parametrize('hmac_digest', ALL)
def test_round_trip_every_digest_pair(digest, hmac_digest):
    data = spa.encode('10.231.250.1', [spa.Access('tcp', 22)], KEY, HMAC_KEY, digest_type=digest,
                      hmac_digest_type=hmac_digest, timestamp=1796159000)
    msg = spa.decode(data, KEY, HMAC_KEY, hmac_digest)
    assert (msg.digest_type, msg.access, msg.timestamp) == (digest, (spa.Access('tcp', 22),), 1796159000)
    assert not data.startswith(spa.B64_SALT_PREFIX) and '=' not in data and ':' not in data


@pytest.mark.parametrize('source, expected', [
    ('10.231.250.1', '10.231.250.1'), ('0.0.0.0', '0.0.0.0'),
    ('fd42:706b:6c61:ff:0:0:0:1', 'fd42:706b:6c61:ff::1')])
def test_round_trip_sources_and_timeout(source, expected):
    data = spa.encode(source, 'udp/7313, tcp/4187', KEY, HMAC_KEY, client_timeout=90, username='ops-1')
    msg = spa.decode(data, KEY, HMAC_KEY)
    assert msg.source == expected and msg.client_timeout == 90 and msg.message_type == 3
    assert msg.access == (spa.Access('udp', 7313), spa.Access('tcp', 4187)) and msg.username == 'ops-1'


def test_two_encodings_differ_and_so_do_their_replay_digests():
    one = spa.encode('10.231.250.1', 'tcp/22', KEY, HMAC_KEY, timestamp=1)
    two = spa.encode('10.231.250.1', 'tcp/22', KEY, HMAC_KEY, timestamp=1)
    assert one != two and spa.replay_digest(one) != spa.replay_digest(two)


def test_without_hmac():
    data = spa.encode('10.231.250.1', 'tcp/22', KEY, None)
    assert spa.decode(data, KEY, None).access == (spa.Access('tcp', 22),)
    with pytest.raises(spa.SpaError):   # an HMAC is required when the stanza has an HMAC key
        spa.decode(data, KEY, HMAC_KEY)


@pytest.mark.parametrize('key, hmac_key, hmac_digest, reason', [
    (OTHER_KEY, HMAC_KEY, 'sha256', 'decrypt'),
    (KEY, OTHER_KEY, 'sha256', 'HMAC'),
    (KEY, HMAC_KEY, 'sha512', 'HMAC'),
    (KEY, HMAC_KEY, 'sha3_256', 'HMAC')])
def test_wrong_keys_are_refused(key, hmac_key, hmac_digest, reason):
    with pytest.raises(spa.SpaError, match=reason):
        spa.decode(FWKNOP_ACCESS, key, hmac_key, hmac_digest)


def test_the_salted_prefix_is_refused_like_fwknopd_does():
    with pytest.raises(spa.SpaError, match='prefix'):
        spa.decode(spa.B64_SALT_PREFIX + FWKNOP_ACCESS, KEY, HMAC_KEY)


@pytest.mark.parametrize('kwargs, match', [
    ({'source': '10.231.250.300'}, 'not an IP address'),
    ({'source': 'example.org'}, 'not an IP address'),
    ({'source': 'fe80::1%eth0'}, 'not an IP address'),
    ({'access': ''}, 'empty'),
    ({'access': 22}, 'proto/port'),
    ({'access': None}, 'proto/port'),
    ({'access': 'tcp/0'}, 'out of range'),
    ({'access': 'tcp/65536'}, 'out of range'),
    ({'access': 'icmp/22'}, 'proto/port'),
    ({'access': 'tcp22'}, 'proto/port'),
    ({'access': 'tcp/ 22'}, 'proto/port'),
    ({'client_timeout': -1}, 'client timeout'),
    ({'client_timeout': True}, 'client timeout'),
    ({'client_timeout': '60'}, 'client timeout'),
    ({'username': 'a:b'}, 'username'),
    ({'username': ''}, 'username'),
    ({'username': 'x' * 65}, 'username'),
    ({'timestamp': -1}, 'timestamp'),
    ({'rand_value': '123'}, 'random value'),
    ({'salt': b'1234'}, 'salt'),
    ({'digest_type': 'sha224'}, 'digest type'),
    ({'hmac_digest_type': 'blake2b'}, 'HMAC digest type'),
    ({'key': b''}, 'encryption key'),
    ({'key': b'k' * 33}, 'encryption key'),
    ({'key': 'text'}, 'encryption key'),
    ({'hmac_key': b'h' * 129}, 'HMAC key'),
    ({'access': ['tcp/22'] * 40}, 'longer than'),
])
def test_encode_refuses_bad_parameters(kwargs, match):
    args = dict(source='10.231.250.1', access='tcp/22', key=KEY, hmac_key=HMAC_KEY)
    args.update(kwargs)
    with pytest.raises(spa.SpaError, match=match):
        spa.encode(**args)


@pytest.mark.parametrize('value', ['not base64!', 'QUJD=A', 'QUJDRABCD', '', '====', None, 42, b'\xff\xfe'])
def test_key_from_base64_errors_name_the_setting_not_the_value(value):
    with pytest.raises(spa.SpaError) as info:
        spa.key_from_base64(value)
    assert 'KEY_BASE64' in str(info.value)
    if isinstance(value, str) and value:
        assert value not in str(info.value)


def test_key_from_base64_lengths():
    assert len(spa.key_from_base64(KEY_B64)) == 32 and len(spa.hmac_key_from_base64(HMAC_KEY_B64)) == 64
    with pytest.raises(spa.SpaError, match='HMAC_KEY_BASE64 must be 1 to 128 bytes'):
        spa.hmac_key_from_base64(base64.b64encode(b'h' * 129).decode())
    with pytest.raises(spa.SpaError, match='KEY_BASE64 must be 1 to 32 bytes'):
        spa.key_from_base64(HMAC_KEY_B64)


def test_errors_are_knock_value_errors():
    assert issubclass(spa.SpaError, KnockValueError) and issubclass(spa.SpaDependencyError, spa.SpaError)


def test_without_cryptography_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setattr(spa, '_CIPHER', [])
    monkeypatch.setitem(sys.modules, 'cryptography.hazmat.primitives.ciphers', None)
    with pytest.raises(spa.SpaDependencyError, match='python3-cryptography'):
        spa.decode(FWKNOP_ACCESS, KEY, HMAC_KEY)


def test_decode_refuses_non_data():
    for data in (None, 12, ['x'], u'\u00e9' * 60):
        with pytest.raises(spa.SpaError):
            spa.decode(data, KEY, HMAC_KEY)


def _sealed(plaintext, hmac_digest='sha256'):
    """Encrypt and authenticate any plaintext with the test keys (reaches the inner parser)."""
    data = spa.encrypt(plaintext, KEY)
    return data + spa._hmac_b64(hmac_digest, HMAC_KEY, (spa.B64_SALT_PREFIX + data).encode())


def _with_digest(body, digest='sha256'):
    return ('%s:%s' % (body, spa._digest_b64(digest, body.encode()))).encode()


@pytest.mark.parametrize('body, match', [
    ('1234:cm9vdA:1796159000:3.0.0:1:MTAuMjMxLjI1MC4xLHRjcC8yMg', 'random value'),
    ('4656970931600805:YTpi:1796159000:3.0.0:1:MTAuMjMxLjI1MC4xLHRjcC8yMg', 'username'),
    ('4656970931600805:IHg:1796159000:3.0.0:1:MTAuMjMxLjI1MC4xLHRjcC8yMg', 'username'),
    ('4656970931600805::1796159000:3.0.0:1:MTAuMjMxLjI1MC4xLHRjcC8yMg', 'username'),
    ('4656970931600805:cm9vdA:-5:3.0.0:1:MTAuMjMxLjI1MC4xLHRjcC8yMg', 'timestamp'),
    ('4656970931600805:cm9vdA:1796159000:3.0.0:0:MTAuMjMxLjI1MC4xLHRjcC8yMg', 'command'),
    ('4656970931600805:cm9vdA:1796159000:3.0.0:2:MTAuMjMxLjI1MC4xLHRjcC8yMg', 'NAT'),
    ('4656970931600805:cm9vdA:1796159000:3.0.0:1:MTAuMjMxLjI1MC4xLHRjcC8yMg:60', 'fields'),
    ('4656970931600805:cm9vdA:1796159000:3.0.0:3:MTAuMjMxLjI1MC4xLHRjcC8yMg', 'fields'),
    ('4656970931600805:cm9vdA:1796159000:3.0.0:3:MTAuMjMxLjI1MC4xLHRjcC8yMg:x', 'client timeout'),
    ('4656970931600805:cm9vdA:1796159000:3.0.0:1:' + spa._b64encode(b'10.231.250.1'), 'IP,proto/port'),
    ('4656970931600805:cm9vdA:1796159000:3.0.0:1:' + spa._b64encode(b'host,tcp/22'), 'IP address'),
    ('4656970931600805:cm9vdA:1796159000:3.0.0:1:' + spa._b64encode(b'fe80::1%lo,tcp/22'), 'IP address'),
    ('4656970931600805:cm9vdA:1796159000:3.0.0:1:' + spa._b64encode(b'10.231.250.1,TCP/22'), 'proto/port'),
    ('4656970931600805:cm9vdA:1796159000:3.0.0:1:' + spa._b64encode(b'10.231.250.1,tcp/99999'), 'out of range'),
    ('4656970931600805:cm9vdA:1796159000:3.0.0:1:' + spa._b64encode(b'10.231.250.1,tcp/123456'), 'proto/port'),
    ('4656970931600805:cm9vdA:1796159000:3.0.0:1:' + spa._b64encode(b'10.231.250.1,tcp/22,'), 'proto/port'),
    ('4656970931600805:cm9vdA:1796159000:3.0.0:1:' + spa._b64encode(b'10.231.250.1,tcp/0'), 'out of range'),
    ('4656970931600805:cm9vdA:1796159000:3.0.0:1:!!', 'base64'),
    ('4656970931600805:cm9vdA:1796159000:3 0:1:MTAuMjMxLjI1MC4xLHRjcC8yMg', 'version'),
])
def test_inner_fields_are_checked(body, match):
    with pytest.raises(spa.SpaError, match=match):
        spa.decode(_sealed(_with_digest(body)), KEY, HMAC_KEY)


def test_inner_digest_must_match():
    body = '4656970931600805:cm9vdA:1796159000:3.0.0:1:MTAuMjMxLjI1MC4xLHRjcC8yMg'
    bad = body.encode() + b':' + spa._digest_b64('sha256', b'other').encode()
    with pytest.raises(spa.SpaError, match='digest does not match'):
        spa.decode(_sealed(bad), KEY, HMAC_KEY)
    assert spa.decode(_sealed(_with_digest(body, 'sha3_256')), KEY, HMAC_KEY).digest_type == 'sha3_256'


# --- the cheap checks before the HMAC: never refuse what a key holder can send ---------------

def test_every_rijndael_text_fwknop_sends_has_a_length_and_first_character_the_checks_allow():
    for size in range(0, 700):
        text = spa.encrypt(b'x' * size, KEY).encode()
        assert len(text) in spa._CIPHER_TEXT_LENGTHS and text[0] in spa._CIPHER_TEXT_FIRST


@pytest.mark.parametrize('hmac_digest', ALL)
def test_every_hmac_passes_the_last_character_check(hmac_digest):
    decoder = spa.Decoder(KEY, HMAC_KEY, hmac_digest)
    for n in range(64):
        data = spa.encode('10.231.250.1', 'tcp/%d' % (1 + n), KEY, HMAC_KEY, hmac_digest_type=hmac_digest)
        assert decoder.decode(data).access == (spa.Access('tcp', 1 + n),)


class NoHmac:
    def copy(self):
        raise AssertionError('the HMAC was computed')


@pytest.mark.parametrize('data', [
    FWKNOP_ACCESS[:-1],                                   # a length Rijndael text + HMAC never has
    'A' + FWKNOP_ACCESS[1:],                              # cannot follow Salted__
    FWKNOP_ACCESS[:-1] + ('B' if FWKNOP_ACCESS[-1] != 'B' else 'C'),   # bits a SHA-256 never sets
])
def test_data_no_key_could_make_spa_is_refused_before_the_hmac(data):
    decoder = spa.Decoder(KEY, HMAC_KEY)
    decoder._hmac = NoHmac()
    with pytest.raises(spa.SpaAuthError, match='HMAC') as info:
        decoder.authenticate(spa.check_data(data))
    assert not isinstance(info.value, spa.SpaHmacMismatch)


def test_a_wrong_hmac_is_a_mismatch_after_the_checks():
    with pytest.raises(spa.SpaHmacMismatch, match='HMAC does not match'):
        spa.decode(FWKNOP_ACCESS, KEY, OTHER_KEY)


def test_a_decoder_is_decode_with_its_keys_and_says_nothing_of_them():
    decoder = spa.Decoder(KEY, HMAC_KEY)
    msg = decoder.decode(FWKNOP_ACCESS.encode())
    assert msg == spa.decode(FWKNOP_ACCESS, KEY, HMAC_KEY)
    assert msg.spa_digest == spa.replay_digest(FWKNOP_ACCESS)
    text = decoder.authenticate(spa.check_data(FWKNOP_ACCESS))
    assert decoder.open(text, 'D').spa_digest == 'D'
    for shown in (repr(decoder), str(decoder)):
        assert KEY_B64 not in shown and HMAC_KEY_B64 not in shown and 'sha256' in shown


# --- fuzzing: whatever arrives, SpaError or a valid message, never anything else ---------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
B64_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'


def _decodes_or_spa_error(data, hmac_key=HMAC_KEY, hmac_digest='sha256'):
    try:
        msg = spa.decode(data, KEY, hmac_key, hmac_digest)
    except spa.SpaError:
        return None
    assert isinstance(msg, spa.SpaMessage)
    return msg


@FUZZ
@given(st.binary(max_size=2000))
def test_fuzz_random_bytes(data):
    _decodes_or_spa_error(data)
    _decodes_or_spa_error(data, None)


@FUZZ
@given(st.text(alphabet=B64_CHARS + '=:\n', max_size=1600), st.sampled_from(ALL))
def test_fuzz_random_base64_text(data, hmac_digest):
    _decodes_or_spa_error(data, HMAC_KEY, hmac_digest)
    _decodes_or_spa_error(data, None)


@FUZZ
@given(st.sampled_from([FWKNOP_ACCESS, FWKNOP_TIMEOUT]), st.data())
def test_fuzz_truncated_and_extended(packet, data):
    cut = data.draw(st.integers(min_value=1, max_value=len(packet) - 1))
    assert _decodes_or_spa_error(packet[:cut]) is None
    assert _decodes_or_spa_error(packet[cut:]) is None
    assert _decodes_or_spa_error(packet + data.draw(st.text(alphabet=B64_CHARS, min_size=1, max_size=40))) is None


@FUZZ
@given(st.sampled_from([FWKNOP_ACCESS, FWKNOP_TIMEOUT]), st.data())
def test_fuzz_bit_flips(packet, data):
    raw = bytearray(packet.encode())
    for flip in range(data.draw(st.integers(min_value=1, max_value=4))):
        index = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
        raw[index] ^= 1 << data.draw(st.integers(min_value=0, max_value=7))
    if bytes(raw) != packet.encode():
        for hmac_key in (HMAC_KEY, None):
            assert _decodes_or_spa_error(bytes(raw), hmac_key, 'sha384') is None


@FUZZ
@given(st.binary(max_size=600))
def test_fuzz_authentic_random_plaintext(plaintext):
    """Random plaintext with a valid HMAC: the inner parser only raises SpaError."""
    _decodes_or_spa_error(_sealed(plaintext))


FIELD = st.one_of(st.text(alphabet=B64_CHARS + '=-. ,/', max_size=30), st.integers(0, 10 ** 20).map(str),
                  st.sampled_from(['1', '3', '0', '3.0.0', '4656970931600805', 'cm9vdA',
                                   'MTAuMjMxLjI1MC4xLHRjcC8yMg', '']))


@FUZZ
@given(st.lists(FIELD, min_size=1, max_size=9), st.sampled_from(ALL))
def test_fuzz_authentic_field_structures(fields, digest):
    """Well-formed digest, arbitrary fields: decodes or SpaError."""
    _decodes_or_spa_error(_sealed(_with_digest(':'.join(fields), digest)))


@FUZZ
@given(st.text(alphabet='0123456789abcdef.:,/tcpudp ', max_size=60), st.integers(0, 2 ** 31 - 1))
def test_fuzz_authentic_access_messages(message, timeout):
    fields = ['4656970931600805', 'cm9vdA', '1796159000', '3.0.0', '3' if timeout else '1',
              spa._b64encode(message.encode())] + ([str(timeout)] if timeout else [])
    msg = _decodes_or_spa_error(_sealed(_with_digest(':'.join(fields))))
    if msg is not None:
        assert spa.decode(spa.encode(msg.source, msg.access, KEY, HMAC_KEY, client_timeout=timeout),
                          KEY, HMAC_KEY).access == msg.access


@FUZZ
@given(st.binary(max_size=600), st.sampled_from(ALL))
def test_fuzz_authentic_data_always_reaches_the_hmac_and_passes_it(plaintext, hmac_digest):
    data = _sealed(plaintext, hmac_digest)
    assert spa.Decoder(KEY, HMAC_KEY, hmac_digest).authenticate(spa.check_data(data)) == data[:-spa._b64_len(
        hmac_digest)].encode()


def test_first_use_of_the_cipher_from_several_threads_at_once(monkeypatch):
    """The audit probes address families in threads: the lazy import must not race."""
    import threading
    monkeypatch.setattr(spa, '_CIPHER', [])
    errors = []

    def encode():
        try:
            spa.encode('10.231.0.9', 'tcp/22', b'k' * 32, b'h' * 64)
        except Exception as exc:   # noqa: BLE001 - the test records any failure
            errors.append(exc)
    threads = [threading.Thread(target=encode) for dummy in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(spa._CIPHER) == 1
