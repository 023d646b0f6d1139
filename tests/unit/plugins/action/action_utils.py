# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared by the action plugin tests (on sys.path through tests/conftest.py)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from unittest import mock


def make_action(action_module, args, check_mode=False, result=None):
    """An ``action_module.ActionModule`` for a task with ``args``; its modules are not run but
    recorded in ``plugin.calls`` as (module_name, module_args); ``result(module_args)`` is what
    each returns."""
    task = mock.MagicMock()
    task.args = dict(args)
    task.check_mode = check_mode
    task.async_val = 0
    task.diff = False
    connection = mock.MagicMock()
    connection._shell.tmpdir = None
    play_context = mock.MagicMock()
    play_context.check_mode = check_mode
    plugin = action_module.ActionModule(task, connection, play_context, loader=None, templar=None,
                                        shared_loader_obj=None)
    plugin.calls = []

    def execute(module_name=None, module_args=None, task_vars=None):
        plugin.calls.append((module_name, dict(module_args)))
        return result(module_args)
    plugin._execute_module = execute
    return plugin
