"""The apt-cacher-ng on the lab bridge: hosts reach Debian's mirror only through it."""

import os
import signal
import socket
import time

from .network import V4_GW
from .podman import run
from .state import STATE, write

PROXY_PORT = 3143   # not 3142: a system apt-cacher-ng may already own that


def proxy_paths():
    base = os.path.join(STATE, 'apt-proxy')
    return base, os.path.join(base, 'apt-cacher-ng.pid')


def proxy_pid():
    _, pidfile = proxy_paths()
    try:
        with open(pidfile) as fh:
            pid = int(fh.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def port_open(addr, port, timeout):
    try:
        with socket.create_connection((addr, port), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_apt_proxy():
    """Start the proxy unless one answers on the bridge (ours, or another state dir's: shared).
    Call only after network.check_routes(): the probe connects to the bridge address."""
    if port_open(V4_GW, PROXY_PORT, 1):
        return
    if proxy_pid():
        stop_apt_proxy()   # started before the bridge had its address
    base, pidfile = proxy_paths()
    cache = os.path.join(STATE, 'cache', 'apt')
    for path in (base, cache, os.path.join(base, 'log')):
        os.makedirs(path, exist_ok=True)
    write(os.path.join(base, 'acng.conf'), '\n'.join([
        'CacheDir: %s' % cache, 'LogDir: %s' % os.path.join(base, 'log'),
        'SocketPath: %s' % os.path.join(base, 'socket'), 'PidFile: %s' % pidfile,
        'Port: %d' % PROXY_PORT, 'BindAddress: %s' % V4_GW, 'ForeGround: 0',
        'ExThreshold: 30', 'ReuseConnections: 1', '']))
    run(['apt-cacher-ng', '-c', base])
    for _ in range(50):
        if proxy_pid() and port_open(V4_GW, PROXY_PORT, 0.2):
            return
        time.sleep(0.1)
    raise SystemExit('pklab: apt-cacher-ng did not start (see %s/log)' % base)


def proxy_processes():
    """Every lab apt-cacher-ng on this machine (also ones whose pid file was lost)."""
    pids = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open('/proc/%s/cmdline' % entry, 'rb') as fh:
                    argv = fh.read().split(b'\0')
            except OSError:
                continue
            if argv and argv[0].endswith(b'apt-cacher-ng') and any(a.endswith(b'/apt-proxy') for a in argv):
                pids.append(int(entry))
    return pids


def stop_apt_proxy():
    for pid in proxy_processes():
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    for _ in range(50):
        if not proxy_processes():
            break
        time.sleep(0.1)


def apt_proxy_conf():
    path = os.path.join(STATE, 'apt-proxy', '01pklab-proxy')
    write(path, 'Acquire::http::Proxy "http://%s:%d";\nAcquire::Retries "5";\n' % (V4_GW, PROXY_PORT))
    return path
