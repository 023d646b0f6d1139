# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The knock sender, the knock CLI and its proxy mode against a real -m recent door, on a lab host.

Lab ``it-sender`` (1 host) carries the seed's door built by hand (lab_recent_door: knock TCP
1600 opens 22 and the echo port 2007 for 5 s); the sender, the CLI and ssh run here, on the
controller, from the INSTALLED collection.  The door is rebuilt before each test.
Run: source tools/bootstrap.sh && PYTHONPATH=$ANSIBLE_COLLECTIONS_PATH python -m pytest -q -m integration tests/integration/test_knock_sender_lab.py
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab_hosts import lab  # noqa: E402
from lab_recent_door import ECHO_PORT, KNOCK_PORT, RecentDoor  # noqa: E402

pytestmark = pytest.mark.integration

SENDER_SNIPPET = (
    'import sys\n'
    'from ansible_collections.portknock.knock.plugins.module_utils.knock_sender import knock\n'
    'addr = knock(sys.argv[1], sys.argv[2], delay_ms=int(sys.argv[3]), family=(int(sys.argv[4]) if sys.argv[4] else None))\n'
    'print(addr)\n')


def collection_paths():
    collection = os.environ.get('PORTKNOCK_COLLECTION')
    if not collection:
        pytest.fail('PORTKNOCK_COLLECTION is not set: run under tools/test.sh or source tools/bootstrap.sh')
    return collection, os.path.dirname(os.path.dirname(os.path.dirname(collection)))


@pytest.fixture(scope='module')
def lab_door():
    collection_paths()
    with lab('it-sender', 1) as hosts:
        door = RecentDoor(hosts[0])
        door.build()
        door.start_echo()
        yield door


@pytest.fixture
def door(lab_door):
    lab_door.build()
    yield lab_door


def local(*cmd, **kwargs):
    """Run on the controller with the installed collection importable."""
    env = dict(os.environ, PYTHONPATH=collection_paths()[1])
    env.update(kwargs.pop('env', {}))
    kwargs.setdefault('universal_newlines', True)
    kwargs.setdefault('timeout', 60)
    return subprocess.run(list(cmd), env=env, check=False, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def knock_cli(*args, **kwargs):
    return local(os.path.join(collection_paths()[0], 'scripts', 'knock'), *args, **kwargs)


def sender(host, sequence, delay=0, family=''):
    return local(sys.executable, '-c', SENDER_SNIPPET, host, sequence, str(delay), str(family))


def echo_through_door(address, timeout=2.0):
    """A real connection from the controller to the protected echo port."""
    code = ('import socket,sys\n'
            's=socket.create_connection((sys.argv[1], %d), timeout=%s)\n'
            's.sendall(b"ping"); s.shutdown(socket.SHUT_WR); print(s.recv(100).decode())\n' % (ECHO_PORT, timeout))
    return local(sys.executable, '-c', code, address)


def test_one_syn_per_tcp_step_and_one_datagram_per_udp_step(door):
    result = sender(door.host.ipv4, '1600,1601:udp,1602,1603', delay=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == door.host.ipv4
    # a lost SYN would be retransmitted after 1 s: wait past it, counts must not move
    time.sleep(2.5)
    assert door.counters(4) == {('tcp', 1600): 1, ('udp', 1601): 1, ('tcp', 1602): 1, ('tcp', 1603): 1}
    assert door.knocks(6) == 0


def test_ipv6_knock_counts_once_and_opens_the_v6_door(door):
    result = sender(door.host.ipv6, '1600', family=6)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == door.host.ipv6
    time.sleep(1.5)
    assert door.knocks(6) == 1
    assert door.knocks(4) == 0
    assert echo_through_door(door.host.ipv6).stdout.strip() == 'ping'


def test_door_is_closed_without_knock(door):
    result = echo_through_door(door.host.ipv4, timeout=1.5)
    assert result.returncode != 0
    assert door.knocks(4) == 0


def test_cli_opens_the_door_then_connect_works(door):
    result = knock_cli('-v', '-d', '10', door.host.ipv4, str(KNOCK_PORT))
    assert result.returncode == 0, result.stderr
    assert 'hitting tcp %s:%d' % (door.host.ipv4, KNOCK_PORT) in result.stderr
    assert echo_through_door(door.host.ipv4).stdout.strip() == 'ping'
    assert door.knocks(4) == 1


def test_cli_udp_default_protocol(door):
    result = knock_cli('-u', door.host.ipv4, '1601', '1602:tcp')
    assert result.returncode == 0, result.stderr
    time.sleep(1.5)
    counters = door.counters(4)
    assert counters[('udp', 1601)] == 1 and counters[('tcp', 1602)] == 1


def test_cli_rejects_bad_port_with_clear_message(door):
    result = knock_cli(door.host.ipv4, '70000')
    assert result.returncode == 2
    assert "knock port '70000' is out of range" in result.stderr
    assert door.counters(4) == {('tcp', 1600): 0, ('udp', 1601): 0, ('tcp', 1602): 0, ('tcp', 1603): 0}


@pytest.mark.parametrize('family', [4, 6])
def test_proxy_relays_both_ways_through_the_door(door, family):
    address = door.host.ipv4 if family == 4 else door.host.ipv6
    payload = os.urandom(200000)
    result = knock_cli('--proxy', '-%d' % family, address, str(ECHO_PORT), str(KNOCK_PORT),
                       input=payload, universal_newlines=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == payload
    assert door.knocks(family) == 1
    assert door.new_connections(port=ECHO_PORT, family=family) == 1


def test_proxy_reads_sequence_from_environment(door):
    result = knock_cli('--proxy', door.host.ipv4, str(ECHO_PORT), input='hello\n', env={'PORTKNOCK_SEQUENCE': '1600'})
    assert result.returncode == 0, result.stderr
    assert result.stdout == 'hello\n'
    assert 'PORTKNOCK' not in ' '.join(result.args)
    assert door.knocks(4) == 1


def test_proxy_wrong_sequence_says_port_stayed_closed(door):
    started = time.time()
    result = knock_cli('--proxy', '--connect-timeout', '2', door.host.ipv4, str(ECHO_PORT), '1602', input='')
    assert result.returncode == 1
    assert 'knock sent but port stayed closed' in result.stderr
    assert '%s port %d' % (door.host.ipv4, ECHO_PORT) in result.stderr
    assert time.time() - started < 10
    assert door.knocks(4) == 0 and door.counters(4)[('tcp', 1602)] == 1


def test_real_ssh_with_proxycommand(door):
    base = ['ssh', '-i', door.host.key, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
            '-o', 'BatchMode=yes', '-o', 'ControlMaster=no', '-o', 'LogLevel=ERROR', '-F', '/dev/null']
    closed = local(*(base + ['-o', 'ConnectTimeout=2', 'root@' + door.host.ipv4, 'true']), stdin=subprocess.DEVNULL)
    assert closed.returncode == 255
    proxy = 'ProxyCommand=%s --proxy %%h %%p %d' % (os.path.join(collection_paths()[0], 'scripts', 'knock'), KNOCK_PORT)
    for address, family in ((door.host.ipv4, 4), (door.host.ipv6, 6)):
        result = local(*(base + ['-o', 'ConnectTimeout=10', '-o', proxy, 'root@' + address, 'echo', 'via-ssh']),
                       stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == 'via-ssh'
        assert door.knocks(family) == 1
        assert door.new_connections(family=family) == 1
