# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import json
import os

import pytest

from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.actions import (
    CommandRunner, DoorKeeper, commands_for, direct_argv, read_state_file, substitute)
from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.kernel_door import (
    KernelDoorError, NftSetDoor, RecentListDoor, parse_kernel_door, parse_kernel_door_option)
from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.log import KnockdLog

from fake_clock import FakeClock as Clock

FakeStanza = collections.namedtuple('FakeStanza', 'name start_command start_command_6 stop_command '
                                                  'stop_command_6 cmd_timeout')


def stanza(start='open %IP%', stop='close %IP%', start6=None, stop6=None, cmd_timeout=3, name='ssh'):
    return FakeStanza(name, start, start6, stop, stop6, cmd_timeout)


class FakeRunner:
    """Records commands; a command ends at once with the next code of ``codes[command]`` (default 0)."""

    def __init__(self, codes=None):
        self.commands = []
        self.codes = codes or {}

    def submit(self, key, name, command, on_done=None):
        self.commands.append(command)
        codes = self.codes.get(command)
        code = codes.pop(0) if codes else 0
        if on_done is not None:
            on_done(code)

    def poll(self):
        pass

    def busy(self):
        return False

    def wait_all(self, timeout=30.0):
        pass


class FakeKernelDoor:
    spec = 'fake:door'

    def __init__(self):
        self.calls = []

    def open(self, address, seconds):
        self.calls.append(('open', address, seconds))

    def close(self, address):
        self.calls.append(('close', address))


def keeper(tmp_path, **kwargs):
    return DoorKeeper(KnockdLog(), runner=FakeRunner(), state_file=str(tmp_path / 'run' / 'state.json'), **kwargs)


def test_substitute_only_numeric_addresses():
    assert substitute('iptables -I INPUT -s %IP% -j ACCEPT # %IP%', '10.0.0.1') == \
        'iptables -I INPUT -s 10.0.0.1 -j ACCEPT # 10.0.0.1'
    assert substitute('x %IP%', 'FD42:99:4:0::2') == 'x fd42:99:4::2'
    for bad in ('10.0.0.1; rm -rf /', '$(reboot)', 'host.example', ''):
        with pytest.raises(ValueError):
            substitute('x %IP%', bad)


def test_commands_for_ipv6_fallback_and_empty():
    assert commands_for(stanza(), 6) == ('open %IP%', 'close %IP%')
    assert commands_for(stanza(start6='open6', stop6='close6'), 6) == ('open6', 'close6')
    assert commands_for(stanza(start6='', stop6=''), 6) == (None, None)
    assert commands_for(stanza(start6='open6'), 4) == ('open %IP%', 'close %IP%')


def test_open_then_close_after_cmd_timeout(tmp_path):
    doors = keeper(tmp_path)
    doors.open(stanza(), '10.0.0.1', 4, now=100.0)
    assert doors.runner.commands == ['open 10.0.0.1']
    assert doors.next_deadline() == 103.0
    state = read_state_file(str(tmp_path / 'run' / 'state.json'))
    assert [(d['source'], d['stop_command']) for d in state] == [('10.0.0.1', 'close 10.0.0.1')]
    assert doors.due(102.9) == 0
    assert doors.due(103.0) == 1
    assert doors.runner.commands == ['open 10.0.0.1', 'close 10.0.0.1']
    assert read_state_file(str(tmp_path / 'run' / 'state.json')) == []


def test_reknock_extends_without_second_start(tmp_path):
    doors = keeper(tmp_path)
    doors.open(stanza(), '10.0.0.1', 4, now=100.0)
    doors.open(stanza(), '10.0.0.1', 4, now=102.0)
    assert doors.runner.commands == ['open 10.0.0.1']
    assert doors.due(104.0) == 0
    assert doors.due(105.0) == 1
    assert doors.runner.commands == ['open 10.0.0.1', 'close 10.0.0.1']


def test_without_stop_command_every_knock_runs_start(tmp_path):
    doors = keeper(tmp_path)
    doors.open(stanza(stop=None), '10.0.0.1', 4, now=100.0)
    doors.open(stanza(stop=None), '10.0.0.1', 4, now=101.0)
    assert doors.runner.commands == ['open 10.0.0.1'] * 2
    assert doors.next_deadline() is None


def test_ipv6_commands(tmp_path):
    doors = keeper(tmp_path)
    doors.open(stanza(start6='open6 %IP%', stop6='close6 %IP%'), 'fd42::2', 6, now=0.0)
    doors.due(10.0)
    assert doors.runner.commands == ['open6 fd42::2', 'close6 fd42::2']


def test_shutdown_closes_everything_now(tmp_path):
    doors = keeper(tmp_path)
    doors.open(stanza(), '10.0.0.1', 4, now=0.0)
    doors.open(stanza(name='web'), '10.0.0.2', 4, now=0.0)
    doors.shutdown()
    assert sorted(doors.runner.commands[2:]) == ['close 10.0.0.1', 'close 10.0.0.2']
    assert doors.next_deadline() is None


def test_recover_closes_doors_of_a_previous_run(tmp_path):
    first = keeper(tmp_path)
    first.open(stanza(), '10.0.0.1', 4, now=0.0)
    second = keeper(tmp_path)
    assert second.recover() == 1
    assert second.runner.commands == ['close 10.0.0.1']
    assert keeper(tmp_path).recover() == 0


def test_recover_ignores_garbage(tmp_path):
    path = tmp_path / 'run'
    path.mkdir()
    (path / 'state.json').write_text('{"doors": [{"source": "1.2.3.4; reboot", "stanza": "x"}]}')
    doors = keeper(tmp_path)
    assert doors.recover() == 0 and doors.runner.commands == []
    (path / 'state.json').write_text('not json')
    assert keeper(tmp_path).recover() == 0


def test_kernel_door_replaces_commands_and_extends(tmp_path):
    kernel = FakeKernelDoor()
    doors = keeper(tmp_path, kernel_doors={'ssh': kernel})
    doors.open(stanza(), '10.0.0.1', 4, now=0.0)
    doors.open(stanza(), '10.0.0.1', 4, now=2.0)
    assert doors.runner.commands == []
    assert kernel.calls == [('open', '10.0.0.1', 3.0), ('open', '10.0.0.1', 3.0)]
    assert doors.next_deadline() == 5.0


def test_parse_kernel_door_specs():
    door = parse_kernel_door('nft:inet/portknock/ssh4/ssh6')
    assert isinstance(door, NftSetDoor) and door.sets == {4: 'ssh4', 6: 'ssh6'}
    assert parse_kernel_door('nft:ip/t/s').sets == {4: 's', 6: None}
    assert isinstance(parse_kernel_door('recent:PK_ssh'), RecentListDoor)
    assert parse_kernel_door_option('ssh=recent:x')[0] == 'ssh'
    assert parse_kernel_door_option('recent:x')[0] is None
    for bad in ('nft:inet/t', 'nft:foo/t/s', 'nft:inet/t;x/s', 'recent:', 'recent:a/b/c', 'iptables:x'):
        with pytest.raises(KernelDoorError):
            parse_kernel_door(bad)


def test_recent_list_door_writes_proc_lines(tmp_path):
    door = RecentListDoor('recent:x', 'x', directory=str(tmp_path))
    door.open('10.0.0.1', 3)
    assert (tmp_path / 'x').read_text() == '+10.0.0.1\n'
    door.close('fd42::1')
    assert (tmp_path / 'x').read_text() == '-fd42::1\n'


def test_command_runner_keeps_order_per_key(tmp_path):
    out = tmp_path / 'out'
    runner = CommandRunner(KnockdLog())
    runner.submit('k', 'ssh', 'sleep 0.2; echo one >> %s' % out)
    runner.submit('k', 'ssh', 'echo two >> %s' % out)
    runner.submit('j', 'ssh', 'exit 3')
    runner.wait_all(10)
    assert out.read_text() == 'one\ntwo\n'
    assert not runner.busy()


@pytest.mark.parametrize('command, argv', [
    ('/usr/sbin/iptables -I INPUT -s 10.99.4.2 -p tcp --dport 22 -j ACCEPT',
     ['/usr/sbin/iptables', '-I', 'INPUT', '-s', '10.99.4.2', '-p', 'tcp', '--dport', '22', '-j', 'ACCEPT']),
    ('  /usr/sbin/ip6tables -I INPUT -s fd42:99:4::2 -j ACCEPT ',
     ['/usr/sbin/ip6tables', '-I', 'INPUT', '-s', 'fd42:99:4::2', '-j', 'ACCEPT']),
    ('/usr/sbin/nft add element inet t s %IP%,x=1', ['/usr/sbin/nft', 'add', 'element', 'inet', 't', 's', '%IP%,x=1']),
    ('iptables -I INPUT -j ACCEPT', None),                         # PATH lookup: the shell's business
    ('/sbin/iptables -A INPUT -s 1.2.3.4 -j ACCEPT; echo done', None),
    ('/bin/echo "a b"', None), ("/bin/echo 'a'", None), ('/bin/echo $HOME', None), ('/bin/echo `id`', None),
    ('/bin/echo a > /tmp/x', None), ('/bin/echo a | cat', None), ('/bin/echo a && /bin/true', None),
    ('/bin/echo *', None), ('/bin/echo ~', None), ('/bin/echo a # comment', None), ('/bin/echo a\\ b', None),
    ('/bin/echo {a,b}', None), ('/bin/echo (a)', None), ('', None), ('/bin/true a\n/bin/rm b', None),
    ('/bin/true a\r', None),
])
def test_direct_argv_only_for_what_the_shell_takes_literally(command, argv):
    assert direct_argv(command) == argv


def test_runner_executes_plain_commands_directly_and_falls_back_to_the_shell():
    calls = []

    class Process:
        returncode = 0

        def poll(self):
            return 0

    def popen(argv, close_fds):
        calls.append(argv)
        if argv[0] == '/nonexistent/program':
            raise OSError(2, 'No such file or directory')
        return Process()

    runner = CommandRunner(KnockdLog(), popen=popen)
    runner.submit('a', 'ssh', '/usr/sbin/iptables -I INPUT -s 10.99.4.2 -j ACCEPT')
    runner.submit('b', 'ssh', '/bin/echo "x" > /tmp/y')
    runner.submit('c', 'ssh', '/nonexistent/program 10.99.4.2')
    assert calls == [['/usr/sbin/iptables', '-I', 'INPUT', '-s', '10.99.4.2', '-j', 'ACCEPT'],
                     ['/bin/sh', '-c', '/bin/echo "x" > /tmp/y'],
                     ['/nonexistent/program', '10.99.4.2'],
                     ['/bin/sh', '-c', '/nonexistent/program 10.99.4.2']]


# -- issue 11 item 10: bounded open doors and commands, incremental state file ---------------
def sources(count):
    return ['10.0.%d.%d' % (index // 200, 1 + index % 200) for index in range(count)]


def state_of(tmp_path):
    return read_state_file(str(tmp_path / 'run' / 'state.json'))


@pytest.mark.parametrize('limit', [1, 3, 50])
def test_open_doors_are_capped_and_refusals_logged(tmp_path, capsys, limit):
    doors = keeper(tmp_path, max_open_doors=limit)
    for source in sources(limit + 5):
        doors.open(stanza(), source, 4, now=100.0)
    assert len(doors.open_doors) == limit and len(doors.runner.commands) == limit
    err = capsys.readouterr().err
    assert err.count('door not opened: %d doors are open already (--max-open-doors)' % limit) == 5
    doors.open(stanza(), sources(1)[0], 4, now=101.0)          # an open door is still extended
    assert doors.open_doors[('ssh', sources(1)[0])].deadline == 104.0
    assert doors.due(103.0) == limit - 1                       # the others expire...
    assert doors.due(104.0) == 1
    doors.open(stanza(), '10.9.9.9', 4, now=104.0)              # ...and make room
    assert list(doors.open_doors) == [('ssh', '10.9.9.9')]
    assert [d['source'] for d in state_of(tmp_path)] == ['10.9.9.9']


def test_kernel_doors_are_capped_too(tmp_path):
    kernel = FakeKernelDoor()
    doors = keeper(tmp_path, kernel_doors={None: kernel}, max_open_doors=2)
    for source in sources(4):
        doors.open(stanza(), source, 4, now=0.0)
    assert [call[1] for call in kernel.calls] == sources(2)


class PendingProcess:
    def __init__(self, argv):
        self.argv = argv
        self.returncode = None

    def poll(self):
        return self.returncode

    def wait(self, timeout=None):
        if self.returncode is None:
            self.returncode = 0
        return self.returncode


@pytest.mark.parametrize('limit', [1, 2, 5])
def test_command_runner_runs_at_most_max_running_and_queues_the_rest(limit):
    started = []

    def popen(argv, close_fds):
        started.append(PendingProcess(argv))
        return started[-1]
    runner = CommandRunner(KnockdLog(), popen=popen, max_running=limit)
    done = []
    for index in range(12):
        runner.submit(('ssh', 'src%d' % (index % 6)), 'ssh', '/bin/step %d' % index,
                      on_done=lambda code, index=index: done.append((index, code)))
    assert len(started) == limit and runner.busy()
    finished_order = []
    while runner.busy():
        running = [process for process in started if process.returncode is None]
        assert 1 <= len(running) <= limit
        running[0].returncode = 3 if running[0].argv[1] == '7' else 0
        finished_order.append(int(running[0].argv[1]))
        runner.poll()
    assert sorted(finished_order) == list(range(12))
    for key in range(6):                      # one key's commands ran in the order they were given
        mine = [index for index in finished_order if index % 6 == key]
        assert mine == sorted(mine)
    assert sorted(done) == [(index, 3 if index == 7 else 0) for index in range(12)]


def test_command_runner_reports_a_fork_failure():
    def popen(argv, close_fds):
        raise OSError(12, 'Cannot allocate memory')
    done = []
    runner = CommandRunner(KnockdLog(), popen=popen)
    runner.submit('k', 'ssh', '/bin/true', on_done=done.append)
    assert done == [None] and not runner.busy()


def test_state_file_is_appended_not_rewritten_and_synced_once_per_pass(tmp_path, monkeypatch):
    doors = keeper(tmp_path)
    path = tmp_path / 'run' / 'state.json'
    doors.open(stanza(), '10.0.0.1', 4, now=100.0)
    inode = os.stat(str(path)).st_ino
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, 'fsync', lambda fd: synced.append(fd) or real_fsync(fd))
    for source in sources(300)[1:]:
        doors.open(stanza(), source, 4, now=100.0)
    assert synced == []                                        # no fsync per knock...
    doors.due(100.5)
    assert len(synced) == 1                                    # ...one per loop pass
    doors.due(100.6)
    assert len(synced) == 1                                    # nothing new, nothing to sync
    assert os.stat(str(path)).st_ino == inode                  # never replaced while growing
    assert len(path.read_text().splitlines()) == 301           # header + one line per open
    assert len(state_of(tmp_path)) == 300
    assert os.stat(str(path)).st_mode & 0o777 == 0o600
    assert os.stat(str(tmp_path / 'run')).st_mode & 0o777 == 0o700


def test_state_file_is_compacted_when_mostly_closed(tmp_path, monkeypatch):
    from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon import actions
    monkeypatch.setattr(actions, 'COMPACT_MIN_RECORDS', 20)
    doors = keeper(tmp_path)
    path = tmp_path / 'run' / 'state.json'
    now = 100.0
    for source in sources(200):
        doors.open(stanza(), source, 4, now=now)
        now += 1.0
        doors.due(now)
        assert len(path.read_text().splitlines()) <= 1 + max(20, 4 * len(doors.open_doors)) + 2
    assert sorted(d['source'] for d in state_of(tmp_path)) == sorted(door.source for door in doors.open_doors.values())
    assert os.stat(str(path)).st_mode & 0o777 == 0o600


def test_recover_reads_the_version_1_file_and_a_torn_journal(tmp_path):
    path = tmp_path / 'run'
    path.mkdir()
    (path / 'state.json').write_text(json.dumps({'version': 1, 'doors': [
        {'stanza': 'ssh', 'source': '10.0.0.1', 'family': 4, 'expires': 1, 'stop_command': 'close 10.0.0.1',
         'kernel': None}]}))
    doors = keeper(tmp_path)
    assert doors.recover() == 1 and doors.runner.commands == ['close 10.0.0.1']
    assert state_of(tmp_path) == []
    first = keeper(tmp_path)
    first.open(stanza(), '10.0.0.2', 4, now=0.0)
    first.open(stanza(), '10.0.0.3', 4, now=0.0)
    with open(str(path / 'state.json'), 'a') as handle:
        handle.write('{"op": "close", "id": "')              # the daemon died in the middle of a write
    second = keeper(tmp_path)
    assert second.recover() == 2
    assert sorted(second.runner.commands) == ['close 10.0.0.2', 'close 10.0.0.3']


def test_due_and_next_deadline_follow_extensions(tmp_path):
    doors = keeper(tmp_path)
    doors.open(stanza(), '10.0.0.1', 4, now=100.0)
    doors.open(stanza(cmd_timeout=10, name='web'), '10.0.0.2', 4, now=100.0)
    doors.open(stanza(), '10.0.0.1', 4, now=102.0)
    assert doors.next_deadline() == 105.0
    assert doors.due(104.0) == 0
    assert doors.due(105.0) == 1 and doors.next_deadline() == 110.0
    assert doors.due(110.0) == 1 and doors.next_deadline() is None


# -- issue 11 item 12: a failed stop command is retried, kept, logged ------------------------
def test_failed_stop_command_is_retried_with_backoff_and_kept_until_it_succeeds(tmp_path, capsys):
    clock = Clock(100.0)
    runner = FakeRunner({'close 10.0.0.1': [1, None, 1, 0]})
    doors = DoorKeeper(KnockdLog(), runner=runner, state_file=str(tmp_path / 'run' / 'state.json'), clock=clock)
    doors.open(stanza(), '10.0.0.1', 4, now=100.0)
    clock.now = 103.0
    assert doors.due(103.0) == 1
    assert 'retry 1 of 10 in 1 s' in capsys.readouterr().err
    assert [d['source'] for d in state_of(tmp_path)] == ['10.0.0.1']   # still open as far as we know
    assert doors.next_deadline() == 104.0
    for now, delay in ((104.0, 2), (106.0, 4)):
        clock.now = now
        doors.due(now)
        assert 'retry %d of 10 in %d s' % (delay.bit_length() + 0, delay) in capsys.readouterr().err
        assert state_of(tmp_path)
    clock.now = 110.0
    doors.due(110.0)
    assert runner.commands == ['open 10.0.0.1'] + ['close 10.0.0.1'] * 4
    assert state_of(tmp_path) == [] and doors.next_deadline() is None


def test_retry_delays_double_up_to_a_bound_then_the_door_waits_for_the_next_start(tmp_path, capsys):
    from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon import actions
    clock = Clock(0.0)
    runner = FakeRunner({'close 10.0.0.1': [1] * 100})
    doors = DoorKeeper(KnockdLog(), runner=runner, state_file=str(tmp_path / 'run' / 'state.json'), clock=clock)
    doors.open(stanza(), '10.0.0.1', 4, now=0.0)
    clock.now = 3.0
    doors.due(3.0)
    delays = []
    while doors.next_deadline() is not None:
        delays.append(doors.next_deadline() - clock.now)
        clock.now = doors.next_deadline()
        doors.due(clock.now)
    assert delays == [min(2.0 ** n, actions.STOP_RETRY_MAX) for n in range(actions.STOP_RETRIES)]
    assert runner.commands.count('close 10.0.0.1') == 1 + actions.STOP_RETRIES
    assert 'the door may still be open: kept in the state file, tried again at the next start' in capsys.readouterr().err
    assert [d['stop_command'] for d in state_of(tmp_path)] == ['close 10.0.0.1']
    doors.shutdown()
    assert [d['stop_command'] for d in state_of(tmp_path)] == ['close 10.0.0.1']
    after_restart = keeper(tmp_path)
    assert after_restart.recover() == 1 and after_restart.runner.commands == ['close 10.0.0.1']
    assert state_of(tmp_path) == []


def test_stop_command_failing_at_shutdown_is_left_for_the_next_start(tmp_path, capsys):
    runner = FakeRunner({'close 10.0.0.1': [1]})
    doors = DoorKeeper(KnockdLog(), runner=runner, state_file=str(tmp_path / 'run' / 'state.json'))
    doors.open(stanza(), '10.0.0.1', 4)
    doors.open(stanza(), '10.0.0.2', 4)
    doors.shutdown()
    assert 'tried again at the next start' in capsys.readouterr().err
    assert [d['source'] for d in state_of(tmp_path)] == ['10.0.0.1']
    again = keeper(tmp_path)
    assert again.recover() == 1 and again.runner.commands == ['close 10.0.0.1']


def test_a_reknock_while_the_stop_is_retried_opens_a_new_door(tmp_path):
    clock = Clock(100.0)
    runner = FakeRunner({'close 10.0.0.1': [1, 0, 0]})
    doors = DoorKeeper(KnockdLog(), runner=runner, state_file=str(tmp_path / 'run' / 'state.json'), clock=clock)
    doors.open(stanza(), '10.0.0.1', 4, now=100.0)
    clock.now = 103.0
    doors.due(103.0)
    doors.open(stanza(), '10.0.0.1', 4, now=103.5)
    assert runner.commands == ['open 10.0.0.1', 'close 10.0.0.1', 'open 10.0.0.1']
    assert len(state_of(tmp_path)) == 2                 # the new door and the old, not closed yet
    clock.now = 104.0
    doors.due(104.0)
    assert len(state_of(tmp_path)) == 1 and ('ssh', '10.0.0.1') in doors.open_doors


def test_compaction_is_the_one_atomic_write(tmp_path, monkeypatch):
    from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon import actions
    written = []
    real = actions.write_atomic
    monkeypatch.setattr(actions, 'write_atomic', lambda path, text, *mode: written.append(path) or real(path, text, *mode))
    doors = keeper(tmp_path)
    doors.open(stanza(), '10.0.0.1', 4, now=100.0)
    path = tmp_path / 'run' / 'state.json'
    assert written == [str(path)] and os.stat(str(path)).st_mode & 0o777 == 0o600
    assert [d['source'] for d in state_of(tmp_path)] == ['10.0.0.1']
    assert sorted(os.listdir(str(tmp_path / 'run'))) == ['state.json']
