# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""knockd_options in-process on temporary knockd.conf files."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.portknock.knock.plugins.modules.knockd_options import main

from .utils import module_result

CONF = """# site knockd
[options]
\tUseSyslog

[openSSH]
\tsequence    = 7313,4187,9421
\tseq_timeout = 5
\tcommand     = /sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
"""


def conf(tmp_path, text=CONF):
    path = tmp_path / 'knockd.conf'
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


def read(path):
    with open(path) as handle:
        return handle.read()


def test_sets_options_keeps_comments_and_stanzas(tmp_path):
    path = conf(tmp_path)
    result, dummy, failed = module_result(main, dict(path=path, interface='eth1', log_file='/var/log/knockd.log'))
    assert not failed and result['changed'] and sorted(result['changed_keys']) == ['interface', 'log_file']
    text = read(path)
    assert text.startswith('# site knockd\n') and '[openSSH]' in text and '7313,4187,9421' in text
    assert 'eth1' in text and '/var/log/knockd.log' in text
    again, dummy, failed = module_result(main, dict(path=path, interface='eth1', log_file='/var/log/knockd.log'))
    assert not failed and again['changed'] is False


def test_empty_string_removes_and_unset_options_are_left_alone(tmp_path):
    path = conf(tmp_path)
    module_result(main, dict(path=path, interface='eth1'))
    result, dummy, failed = module_result(main, dict(path=path, interface=''))
    assert not failed and result['changed'] and result['changed_keys'] == ['interface']
    assert 'eth1' not in read(path) and 'UseSyslog' in read(path)
    result, dummy, failed = module_result(main, dict(path=path, use_syslog=False))
    assert not failed and result['changed'] and 'UseSyslog' not in read(path)


def test_check_mode_diff_hides_the_sequence(tmp_path):
    path = conf(tmp_path)
    result, output, failed = module_result(main, dict(path=path, pid_file='/run/knockd.pid'), check_mode=True, diff=True)
    assert not failed and result['changed'] and read(path) == CONF
    assert '/run/knockd.pid' in result['diff']['after']
    assert '7313' not in output and '4187' not in output and '9421' not in output


def test_a_bad_value_fails_naming_it(tmp_path):
    path = conf(tmp_path)
    result, output, failed = module_result(main, dict(path=path, interface='eth1\n[evil]'))
    assert failed and read(path) == CONF
    assert '7313' not in output
