# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""portknock-knockd: a drop-in replacement for knockd 0.8, in Python (stdlib only).

Run as ``python3 -m ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.main``
(or the ``scripts/portknock-knockd`` launcher) with knockd's command line.
See docs/daemon.md.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import errno
import os
import select
import signal
import socket
import sys
import time

from ..knockd_conf import DEFAULT_INTERFACE, DEFAULT_PID_FILE, KnockdConfError, parse, semantic
from ..sequence import KnockValueError
from .actions import (DEFAULT_MAX_COMMANDS, DEFAULT_MAX_OPEN_DOORS, DEFAULT_STATE_FILE, CommandRunner,
                      DoorKeeper)
from .capture import SNAPLEN, AddressWatcher, Capture, local_addresses
from .counters import DoorCounters, default_path as default_counters_path
from .kernel_door import KernelDoorError, parse_kernel_door_option
from .log import KnockdLog
from .one_time_sequences import OneTimeSequences
from .packet import parse_ip
from .sequence_tracker import DEFAULT_MAX_ATTEMPTS, SequenceTracker

VERSION = '0.8'
DEFAULT_CONFIG = '/etc/knockd.conf'
ADDRESS_REFRESH = 30.0     # seconds between two reads of the addresses (netlink tells changes sooner)
FILTER_REFRESH = 0.05      # at least this long between two capture filters (penalized sources change)


class ConfigError(Exception):
    pass


def build_parser():
    parser = argparse.ArgumentParser(
        prog='portknock-knockd', add_help=False,
        description='Port-knock server compatible with knockd 0.8 (portknock.knock).')
    parser.add_argument('-i', '--interface', action='append', default=[],
                        help='network interface(s) to listen on (repeat or comma list; default "eth0")')
    parser.add_argument('-d', '--daemon', action='store_true', help='run as a daemon')
    parser.add_argument('-c', '--config', default=DEFAULT_CONFIG, help='use an alternate config file')
    parser.add_argument('-D', '--debug', action='store_true', help='output debug messages')
    parser.add_argument('-l', '--lookup', action='store_true',
                        help='accepted for compatibility; never looks up DNS names')
    parser.add_argument('-p', '--pidfile', help='use an alternate pidfile')
    parser.add_argument('-g', '--logfile', help='use an alternate logfile')
    parser.add_argument('-v', '--verbose', action='store_true', help='be verbose')
    parser.add_argument('-4', '--only-ip-v4', dest='ipv4_only', action='store_true', help='do not track ipv6')
    parser.add_argument('-V', '--version', action='store_true', help='display version')
    parser.add_argument('-h', '--help', action='store_true', help='this help')
    parser.add_argument('-K', '--kernel-door', action='append', default=[], metavar='[STANZA=]SPEC',
                        help='fail-closed: open doors in the kernel (nft:FAMILY/TABLE/SET4[/SET6] or recent:NAME) '
                             'instead of running the start/stop commands')
    parser.add_argument('--state-file', default=DEFAULT_STATE_FILE,
                        help='where open doors are remembered (default %s)' % DEFAULT_STATE_FILE)
    parser.add_argument('--counters-file', default=None,
                        help='where the doors\' counters are written, at most once a second (default counters.json '
                             'next to the state file; "" for none)')
    parser.add_argument('--log-format', choices=('knockd', 'json'), default='knockd',
                        help='log file and syslog lines: knockd\'s (default) or one JSON object a line')
    parser.add_argument('--no-filter', action='store_true',
                        help='do not attach a BPF filter to the capture sockets')
    parser.add_argument('--max-attempts', type=int, default=DEFAULT_MAX_ATTEMPTS,
                        help='knock attempts kept in memory (default %d)' % DEFAULT_MAX_ATTEMPTS)
    parser.add_argument('--max-open-doors', type=positive, default=DEFAULT_MAX_OPEN_DOORS,
                        help='doors open at once; a knock beyond it is refused (default %d)' % DEFAULT_MAX_OPEN_DOORS)
    parser.add_argument('--max-commands', type=positive, default=DEFAULT_MAX_COMMANDS,
                        help='start/stop commands running at once; the others wait (default %d)'
                             % DEFAULT_MAX_COMMANDS)
    return parser


def positive(text):
    """argparse type: an integer 1..10**6."""
    if not (text.isdigit() and len(text) <= 7 and 1 <= int(text) <= 10 ** 6):
        raise argparse.ArgumentTypeError('%r is not a number from 1 to 1000000' % (text[:20],))
    return int(text)


def split_interfaces(values):
    names = []
    for value in values:
        for name in str(value).split(','):
            name = name.strip()
            if name and name not in names:
                names.append(name)
    return names


class Config:
    """A loaded knockd.conf: options, stanzas, one-time sequence files."""

    def __init__(self, path):
        self.path = path
        try:
            with open(path, 'rb') as handle:
                # as the modules read it (knockd_file.py): bytes that are not UTF-8 stay as they are
                text = handle.read().decode('utf-8', 'surrogateescape')
        except (IOError, OSError) as error:
            raise ConfigError('%s: %s' % (path, error.strerror or error))
        try:
            parsed = semantic(parse(text))
        except (KnockdConfError, KnockValueError) as error:
            raise ConfigError('config: %s' % error)
        except Exception as error:  # pylint: disable=broad-except
            # a parser bug must not stop the daemon; the message of an unknown error may hold a sequence
            raise ConfigError('config: %s: cannot be read (%s)' % (path, type(error).__name__))
        self.options = parsed['options']
        self.stanzas = parsed['stanzas']
        self.by_name = dict((stanza.name, stanza) for stanza in self.stanzas)
        self.one_time = {}
        for stanza in self.stanzas:
            if stanza.one_time_sequences:
                path = stanza.one_time_sequences
                if not os.access(path, os.R_OK | os.W_OK):
                    raise ConfigError('%s: cannot open one time sequences file for reading and writing' % path)
                self.one_time[stanza.name] = OneTimeSequences(path)


class Daemon:
    def __init__(self, args, log):
        self.args = args
        self.log = log
        self.config = None
        self.tracker = None
        self.interfaces = []
        self.capture = None
        self.reload_requested = False
        self.stop_requested = False
        self.next_refresh = 0.0
        self.addresses = None
        self.spa = None          # portknock-fwknopd: its SPA handler (packets to its UDP ports go there)
        self.filter_changes = None   # the SPA receiver's penalty_changes the capture filter reflects
        self.next_filter = 0.0
        self.kernel_doors = {}
        for value in args.kernel_door:
            stanza, door = parse_kernel_door_option(value)
            self.kernel_doors[stanza] = door
        self.keeper = DoorKeeper(log, runner=CommandRunner(log, max_running=args.max_commands),
                                 state_file=args.state_file, kernel_doors=self.kernel_doors,
                                 max_open_doors=args.max_open_doors)
        counters_file = args.counters_file
        if counters_file is None:
            counters_file = default_counters_path(args.state_file)
        self.counters = DoorCounters(counters_file or None, log)

    # -- configuration -------------------------------------------------------
    def load(self):
        config = Config(self.args.config)
        for name in self.kernel_doors:
            if name is not None and name not in config.by_name:
                raise ConfigError('kernel door for unknown stanza %r' % name)
        for stanza in config.stanzas:
            if stanza.sequence:
                # a knock sequence is a credential: never printed, not even with -D
                self.log.dprint('config: %s: sequence: %d steps (masked)' % (stanza.name, len(stanza.sequence)))
        tracker = SequenceTracker(config.stanzas, local_addresses=self.addresses,
                                  max_attempts=self.args.max_attempts, one_time=config.one_time,
                                  ipv4_only=self.args.ipv4_only)
        self.config = config
        self.tracker = tracker
        self.counters.set_doors(config.stanzas)
        prepare = getattr(getattr(self.keeper, 'runner', None), 'prepare', None)   # iptables workers: before a knock
        if prepare is not None:
            prepare([getattr(stanza, attr, None) for stanza in config.stanzas for attr in
                     ('start_command', 'stop_command', 'start_command_6', 'stop_command_6')])
        self.update_watched()
        self.handle(tracker.events_at_start)

    def apply_log_options(self):
        options = self.config.options
        if options.get('use_syslog'):
            self.log.open_syslog()
        path = self.args.logfile or options.get('log_file')
        if path:
            problem = self.log.open_logfile(path)
            if problem:
                sys.stderr.write(problem + '\n')

    def reload(self):
        self.log.both('Re-reading config file: %s' % self.args.config)
        old_config, old_tracker = self.config, self.tracker
        try:
            self.load()
        except Exception as error:  # pylint: disable=broad-except
            # ANY failure keeps the running configuration: exiting here would lock everyone out
            self.config, self.tracker = old_config, old_tracker
            self.update_watched()
            if not isinstance(error, (ConfigError, KnockValueError, OSError)):
                error = 'unexpected %s' % type(error).__name__
            self.log.error('error: cannot reload %s, keeping the running configuration: %s'
                           % (self.args.config, error))
            return False
        logfile = self.args.logfile or self.config.options.get('log_file') or ''
        self.log.both('Closing and re-opening log file: %s' % logfile)
        self.apply_log_options()
        return True

    def refresh_addresses(self, now):
        self.next_refresh = now + ADDRESS_REFRESH
        found = local_addresses(self.interfaces)
        if not found:
            if self.addresses is None:
                return
            found = self.addresses  # keep what we had rather than ignore every knock
        if found != self.addresses:
            for address in sorted(found):
                self.log.dprint('Local IP: %s' % address)
            self.addresses = set(found)
            self.tracker.set_local_addresses(self.addresses)

    def update_watched(self):
        self.watched = self.tracker.ports()
        ports = [port for port, _proto in self.watched] + sorted(self.spa.ports if self.spa is not None else ())
        blocked = ()
        if self.spa is not None:
            receiver = self.spa.receiver
            self.filter_changes = receiver.penalty_changes
            blocked = receiver.penalized_sources()
        if self.capture is not None and not self.args.no_filter:
            if not self.capture.set_ports(ports, blocked):
                self.log.dprint('capture filter not attached, filtering in the daemon')

    def follow_penalties(self, now):
        """Rebuild the capture filter when the SPA receiver's penalized sources changed (at most
        every FILTER_REFRESH): their packets are then dropped in the kernel."""
        receiver = self.spa.receiver
        receiver.expire_penalties(now)
        if receiver.penalty_changes != self.filter_changes and now >= self.next_filter:
            self.next_filter = now + FILTER_REFRESH
            self.update_watched()

    # -- events ------------------------------------------------------------------
    def handle(self, events, now=None):
        log = self.log
        count = self.counters.event
        for event in events:
            kind = event.kind
            count(event)
            if kind == 'stage':
                if log.wanted():   # one per packet under a flood: do not even format it for nobody
                    log.both('%s: %s: Stage %d' % (event.source, event.stanza, event.stage),
                             event='stage', door=event.stanza, source=event.source, stage=event.stage)
            elif kind == 'open':
                log.both('%s: %s: OPEN SESAME' % (event.source, event.stanza),
                         event='open', door=event.stanza, source=event.source)
                try:
                    self.keeper.open(self.config.by_name[event.stanza], event.source, event.family, now)
                except Exception as error:  # pylint: disable=broad-except
                    # one door that cannot open must not stop the daemon (a restart loop locks everyone out)
                    log.error('%s: %s: cannot open the door: %s' % (event.source, event.stanza, type(error).__name__))
            elif kind == 'timeout':
                if log.wanted():
                    log.both('%s: %s: sequence timeout (stage %d)' % (event.source, event.stanza, event.stage),
                             event='timeout', door=event.stanza, source=event.source, stage=event.stage)
            elif kind == 'reset':
                if log.debug:
                    log.dprint('%s: %s: wrong knock, sequence reset (stage %d)'
                               % (event.source, event.stanza, event.stage))
            elif kind == 'evicted':
                if log.debug:
                    log.dprint('%s: %s: knock attempt dropped, too many attempts (stage %d)'
                               % (event.source, event.stanza, event.stage))
            elif kind == 'exhausted':
                log.error('no more sequences left in the one time sequences file for door %s --> disabling the door'
                          % event.stanza)
                self.update_watched()
            elif kind == 'sequence':
                log.dprint('new sequence for door %s' % event.stanza)
                self.update_watched()

    def on_packet(self, data, now):
        self.on_packets((data,), now)

    def on_packets(self, datas, now):
        """Parse and account packets read together (one expiry pass, events handled after)."""
        watched = self.watched
        debug = self.log.debug
        spa = self.spa
        packets = []
        for data in datas:
            packet = parse_ip(data)
            if packet is None:
                continue
            if spa is not None and packet.proto == 'udp' and packet.dport in spa.ports:
                spa.on_packet(data, packet, now)    # SPA: one packet, one decision (fwknopd_main.SpaHandler)
                continue
            if (packet.dport, packet.proto) not in watched:
                continue
            if debug:
                # only packets to knock ports get here: their port would spell the sequence
                self.log.dprint('%s: %s: %s:%d -> %s:(knock port) %d bytes' % (
                    time.strftime('%Y-%m-%d %H:%M:%S'), packet.proto, packet.src, packet.sport,
                    packet.dst, len(data)))
            packets.append(packet)
        events = self.tracker.feed_many(packets, now)
        if events:
            self.handle(events, now)

    # -- main loop ------------------------------------------------------------------
    def _signal(self, signum, _frame):
        if signum == signal.SIGHUP:
            self.reload_requested = True
        elif signum in (signal.SIGTERM, signal.SIGINT):
            self.stop_requested = True

    def install_signals(self):
        self.wake_read, wake_write = socket.socketpair()
        self.wake_read.setblocking(False)
        wake_write.setblocking(False)
        self._wake_write = wake_write
        signal.set_wakeup_fd(wake_write.fileno())
        for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(signum, self._signal)

    def timeout(self, now):
        deadlines = [self.next_refresh]
        for deadline in (self.tracker.next_deadline(), self.keeper.next_deadline(), self.counters.next_deadline()):
            if deadline is not None:
                deadlines.append(deadline)
        if self.keeper.runner.busy():
            deadlines.append(now + 0.1)
        if self.spa is not None:
            receiver = self.spa.receiver
            if receiver.penalty_changes != self.filter_changes:
                deadlines.append(self.next_filter)
            end = receiver.next_penalty_end()
            if end is not None:
                deadlines.append(end)
        return max(0.0, min(deadlines) - now)

    def loop(self):
        sockets = self.capture.fileno_map()
        watch = list(sockets) + [self.wake_read.fileno()]
        watcher = AddressWatcher()
        if watcher.fileno() is not None:
            watch.append(watcher.fileno())
        while not self.stop_requested:
            now = time.monotonic()
            try:
                readable, _w, _x = select.select(watch, [], [], self.timeout(now))
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                readable = []
            except select.error as error:  # pragma: no cover
                if getattr(error, 'errno', None) == errno.EINTR:
                    readable = []
                else:
                    raise
            now = time.monotonic()
            for fd in readable:
                sock = sockets.get(fd)
                if fd == watcher.fileno():
                    if watcher.drain():
                        self.next_refresh = now   # an address changed: re-read now
                    continue
                if sock is None:
                    try:
                        while self.wake_read.recv(512):
                            pass
                    except (BlockingIOError, InterruptedError):
                        pass
                    continue
                self.on_packets(self.capture.read(sock), now)
            if self.reload_requested:
                self.reload_requested = False
                self.reload()
            expired = self.tracker.expire(now)
            if expired:
                self.handle(expired, now)
            self.keeper.due(now)
            if self.spa is not None:
                self.follow_penalties(now)
            self.counters.flush(now)
            if now >= self.next_refresh:
                self.refresh_addresses(now)

    def shutdown(self):
        self.log.both('waiting for child processes...')
        self.keeper.shutdown()
        self.counters.flush(force=True)
        self.log.both('closing...' if self.log.verbose else 'shutting down')
        if self.capture is not None:
            self.capture.close()


def write_pid_file(path):
    try:
        with open(path, 'w') as handle:
            handle.write('%d\n' % os.getpid())
        return True
    except (IOError, OSError):
        return False


def daemonize(pidfile):
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir('/')
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    return write_pid_file(pidfile)


def serve(daemon, pidfile, detach, announce, pid_in_foreground=False, error_prefix='', snaplen=SNAPLEN,
          receive_buffer=None):
    """A loaded daemon (knockd's or the SPA drop-in's) from start-up to exit; the exit code.

    Doors left open by a previous run are recovered, the capture is opened (an error: exit 1),
    the process detaches (``detach``) or stays (writing its pid file only with
    ``pid_in_foreground``), ``announce(interface names)`` logs the start, then the loop runs
    until a signal; the shutdown and the pid file's removal happen whatever ends it.
    ``receive_buffer``: the capture sockets' (default capture.RECEIVE_BUFFER)."""
    if daemon.keeper.recover():
        daemon.keeper.runner.wait_all()
    try:
        buffer = {} if receive_buffer is None else {'receive_buffer': receive_buffer}
        daemon.capture = Capture(daemon.interfaces, snaplen=snaplen, **buffer)
    except OSError as error:
        sys.stderr.write('%s%s\n' % (error_prefix, error.strerror or error))
        return 1
    daemon.update_watched()
    wrote_pid = False
    if detach or pid_in_foreground:
        wrote_pid = daemonize(pidfile) if detach else write_pid_file(pidfile)
        if not wrote_pid:
            daemon.log.logprint('could not create pid file %s' % pidfile)
    daemon.install_signals()
    announce(','.join(daemon.interfaces))
    try:
        daemon.loop()
    finally:
        daemon.shutdown()
        if wrote_pid:
            try:
                os.unlink(pidfile)
            except OSError:
                pass
    return 0


def start(parser, argv, version, daemon_class, make_log, error_prefix=''):
    """``(daemon, None)``: the command line read and the daemon's configuration loaded, or
    ``(None, exit code)``: -V and -h answered, a bad option or configuration refused (on stderr)."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return None, exit_.code
    if args.version:
        sys.stdout.write(version + '\n')
        return None, 0
    if args.help:
        parser.print_help()
        return None, 0
    try:
        daemon = daemon_class(args, make_log(args))
        daemon.load()
    except (ConfigError, KernelDoorError, KnockValueError) as error:
        sys.stderr.write('%s%s\n' % (error_prefix, error))
        return None, 1
    return daemon, None


def main(argv=None):
    daemon, code = start(build_parser(), argv, 'knockd %s (portknock.knock python daemon)' % VERSION, Daemon,
                         lambda args: KnockdLog(verbose=args.verbose, debug=args.debug, log_format=args.log_format))
    if daemon is None:
        return code
    args, log = daemon.args, daemon.log
    daemon.apply_log_options()
    options = daemon.config.options
    daemon.interfaces = split_interfaces(args.interface or [options.get('interface') or DEFAULT_INTERFACE])
    pidfile = args.pidfile or options.get('pid_file') or DEFAULT_PID_FILE
    daemon.refresh_addresses(time.monotonic())
    if daemon.addresses is None:
        log.error('warning: cannot read the addresses of %s; accepting knocks to any destination'
                  % ','.join(daemon.interfaces))

    def announce(names):
        log.vprint('listening on %s...' % names)
        log.logprint('starting up, listening on %s' % names)
    return serve(daemon, pidfile, args.daemon, announce)


if __name__ == '__main__':
    raise SystemExit(main())
