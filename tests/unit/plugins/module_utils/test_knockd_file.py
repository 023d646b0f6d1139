# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""edit_knockd_conf in-process with a real AnsibleModule on temporary files."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import grp
import os
import pwd
import stat

import pytest

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.portknock.knock.plugins.module_utils.knockd_file import (
    COMMON_ARGUMENT_SPEC, edit_knockd_conf)

from ..modules.utils import module_result

CONF = """[options]
\tUseSyslog

[openSSH]
\tsequence    = 7313,4187,9421
\tseq_timeout = 5
\tcommand     = /sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
"""


def runner(edit):
    """A module main() whose edit is ``edit`` (conf -> changed keys)."""
    def main():
        module = AnsibleModule(argument_spec=dict(COMMON_ARGUMENT_SPEC), supports_check_mode=True,
                               add_file_common_args=True)
        params = module.params
        edit_knockd_conf(module, params['path'], edit, create=params['create'], backup=params['backup'])
    return main


def set_interface(value):
    return lambda conf: conf.set_options(dict(interface=value))


def write(tmp_path, text=CONF, mode=0o600):
    path = tmp_path / 'knockd.conf'
    path.write_text(text)
    os.chmod(str(path), mode)
    return str(path)


def test_edit_writes_atomically_and_reports_keys(tmp_path):
    path = write(tmp_path)
    result, output, failed = module_result(runner(set_interface('eth1')), dict(path=path))
    assert not failed and result['changed'] and result['changed_keys'] == ['interface']
    with open(path) as handle:
        text = handle.read()
    assert 'interface = eth1' in text and '7313,4187,9421' in text
    assert [name for name in os.listdir(str(tmp_path)) if name.startswith('.knockd.conf.')] == []
    again, dummy, failed = module_result(runner(set_interface('eth1')), dict(path=path))
    assert not failed and again['changed'] is False and again['changed_keys'] == []


def test_check_mode_and_diff_write_nothing_and_hide_every_knock_port(tmp_path):
    path = write(tmp_path)
    result, output, failed = module_result(runner(set_interface('eth1')), dict(path=path), check_mode=True, diff=True)
    assert not failed and result['changed']
    with open(path) as handle:
        assert handle.read() == CONF
    assert 'eth1' in result['diff']['after']
    for port in ('7313', '4187', '9421'):
        assert port not in output


def test_create_new_file_and_create_false(tmp_path):
    path = str(tmp_path / 'new.conf')
    result, dummy, failed = module_result(runner(set_interface('eth0')), dict(path=path, create=False))
    assert failed and 'does not exist and create=false' in result['msg'] and not os.path.exists(path)
    result, dummy, failed = module_result(runner(set_interface('eth0')), dict(path=path))
    assert not failed and result['changed'] and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    result, dummy, failed = module_result(runner(set_interface('eth0')), dict(path=str(tmp_path / 'no' / 'x.conf')))
    assert failed and 'directory of' in result['msg']


def test_mode_only_change_and_backup(tmp_path):
    path = write(tmp_path, mode=0o644)
    result, dummy, failed = module_result(runner(set_interface(None)), dict(path=path))
    assert not failed and result['changed'] and result['changed_keys'] == ['mode']
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    result, dummy, failed = module_result(runner(set_interface('eth2')), dict(path=path, backup=True))
    assert not failed and result['backup_file'] and os.path.exists(result['backup_file'])


def test_bad_mode_fails_before_writing(tmp_path):
    path = write(tmp_path)
    result, dummy, failed = module_result(runner(set_interface('eth1')), dict(path=path, mode='rwx'))
    assert failed and "mode 'rwx' is not an octal or symbolic file mode" in result['msg']
    with open(path) as handle:
        assert handle.read() == CONF


def test_invalid_file_is_left_untouched_and_its_sequence_hidden(tmp_path):
    bad = CONF + '\n[openSSH]\n\tsequence = 5311,6271\n'
    path = write(tmp_path, bad)
    result, output, failed = module_result(runner(set_interface('eth1')), dict(path=path))
    assert failed and 'file left untouched' in result['msg']
    assert '5311' not in output and '7313' not in output
    with open(path) as handle:
        assert handle.read() == bad


def test_a_directory_is_refused(tmp_path):
    result, dummy, failed = module_result(runner(set_interface('eth1')), dict(path=str(tmp_path)))
    assert failed and 'is a directory' in result['msg']


@pytest.mark.parametrize('existing, mode, want', [
    (None, None, 0o600), (None, '0640', 0o640), (None, 0o400, 0o400), (None, 'u=rw,g=r', 0o640),
    (0o600, 'g+r', 0o640), (0o644, 'o-r', 0o640), (0o644, None, 0o600),
])
def test_new_content_has_its_final_mode_from_the_start(tmp_path, monkeypatch, existing, mode, want):
    """Octal and symbolic modes (Ansible's own file options), new file or not: the file that takes the
    new content already has the final mode when it is renamed into place (never 0644 in between)."""
    path = write(tmp_path, mode=existing) if existing is not None else str(tmp_path / 'new.conf')
    seen = []
    real_rename, real_move = os.rename, AnsibleModule.atomic_move

    def rename(src, dst, *args, **kwargs):
        if dst == path:
            seen.append(stat.S_IMODE(os.stat(src).st_mode))
        return real_rename(src, dst, *args, **kwargs)

    def atomic_move(self, src, dest, **kwargs):
        seen.append(stat.S_IMODE(os.stat(src).st_mode))
        return real_move(self, src, dest, **kwargs)

    monkeypatch.setattr(os, 'rename', rename)
    monkeypatch.setattr(AnsibleModule, 'atomic_move', atomic_move)
    args = dict(path=path) if mode is None else dict(path=path, mode=mode)
    result, dummy, failed = module_result(runner(set_interface('eth9')), args)
    assert not failed and result['changed'], result
    assert seen == [want]
    assert stat.S_IMODE(os.stat(path).st_mode) == want


def test_owner_and_group_are_ansible_file_options(tmp_path):
    path = write(tmp_path)
    group = grp.getgrgid(os.getgid()).gr_name
    owner = pwd.getpwuid(os.getuid()).pw_name
    result, dummy, failed = module_result(runner(set_interface('eth1')), dict(path=path, owner=owner, group=group))
    assert not failed and result['changed'], result
    result, dummy, failed = module_result(runner(set_interface('eth1')), dict(path=path, owner=owner, group=group))
    assert not failed and not result['changed'], result
    result, dummy, failed = module_result(runner(set_interface('eth1')),
                                          dict(path=path, group='no-such-group-portknock'))
    assert failed and 'no-such-group-portknock' in result['msg']
