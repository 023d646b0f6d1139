# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of portknock.knock.firewall_guard: the module, or the end of the guard's sequence.

With ``state=confirmed`` and ``reconnect=true`` (not in check mode) it does what the
``recent_knock`` action plugin does after its change, with the same code and margins
(plugin_utils/guarded_apply.py): optionally start the countdown (arm again with the token for
``timeout`` seconds), reset the connection, confirm through a new connection (with
``portknock.knock.ssh`` a new knock), retrying until shortly before the watchdog fires.  A
host the controller cannot get back into fails (never "unreachable": ``max_fail_percentage``
counts it) and restores itself.  Everything else runs the module as it is.  Modelled on
community.general's iptables_state (action + module of one name).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.portknock.knock.plugins.plugin_utils.guarded_apply import (
    GUARD_MODULE, GuardedAction, reconnect_and_confirm)


def _seconds(args, key):
    value = args.get(key)
    if value is None:
        return None
    try:
        value = int(value)
    except (TypeError, ValueError):
        raise AnsibleActionFail('%s %r is not a number of seconds' % (key, value))
    if value < 1:
        raise AnsibleActionFail('%s %r must be 1 or more seconds' % (key, value))
    return value


class ActionModule(GuardedAction):

    def apply(self, args, task_vars):
        try:
            reconnect = boolean(args.pop('reconnect', False), strict=True)
        except TypeError as exc:
            raise AnsibleActionFail('reconnect: %s' % exc)
        within = _seconds(args, 'confirm_within')
        args.pop('confirm_within', None)    # the action's own options: the module ignores them
        if reconnect and args.get('state') == 'confirmed' and not self._play_context.check_mode:
            if 'timeout' not in args and within is None:
                raise AnsibleActionFail('reconnect needs timeout (start the countdown first) or confirm_within '
                                        '(the arm\'s confirm_within) to know how long to try')
            return reconnect_and_confirm(
                self, task_vars, args.get('name', 'default'), token=args.get('token'),
                countdown=_seconds(args, 'timeout'), within=within,
                paths=args.get('paths') or (), services=args.get('services') or ())
        return self._execute_module(module_name=GUARD_MODULE, module_args=args, task_vars=task_vars)
