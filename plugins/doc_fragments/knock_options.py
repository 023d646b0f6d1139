# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""Options of an explicit knock, shared by the knock module/action and the knock lookup."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  sequence:
    description:
      - The knock sequence, a list of C(port) or C(port:proto) steps (C(tcp) or C(udp)), or the
        knockd string form C(7311,9127:udp,8243). It is never logged or returned.
    type: raw
    required: true
  delay:
    description: Milliseconds to wait between two knocks.
    type: int
    default: 50
  ip_version:
    description:
      - Address family to resolve the host in (the names M(portknock.knock.recent_knock) uses).
        V(both) takes the first address of either family, as ssh does.
      - V(any) is a deprecated alias of V(both) (same meaning, a deprecation warning); it will be
        removed in 1.0.0.
    type: str
    choices: [ipv4, ipv6, both, any]
    default: both
  source:
    description: Local address to send the knocks from.
    type: str
'''
