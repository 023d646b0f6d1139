# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""The SPA sender: keys from an fwknoprc-style file or the environment, one packet, one datagram.

Builds the packet with the SPA codec (spa.py) and sends it with the knock sender
(knock_sender.py: address resolution, source selection, one UDP datagram): nothing about
addresses or sockets is written here.  Used by the ``knock`` CLI (``--spa``, also in
ProxyCommand mode) and, through that proxy, by the ``portknock.knock.ssh`` connection plugin.

Keys never come from argv: from a file only its owner can read (fwknop's ``~/.fwknoprc``
format: ``[default]``/``[NAME]`` stanzas of ``VARIABLE value`` lines; ``KEY_BASE64``,
``HMAC_KEY_BASE64``, ``HMAC_DIGEST_TYPE``, ``DIGEST_TYPE``, ``SPA_SERVER_PORT``, ``ACCESS``,
``ALLOW_IP``, ``SPA_SERVER``, ``FW_TIMEOUT`` are used) or from the environment
(``KNOCK_SPA_KEY``, ``KNOCK_SPA_HMAC_KEY``, base64; ``KNOCK_SPA_HMAC_DIGEST_TYPE``).  Errors
name the file, the line number and the variable, never a key.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from .knock_proxy_command import SPA_HMAC_DIGEST_ENV, SPA_HMAC_KEY_ENV, SPA_KEY_ENV
from .knock_sender import route_source, send_datagram
from .sequence import KnockValueError, parse_port
from . import spa

DEFAULT_RC_FILE = '~/.fwknoprc'
ANY_SOURCE = '0.0.0.0'          # fwknop's -s: "open for the address the packet comes from"
# fwknoprc variables this sender uses; the others (fwknop has many) are ignored, as
# fwknop ignores what it does not know.  Some would change what is sent: refused.
USED = ('KEY_BASE64', 'KEY', 'HMAC_KEY_BASE64', 'HMAC_KEY', 'HMAC_DIGEST_TYPE', 'DIGEST_TYPE',
        'SPA_SERVER_PORT', 'ACCESS', 'ALLOW_IP', 'SPA_SERVER', 'FW_TIMEOUT', 'USE_HMAC',
        'SPA_SERVER_PROTO', 'ENCRYPTION_MODE', 'SPOOF_USER')
UNSUPPORTED = ('USE_GPG', 'GPG_RECIPIENT', 'GPG_SIGNER', 'NAT_ACCESS', 'NAT_LOCAL', 'NAT_PORT',
               'NAT_RAND_PORT', 'SERVER_COMMAND', 'SPOOF_SOURCE_IP', 'KEY_FILE', 'HMAC_KEY_FILE')
SECRET = ('KEY_BASE64', 'KEY', 'HMAC_KEY_BASE64', 'HMAC_KEY')
_STANZA_RE = re.compile(r'^\[([^\]]+)\]\s*$')
_LINE_RE = re.compile(r'^([A-Za-z_][A-Za-z0-9_]*)\s+(.*?)\s*$')


class SpaKeys(object):
    """Keys (raw bytes) and the HMAC digest type; repr() never shows a key."""
    __slots__ = ('key', 'hmac_key', 'hmac_digest_type', 'digest_type', 'origin')

    def __init__(self, key, hmac_key, hmac_digest_type=spa.DEFAULT_HMAC_DIGEST,
                 digest_type=spa.DEFAULT_DIGEST, origin='the environment'):
        self.key, self.hmac_key = key, hmac_key
        self.hmac_digest_type, self.digest_type, self.origin = hmac_digest_type, digest_type, origin

    def __repr__(self):
        return 'SpaKeys(<key from %s>, hmac_digest_type=%r)' % (self.origin, self.hmac_digest_type)


def read_private_file(path, what):
    """The text of ``path``; refused when group or others may read or write it (as ssh keys)."""
    try:
        fd = os.open(os.path.expanduser(path), os.O_RDONLY)
        try:
            mode = os.fstat(fd).st_mode
            with os.fdopen(os.dup(fd), 'rb') as handle:
                data = handle.read(1 << 20)
        finally:
            os.close(fd)
    except (IOError, OSError) as exc:
        raise spa.SpaError('%s %s: %s' % (what, path, exc.strerror or exc))
    if mode & 0o077:
        raise spa.SpaError('%s %s is accessible by others (mode %04o): chmod 600 it'
                           % (what, path, mode & 0o7777))
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError:
        raise spa.SpaError('%s %s is not UTF-8 text' % (what, path))


def parse_rc(text, path, name=None):
    """The variables of stanza ``[name]`` over those of ``[default]`` (fwknop's -n), as
    {VARIABLE: (value, line number)}.  Lines before any stanza belong to ``[default]``.
    """
    stanzas, current = {}, 'default'
    seen = set(['default'])
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in '#;':
            continue
        match = _STANZA_RE.match(stripped)
        if match:
            current = match.group(1).strip()
            seen.add(current)
            continue
        match = _LINE_RE.match(stripped)
        if not match:
            word = stripped.split()[0]
            raise spa.SpaError('%s line %d: %s is not "VARIABLE value"' % (
                path, number, 'the line' if len(word) > 40 else repr(word)))
        variable = match.group(1).upper()
        if variable in UNSUPPORTED:
            raise spa.SpaError('%s line %d: %s is not supported by this sender' % (path, number, variable))
        if variable in USED:
            stanzas.setdefault(current, {})[variable] = (match.group(2), number)
    if name is not None and name not in seen:
        raise spa.SpaError('%s has no stanza [%s]' % (path, name))
    values = dict(stanzas.get('default', {}))
    if name is not None and name != 'default':
        values.update(stanzas.get(name, {}))
    return values


def _rc_keys(values, path):
    def key(b64_name, raw_name, max_len):
        if b64_name in values:
            value, number = values[b64_name]
            return spa.key_from_base64(value, '%s line %d: %s' % (path, number, b64_name), max_len)
        if raw_name in values:
            value, number = values[raw_name]
            raw = value.encode('utf-8')
            if not 0 < len(raw) <= max_len:
                raise spa.SpaError('%s line %d: %s must be 1 to %d bytes long' % (path, number, raw_name, max_len))
            return raw
        raise spa.SpaError('%s has no %s (or %s) for this stanza' % (path, b64_name, raw_name))

    if 'USE_HMAC' in values and values['USE_HMAC'][0].upper() in ('N', 'NO', 'FALSE', '0'):
        raise spa.SpaError('%s line %d: USE_HMAC N: this sender always signs its packets (HMAC)'
                           % (path, values['USE_HMAC'][1]))
    for variable, wanted in (('SPA_SERVER_PROTO', 'UDP'), ('ENCRYPTION_MODE', 'CBC')):
        if variable in values and values[variable][0].upper() != wanted:
            raise spa.SpaError('%s line %d: %s %r is not supported (only %s)'
                               % (path, values[variable][1], variable, values[variable][0], wanted))
    keys = SpaKeys(key('KEY_BASE64', 'KEY', spa.MAX_KEY_LEN),
                   key('HMAC_KEY_BASE64', 'HMAC_KEY', spa.MAX_HMAC_KEY_LEN), origin=path)
    for variable, attr in (('HMAC_DIGEST_TYPE', 'hmac_digest_type'), ('DIGEST_TYPE', 'digest_type')):
        if variable in values:
            value, number = values[variable]
            setattr(keys, attr, spa.parse_digest_type(value, '%s line %d: %s' % (path, number, variable)))
    return keys


class RcSettings(object):
    """What an fwknoprc stanza says: keys and the optional sending settings (None when absent)."""

    def __init__(self, keys, spa_port=None, access=None, allow_ip=None, server=None, fw_timeout=None, user=None):
        self.keys, self.spa_port, self.access, self.allow_ip = keys, spa_port, access, allow_ip
        self.server, self.fw_timeout, self.user = server, fw_timeout, user


def load_rc_file(path, name=None):
    """RcSettings of stanza ``name`` (None: ``[default]``) of the fwknoprc-style file ``path``."""
    values = parse_rc(read_private_file(path, 'SPA key file'), path, name)
    keys = _rc_keys(values, path)
    settings = RcSettings(keys)
    if 'SPA_SERVER_PORT' in values:
        value, number = values['SPA_SERVER_PORT']
        try:
            settings.spa_port = parse_port(value, '%s line %d: SPA_SERVER_PORT' % (path, number))
        except KnockValueError as exc:
            raise spa.SpaError(str(exc))
    if 'FW_TIMEOUT' in values:
        value, number = values['FW_TIMEOUT']
        settings.fw_timeout = parse_client_timeout(value, '%s line %d: FW_TIMEOUT' % (path, number))
    for variable, attr in (('ACCESS', 'access'), ('ALLOW_IP', 'allow_ip'), ('SPA_SERVER', 'server'),
                           ('SPOOF_USER', 'user')):
        if variable in values:
            setattr(settings, attr, values[variable][0])
    if settings.allow_ip is not None and settings.allow_ip.lower() == 'source':
        settings.allow_ip = ANY_SOURCE
    elif settings.allow_ip is not None and settings.allow_ip.lower() == 'resolve':
        raise spa.SpaError('%s line %d: ALLOW_IP resolve (an external web service) is not supported'
                           % (path, values['ALLOW_IP'][1]))
    return settings


def keys_from_environment(environ=None):
    """SpaKeys from $KNOCK_SPA_KEY / $KNOCK_SPA_HMAC_KEY (base64), or None when neither is set."""
    environ = os.environ if environ is None else environ
    key, hmac_key = environ.get(SPA_KEY_ENV), environ.get(SPA_HMAC_KEY_ENV)
    if not key and not hmac_key:
        return None
    if not key or not hmac_key:
        raise spa.SpaError('$%s is set but $%s is not: SPA needs both keys (base64)'
                           % ((SPA_KEY_ENV, SPA_HMAC_KEY_ENV) if key else (SPA_HMAC_KEY_ENV, SPA_KEY_ENV)))
    keys = SpaKeys(spa.key_from_base64(key, '$' + SPA_KEY_ENV),
                   spa.hmac_key_from_base64(hmac_key, '$' + SPA_HMAC_KEY_ENV))
    if environ.get(SPA_HMAC_DIGEST_ENV):
        keys.hmac_digest_type = spa.parse_digest_type(environ[SPA_HMAC_DIGEST_ENV], '$' + SPA_HMAC_DIGEST_ENV)
    return keys


def parse_client_timeout(value, what='--fw-timeout'):
    text = str(value).strip()
    if not text.isdigit() or int(text) > spa.MAX_CLIENT_TIMEOUT:
        raise spa.SpaError('%s %r is not a number of seconds' % (what, value))
    return int(text)


def claimed_source(address, family, allow_ip=None, source=None):
    """The address the message asks to open: ``allow_ip`` (fwknop's -a; 0.0.0.0 for -s), else the
    local ``source`` the packet leaves from, else the address the kernel picks toward ``address``."""
    if allow_ip:
        return allow_ip
    return source or route_source(address, family)


def send_spa(address, keys, access, family=None, spa_port=spa.DEFAULT_SPA_PORT, allow_ip=None,
             source=None, client_timeout=0, username='root'):
    """Build one SPA packet for ``access`` and send it as one datagram to ``address``:``spa_port``.

    ``address`` is numeric (knock_sender.resolve it first, and connect to the same address).
    Returns the source address the message claims.  SpaError for bad settings,
    knock_sender.KnockSendError when it cannot be sent.
    """
    claim = claimed_source(address, family, allow_ip, source)
    data = spa.encode(claim, access, keys.key, keys.hmac_key, client_timeout=client_timeout, username=username,
                      digest_type=keys.digest_type, hmac_digest_type=keys.hmac_digest_type)
    send_datagram(address, spa_port, data.encode('ascii'), family, source)
    return claim
