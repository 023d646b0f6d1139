# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""No knock port of any stanza leaves knockd_stanza / knockd_options, in any mode.

The modules run in this process (tests/unit/plugins/modules/utils.py) with the real
exit_json/fail_json, so what is checked is the JSON a host sends back: what ``-vvv`` prints.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import itertools
import os
import re

import pytest

from ansible_collections.portknock.knock.plugins.modules import knockd_options, knockd_stanza

from utils import knockd_conf, module_result

CMD = '/usr/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT'

# every port of every stanza: string form with and without :proto, spaces, a repeated step,
# upper-case protocol; none of them ascending
CONF = """\
[options]
\tUseSyslog

[alpha]
\tsequence    = 17313,24187:udp,19421
\tseq_timeout = 5
\tcommand     = /sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT

[beta]
\tSequence = 28111:TCP, 23777 ,28111:udp
\tcommand  = /bin/true

[gamma]
\tsequence = 31999
\tcommand  = /bin/true
"""
FILE_PORTS = ['17313', '24187', '19421', '28111', '23777', '31999']

# (id, module, arguments, ports they bring)
CASES = [
    # the string form is rewritten (12345 -> 12345:tcp): the rewritten text must be masked too
    ('stanza-new-string', knockd_stanza, dict(name='delta', sequence='26543,21234:udp', command=CMD),
     ['26543', '21234']),
    ('stanza-new-list', knockd_stanza, dict(name='delta', sequence=[26543, '21234:UDP', {'port': 29876}],
                                            command=CMD), ['26543', '21234', '29876']),
    ('stanza-rewrite-existing', knockd_stanza, dict(name='alpha', sequence='27654:tcp,22345:udp',
                                                    command=CMD), ['27654', '22345']),
    ('stanza-same-as-existing', knockd_stanza, dict(name='gamma', sequence=[31999], command='/bin/true'), []),
    ('stanza-absent', knockd_stanza, dict(name='beta', state='absent'), []),
    ('stanza-absent-missing', knockd_stanza, dict(name='nosuch', state='absent'), []),
    ('options', knockd_options, dict(interface='lo', log_file='/var/log/knockd.log'), []),
    ('options-unchanged', knockd_options, dict(use_syslog=True), []),
    ('stanza-mode-only', knockd_stanza, dict(name='gamma', sequence='31999', command='/bin/true', mode='0640'),
     []),
]


def leaks(text, ports):
    return sorted(port for port in ports if re.search(r'(?<![0-9])%s(?![0-9])' % port, text))


@pytest.mark.parametrize('diff, check', list(itertools.product([False, True], [False, True])),
                         ids=str)
@pytest.mark.parametrize('case', CASES, ids=[case[0] for case in CASES])
def test_no_sequence_port_in_result(tmp_path, case, diff, check):
    _name, module, args, given = case
    path = knockd_conf(tmp_path, CONF)
    args = dict(args, path=path)
    outputs = []
    for _run in (1, 2):   # first run (changed) and second run (ok)
        result, output, failed = module_result(module.main, args, check_mode=check, diff=diff, verbosity=4)
        assert not failed, result
        outputs.append(output)
        assert ('diff' in result) == diff, result
        if diff:
            assert result['diff']['before_header'] == path
    with open(path) as handle:
        final = handle.read()
    for port in given:   # the module really wrote (or would write) them
        assert check or port in final
    for output in outputs:
        assert leaks(output, FILE_PORTS + given) == []


def test_diff_still_shows_the_change(tmp_path):
    """Masking keeps the diff useful: the changed stanza and its other directives show."""
    path = knockd_conf(tmp_path, CONF, mode=None)
    result, output, failed = module_result(
        knockd_stanza.main, dict(path=path, name='alpha', sequence='27654,22345:udp', seq_timeout=9, command=CMD),
        diff=True)
    assert not failed and result['changed'] is True
    assert 'seq_timeout = 9' in result['diff']['after'] and '[beta]' in result['diff']['after']
    assert leaks(output, FILE_PORTS + ['27654', '22345']) == []


@pytest.mark.parametrize('text', [
    '[bad]\n\tsequence = 17313,99999,24187\n\tcommand = /bin/true\n',      # invalid port among valid ones
    '[bad]\n\tsequence = 17313,24187:icmp\n',                              # bad protocol
    '[bad]\n\tsequence = 17313 24187;19421\n',                             # a bad separator
    '[a]\n\tsequence = 17313\n[a]\n\tsequence = 24187\n',                   # duplicate section
    '[a]\n\tsequence = 17313,24187\n\tfrobnicate = 1\n',                    # unknown directive
])
@pytest.mark.parametrize('module, args', [
    (knockd_stanza, dict(name='x', sequence='26543', command='/bin/true')),
    (knockd_stanza, dict(name='x', state='absent')),
    (knockd_options, dict(interface='lo')),
], ids=['stanza', 'stanza-absent', 'options'])
def test_invalid_file_error_hides_the_valid_ports(tmp_path, text, module, args):
    path = knockd_conf(tmp_path, text, mode=None)
    result, output, failed = module_result(module.main, dict(args, path=path), diff=True, verbosity=4)
    assert failed and 'file left untouched' in result['msg']
    assert leaks(output, ['17313', '24187', '19421', '26543']) == []
    with open(path) as handle:
        assert handle.read() == text


def test_role_hides_every_knockd_conf_task():
    """The knockd role's tasks that edit knockd.conf are all no_log (their results carry the file)."""
    import yaml
    path = os.path.join(os.path.dirname(knockd_stanza.__file__), '..', '..', 'roles', 'knockd', 'tasks', 'config.yml')
    with open(path) as handle:
        tasks = yaml.safe_load(handle)
    editing = [task for task in tasks
               if any(key in task for key in ('portknock.knock.knockd_stanza', 'portknock.knock.knockd_options'))]
    assert len(editing) == 2   # [options], then every stanza in one call
    assert [task['name'] for task in editing if task.get('no_log') is not True] == []
