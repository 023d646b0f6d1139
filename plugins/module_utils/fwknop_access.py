# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""The logic of the ``fwknop_access`` module: its parameters -> edits of access.conf / fwknopd.conf.

The module stays thin: ``access_edit(params)`` and ``fwknopd_edit(fwknopd_values(options))``
validate everything up front (``FwknopConfError`` naming the value, keys masked) and return
the ``edit(conf)`` callables of ``knockd_file.plan_edit``; ``access_parser(path)`` /
``fwknopd_parser(path)`` give the round-trip object after validating the whole text with the
one semantic parser (``fwknop_conf``).  Values equivalent to those in the file (same decoded
key, same digest, same port list, Y/yes) leave the line alone, so a second run changes nothing.

One tolerance: Debian's shipped access.conf has a template stanza whose keys are
``__CHANGEME__``; it is not valid for fwknopd (nor for the daemon), but the module accepts a
file holding it so that it can replace or remove it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from .fwknop_conf import (
    FWKNOPD_BOOL_KEYS, FWKNOPD_INT_KEYS, FWKNOPD_KEYS, SECRET_KEYS, AccessConf, FwknopConfError,
    FwknopdConf, _access_groups, _bool, _check_new_value, _split, _stanza, parse_fwknopd_conf,
    parse_open_ports, parse_source, secret_values)
from .sequence import show
from .spa import SpaError, hmac_key_from_base64, key_from_base64, parse_digest_type

PLACEHOLDER = '__CHANGEME__'


def secrets(text):
    return [value for value in secret_values(text) if value != PLACEHOLDER]


def _is_template(group):
    return any(group.get(key, (None,))[0] == PLACEHOLDER for key in SECRET_KEYS)


def validate_access_text(text, path):
    """Every stanza valid (Debian's ``__CHANGEME__`` template stanza excepted); no stanza is fine."""
    for group in _access_groups(_split(text, path), path):
        if not _is_template(group):
            _stanza(group, path)


def access_parser(path):
    def parse(text):
        validate_access_text(text, path)
        return AccessConf(text, path)
    return parse


def fwknopd_parser(path):
    def parse(text):
        parse_fwknopd_conf(text, path)
        return FwknopdConf(text, path)
    return parse


def _ports_text(value):
    if isinstance(value, str):
        items = value.split(',') if value.strip() else []
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        raise FwknopConfError('open_ports %s is not a list of tcp/PORT, udp/PORT' % show(value))
    if not items:
        return None
    for item in items:
        if not isinstance(item, str):
            raise FwknopConfError('open_ports: %s is not tcp/PORT or udp/PORT' % show(item))
    ports = parse_open_ports(','.join(items), 'open_ports')
    return ', '.join('%s/%d' % port for port in ports)


def _same(key, old, new):
    """Whether the file's raw ``old`` means the same as ``new`` (invalid old: not the same)."""
    if old is None or new is None:
        return old is new
    try:
        if key == 'KEY_BASE64':
            return key_from_base64(old) == key_from_base64(new)
        if key == 'HMAC_KEY_BASE64':
            return hmac_key_from_base64(old) == hmac_key_from_base64(new)
        if key == 'HMAC_DIGEST_TYPE':
            return parse_digest_type(old) == parse_digest_type(new)
        if key in ('OPEN_PORTS', 'RESTRICT_PORTS'):
            return parse_open_ports(old) == parse_open_ports(new)
        if key in ('REQUIRE_SOURCE_ADDRESS',) or key in FWKNOPD_BOOL_KEYS:
            return _bool(old, key, None, None) == _bool(new, key, None, None)
        if key in FWKNOPD_INT_KEYS or key == 'FW_ACCESS_TIMEOUT':
            return int(old) == int(new)
    except (SpaError, FwknopConfError, ValueError):
        return False
    return old == new


def access_values(params):
    """The module's stanza options -> key -> text (None: remove the line); only options given."""
    values = {}
    try:
        if params.get('key_base64') is not None:
            key = key_from_base64(params['key_base64'], 'key_base64')
            values.update(KEY_BASE64=params['key_base64'].strip(), KEY=None)
        if params.get('hmac_key_base64') is not None:
            hmac_key = hmac_key_from_base64(params['hmac_key_base64'], 'hmac_key_base64')
            values.update(HMAC_KEY_BASE64=params['hmac_key_base64'].strip(), HMAC_KEY=None)
            if params.get('key_base64') is not None and key == hmac_key:
                raise FwknopConfError('key_base64 and hmac_key_base64 are identical (fwknopd refuses that)')
        if params.get('hmac_digest_type') is not None:
            values['HMAC_DIGEST_TYPE'] = parse_digest_type(params['hmac_digest_type'], 'hmac_digest_type')
    except SpaError as error:
        raise FwknopConfError(str(error))
    if params.get('open_ports') is not None:
        values['OPEN_PORTS'] = _ports_text(params['open_ports'])
    timeout = params.get('fw_access_timeout')
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 2 ** 31 - 1:
            raise FwknopConfError('fw_access_timeout %s is not a number of seconds from 1 to 2147483647'
                                  % show(timeout))
        values['FW_ACCESS_TIMEOUT'] = str(timeout)
    if params.get('require_source_address') is not None:
        values.update(REQUIRE_SOURCE_ADDRESS='Y' if params['require_source_address'] else 'N', REQUIRE_SOURCE=None)
    return values


def access_edit(params):
    """Validate the module's parameters; return ``edit(AccessConf) -> changed keys``."""
    source = params.get('source')
    if not isinstance(source, str) or not source.strip():
        raise FwknopConfError('source %s is not ANY or a list of addresses/networks' % show(source))
    source = source.strip()
    parse_source(source)
    _check_new_value('SOURCE', source)
    if params.get('state', 'present') == 'absent':
        return lambda conf: ['SOURCE'] if conf.remove_stanza(source) else []
    values = access_values(params)

    def edit(conf):
        current = conf.get_stanza(source) or {}
        wanted = dict((key, value) for key, value in values.items()
                      if not _same(key, current.get(key), value))
        if conf.get_stanza(source) is not None and not wanted:
            return []
        return conf.set_stanza(source, wanted)
    return edit


def fwknopd_values(options):
    """The module's ``fwknopd_options`` -> key -> text (None: remove); None when not given."""
    if options is None:
        return None
    if not isinstance(options, dict):
        raise FwknopConfError('fwknopd_options %s is not a dict' % show(options))
    values = {}
    for key, value in options.items():
        if key not in FWKNOPD_KEYS:
            raise FwknopConfError('fwknopd_options: unknown key %s (not a fwknopd 2.6.10 fwknopd.conf key)'
                                  % show(key))
        if isinstance(value, bool):
            value = 'Y' if value else 'N'
        elif isinstance(value, int):
            value = str(value)
        elif value is not None and not isinstance(value, str):
            raise FwknopConfError('fwknopd_options: %s %s is not text, a number or a boolean' % (key, show(value)))
        if value is not None:
            _check_new_value(key, value.strip(' \t'))
            value = value.strip(' \t')
        values[key] = value
    return values


def fwknopd_edit(values):
    """``edit(FwknopdConf) -> changed keys`` for validated ``fwknopd_values``."""
    def edit(conf):
        current = conf.get_options()
        changed = []
        for key in sorted(values):
            value = values[key]
            if value is None:
                if conf.remove_option(key):
                    changed.append(key)
            elif not _same(key, current.get(key), value) and conf.set_option(key, value):
                changed.append(key)
        return changed
    return edit
