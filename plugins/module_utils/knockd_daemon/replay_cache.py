# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""The SPA replay cache of ``portknock-fwknopd``: digests of the packets already accepted.

A digest (``spa.replay_digest``: SHA-256 of the packet data exactly as received) is added
when a packet authenticates and decrypts, as fwknopd does; a packet whose digest is in the
cache is refused before it is decrypted.

Expiry: a packet is only accepted while its timestamp is within ``max_age`` seconds of the
server's clock (either side, see spa_receiver.py), so a packet received at time ``t`` can be
accepted again at most until ``t + 2 * max_age``; an entry is kept that long and then
dropped.  ``max_age=None`` (``ENABLE_SPA_PACKET_AGING N``): entries never expire.
The cache holds at most ``max_entries`` digests; when it is full of live entries a new
packet is refused (fail closed: dropping a live entry would let its packet in again).

Persistence (``ENABLE_DIGEST_PERSISTENCE Y``, the default): the file is fwknopd 2.6.10's
``digest.cache`` format (``# <digest> <proto> <src_ip> <src_port> <dst_ip> <dst_port>
<time>`` lines), so switching between Debian's fwknopd and the bundled daemon keeps what
each has seen.  A new digest is appended in one write(2) and fsync()ed before the door is
opened; the file is rewritten (compacted) atomically (temporary file, fsync, rename, mode
0600, directory 0700 when created) at start and when it holds many more lines than live
entries.  Lines that do not parse are skipped (fwknopd's own cache may hold other lines).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import os
import re
import time

from ..atomic_file import write_atomic

DEFAULT_MAX_ENTRIES = 100000
FILE_MODE = 0o600
COMPACT_MIN_LINES = 1024
COMPACT_FACTOR = 2
HEADER = '# <digest> <proto> <src_ip> <src_port> <dst_ip> <dst_port> <time>\n'
_DIGEST_RE = re.compile(r'^[A-Za-z0-9+/]{16,128}\Z')
_INT_RE = re.compile(r'^[0-9]{1,19}\Z')
_FIELD_RE = re.compile(r'^[0-9A-Fa-f.:]{1,45}\Z')

Entry = collections.namedtuple('Entry', ['created', 'src', 'sport', 'dst', 'dport'])


class ReplayCacheError(Exception):
    pass


class ReplayCache:
    """Digests seen, with the wall-clock time each was received.

    ``path=None``: in memory only.  ``log``: an object with ``error(message)`` (the daemon's log).
    """

    def __init__(self, path=None, max_age=120, max_entries=DEFAULT_MAX_ENTRIES, log=None, clock=time.time):
        self.path = path
        self.max_age = max_age
        self.max_entries = max(1, int(max_entries))
        self.log = log
        self.clock = clock
        self.entries = collections.OrderedDict()   # digest -> Entry, oldest first
        self.lines = 0                               # entry lines in the file now
        self.skipped = 0                             # lines of the file that did not parse
        self.broken = False

    # -- expiry --------------------------------------------------------------------
    def keep_for(self):
        return None if self.max_age is None else 2 * int(self.max_age)

    def expire(self, now=None):
        """Drop the entries no packet could be accepted for any more; returns how many."""
        keep = self.keep_for()
        if keep is None:
            return 0
        now = self.clock() if now is None else now
        dropped = 0
        entries = self.entries
        while entries:
            digest, entry = next(iter(entries.items()))
            if now - entry.created <= keep:
                break
            del entries[digest]
            dropped += 1
        return dropped

    def __contains__(self, digest):
        entry = self.entries.get(digest)
        if entry is None:
            return False
        keep = self.keep_for()
        return keep is None or self.clock() - entry.created <= keep

    def __len__(self):
        return len(self.entries)

    def full(self, now=None):
        self.expire(now)
        return len(self.entries) >= self.max_entries

    def add(self, digest, src='0.0.0.0', sport=0, dst='0.0.0.0', dport=0, now=None):
        """Remember ``digest``; False (nothing added) when the cache is full of live entries."""
        now = self.clock() if now is None else now
        if digest in self.entries:
            return True
        if self.full(now):
            return False
        entry = Entry(int(now), str(src), int(sport), str(dst), int(dport))
        self.entries[digest] = entry
        self._append(digest, entry)
        return True

    # -- the file ------------------------------------------------------------------
    @staticmethod
    def _line(digest, entry):
        return '%s 17 %s %d %s %d %d\n' % (digest, entry.src, entry.sport, entry.dst, entry.dport, entry.created)

    def _error(self, what, error):
        if not self.broken and self.log is not None:
            self.log.error('error: cannot %s digest cache %s: %s (replays are still refused until a restart)'
                           % (what, self.path, getattr(error, 'strerror', None) or error))
        self.broken = True

    def load(self):
        """Read the file (if any), drop expired entries and rewrite it compacted; returns live entries."""
        if self.path is None:
            return 0
        try:
            with open(self.path, 'rb') as handle:
                text = handle.read().decode('ascii', 'replace')
        except (IOError, OSError) as error:
            if getattr(error, 'errno', None) != 2:   # ENOENT: a first start
                self._error('read', error)
            text = ''
        found = []
        for line in text.splitlines():
            parsed = self.parse_line(line)
            if parsed is None:
                if line.strip() and not line.startswith('#'):
                    self.skipped += 1
                continue
            found.append(parsed)
        found.sort(key=lambda item: item[1].created)
        for digest, entry in found:
            self.entries.pop(digest, None)
            self.entries[digest] = entry
        self.expire()
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)
        self.compact()
        return len(self.entries)

    @staticmethod
    def parse_line(line):
        """``digest proto src sport dst dport time`` -> (digest, Entry), or None; never raises."""
        fields = line.split() if isinstance(line, str) else []
        if len(fields) != 7 or not _DIGEST_RE.match(fields[0]):
            return None
        if not all(_INT_RE.match(fields[i]) for i in (1, 3, 5, 6)):
            return None
        if not (_FIELD_RE.match(fields[2]) and _FIELD_RE.match(fields[4])):
            return None
        return fields[0], Entry(int(fields[6]), fields[2], int(fields[3]) % 65536, fields[4], int(fields[5]) % 65536)

    def compact(self):
        """Rewrite the file from the live entries: temporary file, fsync, rename (atomic), mode 0600."""
        if self.path is None:
            return True
        directory = os.path.dirname(self.path) or '.'
        try:
            if not os.path.isdir(directory):
                os.makedirs(directory, 0o700)
            write_atomic(self.path, HEADER + ''.join(self._line(d, e) for d, e in self.entries.items()), FILE_MODE)
            self.lines = len(self.entries)
            self.broken = False
            return True
        except (IOError, OSError) as error:
            self._error('write', error)
            return False

    def _append(self, digest, entry):
        if self.path is None:
            return
        if self.broken or self.lines > max(COMPACT_MIN_LINES, COMPACT_FACTOR * len(self.entries)):
            self.expire()
            self.compact()
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, 'O_CLOEXEC', 0), FILE_MODE)
            try:
                os.write(fd, self._line(digest, entry).encode('ascii'))   # one line, one write
                os.fsync(fd)
            finally:
                os.close(fd)
            self.lines += 1
        except (IOError, OSError) as error:
            self._error('write', error)
