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
- A command that is exactly an iptables/ip6tables rule append, insert or
  delete of the form ``-A|-I|-D CHAIN -s ADDRESS [-p tcp|udp [--dport N]]
  -j TARGET`` (see ``iptables_rule``) is applied without starting iptables:
  its rule line, verbatim, goes to a long-lived ``iptables-restore --noflush``
  of the same iptables variant (the program's own xtables multi binary), which
  parses it with iptables' own parser, so the rule is the one the command would
  make.  Anything else, and any failure of that worker, runs the command as
  before; when the worker dies without saying which line failed, ``-C``
  decides whether the rule was applied before the command is run, so a start
  command is never applied twice and a stop command never lost.
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
import select
import shutil
import subprocess
import time

from ..atomic_file import write_atomic
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


# -- the iptables fast path -------------------------------------------------------------
IPTABLES_PROGRAMS = {'iptables': 4, 'iptables-nft': 4, 'iptables-legacy': 4,
                     'ip6tables': 6, 'ip6tables-nft': 6, 'ip6tables-legacy': 6}
XTABLES_MULTI = ('xtables-nft-multi', 'xtables-legacy-multi')
_CHAIN_NAME = re.compile(r'\A[A-Za-z0-9_][A-Za-z0-9_.+-]{0,27}\Z')
_PORT = re.compile(r'\A[1-9][0-9]{0,4}\Z')
_RULE_OPS = {'-A': 'add', '--append': 'add', '-I': 'add', '--insert': 'add', '-D': 'delete', '--delete': 'delete'}
_ACK = re.compile(br'^# pk-ack ([0-9]+)$')
_FAILED_LINE = re.compile(br'line ([0-9]+) failed')

IptablesRule = collections.namedtuple('IptablesRule', ['program', 'multi', 'family', 'op', 'chain', 'spec'])


def _program_path(word, which=shutil.which):
    return word if word.startswith('/') else which(word)


def iptables_rule(command, which=shutil.which, realpath=os.path.realpath):
    """The rule of ``command`` when it is exactly ``iptables|ip6tables -A|-I|-D CHAIN -s ADDRESS
    [-p tcp|udp [--dport N]] -j TARGET`` run by an xtables multi binary, else None.

    The grammar is strict: nothing else (no other option, table, rule number,
    match, target option or shell syntax) and the address of the program's
    family.  ``spec`` is the words after CHAIN, verbatim.
    """
    if '\n' in command or '\r' in command:
        return None
    words = command.split()
    if len(words) < 7 or re.search(r'[^A-Za-z0-9_./:%=,@+ \t-]', command):
        return None
    base = os.path.basename(words[0])
    family = IPTABLES_PROGRAMS.get(base)
    if family is None or (words[0] != base and not words[0].startswith('/')):
        return None
    op = _RULE_OPS.get(words[1])
    if op is None or not _CHAIN_NAME.match(words[2]):
        return None
    spec = words[3:]
    rest = list(spec)
    if rest[0] not in ('-s', '--source'):
        return None
    try:
        network = ipaddress.ip_network(rest[1], strict=True)
    except ValueError:
        return None
    if network.version != family:
        return None
    rest = rest[2:]
    if rest[:1] == ['-p']:
        if len(rest) < 2 or rest[1] not in ('tcp', 'udp'):
            return None
        rest = rest[2:]
        if rest[:1] and rest[0] in ('--dport', '--destination-port'):
            if len(rest) < 2 or not _PORT.match(rest[1]) or int(rest[1]) > 65535:
                return None
            rest = rest[2:]
    if len(rest) != 2 or rest[0] not in ('-j', '--jump') or not _CHAIN_NAME.match(rest[1]):
        return None
    path = _program_path(words[0], which)
    if not path:
        return None
    multi = realpath(path)
    if os.path.basename(multi) not in XTABLES_MULTI:
        return None
    return IptablesRule(path, multi, family, op, words[2], tuple(spec))


class RestoreWorker:
    """One long-lived ``<xtables multi> iptables-restore --noflush -v -w``: rule lines in, acks out.

    Each operation is ``*filter``, the rule line, ``COMMIT`` and a comment
    that the restore echoes (``-v``) once the COMMIT went through, in order.
    At the first failing line the restore exits, naming the line: that
    operation failed and the ones after it were not read.
    """

    LINES = 4

    def __init__(self, argv, popen=subprocess.Popen):
        self.argv = argv
        self.process = popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             close_fds=True, bufsize=0)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            os.set_blocking(stream.fileno(), False)
        self.lines = 0
        self.sequence = 0
        self.pending = collections.OrderedDict()   # ack number -> op (FastOp)
        self.stdout = b''
        self.stderr = b''
        self.dead = False

    def alive(self):
        return not self.dead and self.process.poll() is None

    def send(self, op, rule_line):
        """Queue ``op``; False when the worker cannot take it (then nothing was sent)."""
        self.sequence += 1
        number = self.sequence
        data = ('*filter\n%s\nCOMMIT\n# pk-ack %d\n' % (rule_line, number)).encode('ascii')
        try:
            written = self.process.stdin.write(data)   # < PIPE_BUF: all or nothing
        except (BlockingIOError, InterruptedError):
            return False
        except (IOError, OSError, ValueError):
            self._die()
            return False
        if written is None:
            return False                                # the pipe is full: the command runs instead
        if written != len(data):
            self._die()
            return False
        op.first_line = self.lines + 1
        self.lines += self.LINES
        self.pending[number] = op
        return True

    def _read(self, stream):
        chunks = []
        while True:
            try:
                chunk = os.read(stream.fileno(), 65536)
            except (BlockingIOError, InterruptedError):
                return b''.join(chunks), False
            except OSError:
                return b''.join(chunks), True
            if not chunk:
                return b''.join(chunks), True
            chunks.append(chunk)

    def pump(self):
        """Read what the worker said: acks end their ops; at its end the others fail."""
        if self.dead:
            return
        data, eof = self._read(self.process.stdout)
        err, _eof = self._read(self.process.stderr)
        self.stderr = (self.stderr + err)[-4096:]
        self.stdout += data
        *lines, self.stdout = self.stdout.split(b'\n')
        for line in lines:
            match = _ACK.match(line)
            if match:
                op = self.pending.pop(int(match.group(1)), None)
                if op is not None:
                    op.applied()
        if eof:
            self._die()

    def fileno(self):
        return self.process.stdout.fileno()

    def _die(self):
        if self.dead:
            return
        self.dead = True
        try:
            self.process.stdin.close()
        except (IOError, OSError, ValueError):
            pass
        try:
            self.process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        err, _eof = self._read(self.process.stderr)
        self.stderr = (self.stderr + err)[-4096:]
        match = _FAILED_LINE.search(self.stderr)
        failed = int(match.group(1)) if match else None
        first = True
        for op in self.pending.values():
            if failed is not None:
                definite = True       # the named line failed, nothing after it was read
            else:
                definite = not first  # died unsaid: only the first op not acked may have been applied
            first = False
            op.not_applied(definite)
        self.pending.clear()

    def close(self):
        if not self.dead:
            try:
                self.process.stdin.close()
            except (IOError, OSError, ValueError):
                pass
            deadline = time.monotonic() + 2.0
            while self.pending and time.monotonic() < deadline and not self.dead:
                select.select([self.fileno()], [], [], 0.05)
                self.pump()
            self._die()


class FastOp:
    """A command applied by a RestoreWorker, seen by CommandRunner as a process (poll, wait, returncode).

    Not applied for sure: the command runs (``spawn``).  Maybe applied (the
    worker died without naming the failing line): ``iptables -C`` first: an
    add already there, or a delete whose rule is gone, is done; otherwise the
    command runs.
    """

    def __init__(self, fast, rule, command, spawn):
        self.fast = fast
        self.rule = rule
        self.command = command
        self.spawn = spawn
        self.returncode = None
        self.child = None
        self.child_kind = None       # 'check' or 'command'
        self.first_line = None

    def applied(self):
        self.returncode = 0

    def not_applied(self, definite):
        if definite:
            self._run_command()
        else:
            argv = [self.rule.program, '-C', self.rule.chain] + list(self.rule.spec)
            try:
                self.child = subprocess.Popen(argv, close_fds=True, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL)
                self.child_kind = 'check'
            except OSError:
                self._run_command()

    def _run_command(self):
        self.child_kind = 'command'
        self.child = self.spawn(self.command)
        if self.child is None:
            self.returncode = 1      # fork failed: reported as such by the runner's log
            self.fast.log.error('error: command fork failed!')

    def _child_done(self, code):
        if self.child_kind == 'command':
            self.returncode = code
            return
        present = code == 0
        if present == (self.rule.op == 'add'):
            self.returncode = 0
        else:
            self._run_command()

    def poll(self):
        if self.returncode is None and self.child is None:
            self.fast.pump()
        if self.returncode is None and self.child is not None:
            code = self.child.poll()
            if code is not None:
                self.child = None
                self._child_done(code)
        return self.returncode

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(self.command, timeout)
            if self.child is not None:
                try:
                    code = self.child.wait(timeout=left)
                except subprocess.TimeoutExpired:
                    raise subprocess.TimeoutExpired(self.command, timeout)
                self.child = None
                self._child_done(code)
            else:
                self.fast.wait(min(0.05, left) if left is not None else 0.05)
        return self.returncode


class IptablesFastPath:
    """The restore workers (one per xtables multi binary and family), started on first use."""

    def __init__(self, log, popen=subprocess.Popen, rule_of=iptables_rule):
        self.log = log
        self.popen = popen
        self.rule_of = rule_of
        self.workers = {}

    def worker(self, rule):
        key = (rule.multi, rule.family)
        worker = self.workers.get(key)
        if worker is not None and not worker.alive():
            worker.pump()
            if worker.pending:
                return None     # its ops are being settled; the command runs meanwhile
            worker = None
        if worker is None:
            name = 'iptables-restore' if rule.family == 4 else 'ip6tables-restore'
            try:
                worker = RestoreWorker([rule.multi, name, '--noflush', '-v', '-w'], popen=self.popen)
            except (IOError, OSError, ValueError) as error:
                self.log.error('error: cannot start %s %s: %s' % (rule.multi, name, error))
                self.workers.pop(key, None)
                return None
            self.workers[key] = worker
        return worker

    def prepare(self, template):
        """Start the worker the command ``template`` (with %IP%) would use, so the first knock does not wait."""
        words = template.split()
        family = IPTABLES_PROGRAMS.get(os.path.basename(words[0])) if words else None
        if family is None:
            return
        rule = self.rule_of(template.replace(IP_TOKEN, '127.0.0.1' if family == 4 else '::1'))
        if rule is not None:
            self.worker(rule)

    def submit(self, command, spawn):
        """A FastOp for ``command`` sent to its worker, or None (run the command)."""
        rule = self.rule_of(command)
        if rule is None:
            return None
        worker = self.worker(rule)
        if worker is None:
            return None
        op = FastOp(self, rule, command, spawn)
        if not worker.send(op, ' '.join((rule_op_word(command), rule.chain) + rule.spec)):
            return None
        return op

    def pump(self):
        for worker in list(self.workers.values()):
            worker.pump()

    def wait(self, timeout):
        fds = [w.fileno() for w in self.workers.values() if not w.dead]
        if fds:
            select.select(fds, [], [], timeout)
        else:
            time.sleep(timeout)
        self.pump()

    def close(self):
        for worker in list(self.workers.values()):
            worker.close()
        self.workers.clear()


def rule_op_word(command):
    return command.split()[1]


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

    def __init__(self, log, popen=subprocess.Popen, max_running=DEFAULT_MAX_COMMANDS, fast_path=True):
        self.log = log
        self.popen = popen
        if fast_path is True:   # the iptables fast path, unless processes are faked (tests)
            fast_path = IptablesFastPath(log) if popen is subprocess.Popen else None
        self.fast = fast_path or None
        self._fast_popen = popen     # a popen swapped in later (tests) turns the fast path off
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
            if self.fast is not None and self.popen is self._fast_popen:
                process = self.fast.submit(command, self.spawn)
            if process is None:
                process = self.spawn(command)
            if process is None:
                self.log.error('error: command fork failed!')
                if on_done is not None:
                    on_done(None)
                continue
            self.running[key] = (process, name, on_done)
            if not queue:
                self.queues.pop(key, None)
            return
        self.queues.pop(key, None)

    def spawn(self, command):
        """A process running ``command`` (directly when it is plain words, else /bin/sh -c), None if fork failed."""
        argv = direct_argv(command)
        if argv is not None:
            try:
                return self.popen(argv, close_fds=True)
            except OSError:
                pass   # not executable as such: the shell says why
        try:
            return self.popen([SHELL, '-c', command], close_fds=True)
        except OSError:
            return None

    def prepare(self, commands):
        """Start what the commands (templates with %IP%) will need (the iptables workers)."""
        if self.fast is not None:
            for command in commands:
                if command:
                    self.fast.prepare(command)

    def close(self):
        """Stop the iptables workers (after ``wait_all``)."""
        if self.fast is not None:
            self.fast.close()

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
            lines = [json.dumps({'version': STATE_VERSION})] + [json.dumps(record) for record in records]
            write_atomic(self.path, '\n'.join(lines) + '\n')    # JSON's ASCII, mode 0600
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
        close = getattr(self.runner, 'close', None)
        if close is not None:
            close()
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
