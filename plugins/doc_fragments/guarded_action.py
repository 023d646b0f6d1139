# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""The ``action`` attribute of the modules paired with an action plugin of the same name that
confirms through a new connection (recent_knock, firewall_guard; plugin_utils/guarded_apply.py).
Listed after ``ansible.builtin.action_common_attributes``; each module adds its own details."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
attributes:
  action:
    description: Indicates this has a corresponding action plugin so some parts of the task run on the controller.
    support: full
'''
