"""Labs of hosts: create (`up`), remove (`down`), their records and Ansible inventories."""

import json
import os
import shutil
import subprocess
import time

from . import network
from .image import build_image
from .network import LABEL, NETWORK, V4_GW, V6_GW
from .podman import log, podman, require_pinned_backend, run
from .proxy import PROXY_PORT, apt_proxy_conf, ensure_apt_proxy, stop_apt_proxy
from .state import STATE, write

SSH_OPTS = ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
            '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=5', '-o', 'BatchMode=yes']

# How a host starts (podman create arguments after the options, ending with the image and its command).
SYSV_BOOT = ('rm -f /sbin/init; rm -rf /run/systemd; mkdir -p /run/sshd; ssh-keygen -A >/dev/null; '
             '/usr/sbin/sshd; while :; do sleep 3600 & wait $!; done')
INITS = {
    'systemd': lambda image: ['--systemd', 'always', image],
    'sysv': lambda image: ['--systemd', 'false', image, '/bin/sh', '-c', SYSV_BOOT],
}


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


def free_index(used):
    return min(i for i in range(2, 250) if i not in used)


def host_addresses(index, i):
    return '10.231.%d.%d' % (index, 10 + i), 'fd42:706b:6c61::%x:%x' % (index, 10 + i)


def guarded_network(probes):
    """The bridge, once every probe address (IPv4 and IPv6) is known to route through it.
    Sends nothing before that; the standing blackhole routes are in place first."""
    network.blackhole(True)
    brd = network.bridge()
    network.check_routes(brd, probes)
    network.forward_guard(True, brd)
    ensure_apt_proxy()
    return brd


def up(lab, count, reuse=False, init='systemd'):
    if not lab.replace('-', '').isalnum() or len(lab) > 30:
        raise SystemExit('pklab: lab name %r: letters, digits and - only' % lab)
    if not 1 <= count <= 60:
        raise SystemExit('pklab: between 1 and 60 hosts per lab')
    if init not in INITS:
        raise SystemExit('pklab: --init %s: one of %s' % (init, ', '.join(sorted(INITS))))
    require_pinned_backend()
    network.blackhole(True)
    old = all_labs().get(lab)
    if reuse and old and len(old['hosts']) == count and running(old) and old.get('init', 'systemd') == init:
        # The hosts keep what was deployed on them (their ssh may now need a knock).
        guarded_network([old['hosts'][0]['ipv4'], old['hosts'][0]['ipv6']])
        log('lab %s: reusing %d running host(s)' % (lab, count))
        return old
    image = build_image()
    network.ensure_network()
    key = ssh_key()
    remove_containers(lab)   # leftovers of a crashed run
    others = dict((k, v) for k, v in all_labs().items() if k != lab)
    index = free_index(set(v['index'] for v in others.values()) | indexes_in_use())
    hosts = []
    for i in range(1, count + 1):
        name = '%s-%d' % (lab, i)
        v4, v6 = host_addresses(index, i)
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
    try:
        guarded_network([hosts[0]['ipv4'], hosts[0]['ipv6']])
    except SystemExit:
        remove_containers(lab)
        raise
    record = {'lab': lab, 'index': index, 'key': key, 'hosts': hosts, 'init': init,
              'proxy': 'http://%s:%d' % (V4_GW, PROXY_PORT),
              'subnet4': '10.231.%d.0/24' % index, 'subnet6': 'fd42:706b:6c61::%x:0/112' % index,
              'gateway4': V4_GW, 'gateway6': V6_GW}
    os.makedirs(os.path.dirname(lab_file(lab)), exist_ok=True)
    write(lab_file(lab), json.dumps(record, indent=2) + '\n')
    write(os.path.join(labs_dir(), lab, 'inventory.yml'), inventory_text(record))
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


def inventory_text(record):
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
    return '\n'.join(lines)


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
    # The network, the guards and the proxy are shared by every lab on this machine, whatever
    # state dir made it: they go only with the last lab container (--all removes the blackhole
    # routes too; a single lab's down keeps them standing).
    if not alive:
        podman('network', 'rm', '-f', NETWORK, check=False)
        network.forward_guard(False)
        stop_apt_proxy()
        if lab is None:
            network.blackhole(False)
