#!/usr/bin/env python3
"""Write the lab fleet inventory for site.yml from a lab's hosts.json.

    site_fleet.py HOSTS_JSON OUT_YML [--probe] [--set HOST:VAR=VALUE ...]

Fleet hosts cycle through the enforcers and alternate IPv4/IPv6 management addresses, so
any number of hosts mixes kernel doors (iptables, nftables), Debian's knockd and the bundled
daemon, over both address families.  With --probe the last lab host is left out of the fleet
and put in group lab_probe: a client with no history, used to check the doors from outside.
"""
import json
import sys

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
                    'lab_container': host['container'], 'lab_family': family}
        hostvars.update(extra.get(host['name'], {}))
        groups.setdefault(group, {})[host['name']] = hostvars
    common = {'ansible_user': 'root', 'ansible_python_interpreter': '/usr/bin/python3',
              'ansible_ssh_private_key_file': lab['key'],
              'ansible_ssh_common_args': '-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR'}
    inventory = {'all': {'vars': common, 'children': {
        'portknock_fleet': {'children': dict((g, {'hosts': h}) for g, h in groups.items())}}}}
    if probe_hosts:
        inventory['all']['children']['lab_probe'] = {'hosts': dict(
            (h['name'], {'ansible_host': h['ipv4'], 'lab_ipv4': h['ipv4'], 'lab_ipv6': h['ipv6']}) for h in probe_hosts)}
    with open(out, 'w') as fh:
        json.dump(inventory, fh, indent=2)   # JSON is YAML
        fh.write('\n')


if __name__ == '__main__':
    main(sys.argv[1:])
