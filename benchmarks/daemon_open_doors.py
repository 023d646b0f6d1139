#!/usr/bin/env python3
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: N sources completing a knock at once, through the daemon's tracker and door keeper.

    PYTHONPATH=<dir holding ansible_collections> python3 benchmarks/daemon_open_doors.py [--sizes 100,1000,4000]

In process, no capture and no lab: one stanza (sequence 7313,4187,9421, start and stop
commands), N sources each send their three SYNs, fed in batches of 256 packets as the
daemon's main loop feeds one read (``SequenceTracker.feed_many``, then the door keeper for
every 'open' event, then ``DoorKeeper.due``, as ``Daemon.loop`` does).  Commands go to the
daemon's real ``CommandRunner`` with a fake ``popen``: a "process" ends when the benchmark
says so, so the number of commands running at once is what the daemon would have forked.
The state file is real (a temporary directory on the same file system as /tmp).

Printed per N: main-loop CPU seconds for the burst (what the daemon spends without reading
packets), doors opened, most commands running at once, state file bytes written
and its size after the burst, then the CPU seconds to close every door at its deadline.
Works against the daemon before and after issue 11 item 10 (options it does not know are
not passed).  It prints numbers; it asserts nothing.  See benchmarks/README.md.
"""

import argparse
import collections
import inspect
import os
import shutil
import socket
import struct
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
try:
    from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon import actions
    from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.log import KnockdLog
    from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.packet import parse_ip
    from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.sequence_tracker import (
        SequenceTracker)
    from ansible_collections.portknock.knock.plugins.module_utils.knockd_conf import parse, semantic
except ImportError:
    sys.exit('set PYTHONPATH to the directory holding ansible_collections/portknock/knock')

CONFIG = '''\
[openSSH]
    sequence      = 7313,4187,9421
    seq_timeout   = 15
    tcpflags      = syn
    start_command = /usr/sbin/iptables -I INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
    cmd_timeout   = 30
    stop_command  = /usr/sbin/iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
'''
SERVER = '10.231.0.1'
BATCH = 256


class FakeProcess:
    def __init__(self, bench):
        self.bench = bench
        self.returncode = None
        bench.alive.add(self)
        bench.peak = max(bench.peak, len(bench.alive))

    def finish(self):
        self.returncode = 0
        self.bench.alive.discard(self)

    def poll(self):
        return self.returncode

    def wait(self, timeout=None):
        self.finish()
        return 0


class Bench:
    def __init__(self):
        self.alive = set()
        self.peak = 0

    def popen(self, argv, close_fds=True):
        return FakeProcess(self)


def syn(src, port):
    tcp = struct.pack('!HHIIBBHHH', 40000, port, 1, 0, 5 << 4, 0x02, 1024, 0, 0)
    return struct.pack('!BBHHHBBH4s4s', 0x45, 0, 40, 1, 0, 64, 6, 0, socket.inet_aton(src),
                       socket.inet_aton(SERVER)) + tcp


def sources(count):
    return ['10.231.%d.%d' % (1 + index // 250, 1 + index % 250) for index in range(count)]


class CountingFile:
    """Counts the bytes the keeper writes to its state file (os.write and file objects)."""

    def __init__(self):
        self.bytes = 0

    def install(self):
        real_write, real_fdopen = os.write, os.fdopen
        counter = self

        def write(fd, data):
            counter.bytes += len(data)
            return real_write(fd, data)

        def fdopen(fd, *args, **kwargs):
            handle = real_fdopen(fd, *args, **kwargs)
            inner = handle.write

            def counted(data):
                counter.bytes += len(data)
                return inner(data)
            handle.write = counted
            return handle
        actions.os.write = write
        actions.os.fdopen = fdopen
        return real_write, real_fdopen

    @staticmethod
    def uninstall(saved):
        actions.os.write, actions.os.fdopen = saved


def kwargs_known(function, **wanted):
    names = inspect.signature(function).parameters
    return dict((key, value) for key, value in wanted.items() if key in names and value is not None)


def run(count, max_open_doors, max_commands):
    stanza = semantic(parse(CONFIG))['stanzas'][0]
    directory = tempfile.mkdtemp(prefix='pk-open-doors-')
    bench = Bench()
    log = KnockdLog()
    log.error = lambda message: None            # a refused door logs a line each: not what is measured
    clock = [1000.0]
    runner = actions.CommandRunner(log, **kwargs_known(actions.CommandRunner.__init__, popen=bench.popen,
                                                       max_running=max_commands))
    keeper = actions.DoorKeeper(log, **kwargs_known(
        actions.DoorKeeper.__init__, runner=runner, state_file=os.path.join(directory, 'state.json'),
        clock=lambda: clock[0], wall_clock=time.time, max_open_doors=max_open_doors))
    tracker = SequenceTracker([stanza], local_addresses=[SERVER], clock=lambda: clock[0], max_attempts=count + 16)
    packets = [syn(source, port) for port in (7313, 4187, 9421) for source in sources(count)]
    counter = CountingFile()
    saved = counter.install()
    opened = 0
    try:
        started = time.process_time()
        for offset in range(0, len(packets), BATCH):
            batch = [parse_ip(data) for data in packets[offset:offset + BATCH]]
            for event in tracker.feed_many(batch, clock[0]):
                if event.kind == 'open':
                    keeper.open(stanza, event.source, event.family, clock[0])
                    opened += 1
            keeper.due(clock[0])
            keeper.next_deadline()                # the loop's select timeout asks this every time
            for process in list(bench.alive)[:len(bench.alive) // 2]:
                process.finish()                  # half of what runs has ended by the next read
            clock[0] += 0.001
        burst = time.process_time() - started
        written = counter.bytes
        doors = len(keeper.open_doors)
        size = os.path.getsize(keeper.state_file) if os.path.exists(keeper.state_file) else 0
        clock[0] += 31
        started = time.process_time()
        for _round in range(10000):
            keeper.due(clock[0])
            for process in list(bench.alive):
                process.finish()
            if not runner.busy() and keeper.next_deadline() is None:
                break
        closing = time.process_time() - started
    finally:
        CountingFile.uninstall(saved)
        shutil.rmtree(directory)
    return dict(n=count, burst=burst, knocks=opened, open=doors, peak=bench.peak, written=written, size=size, closing=closing)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sizes', default='100,1000,4000')
    parser.add_argument('--max-open-doors', type=int, default=None, help='passed when the keeper knows it')
    parser.add_argument('--max-commands', type=int, default=None, help='passed when the runner knows it')
    args = parser.parse_args()
    print('daemon: %s' % os.path.dirname(actions.__file__))
    print('%6s %10s %8s %7s %12s %12s %10s %10s' % ('N', 'burst CPU', 'doors', 'peak', 'state bytes',
                                                    'state size', 'close CPU', 'per door'))
    for count in [int(size) for size in args.sizes.split(',')]:
        result = run(count, args.max_open_doors, args.max_commands)
        print('%6d %9.3fs %8d %7d %12d %12d %9.3fs %8.1fus' % (
            result['n'], result['burst'], result['open'], result['peak'],
            result['written'], result['size'], result['closing'],
            1e6 * result['burst'] / max(1, result['knocks'])))
        sys.stdout.flush()


if __name__ == '__main__':
    main()
