# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""recent_knock warns about a door a port scan opens (issue 11, item 16).

The module runs for real (``ansible localhost -m``) inside a network namespace of its own
(``unshare -n``), on both backends; the namespace, and whatever the module did in it, goes
away with the process.  Needs root, iptables and nft.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0 or not shutil.which('unshare'), reason='needs root and unshare')]

BIN = os.path.dirname(sys.executable)
PORTS = ('7000', '8000', '9000', '2222', '3333', '4444', '1600')


def recent_knock(tmp_path, args):
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ.get('PATH', ''), ANSIBLE_NOCOLOR='1',
               ANSIBLE_LOCALHOST_WARNING='0', ANSIBLE_HOME=str(tmp_path / '.ansible'))
    command = ['unshare', '-n', 'ansible', 'localhost', '-m', 'portknock.knock.recent_knock',
               '-a', json.dumps(args), '-e', 'ansible_python_interpreter=' + sys.executable]
    proc = subprocess.run(command, env=env, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return proc.stdout


@pytest.mark.parametrize('backend', ['iptables', 'nftables'])
@pytest.mark.parametrize('sequence', [[7000, 8000, 9000], '4444:udp,3333,2222', [1600]])
def test_a_door_a_scan_opens_is_applied_with_a_warning(tmp_path, backend, sequence):
    out = recent_knock(tmp_path, {'name': 'admin', 'sequence': sequence, 'port': 22, 'backend': backend})
    warnings = re.findall(r"\[WARNING\]: (door 'admin' has .*)", out)
    assert len(warnings) == 1, out
    assert not [port for port in PORTS if port in warnings[0]]
    assert 'CHANGED' in out   # applied all the same (in the namespace)


@pytest.mark.parametrize('backend', ['iptables', 'nftables'])
def test_other_doors_and_removals_get_no_warning(tmp_path, backend):
    out = recent_knock(tmp_path, {'name': 'admin', 'sequence': '7313,4187:udp,9421', 'port': 22, 'backend': backend})
    assert "door 'admin'" not in out, out
    out = recent_knock(tmp_path, {'name': 'admin', 'sequence': [7000, 8000], 'port': 22, 'backend': backend,
                                  'state': 'absent'})
    assert "door 'admin'" not in out, out
