# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""The daemon's live counters: knocks per step, opens and refusals of each door.

Fed with the tracker's events (sequence_tracker.Event) and written as one JSON object to
the counters file (default ``counters.json`` next to the state file) at most once per
``interval`` seconds while something changed, atomically (temporary file, rename), mode
0644: it holds door names and numbers only, never a port of a sequence or an address.
``portknock.knock.door_info`` and ``portknock-metrics`` read it (module_utils/door_counters.py)::

    {"version": 1, "pid": 123, "started": 1700000000.0, "updated": 1700000012.5,
     "doors": {"ssh": {"steps": 3, "knocks": [4, 3, 3], "opens": 3,
                       "refusals": {"wrong_order": 1, "too_slow": 0, "dropped": 0}}}}

``knocks[k-1]`` counts the knocks that reached step k (a retransmission is not counted
again); ``refusals``: an attempt broken by a knock on another port of the sequence
(``wrong_order``), one that ran out of ``seq_timeout`` (``too_slow``), one dropped because
too many attempts were in memory (``dropped``).  The counters start at 0 when the daemon
starts (Prometheus counters may reset).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import tempfile
import time

COUNTERS_VERSION = 1
COUNTERS_NAME = 'counters.json'
COUNTERS_MODE = 0o644
WRITE_INTERVAL = 1.0
REFUSALS = ('wrong_order', 'too_slow', 'dropped')
_REFUSAL_OF = {'reset': 'wrong_order', 'timeout': 'too_slow', 'evicted': 'dropped'}


def default_path(state_file):
    """``counters.json`` in the state file's directory (None without a state file)."""
    if not state_file:
        return None
    return os.path.join(os.path.dirname(state_file) or '.', COUNTERS_NAME)


class DoorCounters:
    """Counts per door (stanza name); ``flush`` writes them when due."""

    def __init__(self, path, log=None, clock=time.monotonic, wall_clock=time.time, interval=WRITE_INTERVAL):
        self.path = path
        self.log = log
        self.clock = clock
        self.wall_clock = wall_clock
        self.interval = interval
        self.started = wall_clock()
        self.doors = {}
        self.dirty = True            # the first flush writes the file (zeros): the doors are known
        self.last_write = None
        self.broken = False

    def _door(self, name, steps=None):
        door = self.doors.get(name)
        if door is None:
            door = self.doors[name] = {'steps': 0, 'knocks': [], 'opens': 0,
                                       'refusals': dict.fromkeys(REFUSALS, 0)}
        if steps is not None and steps != door['steps']:
            door['steps'] = steps
            door['knocks'] = (door['knocks'] + [0] * steps)[:steps]
        return door

    def set_doors(self, stanzas):
        """The doors of the (re)loaded configuration: name and number of steps of each."""
        names = set()
        for stanza in stanzas:
            names.add(stanza.name)
            self._door(stanza.name, len(getattr(stanza, 'sequence', None) or ()))
        for name in list(self.doors):
            if name not in names:
                del self.doors[name]
        self.dirty = True

    def event(self, event):
        """Count one tracker Event."""
        kind = event.kind
        if kind == 'stage':
            door = self._door(event.stanza)
            if event.stage > len(door['knocks']):
                door['knocks'].extend([0] * (event.stage - len(door['knocks'])))
                door['steps'] = max(door['steps'], event.stage)
            door['knocks'][event.stage - 1] += 1
        elif kind == 'open':
            self._door(event.stanza)['opens'] += 1
        elif kind in _REFUSAL_OF and event.stanza is not None:
            self._door(event.stanza)['refusals'][_REFUSAL_OF[kind]] += 1
        else:
            return
        self.dirty = True

    def count(self, name, opened=False, refusal=None):
        """One packet of a one-step door (SPA): a knock, and an open or a refusal (its reason)."""
        door = self._door(name, 1)
        door['knocks'][0] += 1
        if opened:
            door['opens'] += 1
        elif refusal:
            door['refusals'][refusal] = door['refusals'].get(refusal, 0) + 1
        self.dirty = True

    def snapshot(self):
        return {'version': COUNTERS_VERSION, 'pid': os.getpid(), 'started': round(self.started, 3),
                'updated': round(self.wall_clock(), 3), 'doors': self.doors}

    def next_deadline(self):
        """Monotonic time of the next write, or None when nothing is waiting to be written."""
        if self.path is None or not self.dirty:
            return None
        return self.clock() if self.last_write is None else self.last_write + self.interval

    def flush(self, now=None, force=False):
        """Write the file when something changed and the last write is ``interval`` seconds old."""
        if self.path is None or not self.dirty:
            return False
        now = self.clock() if now is None else now
        if not force and self.last_write is not None and now - self.last_write < self.interval:
            return False
        self.last_write = now
        self.dirty = False
        directory = os.path.dirname(self.path) or '.'
        tmp = None
        try:
            if not os.path.isdir(directory):
                os.makedirs(directory, 0o755)
            fd, tmp = tempfile.mkstemp(prefix='.counters-', dir=directory)
            try:
                os.fchmod(fd, COUNTERS_MODE)
                data = (json.dumps(self.snapshot(), sort_keys=True) + '\n').encode('utf-8', 'surrogateescape')
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.rename(tmp, self.path)
            tmp = None
            self.broken = False
        except (IOError, OSError) as error:
            if not self.broken and self.log is not None:
                self.log.error('error: cannot write counters file %s: %s' % (self.path, error.strerror or error))
            self.broken = True
            self.dirty = True            # tried again after ``interval``
            return False
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
        return True
