# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""Options shared by the modules that edit a knockd configuration file."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  path:
    description: Path of the knockd configuration file.
    type: path
    default: /etc/knockd.conf
  backup:
    description: Keep a timestamped copy of the file before changing it.
    type: bool
    default: false
  mode:
    description: Permissions of the file (it may hold secret sequences and commands).
    type: raw
    default: '0600'
  create:
    description: Create the file when it does not exist; fail otherwise.
    type: bool
    default: true
'''
