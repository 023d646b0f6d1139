# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-task wall time and per-host task counts, for benchmarks/rollout.py (not shipped).

Enable with ANSIBLE_CALLBACK_PLUGINS=benchmarks/callback_plugins ANSIBLE_CALLBACKS_ENABLED=pk_task_profile;
the summary goes to the file named by PK_TASK_PROFILE (JSON), or to stdout.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = '''
name: pk_task_profile
type: aggregate
short_description: per-task wall time and per-host task counts
description: [benchmark helper]
'''

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'pk_task_profile'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self.tasks = []          # [name, start, end]
        self.per_host = {}       # host -> {'ran': n, 'skipped': n}
        self.start = time.monotonic()

    def _close(self):
        if self.tasks and self.tasks[-1][2] is None:
            self.tasks[-1][2] = time.monotonic()

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        self.tasks.append([task.get_name(), time.monotonic(), None])

    v2_playbook_on_handler_task_start = v2_playbook_on_task_start

    def _count(self, result, key):
        host = result._host.get_name()
        self.per_host.setdefault(host, {'ran': 0, 'skipped': 0})[key] += 1

    def v2_runner_on_ok(self, result):
        self._count(result, 'ran')

    v2_runner_on_failed = v2_runner_on_ok
    v2_runner_on_unreachable = v2_runner_on_ok

    def v2_runner_on_skipped(self, result):
        self._count(result, 'skipped')

    def v2_playbook_on_stats(self, stats):
        self._close()
        total = {}
        for name, start, end in self.tasks:
            total.setdefault(name, [0.0, 0])
            total[name][0] += end - start
            total[name][1] += 1
        out = {'wall': time.monotonic() - self.start,
               'tasks': sorted(([n, round(t, 2), c] for n, (t, c) in total.items()), key=lambda x: -x[1]),
               'task_starts': len(self.tasks), 'per_host': self.per_host}
        path = os.environ.get('PK_TASK_PROFILE')
        if path:
            with open(path, 'w') as fh:
                json.dump(out, fh, indent=1)
        else:
            self._display.display(json.dumps(out, indent=1))
