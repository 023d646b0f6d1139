# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark of portknock.knock.recent_knock (prints numbers; not a test).

For each backend (iptables-nft, iptables-legacy via python-iptables, nftables), in a fresh
pair of network namespaces (10.99.2.0/24): wall time of one ansible-playbook run converging
N doors (first run, then the idempotent run), and the time from the last knock to an
accepted TCP connection (median of a few tries).  Needs root.

  python3 benchmarks/recent_knock.py [N ...]   (from the repo root, as root; default 1 10 50)

The lab (namespaces, addresses) is the one of tests/integration/test_recent_knock_netns.py.
"""

from __future__ import absolute_import, division, print_function

import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tests', 'integration'))

import test_recent_knock_netns as lab_mod  # noqa: E402  (the same lab as the integration test)

PLAY = '''
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: /usr/bin/python3
  tasks:
    - portknock.knock.recent_knock:
        name: "bench{{ item }}"
        sequence: ["{{ 20000 + item * 3 }}", "{{ 20001 + item * 3 }}:udp", "{{ 20002 + item * 3 }}"]
        port: "{{ 30000 + item }}"
        backend: %s
      loop: "{{ range(0, %d) | list }}"
'''

LATENCY = '''
import json, socket, time
from ansible_collections.portknock.knock.plugins.module_utils.knock_sender import send_knocks
out = []
for _ in range(5):
    send_knocks(%r, [20000, '20001:udp'], source=%r)
    t0 = time.monotonic()
    send_knocks(%r, [20002], source=%r)
    while True:
        s = socket.socket(); s.settimeout(0.5); s.bind((%r, 0))
        try:
            s.connect((%r, 22)); break
        except OSError:
            pass
        finally:
            s.close()
    out.append(time.monotonic() - t0)
    time.sleep(0.2)
print(json.dumps(sorted(out)[len(out) // 2]))
'''


def playbook(lab, count, backend):
    path = os.path.join(lab.tmp, 'bench-%d.yml' % count)
    with open(path, 'w') as handle:
        handle.write(PLAY % (backend, count))
    env = dict(os.environ, PATH=lab.path, ANSIBLE_COLLECTIONS_PATH=lab_mod.COLLECTIONS,
               ANSIBLE_LOCALHOST_WARNING='0', ANSIBLE_INVENTORY_UNPARSED_WARNING='0')
    start = time.monotonic()
    subprocess.run(['ip', 'netns', 'exec', lab.server, os.path.join(lab_mod.VENV_BIN, 'ansible-playbook'),
                    '-i', 'localhost,', path], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def main(counts):
    for name, backend in (('iptables-nft', 'iptables'), ('legacy', 'iptables'), ('nftables', 'nftables')):
        lab = lab_mod.Lab(name)
        try:
            lab.start()
            for count in counts:
                first = playbook(lab, count, backend)
                again = playbook(lab, count, backend)
                print('%-13s %3d doors: first run %6.2f s, idempotent run %6.2f s' % (name, count, first, again))
            # the door bench0 protects 30000; re-point door 0 at the listener's port 22
            lab.module(dict(name='bench0', sequence=[20000, '20001:udp', 20002], port=22, backend=backend))
            env = dict(os.environ, PYTHONPATH=lab_mod.COLLECTIONS)
            code = LATENCY % (lab_mod.SERVER4, lab_mod.CLIENT4, lab_mod.SERVER4, lab_mod.CLIENT4,
                              lab_mod.CLIENT4, lab_mod.SERVER4)
            out = subprocess.run(['ip', 'netns', 'exec', lab.client, sys.executable, '-c', code], env=env,
                                 check=True, stdout=subprocess.PIPE, universal_newlines=True).stdout
            print('%-13s last knock -> accepted connection: %.3f ms (median of 5)' % (name, json.loads(out) * 1000))
        finally:
            lab.close()


if __name__ == '__main__':
    main([int(arg) for arg in sys.argv[1:]] or [1, 10, 50])
