# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""What the daemon does when a door opens: start/stop commands, kernel doors, state.

- Start/stop commands run through ``/bin/sh -c`` like knockd's system(),
  with ``%IP%`` replaced only by a validated numeric address; IPv6 knockers
  get ``Start_Command_6``/``Stop_Command_6`` (falling back to the IPv4
  commands when unset, nothing when set empty, as in knockd 0.8).
- Commands run asynchronously (the capture never waits), but the commands of
  one door and source run in order; at most ``max_running`` run at once
  (``--max-commands``), the others wait in line.
- A command that is only an absolute program path and plain words (no quote,
  variable, glob, redirection or other shell syntax, see ``direct_argv``)
  means the same to ``/bin/sh`` and to execve: it is executed directly,
  sparing the shell's start (about half of a door's opening time); if that
  exec fails the shell runs it, so errors and exit codes stay the shell's.
- A door with a stop command (or a kernel door) is tracked while open: a
  re-knock extends it (no second start command); the stop command runs
  Cmd_Timeout seconds after the LAST successful knock.  A door without a stop
  command runs its start command on every successful knock (knockd).
- At most ``max_open_doors`` doors are open at once (``--max-open-doors``):
  a knock beyond it is refused and logged (a re-knock of an open door still
  extends it).
- A stop command that fails (non-zero exit, fork error) is retried with a
  doubling delay (1 s, 2 s, ... at most 300 s, 10 retries); the door stays in
  the state file until its stop command succeeded, so a door it could not close
  is tried again at the next start.
- Open doors are kept in a state file (the substituted stop command and the
  kernel door), so that after a crash or restart ``recover()`` closes what a
  previous run left open.  ``shutdown()`` closes every open door now.  The file
  is a journal (one JSON object a line: a header, then ``open``/``extend``/
  ``close`` records) appended with one write(2) per change and fsync()ed once
  per main-loop pass, rewritten (compacted, atomically) when it holds many more
  records than open doors; mode 0600 in a 0700 directory.  The version 1 file
  (one JSON object with ``doors``) of earlier releases is still read.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import heapq
import ipaddress
import itertools
import json
import os
import re
import subprocess
import tempfile
import time

from .kernel_door import parse_kernel_door

SHELL = '/bin/sh'
DEFAULT_STATE_FILE = '/run/portknock-knockd/state.json'
DEFAULT_MAX_OPEN_DOORS = 4096
DEFAULT_MAX_COMMANDS = 16
STOP_RETRY_FIRST = 1.0          # seconds before the first retry of a failed stop command; doubles
STOP_RETRY_MAX = 300.0          # longest delay between two retries
STOP_RETRIES = 10               # retries before giving up until the next start
STATE_VERSION = 2
COMPACT_MIN_RECORDS = 1024      # the journal is rewritten when it holds more records than this...
COMPACT_FACTOR = 4              # ...and this many times the records still needed
IP_TOKEN = '%IP%'
# Words /bin/sh takes literally: no quotes, $, `, \\, globs, ~, redirections, ;, &, |, #, (), {}.
_PLAIN_COMMAND = re.compile(r'\A[ \t]*/[A-Za-z0-9_./+-]*(?:[ \t]+[A-Za-z0-9_./:%=,@+-]+)*[ \t]*\Z')


def direct_argv(command):
    """The argv to execute ``command`` without a shell, or None when it needs /bin/sh."""
    if _PLAIN_COMMAND.match(command):
        return command.split()
    return None


def substitute(command, address):
    """``command`` with every %IP% replaced by the numeric ``address`` (validated)."""
    addr = str(ipaddress.ip_address(str(address)))
    return command.replace(IP_TOKEN, addr)


def commands_for(stanza, family):
    """(start, stop) command templates of ``stanza`` for address family 4 or 6 (None = none)."""
    start = getattr(stanza, 'start_command', None)
    stop = getattr(stanza, 'stop_command', None)
    if family == 6:
        start6 = getattr(stanza, 'start_command_6', None)
        stop6 = getattr(stanza, 'stop_command_6', None)
        start = start if start6 is None else start6
        stop = stop if stop6 is None else stop6
    return (start or None), (stop or None)


class CommandRunner:
    """Run shell commands without blocking.

    One queue per key so that a door's commands keep their order; at most
    ``max_running`` processes at once, the other keys wait in line (first come,
    first served).  ``on_done(code)`` is called when a command ends: its exit
    status, negative for a signal, None when it could not be started.
    """

    def __init__(self, log, popen=subprocess.Popen, max_running=DEFAULT_MAX_COMMANDS):
        self.log = log
        self.popen = popen
        self.max_running = max(1, int(max_running))
        self.running = {}                      # key -> (Popen, name, on_done)
        self.queues = collections.defaultdict(collections.deque)
        self.waiting = collections.deque()     # keys with queued commands and nothing running
        self.waiting_set = set()

    def submit(self, key, name, command, on_done=None):
        self.queues[key].append((name, command, on_done))
        if key not in self.running and key not in self.waiting_set:
            self.waiting.append(key)
            self.waiting_set.add(key)
        self._fill()

    def _fill(self):
        while self.waiting and len(self.running) < self.max_running:
            key = self.waiting.popleft()
            self.waiting_set.discard(key)
            self._start_next(key)

    def _start_next(self, key):
        queue = self.queues.get(key)
        while queue:
            name, command, on_done = queue.popleft()
            self.log.both('%s: running command: %s' % (name, command))
            process = None
            argv = direct_argv(command)
            if argv is not None:
                try:
                    process = self.popen(argv, close_fds=True)
                except OSError:
                    process = None   # not executable as such: the shell says why
            if process is None:
                try:
                    process = self.popen([SHELL, '-c', command], close_fds=True)
                except OSError:
                    self.log.error('error: command fork failed!')
                    if on_done is not None:
                        on_done(None)
                    continue
            self.running[key] = (process, name, on_done)
            if not queue:
                self.queues.pop(key, None)
            return
        self.queues.pop(key, None)

    def _finished(self, key, process, name, on_done):
        del self.running[key]
        code = process.returncode
        if code:
            self.log.error('%s: command returned non-zero status code (%d)'
                           % (name, code if code > 0 else 128 - code))
        if on_done is not None:
            on_done(code)
        if self.queues.get(key) and key not in self.running and key not in self.waiting_set:
            self.waiting.appendleft(key)   # the door's next command goes first: it was queued earlier
            self.waiting_set.add(key)
        self._fill()

    def poll(self):
        for key, (process, name, on_done) in list(self.running.items()):
            if process.poll() is not None:
                self._finished(key, process, name, on_done)
        self._fill()

    def busy(self):
        return bool(self.running or self.waiting)

    def wait_all(self, timeout=30.0, clock=time.monotonic):
        deadline = clock() + timeout
        while (self.running or self.waiting) and clock() < deadline:
            self._fill()
            for key, (process, name, on_done) in list(self.running.items()):
                try:
                    process.wait(timeout=max(0.01, min(0.2, deadline - clock())))
                except subprocess.TimeoutExpired:
                    continue
                self._finished(key, process, name, on_done)


OpenDoor = collections.namedtuple('OpenDoor', ['stanza', 'source', 'family', 'deadline',
                                               'stop_command', 'kernel', 'ident'])
OpenDoor.__new__.__defaults__ = (None,)
# a door whose stop command is running or failed: ``retries`` done so far, next try (monotonic) or None
Closing = collections.namedtuple('Closing', ['door', 'retries', 'next_try'])


def read_state_file(path):
    """The doors a state file says are still open or not closed: list of dicts (raises IOError/ValueError).

    Reads the journal (version 2) and the single JSON object of version 1; a
    line that does not parse (a write cut short by a crash) is skipped.
    """
    with open(path, 'rb') as handle:
        text = handle.read().decode('utf-8', 'replace')
    stripped = text.strip()
    if not stripped:
        return []
    if '\n' not in stripped:
        whole = json.loads(stripped)
        if isinstance(whole, dict) and 'doors' in whole:          # version 1
            return [door for door in whole.get('doors') or [] if isinstance(door, dict)]
    doors = collections.OrderedDict()
    for number, line in enumerate(text.splitlines()):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        if number == 0 and 'version' in record:
            if record.get('version') != STATE_VERSION:
                raise ValueError('state file version %r is not %d' % (record.get('version'), STATE_VERSION))
            continue
        op, ident = record.get('op'), record.get('id')
        if not isinstance(ident, str):
            continue
        if op == 'open':
            doors[ident] = record
        elif op == 'extend' and ident in doors:
            doors[ident]['expires'] = record.get('expires')
        elif op == 'close':
            doors.pop(ident, None)
    return list(doors.values())


class StateJournal:
    """The append-only state file: one record a line, fsync()ed on ``sync()``, compacted by ``rewrite()``."""

    def __init__(self, path, log):
        self.path = path
        self.log = log
        self.fd = None
        self.records = 0          # records in the file now
        self.dirty = False
        self.broken = False       # one error message, not one per knock

    def _error(self, error):
        if not self.broken:
            self.log.error('error: cannot write state file %s: %s' % (self.path, error))
        self.broken = True
        self.close()

    def rewrite(self, records):
        """Replace the file by a header and ``records`` (atomic: temporary file, fsync, rename)."""
        self.close()
        directory = os.path.dirname(self.path) or '.'
        try:
            if not os.path.isdir(directory):
                os.makedirs(directory, 0o700)
            fd, tmp = tempfile.mkstemp(prefix='.state-', dir=directory)   # mode 0600
            try:
                lines = [json.dumps({'version': STATE_VERSION})] + [json.dumps(record) for record in records]
                data = ('\n'.join(lines) + '\n').encode('utf-8', 'surrogateescape')
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, self.path)
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | getattr(os, 'O_CLOEXEC', 0))
            self.records = len(records)
            self.dirty = False
            self.broken = False
        except (IOError, OSError) as error:
            self._error(error)

    def append(self, record):
        if self.fd is None:
            return False
        data = (json.dumps(record) + '\n').encode('utf-8', 'surrogateescape')
        try:
            os.write(self.fd, data)            # O_APPEND, one line per write: a crash cuts at most that line
        except (IOError, OSError) as error:
            self._error(error)
            return False
        self.records += 1
        self.dirty = True
        return True

    def sync(self):
        if self.fd is not None and self.dirty:
            try:
                os.fsync(self.fd)
                self.dirty = False
            except (IOError, OSError) as error:
                self._error(error)

    def close(self):
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None


class DoorKeeper:
    """Open, extend and close doors; remember the ones not closed yet in ``state_file``.

    Every operation is O(log n) in the number of open doors (a heap of
    deadlines; the state file is appended to, not rewritten).
    """

    def __init__(self, log, runner=None, state_file=DEFAULT_STATE_FILE, kernel_doors=None,
                 clock=time.monotonic, wall_clock=time.time, max_open_doors=DEFAULT_MAX_OPEN_DOORS):
        self.log = log
        self.runner = runner or CommandRunner(log)
        self.state_file = state_file
        self.kernel_doors = kernel_doors or {}   # stanza name or None (all) -> door object
        self.clock = clock
        self.wall_clock = wall_clock
        self.max_open_doors = max(1, int(max_open_doors))
        self.open_doors = {}                     # (stanza name, source) -> OpenDoor
        self.closing = {}                        # ident -> Closing (stop command running or to retry)
        self.given_up = {}                       # ident -> OpenDoor: kept in the state file for the next start
        self.stopping = False
        self._heap = []                          # (time, seq, 'expire', key) / (time, seq, 'retry', ident)
        self._seq = itertools.count()
        self._idents = itertools.count(1)
        self._run = '%x' % int(wall_clock() * 1000)
        self.journal = StateJournal(state_file, log) if state_file else None
        self._started = False

    def kernel_door_for(self, name):
        return self.kernel_doors.get(name, self.kernel_doors.get(None))

    # -- state file ----------------------------------------------------------------
    def _wall(self, deadline):
        return round(deadline + self.wall_clock() - self.clock(), 3)

    def _record(self, door):
        return {'op': 'open', 'id': door.ident, 'stanza': door.stanza, 'source': door.source,
                'family': door.family, 'expires': self._wall(door.deadline),
                'stop_command': door.stop_command, 'kernel': door.kernel}

    def _needed(self):
        doors = list(self.open_doors.values()) + [c.door for c in self.closing.values()]
        return doors + list(self.given_up.values())

    def _write(self, record):
        """Append ``record``; the first write of a run starts a new file from what is open now."""
        if self.journal is None:
            return
        if not self._started:
            self._save()      # it already holds what ``record`` says (the records mirror the doors)
            return
        self.journal.append(record)

    def flush(self):
        """fsync the state file; compact it when it holds mostly closed doors (called once per loop pass)."""
        if self.journal is None:
            return
        needed = len(self.open_doors) + len(self.closing) + len(self.given_up)
        if self.journal.broken or self.journal.records > max(COMPACT_MIN_RECORDS, COMPACT_FACTOR * needed):
            self.journal.rewrite([self._record(door) for door in self._needed()])
            self._started = True
        else:
            self.journal.sync()
        if len(self._heap) > COMPACT_FACTOR * (needed + 64):
            self._heap = [item for item in self._heap if self._current(item)]
            heapq.heapify(self._heap)

    def _save(self):
        """Rewrite the state file from the doors not closed yet (compaction)."""
        if self.journal is not None:
            self.journal.rewrite([self._record(door) for door in self._needed()])
            self._started = True

    # -- opening -----------------------------------------------------------------
    def _new_ident(self):
        return '%s.%d' % (self._run, next(self._idents))

    def _push(self, when, kind, what):
        heapq.heappush(self._heap, (when, next(self._seq), kind, what))

    def open(self, stanza, source, family, now=None):
        """A successful knock of ``source`` on ``stanza``."""
        if now is None:
            now = self.clock()
        key = (stanza.name, source)
        timeout = float(getattr(stanza, 'cmd_timeout', None) or 10)
        kernel = self.kernel_door_for(stanza.name)
        start, stop = commands_for(stanza, family)
        if kernel is None and (not start or stop is None):
            if start:
                self.runner.submit(key, stanza.name, substitute(start, source))   # not tracked (knockd)
            return
        door = self.open_doors.get(key)
        if door is None and len(self.open_doors) >= self.max_open_doors:
            self.log.error('%s: %s: door not opened: %d doors are open already (--max-open-doors)'
                           % (source, stanza.name, len(self.open_doors)))
            return
        if kernel is not None:
            try:
                kernel.open(source, timeout)
            except (OSError, ValueError) as error:
                self.log.error('%s: %s: kernel door %s failed: %s' % (source, stanza.name, kernel.spec, error))
                return
        if door is not None:
            door = door._replace(deadline=now + timeout)
            self.open_doors[key] = door
            self.log.both('%s: %s: door already open, extended' % (source, stanza.name))
            self._write({'op': 'extend', 'id': door.ident, 'expires': self._wall(door.deadline)})
            self._push(door.deadline, 'expire', key)
            return
        door = OpenDoor(stanza.name, source, family, now + timeout,
                        None if kernel is not None else substitute(stop, source),
                        kernel.spec if kernel is not None else None, self._new_ident())
        self.open_doors[key] = door
        self._write(self._record(door))        # before the start command: a crash leaves a record
        self._push(door.deadline, 'expire', key)
        if kernel is None:
            self.runner.submit(key, stanza.name, substitute(start, source))

    # -- closing --------------------------------------------------------------------
    def _current(self, item):
        when, _seq, kind, what = item
        if kind == 'expire':
            door = self.open_doors.get(what)
            return door is not None and door.deadline == when
        closing = self.closing.get(what)
        return closing is not None and closing.next_try == when

    def next_deadline(self):
        heap = self._heap
        while heap and not self._current(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def _close(self, door, reason='command timeout'):
        self.log.both('%s: %s: %s' % (door.source, door.stanza, reason))
        if door.kernel:
            try:
                parse_kernel_door(door.kernel).close(door.source)
            except (OSError, ValueError) as error:
                self.log.error('%s: %s: closing kernel door %s failed: %s'
                               % (door.source, door.stanza, door.kernel, error))
        if door.stop_command:
            self._run_stop(door, 0)
        else:
            self._write({'op': 'close', 'id': door.ident})

    def _run_stop(self, door, retries):
        self.closing[door.ident] = Closing(door, retries, None)
        self.runner.submit((door.stanza, door.source), door.stanza, door.stop_command,
                           on_done=lambda code, ident=door.ident: self._stop_done(ident, code))

    def _stop_done(self, ident, code):
        closing = self.closing.get(ident)
        if closing is None:
            return
        door = closing.door
        if code == 0:
            del self.closing[ident]
            self.given_up.pop(ident, None)
            self._write({'op': 'close', 'id': ident})
            if closing.retries:
                self.log.both('%s: %s: stop command succeeded (retry %d)' % (door.source, door.stanza, closing.retries))
            return
        why = 'could not be started' if code is None else 'failed (%d)' % (code if code > 0 else 128 - code)
        if self.stopping or closing.retries >= STOP_RETRIES:
            del self.closing[ident]
            self.given_up[ident] = door
            self.log.error('%s: %s: stop command %s; the door may still be open: kept in the state file, '
                           'tried again at the next start' % (door.source, door.stanza, why))
            return
        delay = min(STOP_RETRY_FIRST * 2 ** closing.retries, STOP_RETRY_MAX)
        next_try = self.clock() + delay
        self.closing[ident] = closing._replace(next_try=next_try)
        self._push(next_try, 'retry', ident)
        self.log.error('%s: %s: stop command %s, retry %d of %d in %g s'
                       % (door.source, door.stanza, why, closing.retries + 1, STOP_RETRIES, delay))

    def due(self, now=None):
        """Close the doors whose time is up, retry failed stop commands; fsync the state file."""
        if now is None:
            now = self.clock()
        expired = 0
        heap = self._heap
        while heap and heap[0][0] <= now:
            item = heapq.heappop(heap)
            if not self._current(item):
                continue
            if item[2] == 'expire':
                door = self.open_doors.pop(item[3])
                self._close(door)
                expired += 1
            else:
                closing = self.closing[item[3]]
                self._run_stop(closing.door, closing.retries + 1)
        self.runner.poll()
        self.flush()
        return expired

    def shutdown(self, timeout=30.0):
        """Close every open door now and wait for the commands (SIGTERM)."""
        self.stopping = True                        # a stop command failing now is left to the next start
        for key, door in list(self.open_doors.items()):
            del self.open_doors[key]
            self._close(door, 'closing on shutdown')
        for ident, closing in list(self.closing.items()):
            if closing.next_try is not None:        # waiting for a retry: try once more now
                self._run_stop(closing.door, closing.retries + 1)
        self.runner.wait_all(timeout)
        for ident in list(self.closing):            # still running after the wait: the next start closes them
            self.given_up[ident] = self.closing.pop(ident).door
        self.flush()
        if self.journal is not None:
            self.journal.close()

    def recover(self):
        """Close the doors a previous run left open or could not close (from the state file)."""
        if not self.state_file or not os.path.exists(self.state_file):
            return 0
        try:
            items = read_state_file(self.state_file)
        except (IOError, OSError, ValueError, AttributeError) as error:
            self.log.error('error: cannot read state file %s: %s' % (self.state_file, error))
            return 0
        doors = []
        for item in items:
            try:
                source = str(ipaddress.ip_address(str(item['source'])))
                stop = item.get('stop_command') or None
                kernel = item.get('kernel') or None
                if (stop is not None and not isinstance(stop, str)) or (kernel is not None and not isinstance(kernel, str)):
                    continue
                doors.append(OpenDoor(str(item['stanza']), source, int(item.get('family') or 4), 0,
                                      stop, kernel, self._new_ident()))
            except (KeyError, ValueError, TypeError):
                continue
        # the new run's file first holds them all (under new ids), then each is closed
        for door in doors:
            self.given_up[door.ident] = door
        self._save()
        for door in doors:
            del self.given_up[door.ident]
            self._close(door, 'closing door left open by a previous run')
        self.flush()
        return len(doors)
