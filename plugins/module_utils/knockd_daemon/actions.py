# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the daemon does when a door opens: start/stop commands, kernel doors, state.

- Start/stop commands run through ``/bin/sh -c`` like knockd's system(),
  with ``%IP%`` replaced only by a validated numeric address; IPv6 knockers
  get ``Start_Command_6``/``Stop_Command_6`` (falling back to the IPv4
  commands when unset, nothing when set empty, as in knockd 0.8).
- Commands run asynchronously (the capture never waits), but the commands of
  one door and source run in order.
- A command that is only an absolute program path and plain words (no quote,
  variable, glob, redirection or other shell syntax, see ``direct_argv``)
  means the same to ``/bin/sh`` and to execve: it is executed directly,
  sparing the shell's start (about half of a door's opening time); if that
  exec fails the shell runs it, so errors and exit codes stay the shell's.
- A door with a stop command (or a kernel door) is tracked while open: a
  re-knock extends it (no second start command); the stop command runs
  Cmd_Timeout seconds after the LAST successful knock.  A door without a stop
  command runs its start command on every successful knock (knockd).
- Open doors are kept in a JSON state file (the substituted stop command and
  the kernel door), so that after a crash or restart ``recover()`` closes
  what a previous run left open.  ``shutdown()`` closes every open door now.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import ipaddress
import json
import os
import re
import subprocess
import tempfile
import time

from .kernel_door import parse_kernel_door

SHELL = '/bin/sh'
DEFAULT_STATE_FILE = '/run/portknock-knockd/state.json'
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
    """Run shell commands without blocking; one queue per key so a door's commands keep their order."""

    def __init__(self, log, popen=subprocess.Popen):
        self.log = log
        self.popen = popen
        self.running = {}                      # key -> (Popen, name)
        self.queues = collections.defaultdict(collections.deque)

    def submit(self, key, name, command):
        self.queues[key].append((name, command))
        if key not in self.running:
            self._start_next(key)

    def _start_next(self, key):
        queue = self.queues.get(key)
        while queue:
            name, command = queue.popleft()
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
                    continue
            self.running[key] = (process, name)
            return
        self.queues.pop(key, None)

    def _finished(self, key, process, name):
        del self.running[key]
        code = process.returncode
        if code:
            self.log.error('%s: command returned non-zero status code (%d)'
                           % (name, code if code > 0 else 128 - code))
        self._start_next(key)

    def poll(self):
        for key, (process, name) in list(self.running.items()):
            if process.poll() is not None:
                self._finished(key, process, name)

    def busy(self):
        return bool(self.running)

    def wait_all(self, timeout=30.0, clock=time.monotonic):
        deadline = clock() + timeout
        while self.running and clock() < deadline:
            for key, (process, name) in list(self.running.items()):
                try:
                    process.wait(timeout=max(0.01, min(0.2, deadline - clock())))
                except subprocess.TimeoutExpired:
                    continue
                self._finished(key, process, name)


OpenDoor = collections.namedtuple('OpenDoor', ['stanza', 'source', 'family', 'deadline',
                                               'stop_command', 'kernel'])


class DoorKeeper:
    """Open, extend and close doors; remember open ones in ``state_file``."""

    def __init__(self, log, runner=None, state_file=DEFAULT_STATE_FILE, kernel_doors=None,
                 clock=time.monotonic, wall_clock=time.time):
        self.log = log
        self.runner = runner or CommandRunner(log)
        self.state_file = state_file
        self.kernel_doors = kernel_doors or {}   # stanza name or None (all) -> door object
        self.clock = clock
        self.wall_clock = wall_clock
        self.open_doors = {}                     # (stanza name, source) -> OpenDoor

    def kernel_door_for(self, name):
        return self.kernel_doors.get(name, self.kernel_doors.get(None))

    # -- opening -----------------------------------------------------------------
    def open(self, stanza, source, family, now=None):
        """A successful knock of ``source`` on ``stanza``."""
        if now is None:
            now = self.clock()
        key = (stanza.name, source)
        timeout = float(getattr(stanza, 'cmd_timeout', None) or 10)
        kernel = self.kernel_door_for(stanza.name)
        start, stop = commands_for(stanza, family)
        if kernel is not None:
            try:
                kernel.open(source, timeout)
            except (OSError, ValueError) as error:
                self.log.error('%s: %s: kernel door %s failed: %s' % (source, stanza.name, kernel.spec, error))
                return
            if key in self.open_doors:
                self.log.both('%s: %s: door already open, extended' % (source, stanza.name))
            self.open_doors[key] = OpenDoor(stanza.name, source, family, now + timeout, None, kernel.spec)
            self._save()
            return
        if not start:
            return
        if stop is None:
            self.runner.submit(key, stanza.name, substitute(start, source))
            return
        if key in self.open_doors:
            door = self.open_doors[key]
            self.open_doors[key] = door._replace(deadline=now + timeout)
            self.log.both('%s: %s: door already open, extended' % (source, stanza.name))
            self._save()
            return
        self.open_doors[key] = OpenDoor(stanza.name, source, family, now + timeout,
                                        substitute(stop, source), None)
        self._save()
        self.runner.submit(key, stanza.name, substitute(start, source))

    # -- closing --------------------------------------------------------------------
    def next_deadline(self):
        if not self.open_doors:
            return None
        return min(door.deadline for door in self.open_doors.values())

    def _close(self, key, door, reason='command timeout'):
        self.log.both('%s: %s: %s' % (door.source, door.stanza, reason))
        if door.kernel:
            try:
                parse_kernel_door(door.kernel).close(door.source)
            except (OSError, ValueError) as error:
                self.log.error('%s: %s: closing kernel door %s failed: %s'
                               % (door.source, door.stanza, door.kernel, error))
        if door.stop_command:
            self.runner.submit(key, door.stanza, door.stop_command)

    def due(self, now=None):
        """Close the doors whose time is up."""
        if now is None:
            now = self.clock()
        expired = [(key, door) for key, door in self.open_doors.items() if door.deadline <= now]
        for key, door in expired:
            del self.open_doors[key]
            self._close(key, door)
        if expired:
            self._save()
        self.runner.poll()
        return len(expired)

    def shutdown(self, timeout=30.0):
        """Close every open door now and wait for the commands (SIGTERM)."""
        for key, door in list(self.open_doors.items()):
            del self.open_doors[key]
            self._close(key, door, 'closing on shutdown')
        self._save()
        self.runner.wait_all(timeout)

    # -- state file -------------------------------------------------------------------
    def _save(self):
        if not self.state_file:
            return
        wall_offset = self.wall_clock() - self.clock()
        doors = [{'stanza': door.stanza, 'source': door.source, 'family': door.family,
                  'expires': round(door.deadline + wall_offset, 3),
                  'stop_command': door.stop_command, 'kernel': door.kernel}
                 for door in self.open_doors.values()]
        directory = os.path.dirname(self.state_file) or '.'
        try:
            if not os.path.isdir(directory):
                os.makedirs(directory, 0o700)
            fd, tmp = tempfile.mkstemp(prefix='.state-', dir=directory)
            with os.fdopen(fd, 'w') as handle:
                json.dump({'version': 1, 'doors': doors}, handle)
            os.rename(tmp, self.state_file)
        except (IOError, OSError) as error:
            self.log.error('error: cannot write state file %s: %s' % (self.state_file, error))

    def recover(self):
        """Close the doors a previous run left open (from the state file)."""
        if not self.state_file or not os.path.exists(self.state_file):
            return 0
        try:
            with open(self.state_file) as handle:
                doors = json.load(handle).get('doors', [])
        except (IOError, OSError, ValueError, AttributeError) as error:
            self.log.error('error: cannot read state file %s: %s' % (self.state_file, error))
            return 0
        closed = 0
        for item in doors:
            try:
                source = str(ipaddress.ip_address(str(item['source'])))
                door = OpenDoor(str(item['stanza']), source, int(item.get('family') or 4), 0,
                                item.get('stop_command') or None, item.get('kernel') or None)
            except (KeyError, ValueError, TypeError):
                continue
            self._close((door.stanza, door.source), door, 'closing door left open by a previous run')
            closed += 1
        self._save()
        return closed
