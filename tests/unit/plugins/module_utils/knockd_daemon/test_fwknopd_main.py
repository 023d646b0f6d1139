# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""portknock-fwknopd's command line, config errors and its SPA handler (no capture: packets fed in)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import io
import json
import random
import socket
import struct

import pytest

from ansible_collections.portknock.knock.plugins.module_utils import spa
from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon import fwknopd_main as fm
from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.log import KnockdLog
from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.main import FILTER_REFRESH

KEY, HMAC_KEY = b'k' * 32, b'h' * 64
KEY_B64, HMAC_B64 = base64.b64encode(KEY).decode(), base64.b64encode(HMAC_KEY).decode()
ACCESS = 'SOURCE ANY\nOPEN_PORTS tcp/22, udp/4187\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nFW_ACCESS_TIMEOUT 9\n' % (
    KEY_B64, HMAC_B64)


class FakeDoor:
    def __init__(self, spec):
        self.spec = spec
        self.opened = []

    def open(self, address, seconds):
        self.opened.append((address, seconds))

    def close(self, address):
        pass


def files(tmp_path, conf='PCAP_INTF lo;\nMAX_SPA_PACKET_AGE 60;\n', access=ACCESS):
    (tmp_path / 'fwknopd.conf').write_text(conf)
    (tmp_path / 'access.conf').write_text(access)
    return ['-c', str(tmp_path / 'fwknopd.conf'), '-a', str(tmp_path / 'access.conf'),
            '-d', str(tmp_path / 'digest.cache'), '--state-file', str(tmp_path / 'state.json')]


def daemon(tmp_path, extra=(), **kw):
    args = fm.build_parser().parse_args(files(tmp_path, **kw) + list(extra))
    args.max_commands, args.logfile = 4, None
    stream = io.StringIO()
    result = fm.FwknopDaemon(args, KnockdLog(verbose=True, stream=stream))
    result.stream = stream
    return result


def test_fwknopd_options_parse():
    args = fm.build_parser().parse_args(['-c', 'c', '-a', 'a', '-i', 'eth1', '-f', '-v', '-p', 'p', '-d', 'd',
                                         '-K', 'tcp/22=recent:x', '--require-packet-source'])
    assert (args.config_file, args.access_file, args.interface, args.foreground, args.verbose) == \
        ('c', 'a', ['eth1'], True, 1)
    assert (args.pid_file, args.digest_file, args.kernel_door, args.require_packet_source) == \
        ('p', 'd', ['tcp/22=recent:x'], True)
    defaults = fm.build_parser().parse_args([])
    assert (defaults.config_file, defaults.access_file) == ('/etc/fwknop/fwknopd.conf', '/etc/fwknop/access.conf')


@pytest.mark.parametrize('conf, access, words', [
    ('PCAP_INTF lo;\nNOT_A_KEY 1;\n', ACCESS, ['fwknopd.conf:2', 'NOT_A_KEY']),
    ('MAX_SPA_PACKET_AGE soon;\n', ACCESS, ['fwknopd.conf:1', 'MAX_SPA_PACKET_AGE']),
    ('PCAP_FILTER tcp port 22;\n', ACCESS, ['fwknopd.conf:1', 'PCAP_FILTER']),
    ('', ACCESS + 'FW_ACCESS_TIME 5\n', ['access.conf:6', 'FW_ACCESS_TIME']),
    ('', ACCESS.replace('tcp/22', 'tcp/99999'), ['access.conf:2', 'OPEN_PORTS']),
])
def test_bad_config_is_an_error_naming_the_line_exit_1_no_key_no_traceback(tmp_path, capsys, conf, access, words):
    rc = fm.main(files(tmp_path, conf, access) + ['-f', '-K', 'nft:inet/t/s4/s6'])
    err = capsys.readouterr().err
    assert rc == 1 and 'Traceback' not in err
    for word in words:
        assert word in err
    assert KEY_B64 not in err and HMAC_B64 not in err


def test_a_port_without_kernel_door_is_refused_at_start(tmp_path, capsys):
    assert fm.main(files(tmp_path) + ['-f', '-K', 'tcp/22=recent:ssh']) == 1
    assert 'no kernel door for udp/4187' in capsys.readouterr().err
    assert fm.main(files(tmp_path) + ['-f', '-K', 'tcp/22=recent:ssh', '-K', 'udp/4187=recent:x',
                                      '--exit-parse-config']) == 0
    assert fm.main(files(tmp_path) + ['-f', '-K', 'tcp/x=recent:ssh']) == 1
    assert 'not tcp/PORT' in capsys.readouterr().err
    assert fm.main(files(tmp_path, access=ACCESS.replace('OPEN_PORTS tcp/22, udp/4187\n', '')) +
                   ['-f', '-K', 'tcp/22=recent:ssh']) == 1
    assert 'no OPEN_PORTS' in capsys.readouterr().err


def test_unknown_option_exits_non_zero(capsys):
    assert fm.main(['--bogus']) == 2
    assert fm.main(['-V']) == 0 and '2.6.10' in capsys.readouterr().out


def test_fuzzed_config_files_never_give_a_traceback(tmp_path, capsys):
    rng = random.Random(7313)
    words = ['PCAP_INTF', 'PCAP_FILTER', 'MAX_SPA_PACKET_AGE', 'ENABLE_DIGEST_PERSISTENCE', 'SOURCE', 'OPEN_PORTS',
             'KEY_BASE64', 'HMAC_KEY_BASE64', 'HMAC_DIGEST_TYPE', 'FW_ACCESS_TIMEOUT', 'REQUIRE_SOURCE_ADDRESS',
             'udp', 'port', '62201', 'Y', 'N', 'ANY', 'tcp/22', KEY_B64, ';', '#', '\t', '\x00', '\xff', '-1']
    for _n in range(150):
        conf = '\n'.join(' '.join(rng.choice(words) for _n in range(rng.randrange(4))) for _n in range(rng.randrange(5)))
        access = '\n'.join(' '.join(rng.choice(words) for _n in range(rng.randrange(4))) for _n in range(rng.randrange(8)))
        rc = fm.main(files(tmp_path, conf, access) + ['-f', '--exit-parse-config', '-K', 'nft:inet/t/s4'])
        err = capsys.readouterr().err
        assert rc in (0, 1) and 'Traceback' not in err
        assert KEY_B64 not in err


def _udp4(src, payload, dport=spa.DEFAULT_SPA_PORT):
    udp = struct.pack('!HHHH', 40000, dport, 8 + len(payload), 0) + payload
    return struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, socket.inet_aton(src),
                       socket.inet_aton('10.231.250.1')) + udp


def test_spa_packets_go_from_the_capture_loop_to_the_kernel_door(tmp_path):
    d = daemon(tmp_path, ['-K', 'nft:inet/t/s4/s6'])
    d.load()
    door = FakeDoor('nft:inet/t/s4/s6')
    d.keeper.kernel_doors[None] = door
    assert (spa.DEFAULT_SPA_PORT in d.spa.ports)
    data = spa.encode('10.231.250.7', 'tcp/22,udp/4187', KEY, HMAC_KEY).encode('ascii')
    d.on_packets([_udp4('10.231.250.2', data), _udp4('10.231.250.2', data),
                  _udp4('10.231.250.2', b'junk' * 20), _udp4('10.231.250.2', data, dport=9421)], 100.0)
    assert door.opened == [('10.231.250.7', 9.0), ('10.231.250.7', 9.0)]     # tcp/22 and udp/4187, once
    out = d.stream.getvalue()
    assert 'SPA packet from 10.231.250.2 accepted (stanza at line 1): opening tcp/22,udp/4187 for 10.231.250.7, 9 s' \
        in out
    assert 'SPA packet from 10.231.250.2 refused: replay' in out
    assert 'refused: bad HMAC' in out
    assert out.count('SPA packet from') == 3           # the packet to another port is not SPA's
    assert KEY_B64 not in out and HMAC_B64 not in out
    d.counters.flush(force=True)
    counts = json.loads((tmp_path / 'counters.json').read_text())['doors']['spa']
    assert counts['knocks'] == [3] and counts['opens'] == 1
    assert counts['refusals']['replay'] == 1 and counts['refusals']['bad_HMAC'] == 1


def test_test_mode_opens_nothing_and_refusal_lines_are_rate_limited(tmp_path):
    d = daemon(tmp_path, ['-t'])
    d.load()
    clock = [0.0]
    d.spa.clock = lambda: clock[0]
    d.spa.last = 0.0
    for n in range(fm.LOG_BURST + 50):     # one source each: this is the log limit, not the penalty
        d.on_packets([_udp4('10.231.250.%d' % (10 + n), b'A' * (40 + n))], 1.0)
    out = d.stream.getvalue()
    assert out.count('refused: ') == fm.LOG_BURST
    clock[0] += 10
    d.on_packets([_udp4('10.231.250.2', b'B' * 50)], 2.0)
    assert '50 refused SPA packets not logged' in d.stream.getvalue()
    data = spa.encode('10.231.250.7', 'tcp/22', KEY, HMAC_KEY).encode('ascii')
    d.on_packets([_udp4('10.231.250.2', data)], 3.0)
    assert 'test mode: nothing opened' in d.stream.getvalue()
    assert not d.keeper.open_doors


class FilterRecorder:
    """Stands in for capture.Capture: records each filter the daemon asks for."""

    def __init__(self):
        self.filters = []

    def set_ports(self, ports, blocked=()):
        self.filters.append((sorted(ports), list(blocked)))
        return True


def test_penalized_sources_go_into_the_kernel_filter_and_leave_it_when_the_penalty_ends(tmp_path):
    d = daemon(tmp_path, ['-t', '--penalty-failures', '5', '--penalty-seconds', '2'])
    d.capture = FilterRecorder()
    d.load()
    clock = [100.0]
    d.spa.receiver.monotonic = lambda: clock[0]
    d.next_refresh = clock[0] + 3600                    # no address refresh due: timeout() is the filter's
    assert d.capture.filters == [([spa.DEFAULT_SPA_PORT], [])]
    d.on_packets([_udp4('10.231.250.9', b'A' * 60)] * 4, clock[0])
    d.follow_penalties(clock[0])
    assert len(d.capture.filters) == 1                  # 4 failures: no penalty, no new filter
    d.on_packets([_udp4('10.231.250.9', b'A' * 60), _udp4('10.231.250.8', b'A' * 60)], clock[0])
    assert d.timeout(clock[0]) == 0.0                   # a filter to rebuild now
    d.follow_penalties(clock[0])
    assert d.capture.filters[-1] == ([spa.DEFAULT_SPA_PORT], ['10.231.250.9'])
    clock[0] = 100.02
    for _n in range(4):                                 # a second flooder soon after: rate-limited rebuild
        d.on_packets([_udp4('10.231.250.8', b'A' * 60)], clock[0])
    d.follow_penalties(clock[0])
    assert len(d.capture.filters) == 2
    assert d.timeout(clock[0]) == pytest.approx(FILTER_REFRESH - 0.02)
    clock[0] = 100.0 + FILTER_REFRESH
    d.follow_penalties(clock[0])
    assert d.capture.filters[-1] == ([spa.DEFAULT_SPA_PORT], ['10.231.250.8', '10.231.250.9'])
    assert d.timeout(clock[0]) == pytest.approx(2.0 - FILTER_REFRESH)   # wakes when the first penalty ends
    clock[0] = 102.0
    d.follow_penalties(clock[0])
    assert d.capture.filters[-1] == ([spa.DEFAULT_SPA_PORT], ['10.231.250.8'])
    clock[0] = 103.0
    d.follow_penalties(clock[0])
    assert d.capture.filters[-1] == ([spa.DEFAULT_SPA_PORT], [])
    count = len(d.capture.filters)
    d.follow_penalties(clock[0] + 1)
    assert len(d.capture.filters) == count             # nothing changed: no rebuild
    assert 'its packets are refused unexamined' in d.stream.getvalue()


def test_reload_keeps_the_running_configuration_on_error(tmp_path):
    d = daemon(tmp_path, ['-K', 'nft:inet/t/s4/s6'])
    d.load()
    spa_before = d.spa
    (tmp_path / 'access.conf').write_text('SOURCE ANY\nBROKEN 1\n')
    assert d.reload() is False
    assert d.spa is spa_before
    (tmp_path / 'access.conf').write_text(ACCESS.replace('FW_ACCESS_TIMEOUT 9', 'FW_ACCESS_TIMEOUT 11'))
    assert d.reload() is True and d.spa.receiver.stanzas[0].fw_access_timeout == 11
    assert d.cache is d.spa.receiver.cache          # the replay cache survives a reload


def test_missing_cryptography_is_said_at_start(tmp_path, capsys, monkeypatch):
    def no_aes(*_args, **_kw):
        raise spa.SpaDependencyError('SPA needs the Python package "cryptography" (Debian: python3-cryptography)')
    monkeypatch.setattr(fm.spa, 'encrypt', no_aes)
    assert fm.main(files(tmp_path) + ['-f', '-K', 'nft:inet/t/s4/s6']) == 1
    assert 'python3-cryptography' in capsys.readouterr().err
