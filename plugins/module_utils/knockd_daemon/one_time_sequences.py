# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""knockd's One_Time_Sequences file, with knockd 0.8's exact file semantics.

One sequence per line (same syntax as ``Sequence``); blank lines, lines
starting with ``#`` and lines that do not parse are skipped.  The first valid
line is the current sequence.  When it is used, its first character is
overwritten in place with ``#`` (so a line should start with a space, as
knockd's manual recommends) and the next valid line becomes current.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ..sequence import parse_sequence


class OneTimeSequences:
    """The sequences file of one stanza."""

    def __init__(self, path):
        self.path = path

    def _lines(self):
        """(byte offset of line start, parsed sequence) for every valid line."""
        with open(self.path, 'rb') as handle:
            data = handle.read()
        offset = 0
        for raw in data.splitlines(True):
            start = offset
            offset += len(raw)
            text = raw.decode('utf-8', 'replace').strip()
            if not text or text.startswith('#'):
                continue
            try:
                yield start, parse_sequence(text)
            except ValueError:   # KnockValueError, or int() of a huge number: skipped like knockd's bad lines
                continue

    def current(self):
        """The sequence to knock now, or None when the file has none left."""
        for _start, steps in self._lines():
            return steps
        return None

    def consume(self, steps):
        """Disable the line holding ``steps`` (first char -> '#'); return the next sequence or None."""
        for start, candidate in self._lines():
            if tuple(candidate) == tuple(steps):
                fd = os.open(self.path, os.O_WRONLY)
                try:
                    os.lseek(fd, start, os.SEEK_SET)
                    os.write(fd, b'#')
                    os.fsync(fd)
                finally:
                    os.close(fd)
                break
        return self.current()
