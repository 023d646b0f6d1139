# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""The ``knock`` command: knockd-compatible client plus an ssh ProxyCommand mode.

    knock [-u] [-d MS] [-4|-6] [-v] [-s SOURCE] HOST PORT[:PROTO]...
    knock --proxy [-d MS] [-4|-6] [--knock-host H] [--connect-timeout S] HOST PORT [SEQUENCE...]
    knock --spa [-A tcp/22] [-a SRC | -s] [--spa-port P] [--key-file F | -n NAME] [-D] HOST
    knock --proxy --spa [-A ...] HOST PORT

SPA mode (fwknop-compatible single packet authorization, spa_client.py) sends one packet
instead of a sequence; its keys come from an fwknoprc-style file or the environment
(KNOCK_SPA_KEY, KNOCK_SPA_HMAC_KEY), never from the command line.

In proxy mode (``ssh -o ProxyCommand='knock --proxy --sequence-file FILE %h %p' host``)
the host is resolved once, knocked, and the SAME address is connected to; the
connection is then relayed between stdin/stdout and the socket.  When no
sequence is given on the command line it is read from ``--sequence-file FILE``
(a file only its owner can read) or from the environment variable
PORTKNOCK_SEQUENCE: both keep it out of ``ps`` and of ssh -v logs.
All sending goes through knock_sender.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import errno
import os
import select
import socket
import sys
import time

from .knock_proxy_command import (
    CLOSED_MARKER, DEFAULT_CONNECT_TIMEOUT, SEQUENCE_ENV, SPA_CLOSED_MARKER, SPA_HMAC_KEY_ENV, SPA_KEY_ENV,
    STATUS_FILE_ENV)
from .knock_sender import DEFAULT_DELAY_MS, KnockSendError, open_socket, resolve, send_knocks, sockaddr
from .sequence import KnockValueError, parse_port, parse_sequence
from .spa_client import (ANY_SOURCE, DEFAULT_RC_FILE, RcSettings, keys_from_environment, load_rc_file,
                         parse_client_timeout, read_private_file, send_spa)
from . import spa
from .spa import DEFAULT_SPA_PORT

PROG = 'knock'
ATTEMPT_TIMEOUT = 0.5            # one connect attempt; the door may open a few ms late
BUFSIZE = 65536


class ProxyError(Exception):
    """The proxy could not reach the port after knocking."""


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG,
        description='Send a port knock sequence (TCP: one SYN per step, UDP: one datagram), '
                    'optionally then relay a connection for ssh ProxyCommand.')
    parser.add_argument('-u', '--udp', action='store_true',
                        help='make UDP the default protocol for ports without :proto')
    parser.add_argument('-d', '--delay', type=int, default=DEFAULT_DELAY_MS, metavar='MS',
                        help='wait MS milliseconds between knocks (default %d)' % DEFAULT_DELAY_MS)
    family = parser.add_mutually_exclusive_group()
    family.add_argument('-4', '--ipv4', dest='family', action='store_const', const=4,
                        help='resolve and knock over IPv4 only')
    family.add_argument('-6', '--ipv6', dest='family', action='store_const', const=6,
                        help='resolve and knock over IPv6 only')
    parser.add_argument('-v', '--verbose', action='store_true', help='say what is sent (to stderr)')
    parser.add_argument('-s', '--source', metavar='ADDRESS', help='send knocks from this local address')
    parser.add_argument('--proxy', action='store_true',
                        help='proxy mode: arguments are HOST PORT [SEQUENCE...]; knock HOST, then '
                             'connect to the same address on PORT and relay stdin/stdout')
    parser.add_argument('--knock-host', metavar='HOST',
                        help='proxy mode: knock this host instead of HOST (resolved in the same family)')
    parser.add_argument('--fdpass', action='store_true',
                        help='proxy mode for ssh -o ProxyUseFdpass=yes: hand the connected socket to ssh '
                             'and exit instead of relaying (no process in the data path)')
    parser.add_argument('--sequence-file', metavar='FILE',
                        help='read the knock sequence from FILE (mode 0600 or stricter) instead of the command line')
    parser.add_argument('--connect-timeout', type=float, default=DEFAULT_CONNECT_TIMEOUT, metavar='SECONDS',
                        help='proxy mode: keep trying to connect for this long after knocking (default %(default)s)')
    spa_group = parser.add_argument_group(
        'SPA (fwknop-compatible single packet authorization; keys from --key-file/-n or $%s and $%s)'
        % (SPA_KEY_ENV, SPA_HMAC_KEY_ENV))
    spa_group.add_argument('--spa', action='store_true',
                           help='send one SPA packet instead of a knock sequence (in proxy mode too)')
    spa_group.add_argument('-A', '--access', metavar='PROTO/PORT[,...]',
                           help='what to open (fwknop -A); default: the rc file\'s ACCESS, in proxy mode tcp/PORT')
    claim = spa_group.add_mutually_exclusive_group()
    claim.add_argument('-a', '--allow-ip', metavar='ADDRESS',
                       help='the address to open (fwknop -a); default: the address the kernel picks toward HOST')
    claim.add_argument('--source-ip', '--spa-any-source', dest='any_source', action='store_true',
                       help='ask to open the address the packet arrives from: 0.0.0.0 in the message '
                            '(fwknop -s; also -s in SPA mode, where the local address is --source)')
    spa_group.add_argument('-D', '--destination', metavar='HOST', help='the SPA server (fwknop -D), instead of HOST')
    spa_group.add_argument('--spa-port', '--server-port', dest='spa_port', metavar='PORT',
                           help='UDP port of the SPA server (fwknop -p; default: the rc file\'s SPA_SERVER_PORT, '
                                'else %d)' % DEFAULT_SPA_PORT)
    spa_group.add_argument('--key-file', '--rc-file', dest='key_file', metavar='FILE',
                           help='fwknoprc-style file (mode 0600) with KEY_BASE64 and HMAC_KEY_BASE64 '
                                '(default with -n: %s)' % DEFAULT_RC_FILE)
    spa_group.add_argument('-n', '--named-config', metavar='NAME',
                           help='use stanza [NAME] of the key file over its [default] (fwknop -n)')
    spa_group.add_argument('-f', '--fw-timeout', metavar='SECONDS',
                           help='ask the server to keep it open this long (fwknop -f)')
    spa_group.add_argument('-U', '--spoof-user', metavar='USER', help='user name in the message (fwknop -U)')
    parser.add_argument('host', nargs='?', help='host name or address')
    parser.add_argument('ports', nargs='*', metavar='PORT[:PROTO]',
                        help='knock steps (also comma separated); in proxy mode PORT then the steps')
    return parser


def _spa_argv(argv):
    """In SPA mode ``-s`` is fwknop's -s (claim 0.0.0.0); the local source address stays ``--source``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    words = argv[:argv.index('--')] if '--' in argv else argv
    if '--spa' in words:
        return [('--source-ip' if word == '-s' and index < len(words) else word) for index, word in enumerate(argv)]
    return argv


def parse_args(argv=None):
    """Parse and validate; returns the argparse namespace with ``sequence`` (Steps) and ``port``."""
    parser = build_parser()
    args = parser.parse_args(_spa_argv(argv))
    if args.spa:
        return _spa_args(parser, args)
    for name in ('access', 'allow_ip', 'destination', 'spa_port', 'key_file', 'named_config', 'fw_timeout',
                 'spoof_user'):
        if getattr(args, name) is not None:
            parser.error('--%s only makes sense with --spa' % name.replace('_', '-'))
    if args.any_source:
        parser.error('--source-ip only makes sense with --spa')
    if not args.host:
        parser.error('no host given')
    default_protocol = 'udp' if args.udp else 'tcp'
    items = list(args.ports)
    args.port = None
    if args.proxy:
        if not items:
            parser.error('--proxy needs HOST PORT [SEQUENCE...]')
        try:
            args.port = parse_port(items.pop(0), 'proxy port')
        except KnockValueError as exc:
            parser.error(str(exc))
        if not items and not args.sequence_file and os.environ.get(SEQUENCE_ENV):
            items = [os.environ[SEQUENCE_ENV]]
    elif args.knock_host:
        parser.error('--knock-host only makes sense with --proxy')
    if args.sequence_file:
        if items:
            parser.error('give the knock sequence on the command line or in --sequence-file, not both')
        try:
            items = [read_sequence_file(args.sequence_file)]
        except KnockValueError as exc:
            parser.error(str(exc))
    if not items:
        parser.error('no knock sequence given' + (' (nor in $%s)' % SEQUENCE_ENV if args.proxy else ''))
    if args.delay < 0:
        parser.error('delay %r must be 0 or more milliseconds' % args.delay)
    if args.connect_timeout <= 0:
        parser.error('connect timeout %r must be greater than 0' % args.connect_timeout)
    try:
        args.sequence = parse_sequence(' '.join(items), default_protocol)
    except KnockValueError as exc:
        parser.error(str(exc))
    return args


def _spa_args(parser, args):
    """Validate SPA mode: keys (file or environment), host, access, port, claimed address."""
    if args.sequence_file or args.knock_host or args.udp:
        parser.error('--sequence-file, --knock-host and -u are for knock sequences, not --spa')
    items = list(args.ports)
    host = args.destination
    if host and args.host:
        items.insert(0, args.host)
    host = host or args.host
    args.port = None
    if args.proxy:
        if len(items) != 1:
            parser.error('--proxy --spa needs HOST PORT (no sequence)')
        try:
            args.port = parse_port(items.pop(0), 'proxy port')
        except KnockValueError as exc:
            parser.error(str(exc))
    elif items:
        parser.error('--spa sends no sequence: unexpected %s' % ' '.join(items))
    settings = None
    try:
        if args.key_file or args.named_config:
            settings = load_rc_file(args.key_file or DEFAULT_RC_FILE, args.named_config)
            keys = settings.keys
        else:
            keys = keys_from_environment()
            if keys is None:
                if not os.path.exists(os.path.expanduser(DEFAULT_RC_FILE)):
                    parser.error('no SPA keys: give --key-file FILE or -n NAME (%s), or set $%s and $%s'
                                 % (DEFAULT_RC_FILE, SPA_KEY_ENV, SPA_HMAC_KEY_ENV))
                settings = load_rc_file(DEFAULT_RC_FILE)
                keys = settings.keys
        args.keys = keys
        settings = settings or RcSettings(keys)
        args.host = host or settings.server
        if not args.host:
            parser.error('no host given (HOST, -D HOST or SPA_SERVER in the key file)')
        access = args.access or settings.access or ('tcp/%d' % args.port if args.port else None)
        if not access:
            parser.error('nothing to open: give -A PROTO/PORT (or ACCESS in the key file)')
        args.access = access
        args.spa_port = parse_port(args.spa_port if args.spa_port is not None
                                   else settings.spa_port or DEFAULT_SPA_PORT, 'SPA port')
        args.fw_timeout = (parse_client_timeout(args.fw_timeout) if args.fw_timeout is not None
                           else settings.fw_timeout or 0)
        args.allow_ip = ANY_SOURCE if args.any_source else (args.allow_ip or settings.allow_ip)
        args.spoof_user = args.spoof_user or settings.user or _local_user()
        # checked now, with the codec's messages (a throwaway packet with throwaway keys)
        spa.encode(args.allow_ip or '127.0.0.1', access, b'k', b'h', username=args.spoof_user)
    except KnockValueError as exc:
        parser.error(str(exc))
    if args.connect_timeout <= 0:
        parser.error('connect timeout %r must be greater than 0' % args.connect_timeout)
    args.sequence = ()
    return args


def _local_user():
    import getpass
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return 'root'


def read_sequence_file(path):
    """The text of a sequence file; refused when group or others may read or write it (as ssh keys)."""
    data = read_private_file(path, '--sequence-file')
    lines = [line.split('#', 1)[0] for line in data.splitlines()]
    return ' '.join(line for line in lines if line.strip())


def _say(args, text):
    if args.verbose:
        sys.stderr.write('%s: %s\n' % (PROG, text))
        sys.stderr.flush()


def run_knock(args):
    """Plain mode: knock (or send the SPA packet) and return the address knocked."""
    fam, address = resolve(args.host, args.family)
    if args.spa:
        send_spa_packet(args, address, fam)
        return address
    _say(args, 'knocking %s (%s)' % (args.host, address))
    for step in send_knocks(address, args.sequence, delay_ms=args.delay, family=fam, source=args.source):
        _say(args, 'hitting %s %s:%d' % (step.protocol, address, step.port))
    return address


def send_spa_packet(args, address, family):
    """SPA mode: one packet to ``address`` (resolved already); returns the address claimed."""
    claim = send_spa(address, args.keys, args.access, family=family, spa_port=args.spa_port,
                     allow_ip=args.allow_ip, source=args.source, client_timeout=args.fw_timeout,
                     username=args.spoof_user)
    _say(args, 'SPA packet to %s udp/%d: open %s for %s' % (address, args.spa_port, args.access, claim))
    return claim


def connect_after_knock(family, address, port, timeout, attempt_timeout=ATTEMPT_TIMEOUT,
                        clock=time.monotonic, source=None, marker=CLOSED_MARKER):
    """Connect to ``address``:``port``, retrying until ``timeout`` seconds passed.

    With ``source`` the connection leaves from that local address, the one the
    knocks came from (a door opens for the knocking address only).

    Returns the connected socket or raises ProxyError naming the port.
    """
    fam, addr = sockaddr(address, port, family)
    deadline = clock() + timeout
    last = None
    while True:
        remaining = deadline - clock()
        if remaining <= 0:
            break
        sock = open_socket(fam, socket.SOCK_STREAM, source)
        sock.settimeout(min(attempt_timeout, remaining))
        try:
            sock.connect(addr)
            sock.settimeout(None)
            # ssh sets TCP_NODELAY on its own sockets; through a proxy it cannot, and
            # Nagle + delayed ACK would stall every small request/answer exchange.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except socket.timeout:
            last = 'no answer (filtered?)'
        except OSError as exc:
            last = exc.strerror or str(exc)
            # a refused port answers at once: do not spin
            time.sleep(min(0.05, max(0.0, deadline - clock())))
        sock.close()
    raise ProxyError('%s: %s port %d after %.1f s (%s)' % (marker, address, port, timeout, last))


def relay(sock, infd=0, outfd=1):
    """Copy ``infd`` -> sock and sock -> ``outfd`` until the socket side ends.

    EOF on ``infd`` half-closes the socket (shutdown SHUT_WR) and keeps
    reading; EOF from the socket ends the relay.
    """
    in_open = True
    while True:
        rlist = [sock] + ([infd] if in_open else [])
        readable = select.select(rlist, [], [])[0]
        if in_open and infd in readable:
            data = os.read(infd, BUFSIZE)
            if data:
                sock.sendall(data)
            else:
                in_open = False
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
        if sock in readable:
            try:
                data = sock.recv(BUFSIZE)
            except OSError as exc:
                if exc.errno == errno.ECONNRESET:
                    return
                raise
            if not data:
                return
            view = memoryview(data)
            while view:
                written = os.write(outfd, view)
                view = view[written:]


def run_proxy(args):
    """Proxy mode: resolve once, knock, connect to the same address, relay."""
    fam, address = resolve(args.host, args.family)
    if args.spa:
        send_spa_packet(args, address, fam)
        marker = SPA_CLOSED_MARKER
    else:
        knock_address = address
        if args.knock_host:
            knock_address = resolve(args.knock_host, fam)[1]
        _say(args, 'knocking %s (%s)' % (args.knock_host or args.host, knock_address))
        send_knocks(knock_address, args.sequence, delay_ms=args.delay, family=fam, source=args.source)
        marker = CLOSED_MARKER
    sock = connect_after_knock(fam, address, args.port, args.connect_timeout, source=args.source, marker=marker)
    _say(args, 'connected to %s port %d' % (address, args.port))
    if args.fdpass:
        pass_socket(sock)
        return
    if not args.verbose:
        # ssh with ControlPersist waits for EOF on the stderr it gave us: let go of it.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    try:
        relay(sock)
    finally:
        sock.close()


def pass_socket(sock, outfd=1):
    """Give ``sock`` to the process at the other end of ``outfd`` (ssh's ProxyUseFdpass)."""
    import array
    channel = socket.socket(fileno=os.dup(outfd))
    try:
        channel.sendmsg([b'\0'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', [sock.fileno()]))])
    finally:
        channel.close()
        sock.close()


def write_status(message, environ=None):
    """Append ``message`` to the file named by $PORTKNOCK_STATUS_FILE, if any."""
    path = (environ if environ is not None else os.environ).get(STATUS_FILE_ENV)
    if not path:
        return
    try:
        with open(path, 'a') as handle:
            handle.write(message + '\n')
    except (IOError, OSError):
        pass


def main(argv=None):
    """Run the CLI; returns the process exit code (the scripts/knock launcher exits with it)."""
    args = parse_args(argv)
    try:
        if args.proxy:
            run_proxy(args)
        else:
            run_knock(args)
    except (KnockSendError, KnockValueError, ProxyError) as exc:
        message = '%s: %s' % (PROG, exc)
        sys.stderr.write(message + '\n')
        if args.proxy:
            write_status(message)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
