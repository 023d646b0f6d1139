# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""door_info's counters: parsers of each enforcer's output, the Prometheus rendering (issue 13).

The iptables and nftables fixtures were read from real doors (iptables 1.8.9 nf_tables, nftables
1.0.6, Linux 6.x) in a network namespace after: one connection attempt from a stranger
(refused), the right knock from 127.0.0.2 (opens), its connection (accepted), a wrong-order
knock from 127.0.0.3 (step 1, then the last step's port: refused) and the right knock from ::1.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import io
import json
import os
import shutil
import stat
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.portknock.knock.plugins.module_utils import door_counters as dc

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures', 'door_counters')
KNOCK_PORTS = ('7313', '4187', '9421')
HZ250_JIFFIES = 'jiffies: 4296029212\n'
UPTIME = '4547.92 3262.54\n'


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def iptables_door():
    door = None
    for name in ('iptables-save4.txt', 'iptables-save6.txt'):
        chains, rules = dc.parse_counted_save(fixture(name))
        assert dc.iptables_door_names(chains) == ['ssh']
        door = dc.iptables_door('ssh', rules, door)
    return door


# ---- iptables ----

def test_iptables_counters_of_a_real_door():
    door = iptables_door()
    assert door['steps'] == 3
    assert door['knocks'] == [3, 2, 2]          # IPv4 .2 and .3 on step 1, ::1; two complete sequences
    assert door['opens'] == 2
    assert door['refusal_reasons'] == {'wrong_order_or_too_slow': 1} and door['refusals'] == 1
    assert door['connections'] == {'accepted': 1, 'refused': 1}
    assert door['open_window'] == 30


def test_iptables_door_names_skip_baseline_knockd_chains_and_chains_without_reset():
    chains = ['INPUT', 'PK-ssh', 'PK-ssh-R', 'PK-baseline', 'PK-web-KD', 'PK-lonely', 'PK-baseline-R']
    assert dc.iptables_door_names(chains) == ['ssh']


def test_saved_rules_without_counters_count_zero():
    text = fixture('iptables-save4.txt')
    plain = '\n'.join(line.split('] ', 1)[1] if line.startswith('[') else line for line in text.splitlines())
    door = dc.iptables_door('ssh', dc.parse_counted_save(plain)[1])
    assert door['knocks'] == [0, 0, 0] and door['opens'] == 0


def test_xt_recent_open_sources_with_the_time_left():
    now, hz = dc.jiffies_now(HZ250_JIFFIES, UPTIME)
    assert hz == 250
    v4 = dc.parse_xt_recent(fixture('iptables-pk_ssh_3.txt'))
    v6 = dc.parse_xt_recent(fixture('iptables-pk6_ssh_3.txt'))
    assert v4 == [('127.0.0.2', 4296029083)] and v6 == [('::1', 4296029083)]     # IPv6 printed in full
    sources = dc.xt_open_sources(v4, 30, now, hz, 'ipv4')
    assert sources == [{'address': '127.0.0.2', 'family': 'ipv4', 'expires_in': 29.5}]
    assert dc.xt_open_sources(v4, 30, now + 31 * hz, hz, 'ipv4') == []           # the window is over
    assert dc.xt_open_sources(v4, 30, None, None, 'ipv4')[0]['expires_in'] is None


@pytest.mark.parametrize('timer, uptime, hz, expected', [
    ('', '4547.92 1.0\n', 250, (2 ** 32 + int(4247.92 * 250), 250)),     # from the uptime and CONFIG_HZ
    ('', '4547.92 1.0\n', None, (2 ** 32 + int(4247.92 * 250), 250)),    # Debian's HZ assumed
    ('jiffies: 5\n', None, None, (5, 250)),
    ('', None, None, (None, None)),
    ('', 'garbage', None, (None, None)),
])
def test_jiffies_now(timer, uptime, hz, expected):
    assert dc.jiffies_now(timer, uptime, hz) == expected


@pytest.mark.parametrize('text', ['', 'src=nonsense ttl: 1 last_seen: 5 oldest_pkt: 1 5', 'src=10.0.0.1 ttl: x', '\x00\xff'])
def test_xt_recent_bad_lines_are_skipped(text):
    assert dc.parse_xt_recent(text) == []


# ---- nftables ----

def test_nft_counters_and_open_sets_of_a_real_door():
    door = dc.nft_door('ssh', fixture('nftables-table.txt'))
    assert door['steps'] == 3 and door['enforcer'] == 'nftables'
    assert door['knocks'] == [3, 2, 2] and door['opens'] == 2
    assert door['refusals'] == 1 and door['connections'] == {'accepted': 1, 'refused': 1}
    assert door['open_window'] == 30
    assert door['open_sources'] == [{'address': '127.0.0.2', 'family': 'ipv4', 'expires_in': 29.492},
                                    {'address': '::1', 'family': 'ipv6', 'expires_in': 29.496}]


def test_nft_table_of_an_older_release_has_unknown_counts():
    text = dc.nft_rules.stateless(fixture('nftables-table.txt')).replace(' counter ', ' ')
    door = dc.nft_door('ssh', text)
    assert door['knocks'] == [None, None, None] and door['opens'] is None and door['refusals'] is None


def test_nft_elements_over_several_lines():
    text = fixture('nftables-table.txt').replace(
        'elements = { 127.0.0.2 expires 29s492ms }',
        'elements = { 127.0.0.2 timeout 30s expires 1m2s,\n\t\t\t     10.0.0.9 expires 250ms }')
    sources = dc.nft_door('ssh', text)['open_sources']
    assert [(s['address'], s['expires_in']) for s in sources] == [('127.0.0.2', 62), ('10.0.0.9', 0.25), ('::1', 29.496)]


# ---- the bundled daemon, Debian's knockd ----

DAEMON_COUNTERS = json.dumps({'version': 1, 'pid': 1, 'started': 1.0, 'updated': 2.0, 'doors': {
    'ssh': {'steps': 3, 'knocks': [4, 3, 3], 'opens': 3, 'refusals': {'wrong_order': 1, 'too_slow': 0, 'dropped': 0}}}})


def test_daemon_counters_file():
    door = dc.parse_daemon_counters(DAEMON_COUNTERS)['ssh']
    assert door['knocks'] == [4, 3, 3] and door['opens'] == 3 and door['refusals'] == 1
    assert door['refusal_reasons']['wrong_order'] == 1


@pytest.mark.parametrize('text, words', [
    ('not json', 'is not JSON'),
    ('[]', 'has no doors'),
    ('{"doors": {"ssh": 5}}', 'door ssh is not an object'),
    ('{"doors": {"ssh": {"knocks": ["7313"], "opens": 1}}}', 'door ssh has a count that is not a number'),
    ('{"doors": {"ssh": {"knocks": [1], "opens": -1}}}', 'door ssh has a count that is not a number'),
])
def test_damaged_daemon_counters_file_is_an_error_naming_it(text, words):
    with pytest.raises(dc.CountersError) as err:
        dc.parse_daemon_counters(text, '/run/portknock-knockd/counters.json')
    assert '/run/portknock-knockd/counters.json' in str(err.value) and words in str(err.value)
    assert '7313' not in str(err.value)


def test_daemon_open_sources_from_the_state_journal():
    records = [{'stanza': 'ssh', 'source': '10.0.0.2', 'expires': 1010.0},
               {'stanza': 'ssh', 'source': 'fd42::2', 'expires': 1001.5},
               {'stanza': 'ssh', 'source': '10.0.0.3', 'expires': 990.0},     # past its deadline
               {'stanza': 'ssh'}, {'source': '10.0.0.4'}, {'stanza': 'web', 'source': '10.0.0.5', 'expires': 'x'}]
    assert dc.daemon_open_sources(records, 1000.0) == {'ssh': [
        {'address': '10.0.0.2', 'family': 'ipv4', 'expires_in': 10.0},
        {'address': 'fd42::2', 'family': 'ipv6', 'expires_in': 1.5}]}


KNOCKD_LOG = '''\
[2024-05-01 12:00] starting up, listening on eth0
[2024-05-01 12:01] 10.0.0.2: ssh: Stage 1
[2024-05-01 12:01] 10.0.0.2: ssh: Stage 2
[2024-05-01 12:01] 10.0.0.2: ssh: Stage 3
[2024-05-01 12:01] 10.0.0.2: ssh: OPEN SESAME
[2024-05-01 12:01] ssh: running command: /usr/sbin/iptables -I PK-ssh-KD -s 10.0.0.2 -j ACCEPT
[2024-05-01 12:02] 10.0.0.3: ssh: Stage 1
[2024-05-01 12:02] 10.0.0.3: ssh: sequence timeout (stage 1)
[2024-05-01 12:02] 10.0.0.3: other: Stage 1
[2024-05-01 12:02] 10.0.0.3: ssh: Stage 9
garbage line
'''


def test_knockd_log_lines():
    doors = {'ssh': dc.empty_door('ssh', 'knockd', 3)}
    dc.parse_knockd_log(KNOCKD_LOG, doors)
    door = doors['ssh']
    assert door['knocks'] == [2, 1, 1] and door['opens'] == 1
    assert door['refusal_reasons'] == {'too_slow': 1} and door['refusals'] == 1


def test_knockd_syslog_lines_through_journalctl_cat():
    doors = {'ssh': dc.empty_door('ssh', 'knockd', 2)}
    dc.parse_knockd_log('10.0.0.2: ssh: Stage 1\n10.0.0.2: ssh: Stage 2\n10.0.0.2: ssh: OPEN SESAME\n', doors)
    assert doors['ssh']['knocks'] == [1, 1] and doors['ssh']['opens'] == 1


def test_knockd_chain_sources():
    rules = [(0, '-A PK-ssh-KD -s 10.0.0.2/32 -p tcp -m tcp --dport 22 -j ACCEPT'),
             (0, '-A PK-ssh-KD -s 10.0.0.2/32 -p tcp -m tcp --dport 22 -j ACCEPT'),
             (0, '-A PK-ssh-KD -s 10.231.0.1/32 -m comment --comment pk-static -j ACCEPT'),
             (0, '-A PK-ssh-KD -m comment --comment pk-static -j DROP'),
             (0, '-A PK-web-KD -s 10.0.0.9/32 -j ACCEPT')]
    assert dc.knockd_chain_sources(rules, 'ssh') == [{'address': '10.0.0.2', 'family': 'ipv4', 'expires_in': None}]


# ---- a whole host, with a fake run (pure logic) ----

KNOCKD_CONF = '''\
[options]
    LogFile = /var/log/knockd.log

[ssh]
    sequence    = 7313,4187:udp,9421
    seq_timeout = 5
    start_command = /usr/sbin/iptables -I PK-ssh-KD -s %IP% -j ACCEPT
    cmd_timeout = 20
    stop_command = /usr/sbin/iptables -D PK-ssh-KD -s %IP% -j ACCEPT
'''


class FakeHost(object):
    def __init__(self, files=None, nft=True, iptables=True, active=None):
        self.files = dict(files or {})
        self.nft = nft
        self.iptables = iptables
        self.active = active or {}
        self.calls = []

    def which(self, name):
        known = ['systemctl'] + (['nft'] if self.nft else [])
        if self.iptables:
            known += ['iptables', 'iptables-nft-save', 'ip6tables-nft-save']
        return '/usr/sbin/' + name if name in known else None

    def read(self, path):
        return self.files.get(path)

    def run(self, args, data=None):
        self.calls.append(args)
        name = os.path.basename(args[0])
        if name == 'iptables':
            return 0, 'iptables v1.8.9 (nf_tables)\n', ''
        if name == 'iptables-nft-save':
            return 0, fixture('iptables-save4.txt'), ''
        if name == 'ip6tables-nft-save':
            return 0, fixture('iptables-save6.txt'), ''
        if args[1:] == ['list', 'tables']:
            return 0, 'table ip filter\ntable inet portknock_web\ntable inet portknock_baseline\n', ''
        if args[1:] == ['list', 'table', 'inet', 'portknock_web']:
            return 0, fixture('nftables-table.txt').replace('portknock_ssh', 'portknock_web'), ''
        if name == 'systemctl':
            return (0, 'active\n', '') if self.active.get(args[2]) else (3, 'inactive\n', '')
        raise AssertionError('unexpected call %r' % (args,))

    def info(self, **kwargs):
        return dc.DoorInfo(run=self.run, which=self.which, read=self.read, clock=lambda: 1000.0, **kwargs)


def kernel_files():
    return {'/proc/timer_list': HZ250_JIFFIES, '/proc/uptime': UPTIME,
            '/proc/net/xt_recent/PK_ssh_3': fixture('iptables-pk_ssh_3.txt'),
            '/proc/net/xt_recent/PK6_ssh_3': fixture('iptables-pk6_ssh_3.txt')}


def test_a_host_with_kernel_doors():
    host = FakeHost(kernel_files())
    info = host.info()
    report = info.report()
    assert [(e['name'], e['up'], e['state']) for e in report['enforcers']] == [
        ('iptables', True, 'loaded'), ('nftables', True, 'loaded')]
    assert [(d['name'], d['enforcer'], d['opens']) for d in report['doors']] == [('ssh', 'iptables', 2), ('web', 'nftables', 2)]
    assert [s['address'] for s in report['doors'][0]['open_sources']] == ['127.0.0.2', '::1']
    assert info.knock_ports == set(KNOCK_PORTS)            # the protected port (2222) is not one
    assert ['-c', '-t', 'filter'] in [args[1:] for args in host.calls]
    text = json.dumps(report)
    assert not any(port in text for port in KNOCK_PORTS)


def test_only_the_doors_and_enforcers_asked_for():
    host = FakeHost(kernel_files())
    report = host.info().report(['nftables'], ['web'])
    assert [e['name'] for e in report['enforcers']] == ['nftables']
    assert [d['name'] for d in report['doors']] == ['web']
    with pytest.raises(dc.CountersError) as err:
        host.info().report(['pf'])
    assert 'unknown enforcer pf' in str(err.value)


def test_a_host_with_debian_knockd(monkeypatch):
    files = {'/etc/knockd.conf': KNOCKD_CONF, '/var/log/knockd.log': KNOCKD_LOG}
    host = FakeHost(files, nft=False, active={'knockd': True})
    monkeypatch.setattr(dc.os.path, 'exists', lambda path: False)       # no bundled daemon installed
    host_which = host.which
    host.which = lambda name: '/usr/sbin/knockd' if name == 'knockd' else host_which(name)
    info = host.info()
    report = info.report()
    assert report['enforcers'][-1] == {'name': 'knockd', 'up': True, 'service': 'knockd', 'state': 'active'}
    door = [d for d in report['doors'] if d['enforcer'] == 'knockd'][0]
    assert door['knocks'] == [2, 1, 1] and door['opens'] == 1 and door['open_window'] == 20
    assert set(KNOCK_PORTS) <= info.knock_ports


def test_a_host_with_the_bundled_daemon(tmp_path):
    state = tmp_path / 'state.json'
    state.write_text('{"version": 2}\n{"op": "open", "id": "a.1", "stanza": "ssh", "source": "10.0.0.2", '
                     '"family": 4, "expires": 1012.5, "stop_command": "x", "kernel": null}\n')
    files = {'/etc/knockd.conf': KNOCKD_CONF, str(tmp_path / 'counters.json'): DAEMON_COUNTERS,
             str(state): state.read_text()}
    host = FakeHost(files, nft=False, iptables=False, active={'portknock-knockd': True})
    report = host.info(daemon_dir=str(tmp_path)).report()
    assert report['enforcers'] == [{'name': 'daemon', 'up': True, 'service': 'portknock-knockd', 'state': 'active'}]
    door = report['doors'][0]
    assert (door['enforcer'], door['knocks'], door['opens'], door['refusals']) == ('daemon', [4, 3, 3], 3, 1)
    assert door['open_sources'] == [{'address': '10.0.0.2', 'family': 'ipv4', 'expires_in': 12.5}]


def test_a_daemon_without_counters_yet_has_unknown_counts(tmp_path):
    (tmp_path / 'state.json').write_text('')
    host = FakeHost({'/etc/knockd.conf': KNOCKD_CONF}, nft=False, iptables=False)
    info = host.info(daemon_dir=str(tmp_path))
    report = info.report(['daemon'])
    assert report['doors'][0]['knocks'] == [None, None, None] and report['doors'][0]['opens'] is None
    assert report['enforcers'][0]['up'] is False
    assert any('counters.json not found' in w for w in info.warnings)


def test_a_broken_knockd_conf_is_an_error_without_its_sequence():
    host = FakeHost({'/etc/knockd.conf': '[ssh]\n    sequence = 7313,4187,nonsense\n'}, nft=False, iptables=False)
    with pytest.raises(dc.CountersError) as err:
        host.info().report(['knockd'])
    assert '/etc/knockd.conf cannot be read' in str(err.value)
    assert '7313' not in str(err.value) and '4187' not in str(err.value)


# ---- Prometheus text format ----

def rendered():
    host = FakeHost(kernel_files())
    return dc.render_metrics(host.info().report(), now=1700000000.0)


def families(text):
    return dict((family.name, family) for family in text_string_to_metric_families(text))


def test_metrics_parse_with_prometheus_client():
    found = families(rendered())
    assert found['portknock_door_knocks'].type == 'counter'
    knocks = dict(((s.labels['door'], s.labels['enforcer'], s.labels['step']), s.value)
                  for s in found['portknock_door_knocks'].samples)
    assert knocks == {('ssh', 'iptables', '1'): 3, ('ssh', 'iptables', '2'): 2, ('ssh', 'iptables', '3'): 2,
                      ('web', 'nftables', '1'): 3, ('web', 'nftables', '2'): 2, ('web', 'nftables', '3'): 2}
    opens = found['portknock_door_opens'].samples
    assert [(s.name, s.labels, s.value) for s in opens] == [
        ('portknock_door_opens_total', {'door': 'ssh', 'enforcer': 'iptables'}, 2),
        ('portknock_door_opens_total', {'door': 'web', 'enforcer': 'nftables'}, 2)]
    assert found['portknock_door_open_sources'].type == 'gauge'
    assert [s.value for s in found['portknock_door_open_sources'].samples] == [2, 2]
    assert set(s.labels['reason'] for s in found['portknock_door_refusals'].samples) == {'wrong_order_or_too_slow'}
    assert [s.value for s in found['portknock_enforcer_up'].samples] == [1, 1]
    assert found['portknock_door_info_timestamp_seconds'].samples[0].value == 1700000000.0


def test_unknown_counts_are_left_out_not_zero():
    door = dc.empty_door('ssh', 'daemon', 2)
    door['knocks'], door['opens'] = [None, None], None
    text = dc.render_metrics({'enforcers': [{'name': 'daemon', 'up': False}], 'doors': [door]}, now=1.0)
    assert 'portknock_door_knocks_total' not in text and 'portknock_door_opens_total' not in text
    assert 'portknock_enforcer_up{enforcer="daemon"} 0' in text
    families(text)


def test_label_values_are_escaped():
    door = dc.empty_door('a"b\\c\nd', 'daemon', 1)
    text = dc.render_metrics({'enforcers': [], 'doors': [door]}, now=1.0)
    sample = families(text)['portknock_door_knocks'].samples[0]
    assert sample.labels['door'] == 'a"b\\c\nd'


PROMTOOL = shutil.which('promtool')


@pytest.mark.skipif(PROMTOOL is None, reason='promtool is not installed (Debian package prometheus)')
def test_promtool_check_metrics_accepts_the_rendered_file():
    proc = subprocess.run([PROMTOOL, 'check', 'metrics'], input=rendered(), universal_newlines=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == '', proc.stdout


@pytest.mark.skipif(PROMTOOL is None, reason='promtool is not installed (Debian package prometheus)')
def test_promtool_would_catch_a_bad_file():
    """The check above is not vacuous: promtool rejects a counter without _total and a broken line."""
    proc = subprocess.run([PROMTOOL, 'check', 'metrics'], input='# HELP x_knocks k\n# TYPE x_knocks counter\nx_knocks 1\n',
                          universal_newlines=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    assert proc.returncode != 0 and '_total' in proc.stdout


# ---- the host-side command ----

def test_metrics_command_writes_the_file_atomically_0644(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    target = tmp_path / 'portknock.prom'
    host = FakeHost(kernel_files())
    old_umask = os.umask(0o077)
    try:
        assert dc.main(['--out', str(target)], out, err, info=host.info()) == 0
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(str(target)).st_mode) == 0o644
    assert 'portknock_door_opens_total{door="ssh",enforcer="iptables"} 2' in target.read_text()
    assert os.listdir(str(tmp_path)) == ['portknock.prom']
    assert out.getvalue() == ''


def test_metrics_command_json_and_usage():
    out, err = io.StringIO(), io.StringIO()
    assert dc.main(['--json', '--enforcer', 'nftables'], out, err, info=FakeHost(kernel_files()).info()) == 0
    assert [d['name'] for d in json.loads(out.getvalue())['doors']] == ['web']
    assert dc.main(['--frobnicate'], io.StringIO(), err) == 2 and 'usage' in err.getvalue()


def test_metrics_command_unwritable_target_is_a_clear_error(tmp_path):
    err = io.StringIO()
    target = str(tmp_path / 'missing' / 'portknock.prom')
    assert dc.main(['--out', target], io.StringIO(), err, info=FakeHost(kernel_files()).info()) == 1
    assert 'cannot write %s' % target in err.getvalue()
