# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import socket
import struct

import pytest

from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon import main as daemon_main
from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.log import KnockdLog

CONFIG = '''\
[options]
    UseSyslog

[openSSH]
    sequence    = 2222,3333,4444
    seq_timeout = 15
    tcpflags    = syn
    start_command = echo open %IP%
    cmd_timeout = 3
    stop_command = echo close %IP%

[otp]
    one_time_sequences = {otp}
    start_command = echo otp %IP%
'''


class RecordingKeeper:
    def __init__(self):
        self.opened = []

    def open(self, stanza, source, family, now=None):
        self.opened.append((stanza.name, source, family))


def syn(src, dst, port):
    tcp = struct.pack('!HHIIBBHHH', 40000, port, 1, 0, 5 << 4, 0x02, 1024, 0, 0)
    return struct.pack('!BBHHHBBH4s4s', 0x45, 0, 40, 1, 0, 64, 6, 0, socket.inet_aton(src),
                       socket.inet_aton(dst)) + tcp


@pytest.fixture
def daemon(tmp_path):
    otp = tmp_path / 'otp'
    otp.write_text(' 7000,8000\n 9000\n')
    conf = tmp_path / 'knockd.conf'
    conf.write_text(CONFIG.format(otp=otp))
    args = daemon_main.build_parser().parse_args(['-c', str(conf), '-v', '--state-file', str(tmp_path / 's.json')])
    log = KnockdLog(verbose=True, stream=io.StringIO())
    result = daemon_main.Daemon(args, log)
    result.addresses = set(['10.99.4.1'])
    result.load()
    result.keeper = RecordingKeeper()
    return result


def test_cli_interfaces():
    args = daemon_main.build_parser().parse_args(['-i', 'eth0,eth1', '-i', 'eth2', '-i', 'eth0', '-4'])
    assert daemon_main.split_interfaces(args.interface) == ['eth0', 'eth1', 'eth2']
    assert args.ipv4_only


def test_config_is_read_through_the_knockd_conf_parser(daemon):
    assert [stanza.name for stanza in daemon.config.stanzas] == ['openSSH', 'otp']
    assert daemon.config.options['use_syslog'] is True
    assert (2222, 'tcp') in daemon.watched and (7000, 'tcp') in daemon.watched


def test_packets_open_doors_and_log_like_knockd(daemon):
    for port in (2222, 3333, 4444):
        daemon.on_packet(syn('10.99.4.2', '10.99.4.1', port), 1.0)
    assert daemon.keeper.opened == [('openSSH', '10.99.4.2', 4)]
    output = daemon.log.stream.getvalue()
    assert '10.99.4.2: openSSH: Stage 1\n' in output
    assert '10.99.4.2: openSSH: OPEN SESAME\n' in output


def test_one_time_sequence_switches_the_watched_ports(daemon):
    daemon.on_packet(syn('10.99.4.2', '10.99.4.1', 7000), 1.0)
    daemon.on_packet(syn('10.99.4.2', '10.99.4.1', 8000), 1.1)
    assert daemon.keeper.opened == [('otp', '10.99.4.2', 4)]
    assert (9000, 'tcp') in daemon.watched and (7000, 'tcp') not in daemon.watched


def test_broken_config_on_reload_keeps_the_running_one(daemon, capsys):
    old = daemon.config
    with open(daemon.args.config, 'a') as handle:
        handle.write('[bad]\n    sequence = 70000\n')
    assert daemon.reload() is False
    assert daemon.config is old
    assert 'keeping the running configuration' in capsys.readouterr().err
    for port in (2222, 3333, 4444):
        daemon.on_packet(syn('10.99.4.2', '10.99.4.1', port), 1.0)
    assert daemon.keeper.opened == [('openSSH', '10.99.4.2', 4)]


def test_missing_config_fails(tmp_path):
    with pytest.raises(daemon_main.ConfigError):
        daemon_main.Config(str(tmp_path / 'nope.conf'))
