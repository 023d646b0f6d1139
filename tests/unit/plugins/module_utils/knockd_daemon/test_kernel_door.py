# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kernel doors: spec parsing, the nft script sent (faked nft), the xt_recent writes."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import subprocess

import pytest

from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon import kernel_door as kd


class FakeRun:
    def __init__(self, returncode=0, stderr=b''):
        self.calls = []
        self.returncode = returncode
        self.stderr = stderr

    def __call__(self, argv, **kwargs):
        self.calls.append((argv, kwargs['input'].decode()))
        return subprocess.CompletedProcess(argv, self.returncode, b'', self.stderr)


def test_nft_spec_and_open_close(monkeypatch):
    run = FakeRun()
    monkeypatch.setattr(kd.subprocess, 'run', run)
    door = kd.parse_kernel_door('nft:inet/portknock/allow4/allow6')
    door.open('10.231.0.7', 30.7)
    door.open('fd42:706b:6c61::7', 0)
    door.close('10.231.0.7')
    assert [argv for argv, script in run.calls] == [['nft', '-f', '-']] * 3
    assert run.calls[0][1] == ('add element inet portknock allow4 { 10.231.0.7 timeout 30s }\n'
                               'delete element inet portknock allow4 { 10.231.0.7 }\n'
                               'add element inet portknock allow4 { 10.231.0.7 timeout 30s }\n')
    assert 'allow6 { fd42:706b:6c61::7 timeout 1s }' in run.calls[1][1]
    assert run.calls[2][1] == ('add element inet portknock allow4 { 10.231.0.7 timeout 1s }\n'
                               'delete element inet portknock allow4 { 10.231.0.7 }\n')


def test_nft_without_ipv6_set_and_nft_failure(monkeypatch):
    run = FakeRun(returncode=1, stderr=b'Error: No such file or directory\n')
    monkeypatch.setattr(kd.subprocess, 'run', run)
    door = kd.parse_kernel_door(' nft:ip/t/s4 ')
    with pytest.raises(OSError, match='has no set for IPv6'):
        door.open('fd42:706b:6c61::7', 5)
    assert run.calls == []
    with pytest.raises(OSError, match=r'nft failed \(1\): Error: No such file'):
        door.open('10.231.0.7', 5)
    with pytest.raises(ValueError):
        door.open('not-an-address', 5)


def test_recent_list_door(tmp_path):
    door = kd.parse_kernel_door('recent:pk_ssh')
    door.directory = str(tmp_path)
    door.open('10.231.0.9', 30)
    assert (tmp_path / 'pk_ssh').read_text() == '+10.231.0.9\n'
    door.close('10.231.0.9')
    assert (tmp_path / 'pk_ssh').read_text() == '-10.231.0.9\n'
    door.directory = str(tmp_path / 'missing')
    door.close('10.231.0.9')            # gone already: no error
    with pytest.raises(OSError):
        door.open('10.231.0.9', 30)


@pytest.mark.parametrize('spec, written', [
    # IPv6 to a list of its own (the kernel keeps the --mask of the rule that made a list)
    ('recent:pk_ssh/pk6_ssh', {'pk_ssh': '+10.231.0.9\n', 'pk6_ssh': '-fd42:706b:6c61::9\n'}),
    # one list for both families (no ip6tables rule checks it)
    ('recent:pk_ssh', {'pk_ssh': '-fd42:706b:6c61::9\n'}),
])
def test_recent_list_door_and_ipv6(tmp_path, spec, written):
    door = kd.parse_kernel_door(spec)
    door.directory = str(tmp_path)
    door.open('10.231.0.9', 30)
    door.open('fd42:706b:6c61::9', 30)
    door.close('fd42:706b:6c61::9')
    assert dict((f.name, f.read_text()) for f in tmp_path.iterdir()) == written


@pytest.mark.parametrize('spec, message', [
    ('recent:a/b/c', 'expected recent:NAME'),
    ('recent:a/b c', "recent list 'b c' is not a valid name"),
    ('nft:inet/t', 'expected nft:FAMILY/TABLE/SET4'),
    ('nft:inet/a/b/c/d', 'expected nft:FAMILY/TABLE/SET4'),
    ('nft:ipx/t/s', "nft family 'ipx' is not one of"),
    ('nft:inet//s', 'table and IPv4 set are required'),
    ('nft:inet/t;drop/s', "name 't;drop' is not a valid name"),
    ('recent:', "recent list '' is not a valid name"),
    ('recent:a b', "recent list 'a b' is not a valid name"),
    ('iptables:x', 'expected nft:FAMILY/TABLE/SET4'),
])
def test_bad_specs_name_the_value(spec, message):
    with pytest.raises(kd.KernelDoorError, match=message):
        kd.parse_kernel_door(spec)


def test_option_with_and_without_stanza():
    stanza, door = kd.parse_kernel_door_option('ssh = recent:pk_ssh')
    assert stanza == 'ssh' and isinstance(door, kd.RecentListDoor) and door.name == 'pk_ssh'
    stanza, door = kd.parse_kernel_door_option('nft:inet/t/s4')
    assert stanza is None and isinstance(door, kd.NftSetDoor)
