# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The iptables fast path of the daemon's actions (actions.iptables_rule, RestoreWorker, FastOp).

- the grammar: exactly the whitelisted rule commands, nothing else;
- the worker's protocol, against a stand-in iptables-restore (a real process): acks, a
  failing line, a silent death (then ``-C`` decides), a full pipe; the command always runs
  when the rule was not applied, never when it was;
- equivalence in a network namespace (root, iptables-nft and iptables-legacy): ``iptables -S``
  after the command and after the fast path are the same, for adds and deletes, IPv4 and IPv6.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon import actions
from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.actions import (
    CommandRunner, FastOp, IptablesFastPath, IptablesRule, iptables_rule)
from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.log import KnockdLog


def which(name):
    return '/usr/sbin/' + name


def realpath(path):
    return '/usr/sbin/xtables-legacy-multi' if 'legacy' in path else '/usr/sbin/xtables-nft-multi'


def rule(command):
    return iptables_rule(command, which=which, realpath=realpath)


ACCEPTED = [
    '/usr/sbin/iptables -I INPUT -s 10.231.250.9 -p tcp --dport 22 -j ACCEPT',
    '/usr/sbin/iptables -A INPUT -s 10.231.250.9 -p tcp --dport 22 -j ACCEPT',
    '/usr/sbin/iptables -D INPUT -s 10.231.250.9 -p tcp --dport 22 -j ACCEPT',
    '/sbin/iptables -A INPUT -s 10.231.250.9/32 -p udp --dport 53 -j ACCEPT',
    'iptables -I INPUT -s 10.231.250.9 -j ACCEPT',
    'iptables -I knock-in -s 10.231.250.9 -p tcp -j knock_allow',
    '/usr/sbin/iptables-legacy --insert INPUT --source 10.231.250.9 -p tcp --destination-port 2200 --jump DROP',
    '/usr/sbin/ip6tables -I INPUT -s fd42:706b:6c61::fa:9 -p tcp --dport 22 -j ACCEPT',
    'ip6tables-nft -D INPUT -s fd42:706b:6c61::fa:9/128 -p tcp --dport 65535 -j ACCEPT',
    '  /usr/sbin/iptables   -I INPUT -s 10.231.250.9\t-p tcp --dport 1 -j ACCEPT  ',
]

REFUSED = [
    '',
    '/usr/sbin/iptables',
    '/usr/sbin/iptables -I INPUT -s %IP% -p tcp --dport 22 -j ACCEPT',              # not substituted
    '/usr/sbin/iptables -I INPUT 1 -s 10.231.250.9 -p tcp --dport 22 -j ACCEPT',     # rule number
    '/usr/sbin/iptables -t nat -I INPUT -s 10.231.250.9 -p tcp --dport 22 -j ACCEPT',
    '/usr/sbin/iptables -w -I INPUT -s 10.231.250.9 -p tcp --dport 22 -j ACCEPT',
    '/usr/sbin/iptables -F INPUT',
    '/usr/sbin/iptables -X INPUT -s 10.231.250.9 -j ACCEPT',
    '/usr/sbin/iptables -I INPUT -d 10.231.250.9 -j ACCEPT',
    '/usr/sbin/iptables -I INPUT -s 10.231.250.9 -p icmp -j ACCEPT',
    '/usr/sbin/iptables -I INPUT -s 10.231.250.9 -p tcp --dport 0 -j ACCEPT',
    '/usr/sbin/iptables -I INPUT -s 10.231.250.9 -p tcp --dport 65536 -j ACCEPT',
    '/usr/sbin/iptables -I INPUT -s 10.231.250.9 -p tcp --dport 022 -j ACCEPT',
    '/usr/sbin/iptables -I INPUT -s 10.231.250.9 -p tcp --dport 22:23 -j ACCEPT',
    '/usr/sbin/iptables -I INPUT -s 10.231.250.9 -p tcp --dport 22 -j REJECT --reject-with tcp-reset',
    '/usr/sbin/iptables -I INPUT -s 10.231.250.9 -p tcp -m tcp --dport 22 -j ACCEPT',
    '/usr/sbin/iptables -I INPUT -s 10.231.250.9 -m comment --comment x -j ACCEPT',
    '/usr/sbin/iptables -I INPUT -s 10.231.250.9 -p tcp --dport 22',                 # no target
    '/usr/sbin/iptables -I INPUT -p tcp -s 10.231.250.9 --dport 22 -j ACCEPT',       # other order
    '/usr/sbin/iptables -I INPUT -s 10.231.250.0/16 -j ACCEPT',                      # host bits set
    '/usr/sbin/iptables -I INPUT -s fd42:706b:6c61::fa:9 -j ACCEPT',                 # family
    '/usr/sbin/ip6tables -I INPUT -s 10.231.250.9 -j ACCEPT',
    '/usr/sbin/iptables -I INPUT -s 10.231.250.9 -j ACCEPT; reboot',
    '/usr/sbin/iptables -I INPUT -s 10.231.250.9 -j ACCEPT && true',
    '/usr/sbin/iptables -I INPUT -s 10.231.250.9 -j "ACCEPT"',
    '/usr/sbin/iptables -I INPUT -s 10.231.250.9 -j $TARGET',
    '/usr/sbin/iptables -I INPUT -s 10.231.250.9 -j ACCEPT\n-F INPUT',
    '/usr/sbin/iptables -I INPUT -s 10.231.250.9 -j ACCEPT # note',
    '/usr/sbin/iptables -I -INPUT -s 10.231.250.9 -j ACCEPT',
    '/usr/sbin/iptables -I INPUT -s 10.231.250.9 -j -ACCEPT',
    '/usr/sbin/iptables -I %s -s 10.231.250.9 -j ACCEPT' % ('C' * 29),
    '/usr/sbin/iptables-save -I INPUT -s 10.231.250.9 -j ACCEPT',
    '/usr/sbin/iptables-restore -I INPUT -s 10.231.250.9 -j ACCEPT',
    '/usr/local/bin/my-iptables -I INPUT -s 10.231.250.9 -j ACCEPT',
    'sbin/iptables -I INPUT -s 10.231.250.9 -j ACCEPT',                              # relative path
    'nft add element inet t s { 10.231.250.9 }',
    '/usr/sbin/iptables -I INPUT -s 10.231.250.9 -p tcp --dport 22 -j ACCEPT -j DROP',
]


@pytest.mark.parametrize('command', ACCEPTED)
def test_grammar_accepts_exactly_the_rule_commands(command):
    found = rule(command)
    assert found is not None
    words = command.split()
    assert found.chain == words[2] and found.spec == tuple(words[3:])
    assert found.op == ('delete' if words[1] in ('-D', '--delete') else 'add')
    assert found.family == (6 if 'ip6tables' in words[0] else 4)


@pytest.mark.parametrize('command', REFUSED)
def test_grammar_refuses_everything_else(command):
    assert rule(command) is None


def test_grammar_refuses_programs_that_are_not_xtables():
    command = '/usr/sbin/iptables -I INPUT -s 10.231.250.9 -j ACCEPT'
    assert iptables_rule(command, which=which, realpath=lambda p: '/usr/local/bin/wrapper') is None
    assert iptables_rule('iptables -I INPUT -s 10.231.250.9 -j ACCEPT', which=lambda n: None,
                         realpath=realpath) is None


# -- the worker protocol, against a stand-in iptables-restore --------------------------------
FAKE_RESTORE = textwrap.dedent('''\
    import os, sys
    # argv: <this> iptables-restore --noflush -v -w ; behaviour from the environment
    fail_on = os.environ.get('FAKE_FAIL', '')          # a rule line containing this fails, line named
    die_on = os.environ.get('FAKE_DIE', '')            # ... makes it exit silently
    applied = open(os.environ['FAKE_LOG'], 'a')
    number = 0
    for line in sys.stdin:
        number += 1
        if line.startswith('#'):
            sys.stdout.write(line)
            sys.stdout.flush()
            continue
        if line.startswith(('-A', '-I', '-D')):
            if fail_on and fail_on in line:
                sys.stderr.write('iptables-restore: line %d failed\\n' % number)
                sys.exit(1)
            if die_on and die_on in line:
                applied.write(line)
                applied.flush()
                os._exit(1)
            applied.write(line)
            applied.flush()
    ''')

FAKE_CHECK = textwrap.dedent('''\
    import os, sys
    # argv: <this> -C CHAIN SPEC... : 0 when the rule line is in the log
    wanted = ' '.join(sys.argv[3:])
    lines = open(os.environ['FAKE_LOG']).read().splitlines()
    present = sum(1 for l in lines if l.split(None, 2)[0] in ('-A', '-I') and l.split(None, 2)[2] == wanted) - \\
        sum(1 for l in lines if l.split(None, 2)[0] == '-D' and l.split(None, 2)[2] == wanted)
    sys.exit(0 if present > 0 else 1)
    ''')


@pytest.fixture
def fake(tmp_path, monkeypatch):
    restore = tmp_path / 'restore.py'
    restore.write_text(FAKE_RESTORE)
    check = tmp_path / 'check'
    check.write_text('#!%s\n%s' % (sys.executable, FAKE_CHECK))
    check.chmod(0o755)
    wrapper = tmp_path / 'multi'
    wrapper.write_text('#!/bin/sh\nexec %s %s "$@"\n' % (sys.executable, restore))
    wrapper.chmod(0o755)
    log = tmp_path / 'applied'
    log.write_text('')
    monkeypatch.setenv('FAKE_LOG', str(log))
    monkeypatch.delenv('FAKE_FAIL', raising=False)
    monkeypatch.delenv('FAKE_DIE', raising=False)
    commands = []

    def rule_of(command):
        words = command.split()
        if words[0] != 'ipt':
            return None
        return IptablesRule(str(check), str(wrapper), 4, 'delete' if words[1] == '-D' else 'add',
                            words[2], tuple(words[3:]))

    class Spawned:
        def __init__(self, command):
            commands.append(command)
            self.returncode = None
            self.code = 7 if 'fails' in command else 0

        def poll(self):
            self.returncode = self.code
            return self.code

        def wait(self, timeout=None):
            return self.poll()

    def popen(argv, close_fds):
        return Spawned(argv[2] if argv[:2] == ['/bin/sh', '-c'] else ' '.join(argv))

    runner = CommandRunner(KnockdLog(), popen=popen, fast_path=IptablesFastPath(KnockdLog(), rule_of=rule_of))
    runner._fast_popen = popen
    fake_env = type('Fake', (), {})()
    fake_env.runner, fake_env.commands, fake_env.log = runner, commands, log
    fake_env.applied = lambda: log.read_text().splitlines()
    yield fake_env
    runner.close()


def run_all(runner, items):
    codes = {}
    for key, command in items:
        runner.submit(key, 'door', command, on_done=lambda code, key=key, command=command:
                      codes.setdefault(key, []).append((command, code)))
    runner.wait_all(10)
    return codes


def test_worker_applies_in_order_and_runs_no_command(fake):
    codes = run_all(fake.runner, [('a', 'ipt -I INPUT -s 10.0.0.1 -j ACCEPT'),
                                  ('a', 'ipt -D INPUT -s 10.0.0.1 -j ACCEPT'),
                                  ('b', 'ipt -A INPUT -s 10.0.0.2 -j ACCEPT')])
    assert fake.commands == []
    assert fake.applied() == ['-I INPUT -s 10.0.0.1 -j ACCEPT', '-A INPUT -s 10.0.0.2 -j ACCEPT',
                              '-D INPUT -s 10.0.0.1 -j ACCEPT']
    assert codes['a'] == [('ipt -I INPUT -s 10.0.0.1 -j ACCEPT', 0), ('ipt -D INPUT -s 10.0.0.1 -j ACCEPT', 0)]
    assert codes['b'] == [('ipt -A INPUT -s 10.0.0.2 -j ACCEPT', 0)]


def test_other_commands_run_as_before(fake):
    codes = run_all(fake.runner, [('a', '/usr/bin/touch /tmp/x'), ('b', 'echo fails')])
    assert fake.commands == ['/usr/bin/touch /tmp/x', 'echo fails']
    assert codes['a'][0][1] == 0 and codes['b'][0][1] == 7
    assert fake.applied() == []


@pytest.mark.parametrize('op', ['-I', '-D'])
def test_a_failing_line_runs_the_command_for_it_and_the_ops_after_it(fake, monkeypatch, op):
    monkeypatch.setenv('FAKE_FAIL', '10.0.0.2')
    first = 'ipt %s INPUT -s 10.0.0.1 -j ACCEPT' % op
    failing = 'ipt %s INPUT -s 10.0.0.2 -j ACCEPT fails' % op
    later = 'ipt %s INPUT -s 10.0.0.3 -j ACCEPT' % op
    fake.runner.max_running = 3
    codes = run_all(fake.runner, [('a', first), ('b', failing), ('c', later)])
    assert fake.applied() == [first[4:]]
    # not applied by the worker: the command itself ran, its exit status is the door's
    assert sorted(fake.commands) == sorted([failing, later])
    assert codes['b'] == [(failing, 7)] and codes['c'] == [(later, 0)] and codes['a'] == [(first, 0)]
    # the next op gets a new worker
    codes = run_all(fake.runner, [('d', 'ipt -I INPUT -s 10.0.0.4 -j ACCEPT')])
    assert codes['d'][0][1] == 0 and fake.applied()[-1] == '-I INPUT -s 10.0.0.4 -j ACCEPT'
    assert len(fake.commands) == 2


def test_a_silent_death_after_an_add_was_applied_does_not_apply_it_twice(fake, monkeypatch):
    monkeypatch.setenv('FAKE_DIE', '10.0.0.1')
    add = 'ipt -I INPUT -s 10.0.0.1 -j ACCEPT'
    codes = run_all(fake.runner, [('a', add)])
    assert codes['a'] == [(add, 0)]
    assert fake.commands == []                     # -C found it: the start command is not run again
    assert fake.applied() == [add[4:]]


def test_a_silent_death_after_a_delete_was_applied_is_a_done_stop(fake, monkeypatch):
    add = 'ipt -I INPUT -s 10.0.0.1 -j ACCEPT'
    delete = 'ipt -D INPUT -s 10.0.0.1 -j ACCEPT'
    run_all(fake.runner, [('a', add)])
    fake.runner.fast.close()
    monkeypatch.setenv('FAKE_DIE', '-D INPUT -s 10.0.0.1')
    codes = run_all(fake.runner, [('a', delete)])
    assert codes['a'] == [(delete, 0)] and fake.commands == []


def test_a_silent_death_before_anything_was_applied_runs_the_command(fake, monkeypatch):
    # the stand-in dies on the rule line without applying it: -C says absent, the command runs
    monkeypatch.setenv('FAKE_FAIL', 'never')
    add = 'ipt -I INPUT -s 10.0.0.1 -j ACCEPT'
    op = FastOp(fake.runner.fast, fake.runner.fast.rule_of(add), add, fake.runner.spawn)
    op.not_applied(definite=False)
    assert op.wait(10) == 0
    assert fake.commands == [add]
    # and a delete whose rule is still there runs its stop command
    fake.log.write_text('-I INPUT -s 10.0.0.1 -j ACCEPT\n')
    delete = 'ipt -D INPUT -s 10.0.0.1 -j ACCEPT'
    op = FastOp(fake.runner.fast, fake.runner.fast.rule_of(delete), delete, fake.runner.spawn)
    op.not_applied(definite=False)
    assert op.wait(10) == 0
    assert fake.commands == [add, delete]


def test_a_worker_that_cannot_start_runs_the_command(fake):
    fast = fake.runner.fast
    original = fast.rule_of

    def broken(command):
        found = original(command)
        return found and found._replace(multi='/nonexistent/xtables-nft-multi')
    fast.rule_of = broken
    codes = run_all(fake.runner, [('a', 'ipt -I INPUT -s 10.0.0.1 -j ACCEPT')])
    assert fake.commands == ['ipt -I INPUT -s 10.0.0.1 -j ACCEPT'] and codes['a'][0][1] == 0


def test_a_full_pipe_runs_the_command(fake, monkeypatch):
    fast = fake.runner.fast
    worker = fast.worker(fast.rule_of('ipt -I INPUT -s 10.0.0.1 -j ACCEPT'))
    monkeypatch.setattr(worker.process.stdin, 'write', lambda data: None)   # what a full non-blocking pipe says
    codes = run_all(fake.runner, [('a', 'ipt -I INPUT -s 10.0.0.1 -j ACCEPT')])
    assert fake.commands == ['ipt -I INPUT -s 10.0.0.1 -j ACCEPT'] and codes['a'][0][1] == 0
    assert fake.applied() == []


def test_prepare_starts_the_worker_of_a_template(fake):
    fake.runner.prepare(['ipt -I INPUT -s %IP% -j ACCEPT', None, '/bin/true %IP%'])
    assert fake.runner.fast.workers == {}          # 'ipt' is not an iptables program name: no family
    fast = IptablesFastPath(KnockdLog(), rule_of=rule)
    started = []
    fast.worker = started.append
    fast.prepare('/usr/sbin/iptables -I INPUT -s %IP% -p tcp --dport 22 -j ACCEPT')
    fast.prepare('/usr/sbin/ip6tables -I INPUT -s %IP% -p tcp --dport 22 -j ACCEPT')
    assert [(r.family, r.spec[1]) for r in started] == [(4, '127.0.0.1'), (6, '::1')]


def test_a_runner_with_faked_processes_has_no_fast_path():
    assert CommandRunner(KnockdLog(), popen=lambda argv, close_fds: None).fast is None
    runner = CommandRunner(KnockdLog())
    assert isinstance(runner.fast, IptablesFastPath)
    runner.popen = lambda argv, close_fds: None      # swapped later: the fast path is off
    assert runner.popen is not runner._fast_popen


# -- equivalence with the real iptables, in a network namespace ------------------------------
EQUIVALENCE = textwrap.dedent('''\
    import json, subprocess, sys
    from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.actions import CommandRunner
    from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.log import KnockdLog

    def flush(program):
        subprocess.run([program, '-F'], check=True)
        subprocess.run([program, '-X'], check=True)
        subprocess.run([program, '-N', 'pk_allow'], check=True)

    def play(program, commands, fast_path):
        """Each command through a runner, iptables -S after each; the kinds of process used."""
        flush(program)
        runner = CommandRunner(KnockdLog(), max_running=1, fast_path=fast_path)
        kinds, codes, steps = [], [], []
        for command in commands:
            runner.submit('k', 'door', command, on_done=codes.append)
            kinds.append(type(runner.running['k'][0]).__name__)
            runner.wait_all(10)
            steps.append(subprocess.run([program, '-S'], stdout=subprocess.PIPE, universal_newlines=True).stdout)
        runner.close()
        flush(program)
        return {'kinds': kinds, 'codes': codes, 'steps': steps}

    result = []
    for program in sys.argv[1:]:
        src = 'fd42:706b:6c61::fa:%d' if 'ip6tables' in program else '10.231.250.%d'
        commands = ['%s -I INPUT -s %s -p tcp --dport 22 -j ACCEPT' % (program, src % 7),
                    '%s -A INPUT -s %s -p udp --dport 53 -j DROP' % (program, src % 8),
                    '%s -I INPUT -s %s -j pk_allow' % (program, src % 9),
                    '%s -I INPUT -s %s -p tcp -j ACCEPT' % (program, src % 7),
                    '%s -I INPUT -s %s -p tcp --dport 22 -j ACCEPT' % (program, src % 7),   # a duplicate
                    '%s -D INPUT -s %s -p tcp --dport 22 -j ACCEPT' % (program, src % 7),   # one of the two
                    '%s -D INPUT -s %s -p udp --dport 53 -j DROP' % (program, src % 8),
                    '%s -D INPUT -s %s -p udp --dport 53 -j DROP' % (program, src % 8)]    # not there: fails
        result.append({'program': program, 'fast': play(program, commands, True),
                       'command': play(program, commands, False)})
    print(json.dumps(result))
    ''')

PROGRAMS = ['/usr/sbin/iptables-nft', '/usr/sbin/ip6tables-nft', '/usr/sbin/iptables-legacy',
            '/usr/sbin/ip6tables-legacy']


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which('ip') or not all(os.path.exists(p) for p in PROGRAMS),
                    reason='needs root, ip and iptables-nft/-legacy for a network namespace')
def test_fast_path_makes_the_rules_the_commands_make(tmp_path):
    script = tmp_path / 'equivalence.py'
    script.write_text(EQUIVALENCE)
    namespace = 'pkt-fastpath-%d' % os.getpid()
    subprocess.run(['ip', 'netns', 'add', namespace], check=True)
    try:
        # the directory holding ansible_collections/ (actions.py is 6 levels below it)
        root = os.path.abspath(os.path.join(os.path.dirname(actions.__file__), *(['..'] * 6)))
        env = dict(os.environ, PYTHONPATH=root)
        out = subprocess.run(['ip', 'netns', 'exec', namespace, sys.executable, str(script)] + PROGRAMS, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120,
                             check=False)
        assert out.returncode == 0, out.stderr
    finally:
        subprocess.run(['ip', 'netns', 'del', namespace], check=False)
    results = json.loads(out.stdout.strip().splitlines()[-1])
    assert [r['program'] for r in results] == PROGRAMS
    for result in results:
        fast, command = result['fast'], result['command']
        assert fast['kinds'] == ['FastOp'] * 8, result['program']
        assert 'FastOp' not in command['kinds'], result['program']
        assert fast['steps'] == command['steps'], result['program']       # iptables -S after every step
        assert fast['codes'] == command['codes'] == [0, 0, 0, 0, 0, 0, 0, 1], result['program']
        assert '-A INPUT -s ' in fast['steps'][4] and fast['steps'][-1] != fast['steps'][0]
