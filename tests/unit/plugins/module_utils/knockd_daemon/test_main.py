# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import os
import socket
import struct

import pytest

from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon import main as daemon_main
from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.log import KnockdLog

CONFIG = '''\
[options]
    UseSyslog

[openSSH]
    sequence    = 3371,2459,4126
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
    otp.write_text(' 7311,9127\n 8243\n')
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
    assert (3371, 'tcp') in daemon.watched and (7311, 'tcp') in daemon.watched


def test_packets_open_doors_and_log_like_knockd(daemon):
    for port in (3371, 2459, 4126):
        daemon.on_packet(syn('10.99.4.2', '10.99.4.1', port), 1.0)
    assert daemon.keeper.opened == [('openSSH', '10.99.4.2', 4)]
    output = daemon.log.stream.getvalue()
    assert '10.99.4.2: openSSH: Stage 1\n' in output
    assert '10.99.4.2: openSSH: OPEN SESAME\n' in output


def test_one_time_sequence_switches_the_watched_ports(daemon):
    daemon.on_packet(syn('10.99.4.2', '10.99.4.1', 7311), 1.0)
    daemon.on_packet(syn('10.99.4.2', '10.99.4.1', 9127), 1.1)
    assert daemon.keeper.opened == [('otp', '10.99.4.2', 4)]
    assert (8243, 'tcp') in daemon.watched and (7311, 'tcp') not in daemon.watched


def test_broken_config_on_reload_keeps_the_running_one(daemon, capsys):
    old = daemon.config
    with open(daemon.args.config, 'a') as handle:
        handle.write('[bad]\n    sequence = 70000\n')
    assert daemon.reload() is False
    assert daemon.config is old
    assert 'keeping the running configuration' in capsys.readouterr().err
    for port in (3371, 2459, 4126):
        daemon.on_packet(syn('10.99.4.2', '10.99.4.1', port), 1.0)
    assert daemon.keeper.opened == [('openSSH', '10.99.4.2', 4)]


def test_missing_config_fails(tmp_path):
    with pytest.raises(daemon_main.ConfigError):
        daemon_main.Config(str(tmp_path / 'nope.conf'))


# -- issue 11 item 9: values the modules accept must not stop the daemon ------------------
HUGE = '1' + '0' * 309           # float() of it overflows (the 1e309 of the issue, as knockd.conf digits)
DIGITS_4301 = '7' * 4301         # int() refuses it (Python's 4300-digit limit)
SMALL_CONFIG = '''\
[openSSH]
    sequence    = 7313,4187,9421
    tcpflags    = syn
    start_command = echo open %IP%
    {key} = {value}
    stop_command = echo close %IP%
'''


def write_config(tmp_path, text):
    conf = tmp_path / 'knockd.conf'
    conf.write_bytes(text if isinstance(text, bytes) else text.encode())
    return conf


@pytest.mark.parametrize('key', ['cmd_timeout', 'seq_timeout', 'Cmd_Timeout', 'timeout'])
@pytest.mark.parametrize('value', [HUGE, DIGITS_4301, '9' * 20000, '2147483648', '99999999999'],
                         ids=['1e309', '4301-digits', '20000-digits', 'int32+1', '11-digits'])
def test_huge_timeouts_are_a_config_error_naming_the_key(tmp_path, key, value):
    conf = write_config(tmp_path, SMALL_CONFIG.format(key=key, value=value))
    with pytest.raises(daemon_main.ConfigError) as raised:
        daemon_main.Config(str(conf))
    message = str(raised.value)
    assert 'greater than 2147483647 seconds' in message and len(message) < 200


def test_largest_timeout_loads_and_a_knock_does_not_overflow(tmp_path):
    conf = write_config(tmp_path, SMALL_CONFIG.format(key='cmd_timeout', value='2147483647'))
    args = daemon_main.build_parser().parse_args(['-c', str(conf), '--state-file', str(tmp_path / 's.json')])
    result = daemon_main.Daemon(args, KnockdLog(stream=io.StringIO()))
    result.addresses = set(['10.99.4.1'])
    result.load()
    result.keeper.runner.popen = lambda argv, close_fds: FakeProcess()
    for port in (7313, 4187, 9421):
        result.on_packet(syn('10.99.4.2', '10.99.4.1', port), 1.0)
    assert result.keeper.next_deadline() == 1.0 + 2147483647


class FakeProcess:
    returncode = 0

    def poll(self):
        return 0


@pytest.mark.parametrize('line', ['    sequence = %s,4187' % DIGITS_4301, '    sequence = 7313,%s:udp' % ('5' * 5000),
                                  '    cmd_timeout = %s' % DIGITS_4301, '    seq_timeout = %s' % HUGE],
                         ids=['port-4301-digits', 'udp-port-5000-digits', 'cmd_timeout-4301-digits', 'seq_timeout-1e309'])
def test_reload_with_huge_numbers_keeps_the_running_config(daemon, capsys, line):
    old = daemon.config
    with open(daemon.args.config, 'a') as handle:
        handle.write('[bad]\n%s\n    sequence = 7313,4187\n' % line)
    assert daemon.reload() is False
    assert daemon.config is old
    err = capsys.readouterr().err
    assert 'keeping the running configuration' in err and 'Traceback' not in err


def test_reload_keeps_the_running_config_on_any_exception(daemon, capsys, monkeypatch):
    old, tracker = daemon.config, daemon.tracker

    def broken(*args, **kwargs):
        raise RuntimeError('parser bug')
    for culprit in ('Config', 'SequenceTracker'):
        with monkeypatch.context() as patch:
            patch.setattr(daemon_main, culprit, broken)
            assert daemon.reload() is False
        assert daemon.config is old and daemon.tracker is tracker
        assert 'keeping the running configuration: unexpected RuntimeError' in capsys.readouterr().err
    assert daemon.reload() is True


def test_unexpected_parser_error_is_a_config_error_without_its_text(tmp_path, monkeypatch):
    conf = write_config(tmp_path, SMALL_CONFIG.format(key='cmd_timeout', value='3'))

    def broken(text):
        raise ValueError('secret 7313,4187,9421')
    monkeypatch.setattr(daemon_main, 'parse', broken)
    with pytest.raises(daemon_main.ConfigError) as raised:
        daemon_main.Config(str(conf))
    assert '7313' not in str(raised.value) and 'ValueError' in str(raised.value)


@pytest.mark.parametrize('raw', [b'\xff', b'\xe9t\xe9', b'\xc3', b'\x80\x80'])
def test_non_utf8_bytes_load_like_the_modules_read_them(tmp_path, raw):
    text = (b'[options]\n    LogFile = ' + str(tmp_path / 'knockd.log').encode() + b'\n# caf' + raw + b'\n'
            b'[openSSH]\n    sequence = 7313,4187,9421\n    start_command = /bin/echo ' + raw + b' %IP%\n'
            b'    stop_command = /bin/echo close\n')
    conf = write_config(tmp_path, text)
    args = daemon_main.build_parser().parse_args(['-c', str(conf), '-v', '--state-file', str(tmp_path / 's.json')])
    log = KnockdLog(verbose=True, stream=io.StringIO())
    result = daemon_main.Daemon(args, log)
    result.addresses = set(['10.99.4.1'])
    result.load()
    result.apply_log_options()
    argvs = []

    def popen(argv, close_fds):
        argvs.append(argv)
        return FakeProcess()
    result.keeper.runner.popen = popen
    for port in (7313, 4187, 9421):
        result.on_packet(syn('10.99.4.2', '10.99.4.1', port), 1.0)
    assert argvs and os.fsencode(argvs[0][-1]) == b'/bin/echo ' + raw + b' 10.99.4.2'   # the file's own bytes
    logged = (tmp_path / 'knockd.log').read_text()
    assert 'OPEN SESAME' in logged and 'running command: /bin/echo \\x' in logged
    assert 'running command: /bin/echo \\x' in log.stream.getvalue()
    assert result.reload() is True


def test_one_time_sequences_with_a_huge_number_skip_the_line(tmp_path):
    from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.one_time_sequences import (
        OneTimeSequences)
    path = tmp_path / 'otp'
    path.write_text(' %s,4187\n 7313,4187\n' % DIGITS_4301)
    sequences = OneTimeSequences(str(path))
    assert [step.port for step in sequences.current()] == [7313, 4187]
    assert sequences.consume(sequences.current()) is None


def test_a_door_that_cannot_open_does_not_stop_the_daemon(daemon, capsys):
    class Exploding:
        def open(self, *args):
            raise OverflowError('int too large to convert to float')
    daemon.keeper = Exploding()
    for port in (3371, 2459, 4126):
        daemon.on_packet(syn('10.99.4.2', '10.99.4.1', port), 1.0)
    assert '10.99.4.2: openSSH: cannot open the door: OverflowError' in capsys.readouterr().err


def test_main_exits_with_a_clear_message_on_a_huge_timeout(tmp_path, capsys, monkeypatch):
    def no_capture(interfaces):
        raise OSError('not in a unit test')
    monkeypatch.setattr(daemon_main, 'Capture', no_capture)
    conf = write_config(tmp_path, SMALL_CONFIG.format(key='cmd_timeout', value=HUGE))
    assert daemon_main.main(['-c', str(conf), '--state-file', str(tmp_path / 's.json')]) == 1
    assert 'cmd_timeout' in capsys.readouterr().err.lower()


@pytest.mark.parametrize('target', ['host.example', '10.99.4.0/24', '10.99.4.300', 'fd42::1::2'])
def test_a_bad_target_is_refused_at_load_and_reload(daemon, tmp_path, capsys, target):
    conf = write_config(tmp_path, SMALL_CONFIG.format(key='target', value=target))
    with pytest.raises(daemon_main.ConfigError, match='not an IPv4 or IPv6 address') as raised:
        daemon_main.Config(str(conf))
    assert target in str(raised.value)
    old = daemon.config
    with open(daemon.args.config, 'a') as handle:
        handle.write('[web]\n    sequence = 7313,4187\n    target = %s\n' % target)
    assert daemon.reload() is False and daemon.config is old
    assert target in capsys.readouterr().err


# -- issue 11 item 2: -D prints no sequence, the log file is not world-readable --------------
def test_debug_output_never_shows_a_knock_port(tmp_path):
    otp = tmp_path / 'otp'
    otp.write_text(' 17313,14187\n 19421\n')
    conf = tmp_path / 'knockd.conf'
    conf.write_text(CONFIG.replace('3371,2459,4126', '27313,24187:udp,29421').format(otp=otp))
    args = daemon_main.build_parser().parse_args(['-c', str(conf), '-D', '-v', '--state-file', str(tmp_path / 's.json')])
    log = KnockdLog(verbose=True, debug=True, stream=io.StringIO())
    result = daemon_main.Daemon(args, log)
    result.addresses = set(['10.99.4.1'])
    result.load()
    result.keeper = RecordingKeeper()
    for port in (27313, 17313, 14187, 19421):
        result.on_packet(syn('10.99.4.2', '10.99.4.1', port), 1.0)
    result.reload()
    output = log.stream.getvalue()
    assert 'config: openSSH: sequence: 3 steps (masked)' in output
    assert '10.99.4.2:40000 -> 10.99.4.1:(knock port)' in output and 'OPEN SESAME' in output
    for port in ('27313', '24187', '29421', '17313', '14187', '19421'):
        assert port not in output


@pytest.mark.parametrize('umask', [0o022, 0o000, 0o002])
def test_log_file_is_created_0600_whatever_the_umask(tmp_path, umask):
    path = tmp_path / 'knockd.log'
    old = os.umask(umask)
    try:
        log = KnockdLog()
        assert log.open_logfile(str(path)) is None
        log.logprint('10.99.4.2: openSSH: OPEN SESAME')
    finally:
        os.umask(old)
    assert os.stat(str(path)).st_mode & 0o777 == 0o600
    assert path.read_text().endswith('] 10.99.4.2: openSSH: OPEN SESAME\n')


def test_an_existing_log_file_loses_its_world_bits_and_keeps_its_lines(tmp_path):
    path = tmp_path / 'knockd.log'
    path.write_text('[2024-01-01 00:00] before\n')
    os.chmod(str(path), 0o644)
    log = KnockdLog()
    log.open_logfile(str(path))
    log.logprint('after')
    assert os.stat(str(path)).st_mode & 0o777 == 0o640
    assert path.read_text().startswith('[2024-01-01 00:00] before\n[')


# -- serve: the start-up and loop that knockd's main and the SPA drop-in's share ----------
class FakeRunner:
    def __init__(self):
        self.waited = 0

    def wait_all(self):
        self.waited += 1


class FakeKeeper:
    def __init__(self, recovered):
        self.recovered = recovered
        self.runner = FakeRunner()

    def recover(self):
        return self.recovered


class FakeDaemon:
    def __init__(self, recovered=True):
        self.keeper = FakeKeeper(recovered)
        self.interfaces = ['lo', 'eth1']
        self.log = self
        self.calls = []

    def logprint(self, message):
        self.calls.append(message)

    def update_watched(self):
        self.calls.append('watched')

    def install_signals(self):
        self.calls.append('signals')

    def loop(self):
        self.calls.append('loop')
        raise KeyboardInterrupt

    def shutdown(self):
        self.calls.append('shutdown')


@pytest.fixture
def captures(monkeypatch):
    opened = []

    def capture(interfaces, snaplen):
        opened.append((list(interfaces), snaplen))
        return 'capture'
    monkeypatch.setattr(daemon_main, 'Capture', capture)
    return opened


def test_serve_writes_the_pid_in_the_foreground_only_when_asked_and_removes_it(tmp_path, captures):
    pidfile = tmp_path / 'd.pid'
    seen = []
    fake = FakeDaemon()

    def announce(names):
        seen.append((names, pidfile.read_text()))
    with pytest.raises(KeyboardInterrupt):
        daemon_main.serve(fake, str(pidfile), False, announce, pid_in_foreground=True, snaplen=2048)
    assert seen == [('lo,eth1', '%d\n' % os.getpid())] and not pidfile.exists()
    assert fake.calls == ['watched', 'signals', 'loop', 'shutdown'] and fake.keeper.runner.waited == 1
    assert captures == [(['lo', 'eth1'], 2048)] and fake.capture == 'capture'
    fake = FakeDaemon(recovered=False)
    with pytest.raises(KeyboardInterrupt):
        daemon_main.serve(fake, str(pidfile), False, lambda names: seen.append(pidfile.exists()))
    assert seen[-1] is False and fake.keeper.runner.waited == 0
    assert captures[-1] == (['lo', 'eth1'], daemon_main.SNAPLEN)


def test_serve_says_when_the_pid_file_cannot_be_written(tmp_path, captures):
    fake = FakeDaemon()
    with pytest.raises(KeyboardInterrupt):
        daemon_main.serve(fake, str(tmp_path / 'none' / 'd.pid'), False, lambda names: None, pid_in_foreground=True)
    assert fake.calls == ['watched', 'could not create pid file %s' % (tmp_path / 'none' / 'd.pid'), 'signals',
                          'loop', 'shutdown']


def test_serve_exits_1_with_the_reason_when_the_capture_cannot_open(tmp_path, capsys, monkeypatch):
    def no_capture(interfaces, snaplen):
        raise OSError(1, 'Operation not permitted')
    monkeypatch.setattr(daemon_main, 'Capture', no_capture)
    fake = FakeDaemon()
    assert daemon_main.serve(fake, str(tmp_path / 'd.pid'), False, None, error_prefix='portknock-fwknopd: ') == 1
    assert capsys.readouterr().err == 'portknock-fwknopd: Operation not permitted\n'
    assert fake.calls == [] and not (tmp_path / 'd.pid').exists()


def test_start_answers_version_help_and_bad_options_without_loading(capsys):
    def never(args):
        raise AssertionError('no log before the command line is read')
    parser = daemon_main.build_parser()
    assert daemon_main.start(parser, ['-V'], 'knockd 0.8', daemon_main.Daemon, never) == (None, 0)
    assert capsys.readouterr().out == 'knockd 0.8\n'
    assert daemon_main.start(parser, ['-h'], 'knockd 0.8', daemon_main.Daemon, never) == (None, 0)
    assert 'usage' in capsys.readouterr().out
    assert daemon_main.start(parser, ['--bogus'], 'knockd 0.8', daemon_main.Daemon, never) == (None, 2)


def test_start_loads_the_daemon_or_says_why_not_with_the_prefix(tmp_path, capsys):
    conf = tmp_path / 'knockd.conf'
    conf.write_text('[web]\n    sequence = 7313,4187\n    start_command = true\n')
    args = ['-c', str(conf), '--state-file', str(tmp_path / 's.json')]
    daemon, code = daemon_main.start(daemon_main.build_parser(), args, 'v', daemon_main.Daemon,
                                     lambda args: KnockdLog(stream=io.StringIO()))
    assert code is None and [stanza.name for stanza in daemon.config.stanzas] == ['web']
    conf.write_text('[web]\n    sequence = 7313,4187\n    bogus_key = 1\n')
    assert daemon_main.start(daemon_main.build_parser(), args, 'v', daemon_main.Daemon,
                             lambda args: KnockdLog(stream=io.StringIO()), error_prefix='knockd: ') == (None, 1)
    assert capsys.readouterr().err.startswith('knockd: ')
