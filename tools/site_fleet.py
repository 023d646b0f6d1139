#!/usr/bin/env python3
"""Write the lab fleet inventory for site.yml from a lab's hosts.json.

    site_fleet.py HOSTS_JSON OUT_YML [--probe] [--set HOST:VAR=VALUE ...]

Fleet hosts cycle through the enforcers and alternate IPv4/IPv6 management addresses, so
any number of hosts mixes kernel doors (iptables, nftables), Debian's knockd and the bundled
daemon, over both address families.  With --probe the last lab host is left out of the fleet
and put in group lab_probe: a client with no history, the vantage of the door audit
(playbooks/audit.yml): it knocks from its own address and plays the stranger from a second
one (STRANGER_SUFFIX in its lab block, added to it by tools/site.sh, or by the tests).
"""
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

# (group, management address family) for fleet host k, cycled
LAYOUT = [('knock_iptables', 'ipv4'), ('knock_nftables', 'ipv4'), ('knock_knockd', 'ipv4'),
          ('knock_daemon', 'ipv4'), ('knock_iptables', 'ipv6'), ('knock_knockd', 'ipv6')]


def main(argv):
    src, out = argv[0], argv[1]
    probe = '--probe' in argv
    extra = {}
    for item in argv[2:]:
        if item.startswith('--set='):
            host, assignment = item[len('--set='):].split(':', 1)
            var, value = assignment.split('=', 1)
            extra.setdefault(host, {})[var] = json.loads(value)
    with open(src) as fh:
        lab = json.load(fh)
    hosts = lab['hosts']
    fleet, probe_hosts = (hosts[:-1], hosts[-1:]) if probe else (hosts, [])
    groups = {}
    for k, host in enumerate(fleet):
        group, family = LAYOUT[k % len(LAYOUT)]
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
    with open(out, 'w') as fh:
        json.dump(inventory, fh, indent=2)   # JSON is YAML
        fh.write('\n')


if __name__ == '__main__':
    main(sys.argv[1:])
