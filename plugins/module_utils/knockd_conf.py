# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""The one knockd.conf (knockd 0.8) parser and writer.

Two views of the same parse:

* round-trip: ``parse(text).render() == text`` byte for byte (comments, blank
  lines, indentation, key spelling, separators, CRLF, missing final newline).
  Edits rewrite only the lines they touch.
* semantic: ``semantic(conf)`` is what knockd 0.8 understands (case-insensitive
  keys, aliases ``Command``/``Command_6``/``Timeout``, defaults), used by the
  modules and by the bundled daemon.

knockd 0.8 rules mirrored here (src/knockd.c ``parseconfig``): lines are trimmed;
empty lines and lines starting with ``#`` are ignored (no inline comments); a
section header is a trimmed line starting with ``[`` and ending with ``]`` (the
name is kept verbatim, ``options`` is case-sensitive); a directive is
``KEY = VALUE`` split at the first ``=``, key trimmed and case-insensitive,
value trimmed; ``UseSyslog`` is the only directive without ``=``; unknown
directives, directives outside a section and ``[]`` are errors; a door needs a
non-empty knock sequence (``Sequence`` or ``One_Time_Sequences``) but knockd
does not require a start command.  This parser is deliberately stricter than
knockd on values (knockd uses ``atoi``): ports must be 1-65535, timeouts
positive integers, TCP flags known, and duplicate section names are errors.

Public API::

    parse(text, validate=True) -> KnockdConf           # raises KnockdConfError
    KnockdConf.render() -> str
    KnockdConf.stanza_names() -> list of str           # door sections, in order
    KnockdConf.get_stanza(name) -> dict or None        # canonical key -> raw value str
    KnockdConf.set_stanza(name, values) -> list of str # changed canonical keys
    KnockdConf.remove_stanza(name) -> bool
    KnockdConf.get_options() -> dict                   # see OPTION_KEYS
    KnockdConf.set_options(values) -> list of str      # changed option keys
    semantic(conf) -> {'options': dict, 'stanzas': [Stanza, ...]}
    secret_ports(conf) -> set of str                   # knock ports of every Sequence (masking)
    format_value(key, value) -> str                    # validated config text of a value
    normalize_value(key, value) -> comparable semantic value
    render_line(key, value, indent='    ', separator=' = ', newline='\\n', spelling=None) -> str

Canonical stanza keys are STANZA_KEYS; option keys are OPTION_KEYS
(``use_syslog`` is a bool, the others strings).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import ipaddress
import re

from .door import DEFAULT_CMD_TIMEOUT, DEFAULT_SEQ_TIMEOUT
from .sequence import (KnockValueError, as_text, format_sequence, format_tcpflags, parse_sequence,
                       parse_tcpflags, parse_timeout, show)

OPTIONS_SECTION = 'options'
SEQ_MAX = 32                      # knockd: maximum number of ports in a knock sequence
DEFAULT_PID_FILE = '/var/run/knockd.pid'
DEFAULT_INTERFACE = 'eth0'

# canonical key -> spelling used when a new line is written
STANZA_KEYS = collections.OrderedDict([
    ('sequence', 'Sequence'),
    ('one_time_sequences', 'One_Time_Sequences'),
    ('seq_timeout', 'Seq_Timeout'),
    ('tcpflags', 'TCPFlags'),
    ('target', 'Target'),
    ('start_command', 'Start_Command'),
    ('start_command_6', 'Start_Command_6'),
    ('cmd_timeout', 'Cmd_Timeout'),
    ('stop_command', 'Stop_Command'),
    ('stop_command_6', 'Stop_Command_6'),
])
OPTION_KEYS = collections.OrderedDict([
    ('use_syslog', 'UseSyslog'),
    ('log_file', 'LogFile'),
    ('pid_file', 'PidFile'),
    ('interface', 'Interface'),
])
# upper-cased key as knockd compares it -> canonical key
_STANZA_ALIASES = {
    'SEQUENCE': 'sequence', 'ONE_TIME_SEQUENCES': 'one_time_sequences',
    'SEQ_TIMEOUT': 'seq_timeout', 'TIMEOUT': 'seq_timeout', 'TCPFLAGS': 'tcpflags',
    'TARGET': 'target', 'START_COMMAND': 'start_command', 'COMMAND': 'start_command',
    'START_COMMAND_6': 'start_command_6', 'COMMAND_6': 'start_command_6',
    'CMD_TIMEOUT': 'cmd_timeout', 'STOP_COMMAND': 'stop_command',
    'STOP_COMMAND_6': 'stop_command_6',
}
_OPTION_ALIASES = {'LOGFILE': 'log_file', 'PIDFILE': 'pid_file', 'INTERFACE': 'interface'}
_TIMEOUT_KEYS = ('seq_timeout', 'cmd_timeout')
MAX_TIMEOUT = 2147483647          # knockd 0.8 keeps timeouts in a C int; the daemon needs a float

Stanza = collections.namedtuple('Stanza', [
    'name', 'sequence', 'one_time_sequences', 'seq_timeout', 'tcpflags', 'start_command',
    'start_command_6', 'cmd_timeout', 'stop_command', 'stop_command_6', 'target'])

# C isspace(): knockd's trim()
_WS = ' \t\n\v\f\r'
_LINE_RE = re.compile(r'[^\n]*\n|[^\n]+')
_DIRECTIVE_RE = re.compile(r'^([ \t\v\f\r]*)([^=]*?)([ \t\v\f\r]*=[ \t\v\f\r]*)(.*?)([ \t\v\f\r]*)$', re.S)


class KnockdConfError(KnockValueError):
    """An error in a knockd.conf; the message starts with ``line N:`` when known."""

    def __init__(self, message, lineno=None):
        if lineno is not None:
            message = 'line %d: %s' % (lineno, message)
        super(KnockdConfError, self).__init__(message)
        self.lineno = lineno


class _Line(object):
    """One physical line: ``text`` is its exact content (with its line ending)."""

    __slots__ = ('text', 'kind', 'key', 'canon', 'value')

    def __init__(self, text, in_options=False):
        self.text = text
        self.key = self.canon = self.value = None
        body = text.rstrip('\n')
        stripped = body.strip(_WS)
        if not stripped or stripped.startswith('#'):
            self.kind = 'comment'
        elif stripped.startswith('[') and stripped.endswith(']') and len(stripped) > 1:
            self.kind = 'header'
            self.value = stripped[1:-1]
        elif '=' not in body:
            self.kind = 'flag'
            self.key = stripped
            self.canon = 'use_syslog' if stripped.upper() == 'USESYSLOG' else None
        else:
            self.kind = 'directive'
            key, value = body.split('=', 1)
            self.key = key.strip(_WS)
            self.value = value.strip(_WS)
            aliases = _OPTION_ALIASES if in_options else _STANZA_ALIASES
            self.canon = aliases.get(self.key.upper())

    @property
    def newline(self):
        if self.text.endswith('\r\n'):
            return '\r\n'
        return '\n' if self.text.endswith('\n') else ''


class _Section(object):
    def __init__(self, header, lineno):
        self.header = header
        self.name = header.value
        self.lineno = lineno
        self.lines = []

    def end_of_directives(self):
        """Index just after the last directive (new keys go there, before trailing blanks/comments)."""
        position = 0
        for index, line in enumerate(self.lines):
            if line.kind != 'comment':
                position = index + 1
        return position

    def directives(self, canon):
        return [line for line in self.lines if line.canon == canon]


class KnockdConf(object):
    """A parsed knockd.conf; build it with ``parse()``."""

    def __init__(self, preamble, sections):
        self.preamble = preamble
        self.sections = sections

    # ---- round-trip -------------------------------------------------------
    def render(self):
        parts = [line.text for line in self.preamble]
        for section in self.sections:
            parts.append(section.header.text)
            parts.extend(line.text for line in section.lines)
        return ''.join(parts)

    def _all_lines(self):
        lines = list(self.preamble)
        for section in self.sections:
            lines.append(section.header)
            lines.extend(section.lines)
        return lines

    def _newline(self):
        for line in self._all_lines():
            if line.newline:
                return line.newline
        return '\n'

    def _style(self, section=None):
        """(indent, separator, lower-case keys?) copied from existing directives."""
        candidates = [line for line in (section.lines if section else []) if line.kind == 'directive']
        candidates += [line for line in self._all_lines() if line.kind == 'directive']
        if not candidates:
            return '    ', ' = ', False
        match = _DIRECTIVE_RE.match(candidates[0].text.rstrip('\n').rstrip('\r'))
        indent = match.group(1) if match else ''
        separator = match.group(3) if match else ' = '
        separator = ' = ' if separator.strip(_WS) != separator else '='
        lower = all(line.key == line.key.lower() for line in candidates)
        return indent, separator, lower

    def _terminate_last_line(self):
        lines = self._all_lines()
        if lines and not lines[-1].newline:
            lines[-1].text += self._newline()

    def _find(self, name):
        for section in self.sections:
            if section.name == name:
                return section
        return None

    def stanza_names(self):
        return [s.name for s in self.sections if s.name != OPTIONS_SECTION]

    def get_stanza(self, name):
        """Canonical key -> raw (trimmed) value of the last occurrence, or None if no such stanza."""
        section = self._find(name)
        if section is None or name == OPTIONS_SECTION:
            return None
        values = dict((key, None) for key in STANZA_KEYS)
        for line in section.lines:
            if line.kind == 'directive' and line.canon:
                values[line.canon] = line.value
        return values

    def _set_line(self, section, canon, value, spelling_map):
        """Set (value str) or remove (None) ``canon`` in ``section``; True if changed."""
        existing = section.directives(canon)
        if value is None:
            if not existing:
                return False
            section.lines = [line for line in section.lines if line.canon != canon]
            return True
        if existing:
            last = existing[-1]
            if len(existing) == 1 and _same(canon, last.value, value):
                return False
            for line in existing[:-1]:
                section.lines.remove(line)
            if not _same(canon, last.value, value):
                body = last.text.rstrip('\n')
                cr = '\r' if body.endswith('\r') else ''
                match = _DIRECTIVE_RE.match(body[:-1] if cr else body)
                last.text = match.group(1) + match.group(2) + match.group(3) + value + cr + \
                    last.text[len(body):]
                last.value = value
            return True
        self._terminate_last_line()
        indent, separator, lower = self._style(section)
        spelling = spelling_map[canon]
        line = _Line(render_line(canon, value, indent, separator, self._newline(),
                                 spelling.lower() if lower else spelling),
                     section.name == OPTIONS_SECTION)
        section.lines.insert(section.end_of_directives(), line)
        return True

    def _add_section(self, name, first=False):
        newline = self._newline()
        self._terminate_last_line()
        header = _Line('[%s]%s' % (name, newline))
        section = _Section(header, None)
        if first and self.sections:
            section.lines.append(_Line(newline))
            self.sections.insert(0, section)
        else:
            lines = self._all_lines()
            if lines and lines[-1].text.strip(_WS):
                container = self.sections[-1].lines if self.sections else self.preamble
                container.append(_Line(newline))
            self.sections.append(section)
        return section

    def set_stanza(self, name, values):
        """Make stanza ``name`` hold ``values`` (canonical key -> value; None removes the key).

        Keys missing from ``values`` are left alone.  Values are validated and
        compared semantically (``syn`` == ``SYN``, ``2222`` == ``2222:tcp``): an
        equivalent value keeps its line untouched.  Creates the stanza at the
        end when missing.  Returns the sorted list of canonical keys changed
        (empty: nothing changed).
        """
        _check_stanza_name(name)
        unknown = set(values) - set(STANZA_KEYS)
        if unknown:
            raise KnockValueError('unknown knockd directive(s): %s' % ', '.join(sorted(show(key) for key in unknown)))
        formatted = dict((key, None if value is None else format_value(key, value))
                         for key, value in values.items())
        section = self._find(name)
        changed = []
        if section is None:
            if all(value is None for value in formatted.values()):
                return changed
            section = self._add_section(name)
            changed.append('stanza')
        for key in STANZA_KEYS:
            if key in formatted and self._set_line(section, key, formatted[key], STANZA_KEYS):
                changed.append(key)
        return sorted(changed)

    def remove_stanza(self, name):
        """Remove the header and lines of stanza ``name``; True if it existed.

        Comments after its last directive (usually about the next stanza) stay.
        """
        section = self._find(name)
        if section is None:
            return False
        index = self.sections.index(section)
        tail = section.lines[section.end_of_directives():]
        comments = [i for i, line in enumerate(tail) if line.text.strip(_WS)]
        kept = tail[comments[0]:] if comments else []
        container = self.sections[index - 1].lines if index > 0 else self.preamble
        container.extend(kept)
        del self.sections[index]
        return True

    def get_options(self):
        section = self._find(OPTIONS_SECTION)
        values = {'use_syslog': False, 'log_file': None, 'pid_file': None, 'interface': None}
        if section is not None:
            for line in section.lines:
                if line.canon == 'use_syslog':
                    values['use_syslog'] = True
                elif line.kind == 'directive' and line.canon:
                    values[line.canon] = line.value
        return values

    def set_options(self, values):
        """Set options (OPTION_KEYS; None/False removes, missing keys untouched).

        Adds an ``[options]`` section at the top when needed.  Returns the
        sorted list of changed option keys.
        """
        unknown = set(values) - set(OPTION_KEYS)
        if unknown:
            raise KnockValueError('unknown knockd option(s): %s' % ', '.join(sorted(show(key) for key in unknown)))
        formatted = {}
        for key, value in values.items():
            if key == 'use_syslog':
                formatted[key] = bool(value)
            else:
                formatted[key] = None if value in (None, '') else _format_text(OPTION_KEYS[key], value)
        current = self.get_options()
        wanted = dict(current)
        wanted.update(formatted)
        if wanted == current:
            return []
        section = self._find(OPTIONS_SECTION)
        if section is None:
            section = self._add_section(OPTIONS_SECTION, first=True)
        changed = []
        if 'use_syslog' in formatted and formatted['use_syslog'] != current['use_syslog']:
            changed.append('use_syslog')
            if formatted['use_syslog']:
                self._terminate_last_line()
                indent = self._style(section)[0]
                section.lines.insert(section.end_of_directives(),
                                     _Line(indent + 'UseSyslog' + self._newline(), True))
            else:
                section.lines = [line for line in section.lines if line.canon != 'use_syslog']
        for key in ('log_file', 'pid_file', 'interface'):
            if key in formatted and self._set_line(section, key, formatted[key], OPTION_KEYS):
                changed.append(key)
        return sorted(changed)


def _same(canon, old, new):
    try:
        return normalize_value(canon, old) == normalize_value(canon, new)
    except KnockValueError:
        return False


def _check_stanza_name(name):
    text = as_text(name) if isinstance(name, (str, int)) and not isinstance(name, bool) else None
    if (not text or text != text.strip(_WS) or text == OPTIONS_SECTION or len(text) > 127
            or re.search(r'[\[\]\r\n\x00]', text)):
        raise KnockValueError('stanza name %s is not valid (non-empty, at most 127 characters, '
                              'no brackets, no surrounding space, not "options")' % show(name, 140))
    return text


def _format_text(what, value):
    text = as_text(value) if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None
    if text is None:
        raise KnockValueError('%s %s is not a text' % (what, show(value)))
    text = text.strip(_WS)
    if not text:
        raise KnockValueError('%s %s is empty' % (what, show(value)))
    if re.search(r'[\r\n\x00]', text):
        raise KnockValueError('%s %s contains a line break' % (what, show(value)))
    return text


def _conf_sequence(value, what):
    """A knockd ``Sequence`` value (or a list) as a tuple of Steps, split like knockd does."""
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, str):
        items = value.split(',')
        if not value.strip(_WS):
            raise KnockValueError('%s: knock sequence is empty' % what)
    else:
        items = value   # parse_sequence says what it accepts
    if isinstance(items, list) and len(items) > SEQ_MAX:   # the sequence is a secret: not quoted
        raise KnockValueError('%s has more than %d steps (%d)' % (what, SEQ_MAX, len(items)))
    return parse_sequence(items)


def _conf_tcpflags(value, what):
    if isinstance(value, str):
        # knockd splits on ',' without trimming: " ack" or an empty item is rejected
        for item in value.split(','):
            if not item or item != item.strip(_WS):
                raise KnockValueError('TCP flag %r in %s %r is not one of fin, syn, rst, psh, ack, urg'
                                      % (item, what, value))
    return parse_tcpflags(value)


def _conf_timeout(value, what):
    """A Seq_Timeout/Cmd_Timeout in seconds, 1..MAX_TIMEOUT (checked before any int() of a huge text)."""
    if isinstance(value, str):   # other types: parse_timeout names them (str() of a list may fail)
        text = value.strip(_WS)
        if len(text) > len(str(MAX_TIMEOUT)) and text.isdigit():
            raise KnockValueError('%s %r... (%d digits) is greater than %d seconds'
                                  % (what, text[:12], len(text), MAX_TIMEOUT))
        value = text
    seconds = parse_timeout(value, what)
    if seconds > MAX_TIMEOUT:
        raise KnockValueError('%s %d is greater than %d seconds' % (what, seconds, MAX_TIMEOUT))
    return seconds


def _conf_target(value, what):
    """A ``Target``: one numeric IPv4/IPv6 address, as canonical text (knockd 0.8 refuses anything else)."""
    text = _format_text(what, value)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        address = None
    if address is None or getattr(address, 'scope_id', None):
        raise KnockValueError('%s %s is not an IPv4 or IPv6 address (a host name or a range is not '
                              'accepted: it would let knocks to any local address count)' % (what, show(value)))
    return str(address)


def normalize_value(key, value, what=None):
    """The semantic value of stanza/option ``key`` (for comparisons): validated."""
    what = what or STANZA_KEYS.get(key) or OPTION_KEYS.get(key) or key
    if key == 'sequence':
        return _conf_sequence(value, what)
    if key == 'tcpflags':
        return tuple(sorted(_conf_tcpflags(value, what)))
    if key in _TIMEOUT_KEYS:
        return _conf_timeout(value, what)
    if key == 'target':
        return _conf_target(value, what)
    return _format_text(what, value)


def format_value(key, value):
    """The config text for ``value`` of canonical ``key`` (validated, knockd syntax)."""
    if key == 'sequence':
        return format_sequence(_conf_sequence(value, 'Sequence'))
    if key == 'tcpflags':
        return format_tcpflags(_conf_tcpflags(value, 'TCPFlags'))
    if key in _TIMEOUT_KEYS:
        return str(_conf_timeout(value, STANZA_KEYS[key]))
    if key == 'target':
        return _conf_target(value, 'Target')
    return _format_text(STANZA_KEYS.get(key) or OPTION_KEYS.get(key, key), value)


def render_line(key, value, indent='    ', separator=' = ', newline='\n', spelling=None):
    """A new directive line for canonical ``key`` (already formatted ``value``)."""
    spelling = spelling or STANZA_KEYS.get(key) or OPTION_KEYS[key]
    if key == 'use_syslog':
        return indent + spelling + newline
    return indent + spelling + separator + value + newline


def parse(text, validate=True):
    """Parse knockd.conf ``text``; with ``validate`` raise KnockdConfError like knockd would.

    With ``validate=False`` only the structure is read (never raises on text), for
    round-trip use of any text.
    """
    if not isinstance(text, str):
        raise KnockdConfError('a knockd.conf must be text, not %s' % type(text).__name__)
    preamble, sections = [], []
    current = None
    for lineno, raw in enumerate(_LINE_RE.findall(text), 1):
        line = _Line(raw, current is not None and current.name == OPTIONS_SECTION)
        if line.kind == 'header':
            current = _Section(line, lineno)
            sections.append(current)
        elif current is None:
            preamble.append(line)
        else:
            current.lines.append(line)
    conf = KnockdConf(preamble, sections)
    if validate:
        _validate(conf)
    return conf


def _validate(conf):
    seen = {}
    position = 0
    for line in conf.preamble:
        position += 1
        if line.kind != 'comment':
            # the key only: the line may hold a knock sequence
            raise KnockdConfError('all directives must belong to a section: %s'
                                  % show(line.key if line.kind == 'directive' else line.text.strip(_WS)),
                                  position)
    for section in conf.sections:
        position += 1
        lineno = position
        if section.name == '':
            raise KnockdConfError('bad section name %r' % section.header.text.strip(_WS), lineno)
        if section.name in seen:
            raise KnockdConfError('section [%s] is defined twice, on lines %d and %d'
                                  % (section.name, seen[section.name], lineno), lineno)
        seen[section.name] = lineno
        section.lineno = lineno
        in_options = section.name == OPTIONS_SECTION
        has_sequence = False
        for line in section.lines:
            position += 1
            if line.kind == 'comment':
                continue
            if line.kind == 'flag':
                if line.canon != 'use_syslog':
                    raise KnockdConfError('syntax error: %r is not a directive (KEY = VALUE)' % line.key,
                                          position)
                continue
            if line.canon is None:
                raise KnockdConfError('unknown directive %r in [%s]' % (line.key, section.name), position)
            if in_options:
                continue
            try:
                normalize_value(line.canon, line.value, line.key)
            except KnockValueError as error:
                raise KnockdConfError(str(error), position)
            if line.canon in ('sequence', 'one_time_sequences'):
                has_sequence = True
        if not in_options and not has_sequence:
            raise KnockdConfError('section [%s] has an empty knock sequence (no Sequence or '
                                  'One_Time_Sequences)' % section.name, lineno)


def secret_ports(conf):
    """Every number that could be a knock port in any ``Sequence`` of ``conf``, as strings.

    Read from the raw lines (also of a file that does not validate, and of stanzas
    knockd would reject), for masking: whatever a stanza's sequence holds that is
    a port 1-65535, in any spelling (``017313`` gives ``17313``), is listed.
    """
    ports = set()
    lines = list(conf.preamble)
    for section in conf.sections:
        if section.name != OPTIONS_SECTION:
            lines.extend(section.lines)
    for line in lines:
        if line.kind == 'directive' and line.canon == 'sequence':
            ports.update(value_ports(line.value))
        elif line.kind == 'flag' and line.canon is None:
            # not a directive: maybe a sequence broken onto its own line, quoted by the error
            ports.update(value_ports(line.key))
    return ports


def value_ports(value):
    """The numbers 1-65535 written anywhere in ``value`` (text, or lists/dicts of them), as strings."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        ports = set()
        for item in value:
            ports.update(value_ports(item))
        return ports
    if isinstance(value, bool) or value is None:
        return set()
    if isinstance(value, int):
        return set([str(value)]) if 0 < value <= 65535 else set()
    ports = set()
    # a number glued to a sign or a decimal point (-1, 1.5) is no port: left readable
    for digits in re.findall(r'(?<![0-9.+-])[0-9]+(?![0-9.])', value if isinstance(value, str) else repr(value)):
        digits = digits.lstrip('0')
        if digits and len(digits) <= 5 and int(digits) <= 65535:
            ports.add(digits)
    return ports


def semantic(conf):
    """What knockd understands: ``{'options': {...}, 'stanzas': [Stanza, ...]}``.

    Options: use_syslog (bool, true if ``UseSyslog`` appears in any section,
    as in knockd), log_file, pid_file, interface (None when unset; knockd's
    defaults are DEFAULT_PID_FILE and DEFAULT_INTERFACE).  Stanzas carry parsed
    values: sequence (tuple of Step, () when only One_Time_Sequences),
    tcpflags (tuple of TcpFlag), seq_timeout/cmd_timeout (int, knockd defaults
    25/10), the rest strings or None.
    """
    options = conf.get_options()
    options['use_syslog'] = any(line.canon == 'use_syslog' for line in conf._all_lines())
    stanzas = []
    for name in conf.stanza_names():
        raw = conf.get_stanza(name)
        seq_timeout = raw['seq_timeout']
        cmd_timeout = raw['cmd_timeout']
        stanzas.append(Stanza(
            name=name,
            sequence=_conf_sequence(raw['sequence'], 'Sequence') if raw['sequence'] is not None else (),
            one_time_sequences=raw['one_time_sequences'],
            seq_timeout=_conf_timeout(seq_timeout, 'Seq_Timeout') if seq_timeout is not None else DEFAULT_SEQ_TIMEOUT,
            tcpflags=_conf_tcpflags(raw['tcpflags'], 'TCPFlags') if raw['tcpflags'] is not None else (),
            start_command=raw['start_command'],
            start_command_6=raw['start_command_6'],
            cmd_timeout=_conf_timeout(cmd_timeout, 'Cmd_Timeout') if cmd_timeout is not None else DEFAULT_CMD_TIMEOUT,
            stop_command=raw['stop_command'],
            stop_command_6=raw['stop_command_6'],
            target=_conf_target(raw['target'], 'Target') if raw['target'] is not None else None,
        ))
    return {'options': options, 'stanzas': stanzas}
