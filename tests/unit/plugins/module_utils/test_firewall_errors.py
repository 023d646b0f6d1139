# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""BackendError has one home, and every firewall backend raises that one class."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.portknock.knock.plugins.module_utils import firewall_errors
from ansible_collections.portknock.knock.plugins.module_utils import host_firewall, iptables_backend, nftables_backend


def test_backend_error_is_an_exception_with_its_message():
    error = firewall_errors.BackendError('nft -f rejected the door ssh')
    assert isinstance(error, Exception) and str(error) == 'nft -f rejected the door ssh'


def test_every_backend_raises_the_one_class():
    for module in (iptables_backend, nftables_backend, host_firewall):
        assert module.BackendError is firewall_errors.BackendError, module.__name__
