# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bundled daemon's live counters file and its JSON log lines (issue 13)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import json
import os
import socket
import stat
import struct

from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon import main as daemon_main
from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.counters import DoorCounters
from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.log import KnockdLog
from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.sequence_tracker import Event

from fake_clock import FakeClock as Clock
from knockd_conf_text import conf, section   # tests/integration (tests/conftest.py)

SEQUENCE = (7313, 4187, 9421)
CONFIG = conf(
    section('options', 'LogFile = {log}'),
    section('ssh', sequence='7313,4187,9421', seq_timeout=5, tcpflags='syn', start_command='/bin/true %IP%',
            cmd_timeout=3, stop_command='/bin/true %IP%'),
    section('web', sequence='9421:udp,7313:udp', start_command='/bin/true %IP%'))


class RecordingKeeper:
    def __init__(self):
        self.opened = []

    def open(self, stanza, source, family, now=None):
        self.opened.append((stanza.name, source))

    def next_deadline(self):
        return None


def syn(src, dst, port):
    tcp = struct.pack('!HHIIBBHHH', 40000, port, 1, 0, 5 << 4, 0x02, 1024, 0, 0)
    return struct.pack('!BBHHHBBH4s4s', 0x45, 0, 40, 1, 0, 64, 6, 0, socket.inet_aton(src),
                       socket.inet_aton(dst)) + tcp


def make_daemon(tmp_path, *extra):
    conf = tmp_path / 'knockd.conf'
    conf.write_text(CONFIG.format(log=tmp_path / 'knockd.log'))
    args = daemon_main.build_parser().parse_args(['-c', str(conf), '--state-file', str(tmp_path / 'run' / 'state.json')]
                                                 + list(extra))
    log = KnockdLog(stream=io.StringIO(), log_format=args.log_format)
    daemon = daemon_main.Daemon(args, log)
    daemon.addresses = set(['10.99.4.1'])
    daemon.load()
    daemon.apply_log_options()
    daemon.keeper = RecordingKeeper()
    return daemon


def read(path):
    with open(str(path)) as handle:
        return json.load(handle)


def test_counters_follow_knocks_opens_and_refusals(tmp_path):
    daemon = make_daemon(tmp_path)
    path = tmp_path / 'run' / 'counters.json'
    assert daemon.counters.path == str(path)           # next to the state file
    daemon.counters.flush(1.0)
    first = read(path)
    assert first['doors']['ssh'] == {'steps': 3, 'knocks': [0, 0, 0], 'opens': 0,
                                     'refusals': {'wrong_order': 0, 'too_slow': 0, 'dropped': 0}}
    assert first['doors']['web']['steps'] == 2
    for port in SEQUENCE:                                          # one open
        daemon.on_packet(syn('10.99.4.2', '10.99.4.1', port), 2.0)
    daemon.on_packet(syn('10.99.4.2', '10.99.4.1', SEQUENCE[0]), 2.5)
    daemon.on_packet(syn('10.99.4.2', '10.99.4.1', SEQUENCE[0]), 2.6)   # a retransmission: not counted
    daemon.on_packet(syn('10.99.4.2', '10.99.4.1', SEQUENCE[2]), 2.7)   # wrong order
    daemon.on_packet(syn('10.99.4.3', '10.99.4.1', SEQUENCE[0]), 3.0)
    daemon.handle(daemon.tracker.expire(9.0), 9.0)                       # too slow
    assert daemon.counters.flush(9.0) is True
    ssh = read(path)['doors']['ssh']
    assert ssh == {'steps': 3, 'knocks': [3, 1, 1], 'opens': 1,
                   'refusals': {'wrong_order': 1, 'too_slow': 1, 'dropped': 0}}
    assert daemon.keeper.opened == [('ssh', '10.99.4.2')]


def test_counters_file_holds_no_port_and_no_address_and_is_0644(tmp_path):
    daemon = make_daemon(tmp_path)
    for port in SEQUENCE:
        daemon.on_packet(syn('10.99.4.2', '10.99.4.1', port), 2.0)
    daemon.counters.flush(2.0, force=True)
    path = tmp_path / 'run' / 'counters.json'
    text = path.read_text()
    assert all(str(port) not in text for port in SEQUENCE)
    assert '10.99.4.2' not in text
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o644
    assert [name for name in os.listdir(str(tmp_path / 'run')) if name.startswith('.counters-')] == []


def test_written_at_most_once_per_interval_and_only_when_something_changed(tmp_path):
    clock = Clock(10.0)
    counters = DoorCounters(str(tmp_path / 'c.json'), clock=clock, wall_clock=lambda: 1.7e9)
    assert counters.next_deadline() == 10.0 and counters.flush() is True
    assert counters.next_deadline() is None and counters.flush(11.0) is False      # nothing changed
    counters.event(Event('open', 'ssh', '10.0.0.1', 2, 4))
    assert counters.next_deadline() == 11.0
    assert counters.flush(10.5) is False                                           # too soon
    assert counters.flush(11.0) is True
    assert read(tmp_path / 'c.json')['doors']['ssh']['opens'] == 1
    counters.event(Event('open', 'ssh', '10.0.0.1', 2, 4))
    assert counters.flush(11.2, force=True) is True                                # shutdown


def test_reload_keeps_the_counts_of_the_doors_still_there(tmp_path):
    daemon = make_daemon(tmp_path)
    for port in SEQUENCE:
        daemon.on_packet(syn('10.99.4.2', '10.99.4.1', port), 2.0)
    conf = tmp_path / 'knockd.conf'
    conf.write_text(conf.read_text().split('[web]')[0])
    assert daemon.reload() is True
    assert sorted(daemon.counters.doors) == ['ssh']
    assert daemon.counters.doors['ssh']['opens'] == 1


def test_unwritable_counters_file_is_one_error_not_a_crash(tmp_path, capsys):
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    counters = DoorCounters(str(blocker / 'c.json'), KnockdLog(stream=io.StringIO()), clock=Clock(100.0))
    assert counters.flush() is False
    assert counters.flush(200.0) is False
    assert capsys.readouterr().err.count('cannot write counters file') == 1


def test_no_counters_file(tmp_path):
    daemon = make_daemon(tmp_path, '--counters-file', '')
    assert daemon.counters.path is None and daemon.counters.next_deadline() is None
    assert daemon.counters.flush(force=True) is False


def test_json_log_lines_carry_the_events_and_no_knock_port(tmp_path):
    daemon = make_daemon(tmp_path, '--log-format', 'json')
    for port in SEQUENCE:
        daemon.on_packet(syn('10.99.4.2', '10.99.4.1', port), 2.0)
    daemon.log.close_logfile()
    lines = [json.loads(line) for line in (tmp_path / 'knockd.log').read_text().splitlines()]
    events = [(line.get('event'), line.get('door'), line.get('stage')) for line in lines if 'event' in line]
    assert events == [('stage', 'ssh', 1), ('stage', 'ssh', 2), ('stage', 'ssh', 3), ('open', 'ssh', None)]
    assert lines[-1]['message'] == '10.99.4.2: ssh: OPEN SESAME' and lines[-1]['source'] == '10.99.4.2'
    assert all('T' in line['time'] for line in lines)
    text = (tmp_path / 'knockd.log').read_text()
    assert all(str(port) not in text for port in SEQUENCE)


def test_default_log_format_stays_knockd(tmp_path):
    daemon = make_daemon(tmp_path)
    for port in SEQUENCE:
        daemon.on_packet(syn('10.99.4.2', '10.99.4.1', port), 2.0)
    daemon.log.close_logfile()
    text = (tmp_path / 'knockd.log').read_text()
    assert '] 10.99.4.2: ssh: Stage 1\n' in text and '] 10.99.4.2: ssh: OPEN SESAME\n' in text
    assert '{' not in text
