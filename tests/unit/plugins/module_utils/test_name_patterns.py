# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Name patterns match the whole value: a trailing newline (``$`` matches before it) is refused."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.portknock.knock.plugins.module_utils import door, firewall_snapshot, knockd_file
from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon import kernel_door
from ansible_collections.portknock.knock.plugins.module_utils.sequence import KnockValueError

TAILS = ['\n', '\r\n', '\n\n', '\nx']


@pytest.mark.parametrize('tail', TAILS)
def test_door_name(tail):
    assert door.parse_name('ssh') == 'ssh'
    with pytest.raises(KnockValueError):
        door.parse_name('ssh' + tail)


@pytest.mark.parametrize('tail', TAILS)
def test_guard_name(tail):
    assert firewall_snapshot.check_name('recent_knock') == 'recent_knock'
    with pytest.raises(firewall_snapshot.SnapshotError):
        firewall_snapshot.check_name('recent_knock' + tail)


@pytest.mark.parametrize('tail', TAILS)
def test_kernel_door_names(tail):
    assert kernel_door.parse_kernel_door('nft:inet/pk/open4/open6').table == 'pk'
    with pytest.raises(kernel_door.KernelDoorError):
        kernel_door.parse_kernel_door('nft:inet/pk%s/open4' % tail)
    with pytest.raises(kernel_door.KernelDoorError):
        kernel_door.parse_kernel_door('nft:inet/pk/open4%s/open6' % tail)


@pytest.mark.parametrize('tail', TAILS)
def test_file_mode(tail):
    class Module:
        _symbolic_mode_to_octal = staticmethod(AnsibleModule._symbolic_mode_to_octal)

        def fail_json(self, msg, **kwargs):
            raise KnockValueError(msg)
    assert knockd_file._final_mode(Module(), '0600', 0o644) == 0o600
    with pytest.raises(KnockValueError):
        knockd_file._final_mode(Module(), '0600' + tail, 0o644)
