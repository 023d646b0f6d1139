# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action for portknock.knock.knock: knock from the controller, or from the delegated host."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.portknock.knock.plugins.module_utils.knock_task import (
    ARGUMENT_SPEC, DEPRECATION_COLLECTION, DEPRECATION_VERSION, KnockTaskError, ip_version_deprecation,
    run_knock_task)

display = Display()


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        if self._task.delegate_to:
            # knock from the delegated host: the module sends the knocks there
            result.update(self._execute_module(module_name='portknock.knock.knock',
                                               module_args=self._task.args, task_vars=task_vars))
            return result
        validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        deprecation = ip_version_deprecation(args)
        if deprecation:
            display.deprecated(deprecation, version=DEPRECATION_VERSION, collection_name=DEPRECATION_COLLECTION)
        try:
            result.update(run_knock_task(args, check_mode=self._task.check_mode))
        except KnockTaskError as exc:
            raise AnsibleActionFail('knock on %s failed: %s' % (args.get('host'), exc))
        return result
