# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lookup/rollout_inputs.py: the digest follows every input and shows none of them."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess

from ansible_collections.portknock.knock.plugins.lookup.rollout_inputs import collection_digest, inputs_digest

PLAY = '''
- hosts: localhost
  gather_facts: false
  vars:
    portknock_doors: [{name: ssh, sequence: "{{ secret }}", port: 22}]
    unrelated_var: "{{ 999999 | random }}"
  tasks:
    - ansible.builtin.debug:
        msg: "DIGEST={{ lookup('portknock.knock.rollout_inputs') }}"
'''


def digest_of(tmp_path, *extra):
    play = tmp_path / 'play.yml'
    play.write_text(PLAY)
    proc = subprocess.run(['ansible-playbook', '-i', 'localhost,', '-c', 'local', str(play)] + list(extra),
                          check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          env=dict(os.environ, ANSIBLE_NOCOLOR='1'))
    assert proc.returncode == 0, proc.stdout
    return proc.stdout.split('DIGEST=')[1][:64], proc.stdout


def test_the_digest_follows_the_templated_doors_only(tmp_path):
    one, out = digest_of(tmp_path, '-e', 'secret=7219,9203:udp,8361')
    again, _out = digest_of(tmp_path, '-e', 'secret=7219,9203:udp,8361')   # unrelated_var differs each run
    other, _out = digest_of(tmp_path, '-e', 'secret=7219,9203:udp,8362')
    knob, _out = digest_of(tmp_path, '-e', 'secret=7219,9203:udp,8361', '-e', 'knockd_implementation=python')
    assert len(one) == 64 and one == again
    assert other != one and knob != one
    assert '8361' not in out and '9203' not in out


def test_the_collection_digest_is_its_files_json_or_its_code(tmp_path):
    (tmp_path / 'plugins').mkdir()
    (tmp_path / 'plugins' / 'a.py').write_text('x = 1\n')
    code = collection_digest(str(tmp_path))
    (tmp_path / 'plugins' / 'a.py').write_text('x = 2\n')
    assert collection_digest(str(tmp_path)) != code
    (tmp_path / 'FILES.json').write_text(json.dumps({'files': []}))
    files = collection_digest(str(tmp_path))
    (tmp_path / 'plugins' / 'a.py').write_text('x = 3\n')
    assert collection_digest(str(tmp_path)) == files      # the installed collection's own record


def test_inputs_digest_is_order_independent():
    assert inputs_digest({'a': 1, 'b': [1, 2]}, 'c') == inputs_digest({'b': [1, 2], 'a': 1}, 'c')
    assert inputs_digest({'a': 1}, 'c') != inputs_digest({'a': 1}, 'd')
