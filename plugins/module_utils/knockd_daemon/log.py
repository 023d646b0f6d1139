# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""knockd's three output channels: logprint (syslog and/or log file), vprint, dprint.

Same formats as knockd 0.8 so existing log watchers keep working: syslog
ident ``knockd``, priority LOG_NOTICE, facility LOG_USER; log file lines
``[YYYY-MM-DD HH:MM] message``; verbose and debug messages on stdout.

With ``log_format='json'`` (``--log-format json``) the log file and syslog get one JSON
object a line instead: ``{"time": "2024-05-01T12:00:03+00:00", "message": "<knockd's
line>", ...}`` plus, for the door events, ``event`` (stage, open, timeout), ``door``,
``source`` and ``stage``.  The message is knockd's line, so nothing is logged that knockd's
format would not show (no knock port).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import stat
import sys
import time

try:
    import syslog
except ImportError:  # pragma: no cover - not on Linux
    syslog = None

SYSLOG_IDENT = 'knockd'
LOGFILE_MODE = 0o600


def printable(message):
    """``message`` without its final newlines, encodable as UTF-8.

    Text read from a knockd.conf that is not UTF-8 holds surrogates (``surrogateescape``,
    as the modules read it): they are written as ``\\xNN`` instead of failing.
    """
    message = message.rstrip('\n')
    try:
        message.encode('utf-8')
        return message
    except UnicodeError:
        try:
            return message.encode('utf-8', 'surrogateescape').decode('utf-8', 'backslashreplace')
        except UnicodeError:
            return message.encode('utf-8', 'backslashreplace').decode('utf-8')


def _utc_offset():
    """The local time's offset as ISO 8601 wants it: +02:00."""
    offset = time.strftime('%z', time.localtime())
    return offset[:3] + ':' + offset[3:] if len(offset) == 5 else 'Z'


class KnockdLog:
    def __init__(self, verbose=False, debug=False, stream=None, log_format='knockd', ident=SYSLOG_IDENT):
        self.ident = ident   # syslog ident (portknock-fwknopd: fwknopd's)
        self.json = log_format == 'json'
        self.verbose = verbose
        self.debug = debug
        self.stream = stream or sys.stdout
        self.use_syslog = False
        self.logfile = None
        self.logfile_path = None

    def open_syslog(self):
        if syslog is not None and not self.use_syslog:
            syslog.openlog(self.ident, 0, syslog.LOG_USER)
            self.use_syslog = True

    def open_logfile(self, path):
        """(Re)open the log file in append mode; return an error text or None."""
        self.close_logfile()
        self.logfile_path = path
        if not path:
            return None
        try:
            # created 0600 from the start (knocker addresses are not for every user): the mode is
            # given to open(2), not set afterwards; an existing file loses its bits for "other"
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, 'O_CLOEXEC', 0), LOGFILE_MODE)
            try:
                mode = stat.S_IMODE(os.fstat(fd).st_mode)
                if mode & 0o007:
                    os.fchmod(fd, mode & ~0o007)
                self.logfile = os.fdopen(fd, 'a', encoding='utf-8')
            except Exception:
                os.close(fd)
                raise
        except (IOError, OSError) as error:
            return 'warning: cannot open logfile: %s' % error
        return None

    def close_logfile(self):
        if self.logfile is not None:
            try:
                self.logfile.close()
            except (IOError, OSError):
                pass
            self.logfile = None

    def logprint(self, message, **fields):
        message = printable(message)
        if self.json:
            record = {'time': time.strftime('%Y-%m-%dT%H:%M:%S', time.localtime()) + _utc_offset(), 'message': message}
            record.update((key, printable(value) if isinstance(value, str) else value) for key, value in fields.items())
            line = json.dumps(record, sort_keys=True, ensure_ascii=False)
        if self.use_syslog:
            syslog.syslog(syslog.LOG_NOTICE, line if self.json else message)
        if self.logfile is not None:
            stamp = time.strftime('%Y-%m-%d %H:%M', time.localtime())
            try:
                self.logfile.write((line + '\n') if self.json else '[%s] %s\n' % (stamp, message))
                self.logfile.flush()
            except (IOError, OSError):
                pass

    def _print(self, message, stream=None):
        stream = stream or self.stream
        try:
            stream.write(printable(message) + '\n')
            stream.flush()
        except (IOError, OSError, ValueError):
            pass

    def wanted(self):
        """True when logprint/vprint messages go somewhere (callers skip formatting otherwise)."""
        return self.verbose or self.use_syslog or self.logfile is not None

    def vprint(self, message):
        if self.verbose:
            self._print(message)

    def dprint(self, message):
        if self.debug:
            self._print(message)

    def both(self, message, **fields):
        """knockd's usual pair: vprint + logprint of the same text (``fields``: the JSON lines' extra keys)."""
        self.vprint(message)
        self.logprint(message, **fields)

    def error(self, message):
        """An error: stderr and the log."""
        self._print(message, sys.stderr)
        self.logprint(message)
