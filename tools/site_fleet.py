#!/usr/bin/env python3
"""Write the lab fleet inventory for site.yml from a lab's hosts.json.

    site_fleet.py HOSTS_JSON OUT_YML [--probe] [--fwknop-hosts N] [--set=HOST:VAR=VALUE ...]

Fleet hosts cycle through the enforcers and alternate IPv4/IPv6 management addresses, so
any number of hosts mixes kernel doors (iptables, nftables), Debian's knockd and the bundled
daemon, over both address families.  With --fwknop-hosts N the last N fleet hosts go to group
knock_fwknop (an SPA door, group_vars/knock_fwknop.yml) instead, with the lab's SPA keys: made
once per lab (spa-keys.json beside HOSTS_JSON, mode 0600), so a second rollout changes nothing.
The inventory holds those keys: it is written with mode 0600 from the start.  With --probe the last lab host is left out of the fleet
and put in group lab_probe: a client with no history, the vantage of the door audit
(playbooks/audit.yml): it knocks from its own address and plays the stranger from a second
one (STRANGER_SUFFIX in its lab block, added to it by tools/site.sh, or by the tests).
"""
import base64
import json
import os
import subprocess
import sys

LAB_PODMAN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'lab', 'lab-podman')

STRANGER_SUFFIX = 200   # the probe's second address: 10.231.<lab>.200, fd42:706b:6c61::<lab>:c8


def stranger_addresses(probe):
    v4 = probe['ipv4'].rsplit('.', 1)[0] + '.%d' % STRANGER_SUFFIX
    v6 = probe['ipv6'].rsplit(':', 1)[0] + ':%x' % STRANGER_SUFFIX
    return v4, v6


def add_stranger(probe):
    """Give the probe its second (stranger) address on the lab network (idempotent)."""
    v4, v6 = stranger_addresses(probe)
    for cmd in (['ip', 'addr', 'replace', v4 + '/16', 'dev', 'eth0'],
                ['ip', '-6', 'addr', 'replace', v6 + '/64', 'dev', 'eth0', 'nodad']):
        subprocess.run([LAB_PODMAN, 'exec', probe['container']] + cmd, check=True)

def write_private(path, data):
    """``data`` (JSON) to ``path``, mode 0600 from the start (it holds keys), replacing it atomically."""
    tmp = '%s.%d.tmp' % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, 'w') as fh:
        json.dump(data, fh, indent=2)   # JSON is YAML
        fh.write('\n')
        fh.flush()
        os.fsync(fh.fileno())
    os.rename(tmp, path)


def lab_spa_keys(path):
    """The lab's SPA keys (fwknop --key-gen sizes: 32 bytes of encryption key, 64 of HMAC key), made once."""
    if os.path.exists(path):
        with open(path) as fh:
            return json.load(fh)
    keys = {'portknock_spa_key': base64.b64encode(os.urandom(32)).decode(),
            'portknock_spa_hmac_key': base64.b64encode(os.urandom(64)).decode()}
    write_private(path, keys)
    return keys


# (group, management address family) for fleet host k, cycled
LAYOUT = [('knock_iptables', 'ipv4'), ('knock_nftables', 'ipv4'), ('knock_knockd', 'ipv4'),
          ('knock_daemon', 'ipv4'), ('knock_iptables', 'ipv6'), ('knock_knockd', 'ipv6')]
FWKNOP_FAMILIES = ['ipv6', 'ipv4']   # the SPA hosts' management family, cycled (IPv6 first: beyond fwknop)


def main(argv):
    src, out = argv[0], argv[1]
    probe = '--probe' in argv
    extra = {}
    fwknop_hosts = 0
    for k, item in enumerate(argv[2:]):
        if item == '--fwknop-hosts':
            fwknop_hosts = int(argv[2 + k + 1])
        elif item.startswith('--set='):
            host, assignment = item[len('--set='):].split(':', 1)
            var, value = assignment.split('=', 1)
            extra.setdefault(host, {})[var] = json.loads(value)
    with open(src) as fh:
        lab = json.load(fh)
    hosts = lab['hosts']
    fleet, probe_hosts = (hosts[:-1], hosts[-1:]) if probe else (hosts, [])
    groups = {}
    spa_from = len(fleet) - fwknop_hosts
    for k, host in enumerate(fleet):
        group, family = LAYOUT[k % len(LAYOUT)]
        if k >= spa_from:
            group, family = 'knock_fwknop', FWKNOP_FAMILIES[(k - spa_from) % len(FWKNOP_FAMILIES)]
        hostvars = {'ansible_host': host[family], 'lab_ipv4': host['ipv4'], 'lab_ipv6': host['ipv6'],
                    'lab_container': host['container'], 'lab_family': family,
                    'portknock_audit_addresses': [host['ipv4'], host['ipv6']]}
        hostvars.update(extra.get(host['name'], {}))
        groups.setdefault(group, {})[host['name']] = hostvars
    common = {'ansible_user': 'root', 'ansible_python_interpreter': '/usr/bin/python3',
              'ansible_ssh_private_key_file': lab['key'],
              'ansible_ssh_common_args': '-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR'}
    inventory = {'all': {'vars': common, 'children': {
        'portknock_fleet': {'children': dict((g, {'hosts': h}) for g, h in groups.items())}}}}
    if fwknop_hosts:
        keys = lab_spa_keys(os.path.join(os.path.dirname(os.path.abspath(src)), 'spa-keys.json'))
        inventory['all']['children']['portknock_fleet']['children']['knock_fwknop']['vars'] = keys
    if probe_hosts:
        probe = probe_hosts[0]
        inventory['all']['children']['lab_probe'] = {'hosts': dict(
            (h['name'], {'ansible_host': h['ipv4'], 'lab_ipv4': h['ipv4'], 'lab_ipv6': h['ipv6'],
                         'lab_container': h['container']}) for h in probe_hosts)}
        add_stranger(probe)
        v4, v6 = stranger_addresses(probe)
        inventory['all']['children']['portknock_fleet']['vars'] = {
            'audit_vantage': probe['name'],
            'audit_knocker_sources': {'ipv4': probe['ipv4'], 'ipv6': probe['ipv6']},
            'audit_stranger_sources': {'ipv4': v4, 'ipv6': v6}}
    write_private(out, inventory)


if __name__ == '__main__':
    main(sys.argv[1:])
