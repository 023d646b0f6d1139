# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""The SPA codec: encode, decode and verify fwknop 2.x single packet authorization data.

Wire-compatible with fwknop 2.6.10 (libfko, protocol version 3.0.0), Rijndael
(AES) in CBC mode with an HMAC, as fwknop's client sends by default:

* plaintext: ``RAND:b64(USER):TIMESTAMP:VERSION:TYPE:b64(IP,proto/port[,...])``
  then ``:CLIENT_TIMEOUT`` for message type 3 (client timeout access), then
  ``:DIGEST`` (a digest of everything before it).  ``b64`` is base64 without
  ``=`` padding; RAND is 16 decimal digits.
* encryption: a random 8-byte salt, key and IV from fwknop's (PBKDF1 /
  OpenSSL ``EVP_BytesToKey``-style) MD5 chain over ``key + salt`` (32-byte
  AES-256 key, 16-byte IV), PKCS#7 padding, ``b"Salted__" + salt +
  ciphertext`` in base64 without padding and without its constant first
  10 characters ``U2FsdGVkX1``.
* authentication: the HMAC with the HMAC key of that base64 text WITH its
  ``U2FsdGVkX1`` prefix (as libfko computes it before stripping the prefix),
  base64 without padding, appended directly (no separator).

The replay digest (``SpaMessage.spa_digest``) is what fwknopd keeps in its
digest.cache: SHA-256 over the packet data exactly as received, base64 without
padding.  Checking a message's age, its source or replay is the caller's job:
this module is pure (no clock, no I/O).

Cost of junk (a receiver under a flood): ``Decoder`` holds what one set of keys
needs computed once (the HMAC state with the ``U2FsdGVkX1`` prefix already
absorbed, the HMAC's base64 length).  Before any key is used, ``check_data`` and
``Decoder.authenticate`` refuse data that no fwknop client can send and no key
could make acceptable: bytes outside the base64 alphabet, a length that is not
Rijndael text (``Salted__``, 8-byte salt, 16-byte blocks, in base64 without its
10-character prefix) plus the HMAC, a first character that cannot follow
``Salted__`` (only ``8 9 + /`` can), an HMAC whose last base64 character has
bits a digest of that size never sets.  These look at the data only, never at a
key, so they tell an attacker nothing; every such packet would fail the HMAC
comparison (or the decryption) anyway.  The HMAC itself is compared in constant
time (hmac.compare_digest) before anything is decrypted or parsed.

Hashes come from the standard library; only AES needs the ``cryptography``
package, imported on first use (ansible-core has it on the controller;
``python3-cryptography`` on Debian hosts).  Every bad input raises SpaError
with a message that never contains key material.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import collections
import hashlib
import hmac
import ipaddress
import os
import random
import re
import time

from .sequence import KnockValueError, parse_port

# Message digest / HMAC types: fwknop's names (``-m``, ``--hmac-digest-type``,
# ``HMAC_DIGEST_TYPE``) -> hashlib names; fwknop's numbers (fko.h) in comments.
DIGESTS = collections.OrderedDict([
    ('md5', 'md5'),            # 1
    ('sha1', 'sha1'),          # 2
    ('sha256', 'sha256'),      # 3, the default
    ('sha384', 'sha384'),      # 4
    ('sha512', 'sha512'),      # 5
    ('sha3_256', 'sha3_256'),  # 6
    ('sha3_512', 'sha3_512'),  # 7
])
DEFAULT_DIGEST = 'sha256'
DEFAULT_HMAC_DIGEST = 'sha256'
ACCESS_MSG = 1                  # FKO_ACCESS_MSG
CLIENT_TIMEOUT_ACCESS_MSG = 3   # FKO_CLIENT_TIMEOUT_ACCESS_MSG
MESSAGE_TYPES = {0: 'command', 1: 'access', 2: 'NAT access', 3: 'client timeout access',
                 4: 'client timeout NAT access', 5: 'local NAT access',
                 6: 'client timeout local NAT access'}
PROTOCOL_VERSION = '3.0.0'      # FKO_PROTOCOL_VERSION of fwknop 2.6.10
SPA_PROTOCOLS = ('tcp', 'udp')  # what fwknop's client accepts in -A (lower case only)
DEFAULT_SPA_PORT = 62201
MAX_PACKET_LEN = 1500           # fwknop's MAX_SPA_PACKET_LEN
MIN_PACKET_LEN = 36             # fwknopd's MIN_SPA_DATA_SIZE: shorter is not SPA
MAX_KEY_LEN = 32                # RIJNDAEL_MAX_KEYSIZE
MAX_HMAC_KEY_LEN = 128          # MAX_DIGEST_BLOCK_LEN
MAX_USERNAME_LEN = 64           # MAX_SPA_USERNAME_SIZE
MAX_MESSAGE_LEN = 256           # MAX_SPA_MESSAGE_SIZE
MAX_VERSION_LEN = 8             # MAX_SPA_VERSION_SIZE
MAX_CLIENT_TIMEOUT = 2 ** 31 - 1
MAX_TIMESTAMP = 2 ** 63 - 1
SALT_PREFIX = b'Salted__'
B64_SALT_PREFIX = 'U2FsdGVkX1'  # base64 of SALT_PREFIX's first bytes: never on the wire
SALT_LEN = 8
BLOCK = 16
RAND_LEN = 16

_B64_ALPHABET = b'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
_B64_PREFIX_BYTES = B64_SALT_PREFIX.encode('ascii')
# The lengths of fwknop's Rijndael text: base64 (unpadded) of Salted__ + salt + 16-byte blocks,
# without the 10 prefix characters; and its first character: the last 4 bits of "Salted__"
# ('_', 0x5F) then 2 bits of salt are base64 digits 60 to 63.
_CIPHER_TEXT_LENGTHS = frozenset((4 * size + 2) // 3 - len(B64_SALT_PREFIX)
                                 for size in range(len(SALT_PREFIX) + SALT_LEN + BLOCK, MAX_PACKET_LEN + 1, BLOCK))
_CIPHER_TEXT_FIRST = frozenset(_B64_ALPHABET[60:])
_DIGEST_SIZES = dict((name, hashlib.new(DIGESTS[name]).digest_size) for name in DIGESTS)
_B64_LENGTHS = dict((name, (4 * size + 2) // 3) for name, size in _DIGEST_SIZES.items())
_B64_PADDED_RE = re.compile(r'^([A-Za-z0-9+/]*)(={0,2})\Z')
_DIGITS_RE = re.compile(r'^[0-9]+\Z')
_RAND_RE = re.compile(r'^[0-9]{16}\Z')
_PORT_RE = re.compile(r'^[0-9]{1,5}\Z')
_USERNAME_RE = re.compile(r'^[!-9;-~][ -9;-~]*\Z')   # printable ASCII, no ':', no leading space
_VERSION_RE = re.compile(r'^[0-9A-Za-z._-]+\Z')
_CIPHER = []                     # the cryptography pieces, imported once on first use


class SpaError(KnockValueError):
    """SPA data or an SPA parameter is bad; the message says why, without key material."""


class SpaDependencyError(SpaError):
    """The ``cryptography`` package, needed for AES, cannot be imported."""


class SpaAuthError(SpaError):
    """The data does not authenticate with the HMAC key (or cannot carry an HMAC that would)."""


class SpaHmacMismatch(SpaAuthError):
    """The HMAC was computed and does not match (the costly refusal)."""


Access = collections.namedtuple('Access', ['protocol', 'port'])
Access.__str__ = lambda self: '%s/%d' % (self.protocol, self.port)


class SpaMessage(collections.namedtuple('SpaMessage', [
        'source', 'access', 'timestamp', 'client_timeout', 'username',
        'spa_digest', 'message_type', 'version', 'rand_value', 'digest_type'])):
    """One decoded and verified access request.

    ``source``: the address inside the message (``0.0.0.0`` for fwknop's
    ``-s``), normalized text; ``access``: tuple of Access; ``timestamp``:
    seconds since the epoch as the client claims; ``client_timeout``: seconds
    asked with fwknop's ``-f`` (0 if none); ``spa_digest``: the replay digest
    of the whole packet data; ``digest_type``: the inner digest's name.
    """
    __slots__ = ()

    @property
    def access_string(self):
        return ','.join(str(item) for item in self.access)


def _b64encode(data):
    """fwknop's base64: standard alphabet, ``=`` padding stripped."""
    return base64.b64encode(data).decode('ascii').rstrip('=')


def _b64decode(text, what):
    """Decode unpadded (or padded) standard base64 strictly, or raise SpaError naming ``what``."""
    match = _B64_PADDED_RE.match(text) if isinstance(text, str) else None
    if not match or len(match.group(1)) % 4 == 1 or (match.group(2) and len(text) % 4):
        raise SpaError('%s is not base64' % what)
    body = match.group(1)
    try:
        return base64.b64decode(body + '=' * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SpaError('%s is not base64' % what)


def parse_digest_type(value, what='digest type'):
    """``sha256``, ``SHA256``, ``sha3_256``... (fwknop's names) -> our lower-case name."""
    name = str(value).strip().lower().replace('-', '_') if isinstance(value, str) else None
    if name not in DIGESTS:
        raise SpaError('%s %r is not one of %s' % (what, value, ', '.join(DIGESTS)))
    return name


def key_from_base64(value, what='KEY_BASE64', max_len=MAX_KEY_LEN):
    """Decode a ``KEY_BASE64`` / ``HMAC_KEY_BASE64`` value; errors name ``what``, never the value."""
    if isinstance(value, bytes):
        try:
            value = value.decode('ascii')
        except UnicodeDecodeError:
            raise SpaError('%s is not base64' % what)
    if not isinstance(value, str):
        raise SpaError('%s is not base64 text' % what)
    key = _b64decode(value.strip(), what)
    _check_key(key, what, max_len)
    return key


def hmac_key_from_base64(value, what='HMAC_KEY_BASE64'):
    return key_from_base64(value, what, MAX_HMAC_KEY_LEN)


def _check_key(key, what, max_len):
    if not isinstance(key, bytes):
        raise SpaError('%s must be bytes' % what)
    if not 0 < len(key) <= max_len:
        raise SpaError('%s must be 1 to %d bytes long, not %d' % (what, max_len, len(key)))


def _cipher_parts():
    if not _CIPHER:
        try:
            from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
        except ImportError as exc:
            raise SpaDependencyError(
                'SPA needs the Python package "cryptography" (Debian: python3-cryptography): %s' % exc)
        # one assignment, not extend(): threads (the audit probes families at once) may race here
        _CIPHER[:] = [(Cipher, algorithms.AES, modes.CBC)]
    return _CIPHER[0]


def _aes_cbc(key, iv):
    Cipher, AES, CBC = _cipher_parts()
    try:
        return Cipher(AES(key), CBC(iv))
    except TypeError:   # cryptography < 3.1 still wants a backend
        from cryptography.hazmat.backends import default_backend
        return Cipher(AES(key), CBC(iv), backend=default_backend())


def derive_key_iv(key, salt):
    """fwknop's rij_salt_and_iv() for CBC mode: D1 = MD5(key+salt), Dn = MD5(Dn-1+key+salt)."""
    material = b''
    block = b''
    while len(material) < MAX_KEY_LEN + BLOCK:
        block = hashlib.md5(block + key + salt).digest()
        material += block
    return material[:MAX_KEY_LEN], material[MAX_KEY_LEN:MAX_KEY_LEN + BLOCK]


def _digest_b64(name, data):
    return _b64encode(hashlib.new(DIGESTS[name], data).digest())


def _hmac_b64(name, key, data):
    return _b64encode(hmac.new(key, data, getattr(hashlib, DIGESTS[name])).digest())


def _b64_len(name):
    return _B64_LENGTHS[name]


def _last_characters(size):
    """The bytes the last character of unpadded base64 of ``size`` bytes can be (unused bits are 0)."""
    return frozenset(_B64_ALPHABET[::(1, 16, 4)[size % 3]])


def replay_digest(data):
    """fwknopd's replay digest of received SPA data: SHA-256 of the raw data, base64 unpadded."""
    return _digest_b64('sha256', _packet_bytes(data))


def _packet_bytes(data):
    if isinstance(data, str):
        try:
            data = data.encode('ascii')
        except UnicodeEncodeError:
            raise SpaError('SPA data is not ASCII')
    if not isinstance(data, (bytes, bytearray)):
        raise SpaError('SPA data must be bytes or text, not %s' % type(data).__name__)
    return bytes(data)


def _address(text):
    """A plain numeric address (no IPv6 scope), or None."""
    try:
        return None if '%' in text else ipaddress.ip_address(text)
    except ValueError:
        return None


def _access_message(source, access):
    address = _address(str(source).strip())
    if address is None:
        raise SpaError('SPA source address %r is not an IP address' % (source,))
    items = access
    if isinstance(access, str):
        items = [part for part in access.split(',') if part.strip()]
    elif isinstance(access, Access):
        items = [access]
    elif not isinstance(access, (list, tuple)):
        raise SpaError('SPA access %r is not proto/port or a list of them' % (access,))
    if not items:
        raise SpaError('SPA access list is empty')
    parsed = []
    for item in items:
        if isinstance(item, Access):
            parsed.append(_access_item('%s/%s' % item))
        else:
            parsed.append(_access_item(str(item).strip().lower()))
    return '%s,%s' % (address.compressed, ','.join(str(item) for item in parsed))


def _access_item(text):
    """``tcp/22`` -> Access('tcp', 22), strictly as fwknop's client writes it."""
    proto, sep, port = text.partition('/')
    if not sep or proto not in SPA_PROTOCOLS or not _PORT_RE.match(port):
        raise SpaError('SPA access %r is not proto/port with proto one of %s' % (text, ', '.join(SPA_PROTOCOLS)))
    try:
        return Access(proto, parse_port(port, 'SPA access port'))
    except KnockValueError as exc:
        raise SpaError(str(exc))


def _check_keys(key, hmac_key):
    _check_key(key, 'SPA encryption key', MAX_KEY_LEN)
    if hmac_key is not None:
        _check_key(hmac_key, 'SPA HMAC key', MAX_HMAC_KEY_LEN)


def encode(source, access, key, hmac_key, client_timeout=0, username='root', timestamp=None,
           digest_type=DEFAULT_DIGEST, hmac_digest_type=DEFAULT_HMAC_DIGEST,
           rand_value=None, salt=None):
    """Build the SPA packet data (ASCII text, what goes in the UDP payload).

    ``source``: the address to open (``0.0.0.0`` as with fwknop's ``-s``; IPv6
    goes beyond fwknop); ``access``: ``"tcp/22,udp/53"`` or a list of such
    items or Access; ``key``/``hmac_key``: raw key bytes (see key_from_base64;
    ``hmac_key=None`` sends no HMAC, as fwknop without ``--use-hmac``);
    ``client_timeout`` > 0 makes a client timeout access message (type 3).
    ``timestamp``, ``rand_value`` and ``salt`` are for tests.
    """
    _check_keys(key, hmac_key)
    digest_type = parse_digest_type(digest_type, 'SPA digest type')
    hmac_digest_type = parse_digest_type(hmac_digest_type, 'SPA HMAC digest type')
    message = _access_message(source, access)
    if isinstance(client_timeout, bool) or not isinstance(client_timeout, int) \
            or not 0 <= client_timeout <= MAX_CLIENT_TIMEOUT:
        raise SpaError('SPA client timeout %r is not a number of seconds (0 for none)' % (client_timeout,))
    if not isinstance(username, str) or not _USERNAME_RE.match(username) or len(username) > MAX_USERNAME_LEN:
        raise SpaError('SPA username %r is not 1 to %d printable characters without ":"'
                       % (username, MAX_USERNAME_LEN))
    timestamp = int(time.time()) if timestamp is None else timestamp
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise SpaError('SPA timestamp %r is not a number of seconds since the epoch' % (timestamp,))
    if rand_value is None:
        rand_value = '%016d' % random.SystemRandom().randrange(10 ** RAND_LEN)
    if not isinstance(rand_value, str) or not _RAND_RE.match(rand_value):
        raise SpaError('SPA random value %r is not 16 digits' % (rand_value,))
    if len(message) > MAX_MESSAGE_LEN:
        raise SpaError('SPA access message is longer than %d characters' % MAX_MESSAGE_LEN)
    fields = [rand_value, _b64encode(username.encode('ascii')), str(timestamp), PROTOCOL_VERSION,
              str(CLIENT_TIMEOUT_ACCESS_MSG if client_timeout else ACCESS_MSG),
              _b64encode(message.encode('ascii'))]
    if client_timeout:
        fields.append(str(client_timeout))
    encoded = ':'.join(fields)
    plaintext = ('%s:%s' % (encoded, _digest_b64(digest_type, encoded.encode('ascii')))).encode('ascii')
    data = encrypt(plaintext, key, salt)
    if hmac_key is not None:
        data += _hmac_b64(hmac_digest_type, hmac_key, (B64_SALT_PREFIX + data).encode('ascii'))
    if len(data) > MAX_PACKET_LEN:
        raise SpaError('SPA packet would be longer than %d bytes' % MAX_PACKET_LEN)
    return data


def encrypt(plaintext, key, salt=None):
    """fwknop's Rijndael CBC: the base64 text of Salted__+salt+ciphertext, without padding and prefix."""
    _check_key(key, 'SPA encryption key', MAX_KEY_LEN)
    if salt is None:
        salt = os.urandom(SALT_LEN)
    if not isinstance(salt, bytes) or len(salt) != SALT_LEN:
        raise SpaError('SPA salt must be %d bytes' % SALT_LEN)
    aes_key, iv = derive_key_iv(key, salt)
    pad = BLOCK - len(plaintext) % BLOCK
    encryptor = _aes_cbc(aes_key, iv).encryptor()
    ciphertext = encryptor.update(plaintext + bytes(bytearray([pad] * pad))) + encryptor.finalize()
    text = _b64encode(SALT_PREFIX + salt + ciphertext)
    return text[len(B64_SALT_PREFIX):]


def decrypt(text, key):
    """The inverse of encrypt(): plaintext bytes, or SpaError (wrong key, damaged data)."""
    _check_key(key, 'SPA encryption key', MAX_KEY_LEN)
    return _decrypt(_b64decode(B64_SALT_PREFIX + text, 'SPA data'), key)


def _decrypt(raw, key):
    """Plaintext of the decoded ``Salted__`` + salt + ciphertext ``raw``, or SpaError."""
    if not raw.startswith(SALT_PREFIX) or len(raw) < len(SALT_PREFIX) + SALT_LEN + BLOCK \
            or (len(raw) - len(SALT_PREFIX) - SALT_LEN) % BLOCK:
        raise SpaError('SPA data is not Rijndael CBC data (bad length)')
    salt = raw[len(SALT_PREFIX):len(SALT_PREFIX) + SALT_LEN]
    aes_key, iv = derive_key_iv(key, salt)
    decryptor = _aes_cbc(aes_key, iv).decryptor()
    padded = decryptor.update(raw[len(SALT_PREFIX) + SALT_LEN:]) + decryptor.finalize()
    pad = bytearray(padded[-1:])[0]
    if not 1 <= pad <= BLOCK or padded[-pad:] != bytes(bytearray([pad] * pad)):
        raise SpaError('SPA data does not decrypt with this key')
    return padded[:-pad]


def decode(data, key, hmac_key, hmac_digest_type=DEFAULT_HMAC_DIGEST):
    """Verify and decode received SPA data (bytes or text) into a SpaMessage.

    ``hmac_key=None`` accepts data without an HMAC (fwknop without
    ``--use-hmac``): only for stanzas that have no HMAC key.  Raises SpaError
    for anything that is not an authentic access request made with these keys
    (SpaAuthError when the HMAC does not match).  A receiver that decodes many
    packets with the same keys keeps a Decoder instead.
    """
    return Decoder(key, hmac_key, hmac_digest_type).decode(data)


def check_data(data):
    """Received SPA data (bytes or text) -> bytes, or SpaError when no key could make it SPA.

    Size (fwknopd's bounds), the base64 alphabet, no ``U2FsdGVkX1`` prefix: what does not
    depend on the keys, done once per packet whatever the number of stanzas.
    """
    raw = data if type(data) is bytes else _packet_bytes(data)   # pylint: disable=unidiomatic-typecheck
    if not MIN_PACKET_LEN <= len(raw) <= MAX_PACKET_LEN:
        raise SpaError('SPA data has %d bytes, not %d to %d' % (len(raw), MIN_PACKET_LEN, MAX_PACKET_LEN))
    if raw.translate(None, _B64_ALPHABET):
        raise SpaError('SPA data is not base64')
    if raw.startswith(_B64_PREFIX_BYTES):
        # fwknopd refuses it too: the same packet with and without the prefix would be two digests.
        raise SpaError('SPA data starts with the Salted__ prefix that fwknop strips')
    return raw


class Decoder:
    """decode() with one set of keys, what does not change from packet to packet computed once.

    ``authenticate(raw)`` (after check_data) checks the HMAC and returns the Rijndael text;
    ``open(text, spa_digest)`` decrypts and parses it.  A receiver looks the packet up in its
    replay cache in between (only authentic packets cost the digest).  Errors never hold keys.
    """

    def __init__(self, key, hmac_key, hmac_digest_type=DEFAULT_HMAC_DIGEST):
        _check_keys(key, hmac_key)
        self.hmac_digest_type = parse_digest_type(hmac_digest_type, 'SPA HMAC digest type')
        self._key = key
        self._hmac = None
        self.hmac_length = 0
        self._hmac_last = frozenset()
        if hmac_key is not None:
            # the HMAC is over U2FsdGVkX1 + the text: that prefix is absorbed once, each packet copies
            self._hmac = hmac.new(hmac_key, _B64_PREFIX_BYTES, DIGESTS[self.hmac_digest_type])
            self.hmac_length = _B64_LENGTHS[self.hmac_digest_type]
            self._hmac_last = _last_characters(_DIGEST_SIZES[self.hmac_digest_type])

    def __repr__(self):
        return 'Decoder(hmac_digest_type=%r)' % (self.hmac_digest_type if self._hmac is not None else None)

    def verify(self, raw):
        """``(text, computed)`` for ``raw`` (what check_data returned); never raises.

        ``text``: the Rijndael text (bytes) when the HMAC matches (without an HMAC key: when the
        data has the shape of Rijndael text), else None; ``computed``: whether an HMAC was
        computed (compared in constant time).  Data that cannot carry a matching HMAC over
        Rijndael text is refused without computing it.
        """
        length = self.hmac_length
        size = len(raw) - length
        if size not in _CIPHER_TEXT_LENGTHS or raw[0] not in _CIPHER_TEXT_FIRST:
            return None, False
        if not length:
            return raw, False
        if raw[-1] not in self._hmac_last:
            return None, False
        body = raw[:size]
        mac = self._hmac.copy()
        mac.update(body)
        if hmac.compare_digest(binascii.b2a_base64(mac.digest(), newline=False).rstrip(b'='), raw[size:]):
            return body, True
        return None, True

    def authenticate(self, raw):
        """verify() that raises: the Rijndael text, or SpaAuthError (SpaHmacMismatch once computed) / SpaError."""
        text, computed = self.verify(raw)
        if text is not None:
            return text
        if not self.hmac_length:
            raise SpaError('SPA data is not Rijndael CBC data (bad length)')
        if computed:
            raise SpaHmacMismatch('SPA HMAC does not match (wrong HMAC key or digest type, or damaged data)')
        if len(raw) <= self.hmac_length:
            raise SpaAuthError('SPA data is too short for a %s HMAC' % self.hmac_digest_type)
        raise SpaAuthError('SPA HMAC does not match (the data cannot be Rijndael text with a %s HMAC)'
                           % self.hmac_digest_type)

    def open(self, text, spa_digest):
        """The SpaMessage of the authenticated Rijndael ``text``; ``spa_digest``: the packet's replay digest."""
        padded = _B64_PREFIX_BYTES + text
        try:
            raw = binascii.a2b_base64(padded + b'=' * (-len(padded) % 4))
        except (binascii.Error, ValueError):
            raise SpaError('SPA data is not base64')
        fields = _parse_plaintext(_decrypt(raw, self._key))
        return SpaMessage(spa_digest=spa_digest, **fields)

    def decode(self, data):
        """spa.decode() with these keys."""
        raw = check_data(data)
        return self.open(self.authenticate(raw), replay_digest(raw))


def _parse_plaintext(plaintext):
    try:
        text = plaintext.decode('ascii')
    except UnicodeDecodeError:
        raise SpaError('SPA data does not decrypt with this key (not text)')
    body, sep, digest = text.rpartition(':')
    if not sep:
        raise SpaError('SPA message has no digest')
    digest_type = None
    for name in DIGESTS:   # the length says which; SHA-256/SHA3-256 and SHA-512/SHA3-512 share one
        if _B64_LENGTHS[name] == len(digest) and hmac.compare_digest(
                _digest_b64(name, body.encode('ascii')).encode('ascii'), digest.encode('ascii')):
            digest_type = name
            break
    if digest_type is None:
        raise SpaError('SPA message digest does not match its fields')
    fields = body.split(':')
    if len(fields) < 6:
        raise SpaError('SPA message has %d fields, not 6 or 7' % len(fields))
    rand_value, user, timestamp, version, msg_type, message = fields[:6]
    if not _RAND_RE.match(rand_value):
        raise SpaError('SPA message random value is not 16 digits')
    try:
        username = _b64decode(user, 'SPA username').decode('ascii')
    except UnicodeDecodeError:
        raise SpaError('SPA username is not ASCII')
    if not _USERNAME_RE.match(username) or len(username) > MAX_USERNAME_LEN:
        raise SpaError('SPA username %r is not 1 to %d printable characters' % (username, MAX_USERNAME_LEN))
    if not _DIGITS_RE.match(timestamp) or len(timestamp) > 19 or int(timestamp) > MAX_TIMESTAMP:
        raise SpaError('SPA timestamp %r is not a number of seconds' % timestamp)
    if not _VERSION_RE.match(version) or len(version) > MAX_VERSION_LEN:
        raise SpaError('SPA version %r is not a version' % version)
    if not _DIGITS_RE.match(msg_type) or len(msg_type) > 2:
        raise SpaError('SPA message type %r is not a number' % msg_type)
    msg_type = int(msg_type)
    if msg_type not in (ACCESS_MSG, CLIENT_TIMEOUT_ACCESS_MSG):
        raise SpaError('SPA message type %d (%s) is not supported: only access (1) and client timeout '
                       'access (3)' % (msg_type, MESSAGE_TYPES.get(msg_type, 'unknown')))
    expected = 7 if msg_type == CLIENT_TIMEOUT_ACCESS_MSG else 6
    if len(fields) != expected:
        raise SpaError('SPA %s message has %d fields, not %d' % (MESSAGE_TYPES[msg_type], len(fields), expected))
    client_timeout = 0
    if msg_type == CLIENT_TIMEOUT_ACCESS_MSG:
        if not _DIGITS_RE.match(fields[6]) or len(fields[6]) > 10 or int(fields[6]) > MAX_CLIENT_TIMEOUT:
            raise SpaError('SPA client timeout %r is not a number of seconds' % fields[6])
        client_timeout = int(fields[6])
    try:
        access_text = _b64decode(message, 'SPA access message').decode('ascii')
    except UnicodeDecodeError:
        raise SpaError('SPA access message is not ASCII')
    if len(access_text) > MAX_MESSAGE_LEN:
        raise SpaError('SPA access message is longer than %d characters' % MAX_MESSAGE_LEN)
    source, sep, items = access_text.partition(',')
    if not sep or not items:
        raise SpaError('SPA access message %r is not IP,proto/port' % access_text)
    address = _address(source)
    if address is None:
        raise SpaError('SPA access message %r does not start with an IP address' % access_text)
    access = tuple(_access_item(item) for item in items.split(','))
    return dict(source=address.compressed, access=access, timestamp=int(timestamp),
                client_timeout=client_timeout, username=username, message_type=msg_type,
                version=version, rand_value=rand_value, digest_type=digest_type)
