# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""Options and attributes shared by the modules that edit a knockd configuration file (listed
after ``ansible.builtin.action_common_attributes``, which describes the attributes, and before
``ansible.builtin.files``, whose other file options they take: this ``mode`` has a default)."""

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
    description:
      - Permissions of the file, as O(ansible.builtin.file#module:mode) (octal or symbolic); the file may hold
        secret sequences and commands, hence the default.
      - The new content is written to a temporary file that has this mode from the start, then renamed over the file.
      - Owner, group, SELinux context and attributes are the other options of the C(ansible.builtin.files) fragment.
    type: raw
    default: '0600'
  create:
    description: Create the file when it does not exist; fail otherwise.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
'''
