# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

import os
import socket
import threading

import pytest

from ansible_collections.portknock.knock.plugins.module_utils import knock_cli as cli
from ansible_collections.portknock.knock.plugins.module_utils.sequence import Step


def test_knockd_style_arguments():
    args = cli.parse_args(['-u', '-d', '100', '-4', '-v', 'host.example', '7311', '9127:tcp', '8243,9001'])
    assert args.sequence == (Step(7311, 'udp'), Step(9127, 'tcp'), Step(8243, 'udp'), Step(9001, 'udp'))
    assert (args.delay, args.family, args.verbose, args.proxy) == (100, 4, True, False)


def test_proxy_arguments():
    args = cli.parse_args(['--proxy', '-6', '--knock-host', 'fw', '--connect-timeout', '3', 'h', '3371', '1600'])
    assert (args.host, args.port, args.family, args.knock_host, args.connect_timeout) == ('h', 3371, 6, 'fw', 3.0)
    assert args.sequence == (Step(1600, 'tcp'),)


def test_proxy_sequence_from_environment(monkeypatch):
    monkeypatch.setenv(cli.SEQUENCE_ENV, '1600,1601:udp')
    args = cli.parse_args(['--proxy', 'h', '22'])
    assert args.sequence == (Step(1600, 'tcp'), Step(1601, 'udp'))


@pytest.mark.parametrize('argv, message', [
    (['h'], 'no knock sequence'),
    (['h', '70000'], "knock port '70000' is out of range"),
    (['--proxy', 'h'], 'needs HOST PORT'),
    (['--proxy', 'h', 'ssh', '1'], "proxy port 'ssh' is not a port number"),
    (['-4', '-6', 'h', '1'], 'not allowed with'),
    (['--knock-host', 'x', 'h', '1'], 'only makes sense with --proxy'),
    (['-d', '-5', 'h', '1'], 'delay'),
])
def test_bad_arguments_name_the_value(argv, message, capsys, monkeypatch):
    monkeypatch.delenv(cli.SEQUENCE_ENV, raising=False)
    with pytest.raises(SystemExit) as exc:
        cli.parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_write_status(tmp_path):
    path = tmp_path / 'status'
    cli.write_status('knock: closed', environ={cli.STATUS_FILE_ENV: str(path)})
    cli.write_status('ignored', environ={})
    assert path.read_text() == 'knock: closed\n'


def test_relay_copies_both_ways_and_half_closes():
    ours, theirs = socket.socketpair()
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    got = []

    def peer():
        data = b''
        while True:
            chunk = theirs.recv(65536)
            if not chunk:
                break
            data += chunk
        got.append(data)
        theirs.sendall(b'answer:' + data)
        theirs.close()

    thread = threading.Thread(target=peer)
    thread.start()
    os.write(in_w, b'question')
    os.close(in_w)
    cli.relay(ours, infd=in_r, outfd=out_w)
    os.close(out_w)
    thread.join(5)
    assert got == [b'question']
    assert os.read(out_r, 100) == b'answer:question'
    for fd in (in_r, out_r):
        os.close(fd)
    ours.close()


def test_connect_after_knock_gives_up_with_marker(monkeypatch):
    class Refused(object):
        def __init__(self, *a):
            pass

        def settimeout(self, t):
            pass

        def connect(self, addr):
            raise OSError(111, 'Connection refused')

        def close(self):
            pass

    monkeypatch.setattr(cli.socket, 'socket', Refused)
    monkeypatch.setattr(cli.time, 'sleep', lambda s: None)
    ticks = iter(range(100))
    with pytest.raises(cli.ProxyError) as exc:
        cli.connect_after_knock(socket.AF_INET, '198.51.100.3', 22, 3, clock=lambda: next(ticks))
    assert cli.CLOSED_MARKER in str(exc.value)
    assert '198.51.100.3 port 22' in str(exc.value) and 'Connection refused' in str(exc.value)


def test_main_reports_send_errors(monkeypatch, capsys):
    def boom(*a, **k):
        raise cli.KnockSendError('cannot resolve knock host')
    monkeypatch.setattr(cli, 'resolve', boom)
    assert cli.main(['nowhere', '1']) == 1
    assert 'knock: cannot resolve knock host' in capsys.readouterr().err
