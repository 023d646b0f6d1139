# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""The one parser of fwknopd 2.6.10's ``fwknopd.conf`` and ``access.conf`` (Debian's layout).

Two views of the same text:

* semantic, validated: ``parse_fwknopd_conf(text, path)`` -> ``FwknopdConfig``,
  ``parse_access_conf(text, path)`` -> list of ``AccessStanza``; ``load_fwknopd_conf(path)``,
  ``load_access_conf(path)`` read the files.  Used by the ``fwknop_access`` module, the role
  and the bundled drop-in daemon (``portknock-fwknopd``).
* round-trip: ``FwknopdConf(text)`` / ``AccessConf(text)`` keep every comment, blank line,
  indentation, separator and order; ``set_option``/``remove_option`` change one key of
  fwknopd.conf, ``set_stanza``/``remove_stanza`` edit one access.conf stanza, found by its
  ``SOURCE`` value; ``render()`` gives the text back (byte for byte when nothing changed).

Syntax as fwknopd reads it: one ``KEY value`` per line (``sscanf("%s %[^;\\n\\r]")``: the
value ends at the first ``;``, trailing blanks dropped), ``#`` starts a comment line, key
names are case sensitive; in access.conf every ``SOURCE`` line starts a new stanza.
Where fwknopd is lax this parser is strict (and says so in the error): an unknown key, a
key before the first SOURCE, a key twice in a stanza, the same SOURCE twice, a non-numeric
timeout or a boolean that is not Y/N are errors, not warnings or silent defaults.  Every
error is ``FwknopConfError`` naming ``path:line`` and the bad value; key values are never
quoted.  Extensions beyond fwknopd 2.6.10 (which the bundled daemon implements): IPv6
addresses and networks in ``SOURCE``.  Not supported (an error naming the line):
``%include``/``%include_folder``, GnuPG-only stanzas, encryption modes other than CBC.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import ipaddress
import re

from .sequence import KnockValueError, show
from .spa import SpaError, hmac_key_from_base64, key_from_base64, parse_digest_type
from .spa import DEFAULT_HMAC_DIGEST, DEFAULT_SPA_PORT, MAX_HMAC_KEY_LEN, MAX_KEY_LEN

FWKNOPD_CONF = '/etc/fwknop/fwknopd.conf'
ACCESS_CONF = '/etc/fwknop/access.conf'

# fwknopd 2.6.10's defaults (``fwknopd --dump-config`` of Debian's build)
DEFAULT_PCAP_INTF = 'eth0'
DEFAULT_PCAP_FILTER = 'udp port %d' % DEFAULT_SPA_PORT
DEFAULT_MAX_SPA_PACKET_AGE = 120
DEFAULT_RUN_DIR = '/run/fwknop'
DEFAULT_FW_ACCESS_TIMEOUT = 30
DEFAULT_MAX_FW_TIMEOUT = 300
MAX_TIMEOUT = 2 ** 31 - 1

# every key of fwknopd.conf that fwknopd 2.6.10 knows: its config map (``--dump-config``),
# plus the keys of the other firewall builds that Debian's shipped fwknopd.conf documents
FWKNOPD_KEYS = frozenset('''
PCAP_INTF PCAP_FILE ENABLE_PCAP_PROMISC PCAP_FILTER PCAP_DISPATCH_COUNT PCAP_LOOP_SLEEP
ENABLE_PCAP_ANY_DIRECTION EXIT_AT_INTF_DOWN MAX_SNIFF_BYTES ENABLE_SPA_PACKET_AGING
MAX_SPA_PACKET_AGE ENABLE_DIGEST_PERSISTENCE RULES_CHECK_THRESHOLD CMD_EXEC_TIMEOUT
ENABLE_SPA_OVER_HTTP ENABLE_TCP_SERVER TCPSERV_PORT ENABLE_UDP_SERVER UDPSERV_PORT
UDPSERV_SELECT_TIMEOUT LOCALE SYSLOG_IDENTITY SYSLOG_FACILITY ENABLE_X_FORWARDED_FOR
ENABLE_DESTINATION_RULE ENABLE_RULE_PREPEND ENABLE_NAT_DNS ENABLE_IPT_FORWARDING
ENABLE_IPT_LOCAL_NAT ENABLE_IPT_SNAT SNAT_TRANSLATE_IP ENABLE_IPT_OUTPUT FLUSH_IPT_AT_INIT
FLUSH_IPT_AT_EXIT IPT_INPUT_ACCESS IPT_OUTPUT_ACCESS IPT_FORWARD_ACCESS IPT_DNAT_ACCESS
IPT_SNAT_ACCESS IPT_MASQUERADE_ACCESS ENABLE_IPT_COMMENT_CHECK FWKNOP_RUN_DIR FWKNOP_CONF_DIR
ACCESS_FILE ACCESS_FOLDER FWKNOP_PID_FILE DIGEST_FILE GPG_HOME_DIR GPG_EXE SUDO_EXE
FIREWALL_EXE VERBOSE
DIGEST_DB_FILE ENABLE_EXTERNAL_CMDS ENABLE_EXT_CMD_PREFIX EXT_CMD_PREFIX EXTERNAL_CMD_ALARM
EXTERNAL_CMD_CLOSE EXTERNAL_CMD_OPEN ENABLE_FIREWD_COMMENT_CHECK ENABLE_FIREWD_FORWARDING
ENABLE_FIREWD_LOCAL_NAT ENABLE_FIREWD_OUTPUT ENABLE_FIREWD_SNAT FIREWD_DNAT_ACCESS
FIREWD_FORWARD_ACCESS FIREWD_INPUT_ACCESS FIREWD_MASQUERADE_ACCESS FIREWD_OUTPUT_ACCESS
FIREWD_SNAT_ACCESS FLUSH_FIREWD_AT_EXIT FLUSH_FIREWD_AT_INIT FLUSH_IPFW_AT_EXIT
FLUSH_IPFW_AT_INIT IPFW_ACTIVE_SET_NUM IPFW_EXPIRE_PURGE_INTERVAL IPFW_EXPIRE_SET_NUM
IPFW_MAX_RULES IPFW_START_RULE_NUM PF_ANCHOR_NAME PF_EXPIRE_INTERVAL ENABLE_NFQ_CAPTURE
NFQ_INTERFACE NFQ_PORT NFQ_QUEUE_NUMBER NFQ_TABLE
'''.split())

FWKNOPD_BOOL_KEYS = frozenset(key for key in FWKNOPD_KEYS if key.startswith(('ENABLE_', 'FLUSH_'))) | {
    'EXIT_AT_INTF_DOWN'}
FWKNOPD_INT_KEYS = frozenset('''
PCAP_DISPATCH_COUNT PCAP_LOOP_SLEEP MAX_SNIFF_BYTES MAX_SPA_PACKET_AGE RULES_CHECK_THRESHOLD
CMD_EXEC_TIMEOUT TCPSERV_PORT UDPSERV_PORT UDPSERV_SELECT_TIMEOUT VERBOSE IPFW_ACTIVE_SET_NUM
IPFW_EXPIRE_PURGE_INTERVAL IPFW_EXPIRE_SET_NUM IPFW_MAX_RULES IPFW_START_RULE_NUM
PF_EXPIRE_INTERVAL NFQ_PORT NFQ_QUEUE_NUMBER
'''.split())

# every access.conf key of fwknopd 2.6.10 (fwknopd(8), ACCESS.CONF VARIABLES)
ACCESS_KEYS = frozenset('''
SOURCE DESTINATION OPEN_PORTS RESTRICT_PORTS KEY KEY_BASE64 HMAC_KEY HMAC_KEY_BASE64
FW_ACCESS_TIMEOUT MAX_FW_TIMEOUT ENCRYPTION_MODE HMAC_DIGEST_TYPE ACCESS_EXPIRE
ACCESS_EXPIRE_EPOCH ENABLE_CMD_EXEC ENABLE_CMD_SUDO_EXEC CMD_EXEC_USER CMD_SUDO_EXEC_USER
CMD_EXEC_GROUP CMD_SUDO_EXEC_GROUP CMD_CYCLE_OPEN CMD_CYCLE_CLOSE CMD_CYCLE_TIMER SUDO_EXE
REQUIRE_USERNAME REQUIRE_SOURCE_ADDRESS REQUIRE_SOURCE FORCE_NAT FORCE_SNAT FORCE_MASQUERADE
FORWARD_ALL DISABLE_DNAT GPG_DECRYPT_ID GPG_DECRYPT_PW GPG_ALLOW_NO_PW GPG_REQUIRE_SIG
GPG_DISABLE_SIG GPG_IGNORE_SIG_VERIFY_ERROR GPG_REMOTE_ID GPG_FINGERPRINT_ID GPG_HOME_DIR
GPG_EXE
'''.split())
ACCESS_BOOL_KEYS = frozenset('''
ENABLE_CMD_EXEC ENABLE_CMD_SUDO_EXEC REQUIRE_SOURCE_ADDRESS REQUIRE_SOURCE FORCE_MASQUERADE
FORWARD_ALL DISABLE_DNAT GPG_ALLOW_NO_PW GPG_REQUIRE_SIG GPG_DISABLE_SIG GPG_IGNORE_SIG_VERIFY_ERROR
'''.split())
ACCESS_INT_KEYS = frozenset(['FW_ACCESS_TIMEOUT', 'MAX_FW_TIMEOUT', 'CMD_CYCLE_TIMER', 'ACCESS_EXPIRE_EPOCH'])
# values never shown: in errors, the module's diff (masked) or a log
SECRET_KEYS = frozenset(['KEY', 'KEY_BASE64', 'HMAC_KEY', 'HMAC_KEY_BASE64', 'GPG_DECRYPT_PW'])

_LINES_RE = re.compile(r'[^\n]*\n|[^\n]+')
# indent, key, separator, value (up to ';', trailing blanks dropped), rest (';...', blanks), newline
_DIRECTIVE_RE = re.compile(
    r'^([ \t]*)([^\s;#][^\s]*?)([ \t]+|(?=[;\r]|\Z))([^;\r]*?)([ \t]*(?:;[^\r]*)?)(\r?)\Z')
_CONTROL_RE = re.compile(r'[\x00-\x08\x0b-\x1f\x7f]')
_INT_RE = re.compile(r'^[0-9]{1,10}\Z')
_FILTER_RE = re.compile(r'^udp\s+(?:dst\s+)?port\s+([0-9]{1,5})\Z', re.I)
_PORT_ITEM_RE = re.compile(r'^(tcp|udp)/([0-9]{1,5})\Z', re.I)
_VAR_RE = re.compile(r'\$([A-Z_][A-Z0-9_]*)')
_YES = ('y', 'yes')
_NO = ('n', 'no')


class FwknopConfError(KnockValueError):
    """An error in a fwknopd.conf or access.conf: ``path:line: ...`` naming the value (keys masked)."""

    def __init__(self, message, path=None, lineno=None):
        where = path if lineno is None else '%s:%d' % (path or '<text>', lineno)
        if where:
            message = '%s: %s' % (where, message)
        super(FwknopConfError, self).__init__(message)
        self.path = path
        self.lineno = lineno


FwknopdConfig = collections.namedtuple('FwknopdConfig', [
    'pcap_intf', 'pcap_filter', 'spa_port', 'max_spa_packet_age', 'enable_spa_packet_aging',
    'enable_digest_persistence', 'digest_file', 'run_dir', 'pid_file', 'options', 'path'])

AccessStanza = collections.namedtuple('AccessStanza', [
    'source', 'open_ports', 'key', 'hmac_key', 'hmac_digest_type', 'fw_access_timeout',
    'require_source_address', 'line', 'restrict_ports', 'max_fw_timeout', 'source_text',
    'options'])
AccessStanza.__repr__ = lambda self: 'AccessStanza(source=%r, line=%d, keys hidden)' % (self.source_text, self.line)


class _Line(object):
    """One line of text: a directive (key + value) or anything else (comment, blank)."""
    __slots__ = ('text', 'key', 'value', 'parts', 'lineno')

    def __init__(self, text, lineno):
        self.text = text
        self.lineno = lineno
        self.key = self.value = self.parts = None
        body = text[:-1] if text.endswith('\n') else text
        stripped = body.strip(' \t\r')
        if not stripped or stripped.startswith('#'):
            return
        match = _DIRECTIVE_RE.match(body)
        if match:
            self.parts = list(match.groups())
            self.key, self.value = self.parts[1], self.parts[3]
        else:   # cannot happen for a non-blank line; kept as an error for _check
            self.key = stripped

    @property
    def newline(self):
        return '\n' if self.text.endswith('\n') else ''

    def with_value(self, value):
        parts = list(self.parts)
        if not parts[2].strip(' \t') and not parts[2]:
            parts[2] = ' '
        parts[3] = value
        return ''.join(parts) + self.newline


def _split(text, path):
    if isinstance(text, bytes):
        try:
            text = text.decode('utf-8')
        except UnicodeDecodeError as error:
            raise FwknopConfError('not UTF-8 text (byte %d)' % error.start, path)
    if not isinstance(text, str):
        raise FwknopConfError('expected the text of the file, not %s' % type(text).__name__, path)
    return [_Line(chunk, number) for number, chunk in enumerate(_LINES_RE.findall(text), 1)]


def _check_line(line, path, secret=False):
    """Raise unless ``line`` is a well-formed directive (the caller knows it is one)."""
    shown = '(value hidden)' if line.key in SECRET_KEYS else show(line.value)
    if _CONTROL_RE.search(line.text.rstrip('\r\n')):
        raise FwknopConfError('a control character in the line of %s' % show(line.key[:40]), path, line.lineno)
    try:
        line.text.encode('utf-8')
    except UnicodeEncodeError:
        raise FwknopConfError('the line of %s is not UTF-8 text' % show(line.key[:40]), path, line.lineno)
    if line.parts is None or not line.value:
        raise FwknopConfError('%s has no value (fwknopd needs "KEY value")' % show(line.key[:40]), path, line.lineno)
    return shown


def _bool(value, key, path, lineno):
    low = value.lower()
    if low in _YES:
        return True
    if low in _NO:
        return False
    raise FwknopConfError('%s %s is not Y or N' % (key, show(value)), path, lineno)


def _int(value, key, path, lineno, low=0, high=MAX_TIMEOUT):
    if not _INT_RE.match(value) or not low <= int(value) <= high:
        raise FwknopConfError('%s %s is not a whole number from %d to %d' % (key, show(value), low, high),
                              path, lineno)
    return int(value)


def spa_port_of_filter(pcap_filter, path=None, lineno=None):
    """``udp port 62201`` / ``udp dst port 62201`` -> 62201; any other filter is an error naming it."""
    match = _FILTER_RE.match(pcap_filter.strip()) if isinstance(pcap_filter, str) else None
    if not match or not 1 <= int(match.group(1)) <= 65535:
        raise FwknopConfError('PCAP_FILTER %s is not "udp port N" or "udp dst port N" (one UDP port, '
                              '1 to 65535): the SPA port must be known' % show(pcap_filter), path, lineno)
    return int(match.group(1))


def _expand(value, options):
    """fwknopd.conf's ``$VAR`` references to other keys (``DIGEST_FILE $FWKNOP_RUN_DIR/...``)."""
    return _VAR_RE.sub(lambda match: options.get(match.group(1), DEFAULT_RUN_DIR
                                                 if match.group(1) == 'FWKNOP_RUN_DIR' else match.group(0)),
                       value)


def parse_fwknopd_conf(text, path=FWKNOPD_CONF):
    """The text of a fwknopd.conf -> ``FwknopdConfig`` (fwknopd's defaults where a key is absent)."""
    options = collections.OrderedDict()
    lines = {}
    for line in _split(text, path):
        if line.key is None:
            continue
        if line.key.startswith('%'):
            raise FwknopConfError('%s is not supported' % show(line.key[:40]), path, line.lineno)
        if line.key not in FWKNOPD_KEYS:
            raise FwknopConfError('unknown key %s (not a fwknopd 2.6.10 fwknopd.conf key)' % show(line.key[:40]),
                                  path, line.lineno)
        _check_line(line, path)
        if line.key in options:
            raise FwknopConfError('%s given again (first at line %d)' % (line.key, lines[line.key]),
                                  path, line.lineno)
        if line.key in FWKNOPD_BOOL_KEYS:
            _bool(line.value, line.key, path, line.lineno)
        elif line.key in FWKNOPD_INT_KEYS:
            _int(line.value, line.key, path, line.lineno)
        options[line.key] = line.value
        lines[line.key] = line.lineno

    def flag(key, default=True):
        return _bool(options[key], key, path, lines[key]) if key in options else default

    pcap_filter = options.get('PCAP_FILTER', DEFAULT_PCAP_FILTER)
    spa_port = spa_port_of_filter(pcap_filter, path, lines.get('PCAP_FILTER'))
    age = (_int(options['MAX_SPA_PACKET_AGE'], 'MAX_SPA_PACKET_AGE', path, lines['MAX_SPA_PACKET_AGE'], 1)
           if 'MAX_SPA_PACKET_AGE' in options else DEFAULT_MAX_SPA_PACKET_AGE)
    run_dir = options.get('FWKNOP_RUN_DIR', DEFAULT_RUN_DIR)
    digest_file = _expand(options.get('DIGEST_FILE', run_dir + '/digest.cache'), options)
    pid_file = _expand(options.get('FWKNOP_PID_FILE', run_dir + '/fwknopd.pid'), options)
    return FwknopdConfig(
        pcap_intf=options.get('PCAP_INTF', DEFAULT_PCAP_INTF), pcap_filter=pcap_filter, spa_port=spa_port,
        max_spa_packet_age=age, enable_spa_packet_aging=flag('ENABLE_SPA_PACKET_AGING'),
        enable_digest_persistence=flag('ENABLE_DIGEST_PERSISTENCE'), digest_file=digest_file,
        run_dir=run_dir, pid_file=pid_file, options=dict(options), path=path)


def parse_source(value, path=None, lineno=None):
    """``ANY`` or ``addr[/prefix|/netmask], ...`` -> 'ANY' or a list of ip_network."""
    if not isinstance(value, str) or not value.strip():
        raise FwknopConfError('SOURCE %s is not ANY or a list of addresses/networks' % show(value), path, lineno)
    if value.strip().upper() == 'ANY':
        return 'ANY'
    networks = []
    for item in value.split(','):
        item = item.strip()
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise FwknopConfError('SOURCE %s: %s is not an address or network' % (show(value), show(item)),
                                  path, lineno)
    return networks


def parse_open_ports(value, key='OPEN_PORTS', path=None, lineno=None):
    """``tcp/22, udp/53`` -> [('tcp', 22), ('udp', 53)]."""
    ports = []
    for item in value.split(',') if isinstance(value, str) else [value]:
        match = _PORT_ITEM_RE.match(item.strip()) if isinstance(item, str) else None
        if not match or not 1 <= int(match.group(2)) <= 65535:
            raise FwknopConfError('%s %s: %s is not tcp/PORT or udp/PORT (port 1 to 65535)'
                                  % (key, show(value), show(item)), path, lineno)
        ports.append((match.group(1).lower(), int(match.group(2))))
    return ports


def _plain_key(value, key, max_len):
    key_bytes = value.encode('utf-8')
    if not 0 < len(key_bytes) <= max_len:
        raise SpaError('%s must be 1 to %d bytes long, not %d' % (key, max_len, len(key_bytes)))
    return key_bytes


def _stanza(directives, path):
    """The directives (key -> (value, lineno)) of one stanza -> AccessStanza."""
    source_value, source_line = directives['SOURCE']

    def get(key):
        return directives[key][0] if key in directives else None

    def flag(key, default=False):
        return _bool(get(key), key, path, directives[key][1]) if key in directives else default

    def integer(key, default, low=1):
        return _int(get(key), key, path, directives[key][1], low) if key in directives else default

    source = parse_source(source_value, path, source_line)
    for one, other in (('KEY', 'KEY_BASE64'), ('HMAC_KEY', 'HMAC_KEY_BASE64'),
                       ('REQUIRE_SOURCE', 'REQUIRE_SOURCE_ADDRESS')):
        if one in directives and other in directives:
            raise FwknopConfError('%s and %s both given in the stanza of SOURCE %s' % (
                one, other, show(source_value)), path, directives[other][1])
    keys = {}
    for name, b64, decode, max_len in (('KEY', 'KEY_BASE64', key_from_base64, MAX_KEY_LEN),
                                       ('HMAC_KEY', 'HMAC_KEY_BASE64', hmac_key_from_base64, MAX_HMAC_KEY_LEN)):
        for spelling in (name, b64):
            if get(spelling) == '__CHANGEME__':
                raise FwknopConfError("%s is Debian's placeholder __CHANGEME__: set a key (fwknop --key-gen)"
                                      % spelling, path, directives[spelling][1])
        try:
            if b64 in directives:
                keys[name] = decode(get(b64), b64)
            elif name in directives:
                keys[name] = _plain_key(get(name), name, max_len)
            else:
                keys[name] = None
        except SpaError as error:
            raise FwknopConfError(str(error), path, directives[b64 if b64 in directives else name][1])
    if keys['KEY'] is None:
        raise FwknopConfError('the stanza of SOURCE %s has no KEY or KEY_BASE64 (GnuPG-only stanzas are not '
                              'supported)' % show(source_value), path, source_line)
    if keys['KEY'] == keys['HMAC_KEY']:
        raise FwknopConfError('the encryption key and the HMAC key of SOURCE %s are identical (fwknopd refuses '
                              'that too)' % show(source_value), path, source_line)
    digest = DEFAULT_HMAC_DIGEST
    if 'HMAC_DIGEST_TYPE' in directives:
        try:
            digest = parse_digest_type(get('HMAC_DIGEST_TYPE'), 'HMAC_DIGEST_TYPE')
        except SpaError as error:
            raise FwknopConfError(str(error), path, directives['HMAC_DIGEST_TYPE'][1])
    if 'ENCRYPTION_MODE' in directives and get('ENCRYPTION_MODE').upper() != 'CBC':
        raise FwknopConfError('ENCRYPTION_MODE %s is not supported (only CBC, fwknop\'s default)'
                              % show(get('ENCRYPTION_MODE')), path, directives['ENCRYPTION_MODE'][1])
    for key in ACCESS_BOOL_KEYS & set(directives):
        flag(key)
    for key in ACCESS_INT_KEYS & set(directives):
        integer(key, None, 0)
    ports = {}
    for key in ('OPEN_PORTS', 'RESTRICT_PORTS'):
        ports[key] = parse_open_ports(get(key), key, path, directives[key][1]) if key in directives else []
    require = flag('REQUIRE_SOURCE_ADDRESS') if 'REQUIRE_SOURCE_ADDRESS' in directives else flag('REQUIRE_SOURCE')
    return AccessStanza(
        source=source, open_ports=ports['OPEN_PORTS'], key=keys['KEY'], hmac_key=keys['HMAC_KEY'],
        hmac_digest_type=digest, fw_access_timeout=integer('FW_ACCESS_TIMEOUT', DEFAULT_FW_ACCESS_TIMEOUT),
        require_source_address=require, line=source_line, restrict_ports=ports['RESTRICT_PORTS'],
        max_fw_timeout=integer('MAX_FW_TIMEOUT', DEFAULT_MAX_FW_TIMEOUT), source_text=source_value,
        options=dict((key, item[0]) for key, item in directives.items()))


def _access_groups(lines, path):
    """Validated directive lines grouped by stanza: [OrderedDict(key -> (value, lineno)), ...]."""
    groups = []
    sources = {}
    for line in lines:
        if line.key is None:
            continue
        if line.key.startswith('%'):
            raise FwknopConfError('%s is not supported: put the stanzas in this file'
                                  % show(line.key[:40]), path, line.lineno)
        if line.key not in ACCESS_KEYS:
            raise FwknopConfError('unknown key %s (not a fwknopd 2.6.10 access.conf key; names are case '
                                  'sensitive)' % show(line.key[:40]), path, line.lineno)
        _check_line(line, path)
        if line.key == 'SOURCE':
            canon = _source_key(line.value)
            if canon in sources:
                raise FwknopConfError('SOURCE %s given again (first at line %d)' % (
                    show(line.value), sources[canon]), path, line.lineno)
            sources[canon] = line.lineno
            groups.append(collections.OrderedDict())
        elif not groups:
            raise FwknopConfError('%s before the first SOURCE line (every stanza begins with SOURCE)'
                                  % line.key, path, line.lineno)
        elif line.key in groups[-1]:
            raise FwknopConfError('%s given again in this stanza (first at line %d)' % (
                line.key, groups[-1][line.key][1]), path, line.lineno)
        groups[-1][line.key] = (line.value, line.lineno)
    return groups


def _source_key(value):
    """What identifies a stanza: its SOURCE value without blanks, ANY upper-case."""
    text = re.sub(r'\s+', '', value) if isinstance(value, str) else value
    return 'ANY' if isinstance(text, str) and text.upper() == 'ANY' else text


def parse_access_conf(text, path=ACCESS_CONF):
    """The text of an access.conf -> list of AccessStanza, in file order (at least one, as fwknopd)."""
    stanzas = [_stanza(group, path) for group in _access_groups(_split(text, path), path)]
    if not stanzas:
        raise FwknopConfError('no SOURCE stanza (fwknopd refuses an access.conf without one)', path)
    return stanzas


def _read(path):
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except (IOError, OSError) as error:
        raise FwknopConfError('cannot read the file: %s' % (error.strerror or error), path)
    except TypeError:
        raise FwknopConfError('not a path', show(path))


def load_fwknopd_conf(path=FWKNOPD_CONF):
    return parse_fwknopd_conf(_read(path), path)


def load_access_conf(path=ACCESS_CONF):
    return parse_access_conf(_read(path), path)


def secret_values(text):
    """The raw values of every secret key in ``text`` (valid or not): what a diff must mask."""
    try:
        lines = _split(text, None)
    except FwknopConfError:
        return []
    return [line.value for line in lines if line.key in SECRET_KEYS and line.value]


# ---------------------------------------------------------------------------------------------
# round trip: edit one key / one stanza, keep everything else byte for byte

def _check_new_value(key, value, path=None):
    """A value the editor may write for ``key``: text, one line, no ';' (fwknopd ends values there)."""
    shown = '(value hidden)' if key in SECRET_KEYS else show(value)
    if not isinstance(value, str) or not value.strip() or value != value.strip(' \t'):
        raise FwknopConfError('%s %s must be non-empty text without leading or trailing blanks'
                              % (key, shown), path)
    if ';' in value or '#' == value[0] or _CONTROL_RE.search(value) or '\n' in value or '\r' in value:
        raise FwknopConfError('%s %s cannot hold ";", a newline or a control character, nor begin with "#"'
                              % (key, shown), path)
    return value


class _Conf(object):
    KEYS = frozenset()
    WHAT = ''

    def __init__(self, text='', path=None):
        self.path = path
        self.lines = _split(text, path)

    def render(self):
        return ''.join(line.text for line in self.lines)

    def _reload(self):
        self.lines = _split(self.render(), self.path)

    def _newline(self):
        for line in self.lines:
            if line.text.endswith('\r\n'):
                return '\r\n'
        return '\n'

    def _terminate(self):
        if self.lines and not self.lines[-1].text.endswith('\n'):
            self.lines[-1] = _Line(self.lines[-1].text + '\n', self.lines[-1].lineno)

    def _key(self, key):
        if key not in self.KEYS:
            raise FwknopConfError('unknown key %s (not a fwknopd 2.6.10 %s key)' % (show(key), self.WHAT), self.path)

    @staticmethod
    def _render(key, value, newline, width=20, suffix=''):
        return '%s%s%s%s' % (key.ljust(max(width - 1, len(key)) + 1), value, suffix, newline)


class FwknopdConf(_Conf):
    """fwknopd.conf, round trip: ``get_options()``, ``set_option(key, value)``, ``remove_option(key)``."""
    KEYS = FWKNOPD_KEYS
    WHAT = 'fwknopd.conf'

    def get_options(self):
        return collections.OrderedDict((line.key, line.value) for line in self.lines if line.key)

    def set_option(self, key, value):
        """Set ``key`` to ``value`` (text); returns True when the text changed.  A new key goes
        under its commented-out example (``#KEY  value;``) when the file has one, else at the end."""
        self._key(key)
        _check_new_value(key, value, self.path)
        for index, line in enumerate(self.lines):
            if line.key == key:
                if line.parts is None or line.value == value:
                    return False if line.parts is not None else self._fail(line)
                self.lines[index] = _Line(line.with_value(value), line.lineno)
                self._reload()
                return True
        example = None
        for index, line in enumerate(self.lines):
            body = line.text.lstrip(' \t')
            if body.startswith('#'):
                candidate = _Line(body.lstrip('#'), line.lineno)
                if candidate.key == key and candidate.parts is not None and candidate.value:
                    example = (index, candidate)
        if example is not None:
            index, candidate = example
            newline = candidate.newline or self._newline()
            self.lines.insert(index + 1, _Line(candidate.with_value(value).rstrip('\r\n') + newline, 0))
        else:
            self._terminate()
            self.lines.append(_Line(self._render(key, value, self._newline(), 28, ';'), 0))
        self._reload()
        return True

    def _fail(self, line):
        raise FwknopConfError('%s has no value' % line.key, self.path, line.lineno)

    def remove_option(self, key):
        self._key(key)
        before = len(self.lines)
        self.lines = [line for line in self.lines if line.key != key]
        self._reload()
        return len(self.lines) != before


class AccessConf(_Conf):
    """access.conf, round trip, stanzas by SOURCE: ``sources()``, ``get_stanza(source)``,
    ``set_stanza(source, values)``, ``remove_stanza(source)``."""
    KEYS = ACCESS_KEYS
    WHAT = 'access.conf'

    def _ranges(self):
        """[(canonical source, index of its SOURCE line, index after its last directive line)]."""
        ranges = []
        for index, line in enumerate(self.lines):
            if line.key == 'SOURCE':
                ranges.append([_source_key(line.value), index, index + 1])
            elif line.key and ranges:
                ranges[-1][2] = index + 1
        return ranges

    def _find(self, source):
        canon = _source_key(source)
        for item in self._ranges():
            if item[0] == canon:
                return item
        return None

    def sources(self):
        return [self.lines[item[1]].value for item in self._ranges()]

    def get_stanza(self, source):
        """The stanza's directives as an OrderedDict (key -> raw value), None when absent."""
        found = self._find(source)
        if found is None:
            return None
        return collections.OrderedDict(
            (line.key, line.value) for line in self.lines[found[1]:found[2]] if line.key)

    def set_stanza(self, source, values):
        """Make the stanza of ``source`` have ``values`` (key -> text; None removes the key; keys
        not named are kept).  Returns the keys whose line changed (``[]``: nothing to do)."""
        _check_new_value('SOURCE', source, self.path)
        parse_source(source, self.path)
        for key, value in values.items():
            self._key(key)
            if key == 'SOURCE':
                raise FwknopConfError('SOURCE names the stanza: it is not one of its values', self.path)
            if value is not None:
                _check_new_value(key, value, self.path)
        newline = self._newline()
        found = self._find(source)
        if found is None:
            new = [(key, value) for key, value in values.items() if value is not None]
            self._terminate()
            if self.lines and self.lines[-1].text.strip():
                self.lines.append(_Line(newline, 0))
            self.lines.append(_Line(self._render('SOURCE', source, newline), 0))
            self.lines.extend(_Line(self._render(key, value, newline), 0) for key, value in new)
            self._reload()
            return ['SOURCE'] + [pair[0] for pair in new]
        start, end = found[1], found[2]
        changed = []
        indent = ''
        for line in self.lines[start + 1:end]:
            if line.key and line.parts:
                indent = line.parts[0]
                break
        for key, value in values.items():
            index = next((i for i in range(start + 1, end) if self.lines[i].key == key), None)
            if index is None:
                if value is None:
                    continue
                if end == len(self.lines):
                    self._terminate()
                self.lines.insert(end, _Line(indent + self._render(key, value, newline), 0))
                end += 1
            elif value is None:
                del self.lines[index]
                end -= 1
            elif self.lines[index].value != value:
                self.lines[index] = _Line(self.lines[index].with_value(value), 0)
            else:
                continue
            changed.append(key)
        self._reload()
        return changed

    def remove_stanza(self, source):
        """Remove the SOURCE line through the stanza's last directive; returns True when removed."""
        found = self._find(source)
        if found is None:
            return False
        start, end = found[1], found[2]
        blank_before = start == 0 or not self.lines[start - 1].text.strip()
        if blank_before and end < len(self.lines) and not self.lines[end].text.strip():
            end += 1
        elif blank_before and end == len(self.lines) and start > 0:
            start -= 1
        del self.lines[start:end]
        self._reload()
        return True
