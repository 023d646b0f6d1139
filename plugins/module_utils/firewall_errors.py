# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""The error every firewall backend raises (iptables_backend, nftables_backend, host_firewall)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class BackendError(Exception):
    """A command failed; its message says what was (or was not) changed."""
