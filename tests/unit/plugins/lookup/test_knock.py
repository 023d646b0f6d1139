# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The knock lookup loaded by ansible's plugin loader (its documented options), with a fake sender."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.portknock.knock.plugins.module_utils import knock_task

# The plugin loader needs a clean interpreter (the collection finder must be installed before
# ansible_collections is imported): the lookup runs in a child Python that prints JSON.
SCRIPT = r"""
import json, sys
from ansible.plugins.loader import init_plugin_loader, lookup_loader
init_plugin_loader([sys.argv[1]])
from ansible.parsing.dataloader import DataLoader
from ansible_collections.portknock.knock.plugins.module_utils import knock_task
from ansible_collections.portknock.knock.plugins.lookup import knock as knock_lookup
sent, warned = [], []
knock_task.knock = lambda host, seq, **kw: sent.append([host, seq, kw]) or '10.231.0.%d' % (len(sent) + 6)
knock_lookup.display.deprecated = lambda msg, **kw: warned.append([msg, kw])
lookup = lookup_loader.get('portknock.knock.knock', loader=DataLoader(), templar=None)
case = json.loads(sys.argv[2])
try:
    addresses = lookup.run(case['terms'], variables={}, **case['kwargs'])
    error = None
except Exception as exc:
    addresses, error = None, '%s: %s' % (type(exc).__name__, exc)
print(json.dumps(dict(addresses=addresses, sent=sent, warned=warned, error=error)))
"""


def run_lookup(terms, **kwargs):
    root = os.path.abspath(knock_task.__file__)
    for dummy in range(6):
        root = os.path.dirname(root)
    proc = subprocess.run([sys.executable, '-c', SCRIPT, root, json.dumps(dict(terms=terms, kwargs=kwargs))],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stdout + proc.stderr


def test_one_address_per_host_with_the_documented_defaults():
    out, text = run_lookup(['web1', 'db1'], sequence=[7313, '4187:udp', 9421])
    assert out['error'] is None and out['addresses'] == ['10.231.0.7', '10.231.0.8']
    assert out['sent'] == [[host, '7313:tcp,4187:udp,9421:tcp', dict(delay_ms=50, family='both', source=None)]
                           for host in ('web1', 'db1')]
    assert out['warned'] == []


def test_options_are_passed():
    out, dummy = run_lookup(['web1'], sequence='7313,4187', delay=0, ip_version='ipv6', source='fd42:706b:6c61::2')
    assert out['sent'][0][2] == dict(delay_ms=0, family='ipv6', source='fd42:706b:6c61::2')


def test_any_is_both_with_one_deprecation():
    out, dummy = run_lookup(['web1', 'db1'], sequence='7313,4187', ip_version='any')
    assert [call[2]['family'] for call in out['sent']] == ['both', 'both']
    assert out['warned'] == [['ip_version=any is deprecated, use ip_version=both (same meaning)',
                              dict(version='1.0.0', collection_name='portknock.knock')]]


@pytest.mark.parametrize('kwargs, message', [
    (dict(sequence='9421,0,7313'), "knock on web1 failed: sequence is invalid: knock port '0'"),
    (dict(sequence='9421,7313', ip_version='inet'), 'inet'),
])
def test_errors_never_show_the_sequence(kwargs, message):
    out, text = run_lookup(['web1'], **kwargs)
    assert out['addresses'] is None and message in out['error'] and out['sent'] == []
    assert '9421' not in text and '7313' not in text
