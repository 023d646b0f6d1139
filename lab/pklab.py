#!/usr/bin/env python3
"""pklab: real Debian 12 test hosts on one machine (rootful podman, systemd as PID 1).

One tool for molecule, the integration tests, the demo (site.yml) and the benchmarks.

    pklab.py image                   build (or reuse) the base image
    pklab.py up   --lab NAME -n N    create N hosts (a second `up` replaces leftovers)
    pklab.py down --lab NAME | --all remove hosts; the last lab also takes the network,
                                     the forward guard and the apt proxy with it; --all
                                     also the blackhole routes
    pklab.py list                    labs and their hosts
    pklab.py guard                   put the standing guard (blackhole routes) in place
    pklab.py doctor [PACKAGE...]     podman backend/runtime and package versions; fails
                                     unless podman uses the pinned backend

Each lab writes <state>/labs/NAME/inventory.yml and hosts.json.  All labs share one
internal podman network (10.231.0.0/16 + fd42:706b:6c61::/64); lab k gets
10.231.k.0/24 and fd42:706b:6c61::k:0/112.  Nothing on that network is routed anywhere
(see lab/labtool/network.py for the guards).  Hosts reach Debian's mirror only through an
apt-cacher-ng bound to the bridge address.  The parts live in lab/labtool/.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from labtool import doctor, image, labs, network  # noqa: E402
from labtool.state import Lock  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(prog='pklab', description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    sub.add_parser('image', help='build or reuse the base image')
    p_up = sub.add_parser('up', help='create a lab (replacing leftovers of the same name)')
    p_up.add_argument('--lab', default='default')
    p_up.add_argument('-n', '--hosts', type=int, default=2)
    p_up.add_argument('--reuse', action='store_true', help='keep the lab if it is already running with N hosts')
    p_up.add_argument('--init', default='systemd', choices=sorted(labs.INITS),
                      help='PID 1 of the hosts: systemd (default), or sysv: no systemd, sshd started by a shell '
                           '(/sbin/init removed, so Ansible sees a sysvinit host and services run from /etc/init.d)')
    p_down = sub.add_parser('down', help='remove a lab, or everything with --all')
    p_down.add_argument('--lab')
    p_down.add_argument('--all', action='store_true')
    sub.add_parser('list', help='labs and hosts')
    p_inv = sub.add_parser('inventory', help='print the path of a lab inventory')
    p_inv.add_argument('--lab', default='default')
    sub.add_parser('guard', help='put the standing guard (blackhole routes for the lab ranges) in place')
    p_doc = sub.add_parser('doctor', help='print podman backend/runtime and package versions; fail unless pinned')
    p_doc.add_argument('packages', nargs='*')
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit('pklab: run as root (rootful podman, iptables guard)')
    if args.cmd == 'doctor':
        ok, lines = doctor.report(args.packages)
        print('\n'.join(lines))
        return 0 if ok else 1
    with Lock():
        if args.cmd == 'image':
            print(image.build_image())
        elif args.cmd == 'up':
            record = labs.up(args.lab, args.hosts, reuse=args.reuse, init=args.init)
            print(os.path.join(labs.labs_dir(), record['lab'], 'inventory.yml'))
        elif args.cmd == 'down':
            if not args.all and not args.lab:
                parser.error('down needs --lab NAME or --all')
            labs.down(None if args.all else args.lab)
        elif args.cmd == 'list':
            for name, record in labs.all_labs().items():
                print('%s: %s' % (name, ' '.join('%s=%s' % (h['name'], h['ipv4']) for h in record['hosts'])))
        elif args.cmd == 'inventory':
            print(os.path.join(labs.labs_dir(), args.lab, 'inventory.yml'))
        elif args.cmd == 'guard':
            network.blackhole(True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
