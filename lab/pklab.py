#!/usr/bin/env python3
"""pklab: real Debian 12 test hosts on one machine (rootful podman, systemd as PID 1).

One tool for molecule, the integration tests, the demo (site.yml) and the benchmarks.

    pklab.py image                   build (or reuse) the base image
    pklab.py up   --lab NAME -n N    create N hosts (a second `up` replaces leftovers)
    pklab.py down --lab NAME | --all remove hosts; the last lab also takes the network,
                                     the guard rules and the apt proxy with it
    pklab.py list                    labs and their hosts

Each lab writes <state>/labs/NAME/inventory.yml and hosts.json.  All labs share one
internal podman network (10.231.0.0/16 + fd42:706b:6c61::/64); lab k gets
10.231.k.0/24 and fd42:706b:6c61::k:0/112.  Nothing on that network is routed anywhere:
the network is --internal and a guard chain drops anything forwarded from it.  Hosts reach
Debian's mirror only through an apt-cacher-ng bound to the bridge address.
"""

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
STATE = os.environ.get('PKLAB_STATE', os.path.join(REPO, '.lab'))
CONTAINERS_CONF = os.path.join(HERE, 'containers.conf')
NETWORK = 'pklab'
V4_NET, V4_GW = '10.231.0.0/16', '10.231.0.1'
V6_NET, V6_GW = 'fd42:706b:6c61::/64', 'fd42:706b:6c61::1'
PROXY_PORT = 3143   # not 3142: a system apt-cacher-ng may already own that
GUARD = 'PKLAB-GUARD'
LABEL = 'io.portknock.lab'
SUITE = 'bookworm'
PACKAGES = ['python3', 'python3-apt', 'openssh-server', 'iproute2', 'iptables', 'nftables',
            'sudo', 'procps', 'systemd', 'systemd-sysv', 'dbus', 'netcat-openbsd',
            'ca-certificates', 'kmod']
IMAGE_RECIPE_VERSION = '3'
SSH_OPTS = ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
            '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=5', '-o', 'BatchMode=yes']


def log(msg):
    print('pklab: %s' % msg, file=sys.stderr, flush=True)


def run(cmd, check=True, capture=True, **kw):
    env = dict(os.environ, CONTAINERS_CONF=CONTAINERS_CONF)
    res = subprocess.run(cmd, env=env, universal_newlines=True,
                         stdout=subprocess.PIPE if capture else None,
                         stderr=subprocess.PIPE if capture else None, **kw)
    if check and res.returncode != 0:
        raise SystemExit('pklab: command failed (%d): %s\n%s' % (
            res.returncode, ' '.join(cmd), (res.stderr or '').strip()))
    return res


def podman(*args, check=True):
    return run(['podman', '--log-level=error'] + list(args), check=check)


class Lock:
    """Serialises pklab invocations (molecule and tests may run it concurrently)."""

    def __enter__(self):
        os.makedirs(STATE, exist_ok=True)
        self.fh = open(os.path.join(STATE, '.lock'), 'w')
        fcntl.flock(self.fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


# ---------------------------------------------------------------- image
def debian_mirror():
    """The Debian mirror this machine's apt uses (hosts fetch through the proxy from it)."""
    for path in ('/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list'):
        try:
            with open(path) as fh:
                for line in fh:
                    words = line.split()
                    if words[:1] == ['URIs:'] and 'security' not in words[1]:
                        return words[1]
                    if words[:1] == ['deb'] and 'security' not in line:
                        return [w for w in words[1:] if '://' in w][0]
        except (OSError, IndexError):
            continue
    return 'http://deb.debian.org/debian'


def image_name():
    if os.environ.get('PKLAB_IMAGE'):   # a registry image may be named instead
        return os.environ['PKLAB_IMAGE']
    digest = hashlib.sha256((IMAGE_RECIPE_VERSION + SUITE + ' '.join(PACKAGES)).encode()).hexdigest()[:12]
    return 'localhost/pklab-debian12:%s' % digest


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as fh:
        fh.write(text)
    os.chmod(path, mode)


def build_image():
    image = image_name()
    if podman('image', 'exists', image, check=False).returncode == 0:
        return image
    if os.environ.get('PKLAB_IMAGE'):
        podman('pull', image)
        return image
    cache = os.path.join(STATE, 'cache')
    rootfs = os.path.join(cache, 'rootfs-' + image.rsplit(':', 1)[1])
    if not os.path.exists(os.path.join(rootfs, '.pklab-complete')):
        shutil.rmtree(rootfs, ignore_errors=True)
        os.makedirs(cache, exist_ok=True)
        log('debootstrap %s into %s (about a minute, once)' % (SUITE, rootfs))
        run(['debootstrap', '--variant=minbase', '--include=' + ','.join(PACKAGES),
             SUITE, rootfs, debian_mirror()])
        customise_rootfs(rootfs)
        write(os.path.join(rootfs, '.pklab-complete'), 'ok\n')
    log('importing %s' % image)
    tar = subprocess.Popen(['tar', '-C', rootfs, '--exclude=./.pklab-complete', '-c', '.'],
                           stdout=subprocess.PIPE)
    run(['podman', '--log-level=error', 'import', '--change', 'CMD ["/sbin/init"]',
         '--change', 'STOPSIGNAL SIGRTMIN+3', '-', image], stdin=tar.stdout)
    tar.wait()
    return image


def customise_rootfs(root):
    write(os.path.join(root, 'etc/apt/apt.conf.d/02pklab-norecommends'), 'APT::Install-Recommends "false";\n')
    write(os.path.join(root, 'etc/apt/sources.list'),
          'deb http://deb.debian.org/debian %s main\n' % SUITE)
    write(os.path.join(root, 'etc/ssh/sshd_config.d/pklab.conf'),
          'PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n'
          'MaxStartups 100:30:200\nMaxSessions 50\n')
    os.makedirs(os.path.join(root, 'root/.ssh'), mode=0o700, exist_ok=True)
    # Fresh host keys per container: generated at first boot by a oneshot unit.
    for name in os.listdir(os.path.join(root, 'etc/ssh')):
        if name.startswith('ssh_host_'):
            os.unlink(os.path.join(root, 'etc/ssh', name))
    write(os.path.join(root, 'etc/systemd/system/pklab-hostkeys.service'),
          '[Unit]\nDescription=Generate ssh host keys\nBefore=ssh.service\n'
          'ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\n'
          '[Service]\nType=oneshot\nExecStart=/usr/bin/ssh-keygen -A\n'
          '[Install]\nWantedBy=multi-user.target\n')
    wants = os.path.join(root, 'etc/systemd/system/multi-user.target.wants')
    os.makedirs(wants, exist_ok=True)
    link = os.path.join(wants, 'pklab-hostkeys.service')
    if not os.path.lexists(link):
        os.symlink('/etc/systemd/system/pklab-hostkeys.service', link)
    for unit in ('console-getty.service', 'getty@tty1.service', 'systemd-logind.service',
                 'systemd-timesyncd.service', 'apt-daily.timer', 'apt-daily-upgrade.timer'):
        path = os.path.join(root, 'etc/systemd/system', unit)
        if not os.path.lexists(path):
            os.symlink('/dev/null', path)
    # Containers have no consoles; journald to memory keeps hosts light.
    write(os.path.join(root, 'etc/systemd/journald.conf.d/pklab.conf'),
          '[Journal]\nStorage=volatile\nRuntimeMaxUse=16M\n')


# ---------------------------------------------------------------- shared network, guard, proxy
def ensure_network():
    if podman('network', 'exists', NETWORK, check=False).returncode == 0:
        return
    podman('network', 'create', '--internal', '--disable-dns',
           '--label', LABEL + '=1', '--subnet', V4_NET, '--gateway', V4_GW,
           '--ipv6', '--subnet', V6_NET, '--gateway', V6_GW, NETWORK)


def bridge():
    """The host side of the lab network (podman picks the name: podmanN)."""
    return podman('network', 'inspect', NETWORK, '--format', '{{.NetworkInterface}}').stdout.strip()


def guard(enable):
    """Nothing from the test network is ever forwarded out of this machine."""
    brd = bridge() if enable else None
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


def ensure_apt_proxy():
    if port_open(V4_GW, PROXY_PORT, 1):
        return             # ours, or the one of a lab from another state dir: shared
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


def port_open(addr, port, timeout):
    try:
        with socket.create_connection((addr, port), timeout=timeout):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------- labs
def labs_dir():
    return os.path.join(STATE, 'labs')


def lab_file(lab):
    return os.path.join(labs_dir(), lab, 'hosts.json')


def all_labs():
    try:
        names = sorted(os.listdir(labs_dir()))
    except OSError:
        return {}
    out = {}
    for name in names:
        try:
            with open(lab_file(name)) as fh:
                out[name] = json.load(fh)
        except (OSError, ValueError):
            continue
    return out


def apt_proxy_conf():
    path = os.path.join(STATE, 'apt-proxy', '01pklab-proxy')
    write(path, 'Acquire::http::Proxy "http://%s:%d";\nAcquire::Retries "5";\n' % (V4_GW, PROXY_PORT))
    return path


def ssh_key():
    key = os.path.join(STATE, 'ssh', 'id_ed25519')
    if not os.path.exists(key):
        os.makedirs(os.path.dirname(key), mode=0o700, exist_ok=True)
        run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'pklab', '-f', key])
    return key


def remove_containers(lab=None):
    label = '%s.lab=%s' % (LABEL, lab) if lab else LABEL + '.lab'
    ids = podman('ps', '-aq', '--filter', 'label=' + label).stdout.split()
    if ids:
        podman('rm', '-f', '-t', '0', *ids, check=False)


def running(record):
    names = set(podman('ps', '--format', '{{.Names}}', '--filter', 'label=%s.lab=%s' % (LABEL, record['lab'])).stdout.split())
    return all(h['container'] in names for h in record['hosts'])


def indexes_in_use():
    """Address blocks held by any lab container on this machine, whatever state dir made it."""
    out = podman('ps', '-a', '--filter', 'label=' + LABEL + '.index', '--format',
                 '{{ index .Labels "%s.index" }}' % LABEL, check=False).stdout.split()
    return set(int(word) for word in out if word.isdigit())


# How a host starts (podman create arguments after the options, ending with the image and its command).
SYSV_BOOT = ('rm -f /sbin/init; rm -rf /run/systemd; mkdir -p /run/sshd; ssh-keygen -A >/dev/null; '
             '/usr/sbin/sshd; while :; do sleep 3600 & wait $!; done')
INITS = {
    'systemd': lambda image: ['--systemd', 'always', image],
    'sysv': lambda image: ['--systemd', 'false', image, '/bin/sh', '-c', SYSV_BOOT],
}


def up(lab, count, reuse=False, init='systemd'):
    if not lab.replace('-', '').isalnum() or len(lab) > 30:
        raise SystemExit('pklab: lab name %r: letters, digits and - only' % lab)
    if not 1 <= count <= 60:
        raise SystemExit('pklab: between 1 and 60 hosts per lab')
    old = all_labs().get(lab)
    if init not in INITS:
        raise SystemExit('pklab: --init %s: one of %s' % (init, ', '.join(sorted(INITS))))
    if reuse and old and len(old['hosts']) == count and running(old) and old.get('init', 'systemd') == init:
        # The hosts keep what was deployed on them (their ssh may now need a knock).
        guard(True)
        ensure_apt_proxy()
        log('lab %s: reusing %d running host(s)' % (lab, count))
        return old
    image = build_image()
    ensure_network()
    key = ssh_key()
    remove_containers(lab)   # leftovers of a crashed run
    others = dict((k, v) for k, v in all_labs().items() if k != lab)
    used = set(v['index'] for v in others.values()) | indexes_in_use()
    index = min(i for i in range(2, 250) if i not in used)
    hosts = []
    for i in range(1, count + 1):
        name = '%s-%d' % (lab, i)
        v4 = '10.231.%d.%d' % (index, 10 + i)
        v6 = 'fd42:706b:6c61::%x:%x' % (index, 10 + i)
        cname = 'pklab-' + name
        podman('create', '--name', cname, '--hostname', name, '--network', NETWORK,
               '--ip', v4, '--ip6', v6, '--cap-add', 'NET_ADMIN,NET_RAW,SYS_MODULE',
               '--stop-signal', 'SIGKILL', '--label', '%s.lab=%s' % (LABEL, lab),
               '--label', '%s.index=%d' % (LABEL, index), *INITS[init](image))
        podman('cp', key + '.pub', cname + ':/root/.ssh/authorized_keys')
        podman('cp', apt_proxy_conf(), cname + ':/etc/apt/apt.conf.d/01pklab-proxy')
        hosts.append({'name': name, 'container': cname, 'ipv4': v4, 'ipv6': v6})
    podman('start', *[h['container'] for h in hosts])
    # The bridge exists (and has the gateway address) only once a container runs.
    guard(True)
    ensure_apt_proxy()
    record = {'lab': lab, 'index': index, 'key': key, 'hosts': hosts, 'init': init,
              'proxy': 'http://%s:%d' % (V4_GW, PROXY_PORT),
              'subnet4': '10.231.%d.0/24' % index, 'subnet6': 'fd42:706b:6c61::%x:0/112' % index,
              'gateway4': V4_GW, 'gateway6': V6_GW}
    os.makedirs(os.path.dirname(lab_file(lab)), exist_ok=True)
    write(lab_file(lab), json.dumps(record, indent=2) + '\n')
    write_inventory(record)
    wait_ssh(record)
    log('lab %s: %d host(s) up: %s' % (lab, count, ', '.join(h['ipv4'] for h in hosts)))
    return record


def wait_ssh(record, timeout=90):
    deadline = time.time() + timeout
    for host in record['hosts']:
        while True:
            res = subprocess.run(['ssh'] + SSH_OPTS + ['-i', record['key'], 'root@' + host['ipv4'], 'true'],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if res.returncode == 0:
                break
            if time.time() > deadline:
                raise SystemExit('pklab: %s (%s) did not answer ssh' % (host['name'], host['ipv4']))
            time.sleep(0.3)


def write_inventory(record):
    lab = record['lab']
    lines = ['# written by lab/pklab.py; removed by `pklab.py down --lab %s`' % lab,
             'all:', '  children:', '    lab_%s:' % lab.replace('-', '_'), '      hosts:']
    for host in record['hosts']:
        lines += ['        %s:' % host['name'],
                  '          ansible_host: %s' % host['ipv4'],
                  '          lab_ipv4: %s' % host['ipv4'],
                  '          lab_ipv6: "%s"' % host['ipv6'],
                  '          lab_container: %s' % host['container']]
    lines += ['      vars:',
              '        ansible_user: root',
              '        ansible_python_interpreter: /usr/bin/python3',
              '        ansible_ssh_private_key_file: %s' % record['key'],
              "        ansible_ssh_common_args: '%s'" % ' '.join(SSH_OPTS[:6]),
              '        lab_name: %s' % lab,
              '        lab_subnet4: %s' % record['subnet4'],
              '        lab_subnet6: "%s"' % record['subnet6'],
              '        lab_controller4: %s' % V4_GW,
              '        lab_controller6: "%s"' % V6_GW, '']
    write(os.path.join(labs_dir(), lab, 'inventory.yml'), '\n'.join(lines))


def down(lab=None):
    remove_containers(lab)
    if lab:
        shutil.rmtree(os.path.join(labs_dir(), lab), ignore_errors=True)
    else:
        shutil.rmtree(labs_dir(), ignore_errors=True)
    # Labs whose containers are gone (killed runs) no longer hold anything.
    alive = set(podman('ps', '-a', '--format', '{{.Names}}', '--filter', 'label=' + LABEL + '.lab').stdout.split())
    for name, record in all_labs().items():
        if not any(h['container'] in alive for h in record['hosts']):
            shutil.rmtree(os.path.join(labs_dir(), name), ignore_errors=True)
    # The network, the guard and the proxy are shared by every lab on this machine, whatever
    # state dir made it: they go only with the last lab container.
    if not alive:
        podman('network', 'rm', '-f', NETWORK, check=False)
        guard(False)
        stop_apt_proxy()


def main(argv=None):
    parser = argparse.ArgumentParser(prog='pklab', description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    sub.add_parser('image', help='build or reuse the base image')
    p_up = sub.add_parser('up', help='create a lab (replacing leftovers of the same name)')
    p_up.add_argument('--lab', default='default')
    p_up.add_argument('-n', '--hosts', type=int, default=2)
    p_up.add_argument('--reuse', action='store_true', help='keep the lab if it is already running with N hosts')
    p_up.add_argument('--init', default='systemd', choices=sorted(INITS),
                      help='PID 1 of the hosts: systemd (default), or sysv: no systemd, sshd started by a shell '
                           '(/sbin/init removed, so Ansible sees a sysvinit host and services run from /etc/init.d)')
    p_down = sub.add_parser('down', help='remove a lab, or everything with --all')
    p_down.add_argument('--lab')
    p_down.add_argument('--all', action='store_true')
    sub.add_parser('list', help='labs and hosts')
    p_inv = sub.add_parser('inventory', help='print the path of a lab inventory')
    p_inv.add_argument('--lab', default='default')
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit('pklab: run as root (rootful podman, iptables guard)')
    with Lock():
        if args.cmd == 'image':
            print(build_image())
        elif args.cmd == 'up':
            record = up(args.lab, args.hosts, reuse=args.reuse, init=args.init)
            print(os.path.join(labs_dir(), record['lab'], 'inventory.yml'))
        elif args.cmd == 'down':
            if not args.all and not args.lab:
                parser.error('down needs --lab NAME or --all')
            down(None if args.all else args.lab)
        elif args.cmd == 'list':
            for name, record in all_labs().items():
                print('%s: %s' % (name, ' '.join('%s=%s' % (h['name'], h['ipv4']) for h in record['hosts'])))
        elif args.cmd == 'inventory':
            print(os.path.join(labs_dir(), args.lab, 'inventory.yml'))


if __name__ == '__main__':
    main()
