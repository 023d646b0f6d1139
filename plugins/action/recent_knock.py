# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of portknock.knock.recent_knock: the module, optionally under the firewall guard.

With ``rollback_timeout`` > 0 (and not in check mode) the door is applied under
``portknock.knock.firewall_guard`` (see plugin_utils/guarded_apply.py); otherwise the
module simply runs.

The guard is named after the door (``recent_knock-<door>``; plain ``recent_knock`` for the
``doors`` form, which applies all the host's doors under one guard): its records, watchdog unit and
the refusal another rollout gets say which door is being applied.  Two rollouts on one host
are made safe by the guard itself, whatever the names: while one arm is live, any other arm
on that host is refused (every guard snapshots the whole firewall), and confirm presents the
token of its own arm.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleActionFail

from ansible_collections.portknock.knock.plugins.module_utils.door import parse_name
from ansible_collections.portknock.knock.plugins.module_utils.sequence import KnockValueError
from ansible_collections.portknock.knock.plugins.plugin_utils.guarded_apply import GuardedAction, run_guarded

MODULE = 'portknock.knock.recent_knock'
GUARD_PREFIX = 'recent_knock'


def guard_name(door_name):
    """``recent_knock-<door>``; plain ``recent_knock`` when the name is invalid (the module then
    fails with its own error, under the guard, before changing anything)."""
    try:
        return '%s-%s' % (GUARD_PREFIX, parse_name(door_name))
    except KnockValueError:
        return GUARD_PREFIX


class ActionModule(GuardedAction):

    def apply(self, args, task_vars):
        timeout = args.pop('rollback_timeout', 0) or 0
        try:
            timeout = int(timeout)
        except (TypeError, ValueError):
            raise AnsibleActionFail('rollback_timeout %r is not a number of seconds' % (timeout,))
        if timeout < 0:
            raise AnsibleActionFail('rollback_timeout %r must be 0 (no rollback) or more seconds' % (timeout,))
        if timeout and not self._play_context.check_mode:
            name = guard_name(args.get('name')) if args.get('doors') is None else GUARD_PREFIX
            return run_guarded(self, task_vars, MODULE, args, timeout, name)
        return self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
