# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import json

import pytest

from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.actions import (
    CommandRunner, DoorKeeper, commands_for, direct_argv, substitute)
from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.kernel_door import (
    KernelDoorError, NftSetDoor, RecentListDoor, parse_kernel_door, parse_kernel_door_option)
from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.log import KnockdLog

FakeStanza = collections.namedtuple('FakeStanza', 'name start_command start_command_6 stop_command '
                                                  'stop_command_6 cmd_timeout')


def stanza(start='open %IP%', stop='close %IP%', start6=None, stop6=None, cmd_timeout=3, name='ssh'):
    return FakeStanza(name, start, start6, stop, stop6, cmd_timeout)


class FakeRunner:
    def __init__(self):
        self.commands = []

    def submit(self, key, name, command):
        self.commands.append(command)

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
    state = json.loads((tmp_path / 'run' / 'state.json').read_text())
    assert [(d['source'], d['stop_command']) for d in state['doors']] == [('10.0.0.1', 'close 10.0.0.1')]
    assert doors.due(102.9) == 0
    assert doors.due(103.0) == 1
    assert doors.runner.commands == ['open 10.0.0.1', 'close 10.0.0.1']
    assert json.loads((tmp_path / 'run' / 'state.json').read_text())['doors'] == []


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
    for bad in ('nft:inet/t', 'nft:foo/t/s', 'nft:inet/t;x/s', 'recent:', 'recent:a/b', 'iptables:x'):
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
