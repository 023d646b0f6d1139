# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lab/labtool/proxy.py: the apt-cacher-ng configuration, when the proxy is started or stopped,
and which processes count as the lab's.  apt-cacher-ng itself is faked (the runner, the probe and
/proc); the real proxy runs in tests/integration/test_lab.py."""

import io
import os
import signal
import socket
import types

import pytest

from labtool import network, proxy


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """A state dir in tmp_path, a faked runner and port probe; records what would run."""
    env = types.SimpleNamespace(runs=[], stopped=0, open_after=None, probes=0, pid=None)
    monkeypatch.setattr(proxy, 'STATE', str(tmp_path))
    monkeypatch.setattr(proxy.time, 'sleep', lambda s: None)

    def run(cmd, **kw):
        env.runs.append(cmd)
        return types.SimpleNamespace(returncode=0, stdout='', stderr='')

    def port_open(addr, port, timeout):
        assert (addr, port) == (network.V4_GW, proxy.PROXY_PORT)
        env.probes += 1
        return env.open_after is not None and env.probes > env.open_after

    def stop():
        env.stopped += 1
        env.pid = None

    monkeypatch.setattr(proxy, 'run', run)
    monkeypatch.setattr(proxy, 'port_open', port_open)
    monkeypatch.setattr(proxy, 'proxy_pid', lambda: env.pid)
    monkeypatch.setattr(proxy, 'stop_apt_proxy', stop)
    env.base = os.path.join(str(tmp_path), 'apt-proxy')
    return env


def conf(path):
    return dict(line.split(': ', 1) for line in open(path).read().splitlines())


def test_a_proxy_answering_on_the_bridge_is_used(lab):
    lab.open_after = 0
    proxy.ensure_apt_proxy()
    assert lab.runs == [] and lab.stopped == 0
    assert not os.path.exists(lab.base)


def test_the_proxy_is_started_with_its_own_config(lab, tmp_path, monkeypatch):
    lab.open_after = 1                 # closed on the first probe, open once started

    def started(cmd, **kw):
        lab.runs.append(cmd)
        lab.pid = 4242
        return types.SimpleNamespace(returncode=0)

    monkeypatch.setattr(proxy, 'run', started)
    proxy.ensure_apt_proxy()
    assert lab.runs == [['apt-cacher-ng', '-c', lab.base]]
    assert lab.stopped == 0
    settings = conf(os.path.join(lab.base, 'acng.conf'))
    assert settings['Port'] == str(proxy.PROXY_PORT) == '3143'   # not a system apt-cacher-ng's 3142
    assert settings['BindAddress'] == network.V4_GW               # the lab bridge only
    assert settings['CacheDir'] == os.path.join(str(tmp_path), 'cache', 'apt')
    assert settings['PidFile'] == os.path.join(lab.base, 'apt-cacher-ng.pid')
    assert settings['LogDir'] == os.path.join(lab.base, 'log') and os.path.isdir(settings['LogDir'])
    assert settings['ForeGround'] == '0'
    assert os.path.isdir(settings['CacheDir'])


def test_a_proxy_started_before_the_bridge_had_its_address_is_restarted(lab, monkeypatch):
    lab.pid = 1234                     # our pid file is alive but nothing answers on the bridge

    def started(cmd, **kw):
        lab.runs.append(cmd)
        lab.pid = 4321
        lab.open_after = lab.probes
        return types.SimpleNamespace(returncode=0)

    monkeypatch.setattr(proxy, 'run', started)
    proxy.ensure_apt_proxy()
    assert lab.stopped == 1 and lab.runs == [['apt-cacher-ng', '-c', lab.base]]


def test_a_proxy_that_never_answers_fails_with_its_log_dir(lab):
    with pytest.raises(SystemExit) as err:
        proxy.ensure_apt_proxy()
    assert 'apt-cacher-ng did not start' in str(err.value) and lab.base in str(err.value)
    assert len(lab.runs) == 1


def test_apt_proxy_conf_points_at_the_bridge(tmp_path, monkeypatch):
    monkeypatch.setattr(proxy, 'STATE', str(tmp_path))
    path = proxy.apt_proxy_conf()
    assert path == os.path.join(str(tmp_path), 'apt-proxy', '01pklab-proxy')
    text = open(path).read()
    assert 'Acquire::http::Proxy "http://%s:3143";' % network.V4_GW in text
    assert 'Acquire::Retries "5";' in text


def test_proxy_pid_reads_a_live_pid_only(tmp_path, monkeypatch):
    monkeypatch.setattr(proxy, 'STATE', str(tmp_path))
    _base, pidfile = proxy.proxy_paths()
    assert proxy.proxy_pid() is None                                  # no pid file
    os.makedirs(os.path.dirname(pidfile))
    with open(pidfile, 'w') as fh:
        fh.write('%d\n' % os.getpid())
    assert proxy.proxy_pid() == os.getpid()
    with open(pidfile, 'w') as fh:
        fh.write('not a pid\n')
    assert proxy.proxy_pid() is None
    with open('/proc/sys/kernel/pid_max') as fh:
        dead = int(fh.read()) + 1
    with open(pidfile, 'w') as fh:
        fh.write('%d\n' % dead)
    assert proxy.proxy_pid() is None


def test_port_open_on_loopback():
    server = socket.socket()
    server.bind(('127.0.0.1', 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        assert proxy.port_open('127.0.0.1', port, 1)
    finally:
        server.close()
    assert not proxy.port_open('127.0.0.1', port, 1)


def test_proxy_processes_are_lab_apt_cacher_ngs_only(monkeypatch):
    cmdlines = {
        '100': b'/usr/sbin/apt-cacher-ng\0-c\0/srv/x/.lab/apt-proxy\0',     # a lab proxy (pid file lost)
        '101': b'/usr/sbin/apt-cacher-ng\0-c\0/etc/apt-cacher-ng\0',       # the system's own
        '102': b'/bin/sh\0-c\0apt-cacher-ng -c /x/apt-proxy\0',            # not apt-cacher-ng itself
        '103': b'',                                                        # a kernel thread
    }
    real_listdir = os.listdir

    def listdir(path):
        return list(cmdlines) + ['104', 'self', 'sys'] if path == '/proc' else real_listdir(path)

    def fake_open(path, mode='r'):
        pid = path.split('/')[2]
        if pid not in cmdlines:
            raise PermissionError(path)                                   # gone or not readable
        return io.BytesIO(cmdlines[pid])

    monkeypatch.setattr(proxy.os, 'listdir', listdir)
    monkeypatch.setattr(proxy, 'open', fake_open, raising=False)
    assert proxy.proxy_processes() == [100]


def test_stop_terminates_every_lab_proxy_and_waits(monkeypatch):
    alive = {7, 8}
    killed, polls = [], []
    monkeypatch.setattr(proxy.time, 'sleep', lambda s: None)

    def processes():
        if len(polls) == 2:
            alive.discard(7)           # exits a while after SIGTERM
        polls.append(sorted(alive))
        return polls[-1]

    def kill(pid, sig):
        killed.append((pid, sig))
        if pid == 8:
            alive.discard(8)
            raise ProcessLookupError(pid)      # exited meanwhile: not an error

    monkeypatch.setattr(proxy, 'proxy_processes', processes)
    monkeypatch.setattr(proxy.os, 'kill', kill)
    proxy.stop_apt_proxy()
    assert killed == [(7, signal.SIGTERM), (8, signal.SIGTERM)]
    assert polls == [[7, 8], [7], []]    # waited until none was left, then stopped polling
