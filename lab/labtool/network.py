"""The shared lab network, and the guards that keep test traffic on this machine.

All labs share one --internal podman network (10.231.0.0/16 + fd42:706b:6c61::/64).  Three
guards keep what is sent to those ranges on the machine:
- standing blackhole routes for both ranges, with a high metric: only the bridge's own
  (kernel, metric 0/256) route can carry lab traffic; with the bridge down or without its
  address, packets to the lab are refused locally instead of following the default route;
- a PKLAB-GUARD chain in FORWARD: nothing is forwarded between the bridge and any other
  interface;
- check_routes(): before anything is sent, every lab subnet must route through the bridge
  (`ip route get`), or `up` stops with the cause.
The network-namespace labs the tests build (tests/integration/netns_lab.py) sit inside
these ranges and are covered by the same blackhole routes.
"""

import ipaddress
import json
import shutil
import subprocess

from .podman import PINNED_BACKEND, host_info, podman, run

NETWORK = 'pklab'
V4_NET, V4_GW = '10.231.0.0/16', '10.231.0.1'
V6_NET, V6_GW = 'fd42:706b:6c61::/64', 'fd42:706b:6c61::1'
GUARD = 'PKLAB-GUARD'
LABEL = 'io.portknock.lab'
BLACKHOLE_METRIC = 4242


def ensure_network():
    if podman('network', 'exists', NETWORK, check=False).returncode == 0:
        return
    podman('network', 'create', '--internal', '--disable-dns',
           '--label', LABEL + '=1', '--subnet', V4_NET, '--gateway', V4_GW,
           '--ipv6', '--subnet', V6_NET, '--gateway', V6_GW, NETWORK)


def bridge():
    """The host side of the lab network (podman picks the name: podmanN)."""
    return podman('network', 'inspect', NETWORK, '--format', '{{.NetworkInterface}}').stdout.strip()


# ---------------------------------------------------------------- standing guard: blackhole routes
def blackhole_commands(enable, nets=(V4_NET, V6_NET)):
    """The `ip route` commands that add (replace: idempotent) or remove the blackhole routes."""
    out = []
    for net in nets:
        family = ['-6'] if ':' in net else ['-4']
        verb = 'replace' if enable else 'del'
        out.append(['ip'] + family + ['route', verb, 'blackhole', net, 'metric', str(BLACKHOLE_METRIC)])
    return out


def blackhole(enable, nets=(V4_NET, V6_NET)):
    for cmd in blackhole_commands(enable, nets):
        res = run(cmd, check=False)
        if enable and res.returncode != 0:
            raise SystemExit('pklab: could not add the blackhole route (%s): %s' % (' '.join(cmd), res.stderr.strip()))


def blackholes_present(nets=(V4_NET, V6_NET)):
    found = []
    for net in nets:
        family = '-6' if ':' in net else '-4'
        out = run(['ip', family, 'route', 'show', 'type', 'blackhole', net], check=False).stdout
        found.append(bool(out.strip()))
    return all(found)


# ---------------------------------------------------------------- forward guard
def forward_guard(enable, brd=None):
    """Nothing from the test network is ever forwarded out of this machine."""
    for tool in ('iptables', 'ip6tables'):
        if not shutil.which(tool):
            continue
        present = run([tool, '-w', '-S', GUARD], check=False).returncode == 0
        while run([tool, '-w', '-D', 'FORWARD', '-j', GUARD], check=False).returncode == 0:
            pass
        if present:
            run([tool, '-w', '-F', GUARD])
            run([tool, '-w', '-X', GUARD])
        if enable:
            run([tool, '-w', '-N', GUARD])
            run([tool, '-w', '-A', GUARD, '-i', brd, '!', '-o', brd, '-j', 'DROP'])
            run([tool, '-w', '-A', GUARD, '!', '-i', brd, '-o', brd, '-j', 'DROP'])
            run([tool, '-w', '-I', 'FORWARD', '1', '-j', GUARD])


# ---------------------------------------------------------------- route check
def route_device(addr):
    """The interface the kernel would send a packet for `addr` through, or None (no route,
    blackhole, unreachable)."""
    family = '-6' if ':' in addr else '-4'
    res = subprocess.run(['ip', '-j', family, 'route', 'get', addr], universal_newlines=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return parse_route_get(res.returncode, res.stdout)


def parse_route_get(returncode, stdout):
    if returncode != 0:
        return None
    try:
        routes = json.loads(stdout or '[]')
    except ValueError:
        return None
    if not routes or routes[0].get('type', 'unicast') not in ('unicast', 'local'):
        return None
    return routes[0].get('dev')


def addresses(dev):
    res = subprocess.run(['ip', '-j', 'addr', 'show', 'dev', dev], universal_newlines=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if res.returncode != 0:
        return None   # no such device
    try:
        info = json.loads(res.stdout or '[]')
    except ValueError:
        return []
    return [a['local'] for link in info for a in link.get('addr_info', []) if a.get('scope') != 'link']


def diagnose(brd, backend=None):
    """Why lab traffic would not go through the bridge, in words that name the cause."""
    addrs = addresses(brd) if brd else None
    if not brd or addrs is None:
        cause = 'the lab bridge %s does not exist' % (brd or '(none)')
    elif not addrs:
        cause = 'bridge %s has no address' % brd
    else:
        cause = 'bridge %s has %s but the route goes elsewhere' % (brd, ', '.join(addrs))
    if backend and backend != PINNED_BACKEND:
        cause += ': podman uses %s; install netavark' % backend.upper()
    elif not addrs:
        cause += ' (is podman using CNI? install netavark and keep network_backend = "netavark")'
    return cause


def check_routes(brd, probes, backend=None):
    """Every probe address (one per lab subnet and family) must route through `brd`.
    Raises SystemExit naming the cause otherwise; sends nothing."""
    for addr in probes:
        dev = route_device(addr)
        if dev != brd:
            raise SystemExit('pklab: %s is routed %s, not through the lab bridge %s: %s.  Nothing was sent.' % (
                addr, 'through %s' % dev if dev else 'nowhere (blackhole)', brd or '(none)',
                diagnose(brd, backend if backend is not None else host_info()[0])))


def in_lab_ranges(addr):
    ip = ipaddress.ip_address(addr)
    return any(ip in ipaddress.ip_network(net) for net in (V4_NET, V6_NET))
