# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""portknock-fwknopd: a drop-in for fwknopd 2.6.10 on the bundled daemon's machinery.

Run as ``scripts/portknock-fwknopd`` (or ``python3 -m ...knockd_daemon.fwknopd_main``) with
fwknopd's main options.  It reads Debian's ``/etc/fwknop/fwknopd.conf`` and
``/etc/fwknop/access.conf`` through the collection's one parser (``fwknop_conf.py``), captures
with the knock daemon's capture loop (``main.Daemon``: AF_PACKET, before netfilter, so the SPA
port needs no ACCEPT rule), decides each packet in ``spa_receiver.py`` (replay cache:
``replay_cache.py``) and opens kernel doors through the knock daemon's DoorKeeper
(``actions.py``, ``kernel_door.py``): fail closed, the expiry held by the kernel.

A kernel door (``-K [PROTO/PORT=]SPEC``) says where an opened address goes for each
proto/port an access.conf stanza may open (``nft:FAMILY/TABLE/SET4[/SET6]`` or
``recent:NAME``; without ``PROTO/PORT=`` for every port); the firewall rule that lets the
set's addresses reach the port is the role's (or yours).  See docs/daemon.md.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import collections
import sys
import time

from .. import spa
from ..fwknop_conf import FwknopConfError, load_access_conf, load_fwknopd_conf
from ..sequence import KnockValueError
from .actions import DEFAULT_MAX_COMMANDS, DEFAULT_MAX_OPEN_DOORS
from .capture import SPA_RECEIVE_BUFFER, SPA_SNAPLEN
from .log import KnockdLog
from .main import ConfigError as DaemonConfigError
from .main import Daemon, positive, serve, split_interfaces, start
from .replay_cache import DEFAULT_MAX_ENTRIES, ReplayCache
from .sequence_tracker import SequenceTracker
from .spa_receiver import (DEFAULT_PENALTY_FAILURES, DEFAULT_PENALTY_SECONDS, PENALIZED, SpaReceiver,
                           udp_payload)

VERSION = '2.6.10'
DEFAULT_CONFIG = '/etc/fwknop/fwknopd.conf'
DEFAULT_ACCESS = '/etc/fwknop/access.conf'
DEFAULT_STATE_FILE = '/run/portknock-fwknopd/state.json'
COUNTER_DOOR = 'spa'
LOG_RATE = 20.0          # refusal lines per second at most (a flood of junk must not flood the log)
LOG_BURST = 100

# what DoorKeeper.open takes as a "stanza": the door is one proto/port, its timeout the decision's
SpaDoor = collections.namedtuple('SpaDoor', ['name', 'cmd_timeout'])
_CounterDoor = collections.namedtuple('_CounterDoor', ['name', 'sequence'])


class ConfigError(DaemonConfigError):
    pass


def non_negative(text):
    """argparse type: 0, or an integer positive() takes."""
    return 0 if text == '0' else positive(text)


def build_parser():
    parser = argparse.ArgumentParser(
        prog='portknock-fwknopd', add_help=False,
        description='SPA server compatible with fwknopd 2.6.10 (portknock.knock): fwknopd.conf and access.conf '
                    'as fwknopd reads them, doors in the kernel (nftables sets or -m recent lists).')
    add = parser.add_argument
    add('-c', '--config-file', default=DEFAULT_CONFIG, help='fwknopd.conf (default %s)' % DEFAULT_CONFIG)
    add('-a', '--access-file', default=DEFAULT_ACCESS, help='access.conf (default %s)' % DEFAULT_ACCESS)
    add('-i', '--interface', action='append', default=[],
        help='interface(s) to capture SPA packets on (repeat or comma list; default PCAP_INTF)')
    add('-f', '--foreground', action='store_true', help='stay in the foreground, log lines on stderr')
    add('-v', '--verbose', action='count', default=0, help='verbose (twice: debug)')
    add('-p', '--pid-file', help='pid file (default FWKNOP_PID_FILE)')
    add('-d', '--digest-file', help='digest cache file (default DIGEST_FILE)')
    add('-t', '--test', action='store_true', help='decide and log every SPA packet, open nothing')
    add('--syslog-enable', action='store_true', help='log to syslog in the foreground too')
    add('--exit-parse-config', action='store_true', help='read both files, report an error, exit')
    add('-V', '--version', action='store_true', help='print the version')
    add('-h', '--help', action='store_true', help='this help')
    # the collection's own (fwknopd rejects unknown access.conf keys, so these are options)
    add('-K', '--kernel-door', action='append', default=[], metavar='[PROTO/PORT=]SPEC',
        help='where opened addresses go: nft:FAMILY/TABLE/SET4[/SET6] or recent:NAME, for one proto/port or all')
    add('--require-packet-source', action='store_true',
        help='extension: the address in the message must be the packet\'s source address')
    add('--penalty-failures', type=non_negative, default=DEFAULT_PENALTY_FAILURES, metavar='N',
        help='extension: a source with N packets in one second that fail the HMAC (or decryption, or are '
             'replays) is ignored for --penalty-seconds (default %d; 0: never)' % DEFAULT_PENALTY_FAILURES)
    add('--penalty-seconds', type=positive, default=DEFAULT_PENALTY_SECONDS, metavar='S',
        help='extension: how long such a source is ignored (default %d)' % DEFAULT_PENALTY_SECONDS)
    add('--state-file', default=DEFAULT_STATE_FILE,
        help='open doors are remembered here (default %s)' % DEFAULT_STATE_FILE)
    add('--counters-file', default=None, help='counters (default counters.json next to the state file; "" none)')
    add('--max-digests', type=positive, default=DEFAULT_MAX_ENTRIES,
        help='digests kept in the replay cache (default %d); full of live ones, packets are refused'
             % DEFAULT_MAX_ENTRIES)
    add('--max-open-doors', type=positive, default=DEFAULT_MAX_OPEN_DOORS, help='doors open at once')
    add('--log-format', choices=('knockd', 'json'), default='knockd', help='log file/syslog lines')
    add('--no-filter', action='store_true', help='do not attach a BPF filter to the capture sockets')
    return parser


class SpaHandler:
    """Glue between the capture loop and the receiver: decision -> log line, counters, doors."""

    def __init__(self, daemon, receiver, test_mode=False, clock=time.monotonic):
        self.daemon = daemon
        self.receiver = receiver
        self.ports = receiver.ports
        self.test_mode = test_mode
        self.clock = clock
        self.tokens = LOG_BURST
        self.last = clock()
        self.suppressed = 0

    def _may_log(self):
        now = self.clock()
        self.tokens = min(LOG_BURST, self.tokens + (now - self.last) * LOG_RATE)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.suppressed += 1
        return False

    def on_packet(self, data, packet, now):
        payload = udp_payload(data, packet)
        decision = self.receiver.decide(payload if payload is not None else b'', packet.src, packet.sport,
                                        packet.dst, packet.dport)
        self.handle(decision, now)
        return decision

    def handle(self, decision, now=None):
        log = self.daemon.log
        self.daemon.counters.count(COUNTER_DOOR, decision.accepted,
                                   None if decision.accepted else decision.reason.replace(' ', '_'))
        if not decision.accepted:
            if decision.reason == PENALIZED:
                return      # counted; the packet that started the penalty was logged (its detail says so)
            if not self._may_log():
                return
            if self.suppressed:
                log.both('%d refused SPA packets not logged (at most %g lines a second)'
                         % (self.suppressed, LOG_RATE))
                self.suppressed = 0
            where = ' (stanza at line %d)' % decision.stanza if decision.stanza else ''
            asks = ' for %s %s' % (decision.address, ','.join(str(a) for a in decision.access)) \
                if decision.address and decision.access else ''
            log.both('SPA packet from %s refused: %s%s%s%s' % (
                decision.src, decision.reason, asks, where, (': ' + decision.detail) if decision.detail else ''),
                event='refused', source=decision.src, reason=decision.reason)
            return
        access = ','.join(str(a) for a in decision.access)
        log.both('SPA packet from %s accepted (stanza at line %d): opening %s for %s, %d s%s' % (
            decision.src, decision.stanza, access, decision.address, decision.timeout,
            ' (test mode: nothing opened)' if self.test_mode else ''),
            event='open', source=decision.src, address=decision.address, access=access)
        if self.test_mode:
            return
        keeper = self.daemon.keeper
        family = 6 if ':' in decision.address else 4
        for item in decision.access:
            name = str(item)
            if keeper.kernel_door_for(name) is None:
                log.error('%s: %s: no kernel door for this port (-K %s=SPEC): not opened'
                          % (decision.address, name, name))
                continue
            try:
                keeper.open(SpaDoor(name, decision.timeout), decision.address, family, now)
            except Exception as error:  # pylint: disable=broad-except
                log.error('%s: %s: cannot open the door: %s' % (decision.address, name, type(error).__name__))


class FwknopDaemon(Daemon):
    """The knock daemon's loop with no knock stanza and an SPA handler."""

    def load(self):
        args = self.args
        try:
            config = load_fwknopd_conf(args.config_file)
            stanzas = load_access_conf(args.access_file)
        except (FwknopConfError, KnockValueError) as error:
            raise ConfigError(str(error))
        except Exception as error:  # pylint: disable=broad-except
            # a parser bug: never a traceback, and an unknown error's text may hold a key
            raise ConfigError('%s: cannot be read (%s)' % (args.config_file, type(error).__name__))
        try:
            spa.encrypt(b'check', b'\0' * spa.MAX_KEY_LEN)      # AES is there: say so now, not per packet
        except spa.SpaDependencyError as error:
            raise ConfigError(str(error))
        for name in self.kernel_doors:
            if name is not None:
                try:
                    proto, port = name.split('/')
                    if proto not in ('tcp', 'udp') or not 1 <= int(port) <= 65535 or str(int(port)) != port:
                        raise ValueError(name)
                except ValueError:
                    raise ConfigError('kernel door for %r: not tcp/PORT or udp/PORT' % name)
        if not args.test and None not in self.kernel_doors:
            for stanza in stanzas:
                if not stanza.open_ports:
                    raise ConfigError('%s:%d: the stanza has no OPEN_PORTS: it may open any port, so a kernel '
                                      'door for every port (-K SPEC) is needed' % (args.access_file, stanza.line))
                for proto, port in stanza.open_ports:
                    if '%s/%d' % (proto, port) not in self.kernel_doors:
                        raise ConfigError('%s:%d: no kernel door for %s/%d (-K %s/%d=SPEC, or -K SPEC for all)'
                                          % (args.access_file, stanza.line, proto, port, proto, port))
        digest_file = None
        if config.enable_digest_persistence:
            digest_file = args.digest_file or config.digest_file
        max_age = config.max_spa_packet_age if config.enable_spa_packet_aging else None
        cache = self.cache if getattr(self, 'cache', None) is not None and self.cache.path == digest_file else None
        if cache is None:
            cache = ReplayCache(digest_file, max_age, args.max_digests, self.log)
            cache.load()
        cache.max_age = max_age
        receiver = SpaReceiver(config, stanzas, cache, require_packet_source=args.require_packet_source,
                               penalty_failures=args.penalty_failures, penalty_seconds=args.penalty_seconds)
        self.cache = cache
        self.fwknopd_config = config
        self.tracker = SequenceTracker([])
        self.spa = SpaHandler(self, receiver, test_mode=args.test)
        self.config = None
        self.counters.set_doors([_CounterDoor(COUNTER_DOOR, (None,))])
        self.update_watched()

    def apply_log_options(self):
        pass

    def reload(self):
        self.log.both('Re-reading config files: %s, %s' % (self.args.config_file, self.args.access_file))
        old = (self.tracker, self.spa, getattr(self, 'fwknopd_config', None))
        try:
            self.load()
        except Exception as error:  # pylint: disable=broad-except
            self.tracker, self.spa, self.fwknopd_config = old
            self.update_watched()
            if not isinstance(error, (ConfigError, KnockValueError, OSError)):
                error = 'unexpected %s' % type(error).__name__
            self.log.error('error: cannot reload, keeping the running configuration: %s' % error)
            return False
        return True


def _log(args):
    # attributes of the knock daemon's options that its machinery reads
    args.max_commands = DEFAULT_MAX_COMMANDS
    args.logfile = None
    return KnockdLog(verbose=args.foreground or args.verbose > 0, debug=args.verbose > 1,
                     stream=sys.stderr, log_format=args.log_format, ident='fwknopd')


def main(argv=None):
    daemon, code = start(build_parser(), argv, 'fwknopd server %s (portknock.knock python drop-in)' % VERSION,
                         FwknopDaemon, _log, error_prefix='portknock-fwknopd: ')
    if daemon is None:
        return code
    args, log = daemon.args, daemon.log
    config = daemon.fwknopd_config
    if args.exit_parse_config:
        sys.stdout.write('config files %s and %s: OK\n' % (args.config_file, args.access_file))
        return 0
    ident = config.options.get('SYSLOG_IDENTITY')
    if ident:
        log.ident = ident
    if not args.foreground or args.syslog_enable:
        log.open_syslog()
    daemon.interfaces = split_interfaces(args.interface or [config.pcap_intf])
    pidfile = args.pid_file or config.pid_file

    def announce(names):
        log.both('starting up, listening on %s for SPA packets to udp/%d (%d access stanza(s), replay cache %s, '
                 '%d digest(s))' % (names, config.spa_port, len(daemon.spa.receiver.stanzas),
                                    daemon.cache.path or 'in memory', len(daemon.cache)))
    return serve(daemon, pidfile, not args.foreground, announce, pid_in_foreground=True,
                 error_prefix='portknock-fwknopd: ', snaplen=SPA_SNAPLEN, receive_buffer=SPA_RECEIVE_BUFFER)


if __name__ == '__main__':
    raise SystemExit(main())
