# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The knock sender, the knock CLI and its proxy mode against a real -m recent door.

Needs root (network namespaces, iptables in the server namespace only).
Run: cd /work/main && PYTHONPATH=/work/collections .venv/bin/python -m pytest -m integration tests/integration/test_knock_sender_netns.py
"""

from __future__ import absolute_import, division, print_function

import os
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from knock_netns_lab import ECHO_PORT, KNOCK_PORT, lab  # noqa: E402

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root for network namespaces'),
]

COLLECTION = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KNOCK = os.path.join(COLLECTION, 'scripts', 'knock')
PYTHONPATH = '/work/collections'
SENDER_SNIPPET = (
    'import sys, json\n'
    'from ansible_collections.portknock.knock.plugins.module_utils.knock_sender import knock, send_knocks\n'
    'addr = knock(sys.argv[1], sys.argv[2], delay_ms=int(sys.argv[3]), family=(sys.argv[4] or None))\n'
    'print(addr)\n')


def in_client(the_lab, *cmd, **kwargs):
    env = dict(os.environ, PYTHONPATH=PYTHONPATH)
    kwargs.setdefault('check', False)
    return the_lab.ns(the_lab.client, *cmd, env=env, **kwargs)


def sender(the_lab, host, sequence, delay=0, family=''):
    return in_client(the_lab, sys.executable, '-c', SENDER_SNIPPET, host, sequence, str(delay), family)


def echo_through_door(the_lab, address, timeout=2.0):
    """Try a real connection to the protected echo port from the client ns."""
    code = ('import socket,sys\n'
            's=socket.create_connection((sys.argv[1], %d), timeout=%s)\n'
            's.sendall(b"ping"); s.shutdown(socket.SHUT_WR); print(s.recv(100).decode())\n' % (ECHO_PORT, timeout))
    return in_client(the_lab, sys.executable, '-c', code, address)


@pytest.fixture
def door():
    with lab(index=1, echo=True) as the_lab:
        yield the_lab


def test_one_syn_per_tcp_step_and_one_datagram_per_udp_step(door):
    result = sender(door, door.server4, '1600,1601:udp,1602,1603', delay=20)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == door.server4
    # a lost SYN would be retransmitted after 1 s: wait past it, counts must not move
    time.sleep(2.5)
    assert door.counters(4) == {('tcp', 1600): 1, ('udp', 1601): 1, ('tcp', 1602): 1, ('tcp', 1603): 1}
    assert door.knocks(6) == 0


def test_ipv6_knock_counts_once_and_opens_the_v6_door(door):
    result = sender(door, door.server6, '1600', family='6')
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == door.server6
    time.sleep(1.5)
    assert door.knocks(6) == 1
    assert door.knocks(4) == 0
    assert echo_through_door(door, door.server6).stdout.strip() == 'ping'


def test_door_is_closed_without_knock(door):
    result = echo_through_door(door, door.server4, timeout=1.5)
    assert result.returncode != 0
    assert door.knocks(4) == 0


def test_cli_opens_the_door_then_connect_works(door):
    result = in_client(door, KNOCK, '-v', '-d', '10', door.server4, str(KNOCK_PORT))
    assert result.returncode == 0, result.stderr
    assert 'hitting tcp %s:%d' % (door.server4, KNOCK_PORT) in result.stderr
    assert echo_through_door(door, door.server4).stdout.strip() == 'ping'
    assert door.knocks(4) == 1


def test_cli_udp_default_protocol(door):
    result = in_client(door, KNOCK, '-u', door.server4, '1601', '1602:tcp')
    assert result.returncode == 0, result.stderr
    time.sleep(1.5)
    counters = door.counters(4)
    assert counters[('udp', 1601)] == 1 and counters[('tcp', 1602)] == 1


def test_cli_rejects_bad_port_with_clear_message(door):
    result = in_client(door, KNOCK, door.server4, '70000')
    assert result.returncode == 2
    assert "knock port '70000' is out of range" in result.stderr


@pytest.mark.parametrize('family', [4, 6])
def test_proxy_relays_both_ways_through_the_door(door, family):
    address = door.server4 if family == 4 else door.server6
    payload = os.urandom(200000)
    result = in_client(door, KNOCK, '--proxy', '-%d' % family, address, str(ECHO_PORT), str(KNOCK_PORT),
                       input=payload, universal_newlines=False, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == payload
    assert door.knocks(family) == 1


def test_proxy_reads_sequence_from_environment(door):
    env = dict(os.environ, PYTHONPATH=PYTHONPATH, PORTKNOCK_SEQUENCE='1600')
    result = door.ns(door.client, KNOCK, '--proxy', door.server4, str(ECHO_PORT), input='hello\n',
                     env=env, check=False, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == 'hello\n'
    assert 'PORTKNOCK' not in ' '.join(result.args)


def test_proxy_wrong_sequence_says_port_stayed_closed(door):
    started = time.time()
    result = in_client(door, KNOCK, '--proxy', '--connect-timeout', '2', door.server4, str(ECHO_PORT), '1602',
                       input='', timeout=30)
    assert result.returncode == 1
    assert 'knock sent but port stayed closed' in result.stderr
    assert '%s port %d' % (door.server4, ECHO_PORT) in result.stderr
    assert time.time() - started < 10
    assert door.knocks(4) == 0 and door.counters(4)[('tcp', 1602)] == 1


def test_real_ssh_with_proxycommand():
    with lab(index=2, sshd=True) as the_lab:
        base = ['ssh', '-i', the_lab.client_key, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
                '-o', 'BatchMode=yes', '-o', 'ControlMaster=no', '-o', 'ConnectTimeout=10']
        closed = in_client(the_lab, *(base[:-1] + ['ConnectTimeout=2', 'root@' + the_lab.server4, 'true']),
                           timeout=30, stdin=subprocess.DEVNULL)
        assert closed.returncode == 255
        proxy = 'ProxyCommand=%s --proxy %%h %%p %d' % (KNOCK, KNOCK_PORT)
        for address, family in ((the_lab.server4, 4), (the_lab.server6, 6)):
            result = in_client(the_lab, *(base + ['-o', proxy, 'root@' + address, 'echo', 'via-ssh']),
                               timeout=60, stdin=subprocess.DEVNULL)
            assert result.returncode == 0, result.stderr
            assert result.stdout.strip() == 'via-ssh'
            assert the_lab.knocks(family) == 1
