# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""Run a module under the firewall guard, from an action plugin (controller side).

arm ``portknock.knock.firewall_guard`` -> run the module -> reset the connection (so the
next command needs a NEW connection: with ``portknock.knock.ssh`` a new knock) -> confirm
through it, retrying until shortly before the watchdog fires.  If the controller cannot
get back in, the task fails and the host restores its previous firewall by itself.
Modelled on community.general's iptables_state action plugin.  The end of that sequence
(reset, confirm through a new connection, the margins) is ``reconnect_and_confirm`` for an arm
made by an earlier task: the firewall_guard action plugin with ``reconnect`` (role guard's
``tasks_from: confirm``, site.yml, the recent_knock role's baseline) runs this same code.

Every confirm and restore presents the token the arm returned, so a rollout only ever
confirms its own arm (a second rollout's arm on the same host is refused by the module).

* module unchanged (failed or not): nothing changed, confirm over the same connection;
* module changed: confirm through a new connection, as above;
* module FAILED AND CHANGED (a change that went only part of the way: one address family or
  one backend committed, or the rules read back differently): the previous firewall is
  restored at once over the existing connection (the state the controller reached the host
  through), and the failure says what was changed and what was restored.  If the host cannot
  be reached for that, its watchdog restores it when the guard times out.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.portknock.knock.plugins.module_utils.firewall_snapshot import AFTER_DEADLINE, CONFIRM_MARGIN

display = Display()

GUARD_MODULE = 'portknock.knock.firewall_guard'
MARGIN = CONFIRM_MARGIN     # the guard's one set of margins (firewall_snapshot.py), also the role guard's


class GuardedAction(ActionBase):
    """The run() of the action plugins recent_knock and firewall_guard: check mode supported,
    no async, skipped tasks returned as they are, the remote tmp dir removed afterwards (also on
    failure, quietly when the host is out of reach).  A subclass's ``apply(args, task_vars)``
    gets a copy of the task's args and returns the result to merge."""

    def apply(self, args, task_vars):
        raise NotImplementedError

    def run(self, tmp=None, task_vars=None):
        self._supports_check_mode = True
        self._supports_async = False
        result = super(GuardedAction, self).run(tmp, task_vars)
        del tmp
        if result.get('skipped'):
            return result
        try:
            result.update(self.apply(dict(self._task.args), task_vars))
        finally:
            try:
                self._remove_tmp_path(self._connection._shell.tmpdir)
            except AnsibleConnectionFailure:
                pass    # the host is out of reach (the failure message says why)
        return result


def _guard(action, task_vars, **args):
    return action._execute_module(module_name=GUARD_MODULE, module_args=args, task_vars=task_vars)


def _reset(action):
    try:
        action._connection.reset()
        display.vv('firewall guard: connection reset, the next command opens a new connection')
    except AttributeError:
        display.warning('the connection plugin cannot reset its connection: the confirmation may reuse it')


def _try_guard(action, task_vars, **args):
    """(result, error): result None when the host could not be reached."""
    try:
        res = _guard(action, task_vars, **args)
    except AnsibleConnectionFailure as exc:
        return None, str(exc)
    if res.get('unreachable'):
        return None, res.get('msg', 'unreachable')
    return res, None


def _restore_failed_change(action, task_vars, result, guard, arm, token, host):
    """The module failed after changing the firewall: put the previous one back now."""
    name = guard['name']
    failure = result.get('msg', 'failed')
    res, err = _try_guard(action, task_vars, name=name, state='restored', **token)
    guard.update(confirmed=False, rolled_back=False)
    if res is None:
        state = ('the controller could not reach the host to restore it at once (%s): it WILL ROLL BACK to its '
                 'previous firewall by itself (%s, %d s after the change was armed)'
                 % (err, _watchdog(arm), guard['timeout']))
    elif res.get('failed'):
        guard['restored'] = res.get('restored', [])
        state = ('restoring the previous firewall at once was INCOMPLETE (%s)' % res.get('msg'))
    else:
        guard.update(rolled_back=True, restored=res.get('restored', []))
        state = ('the previous firewall was restored at once (restored: %s)'
                 % (', '.join(res.get('restored') or []) or 'nothing'))
    result.update(failed=True, changed=True,
                  msg='%s failed on %s after changing the firewall (%s); %s' % (
                      guard.get('module', 'the module'), host, failure, state))
    return result


def run_guarded(action, task_vars, module_name, module_args, timeout, guard_name, paths=(), services=()):
    """Run ``module_name`` with ``module_args`` under a guard of ``timeout`` seconds; return its result."""
    host = task_vars.get('inventory_hostname', 'the host')
    arm = _guard(action, task_vars, name=guard_name, state='armed', timeout=timeout,
                 paths=list(paths), services=list(services))
    if arm.get('failed'):
        return dict(failed=True, changed=False, msg='firewall guard %s not armed, nothing changed: %s'
                    % (guard_name, arm.get('msg')))
    deadline = time.time() + timeout
    token = dict(token=arm['token']) if arm.get('token') else {}
    result = action._execute_module(module_name=module_name, module_args=module_args, task_vars=task_vars)
    guard = dict(name=guard_name, timeout=timeout, watchdog=arm.get('watchdog'), snapshot=arm.get('snapshot'),
                 module=module_name)
    result['firewall_guard'] = guard
    if result.get('failed') and result.get('changed'):
        return _restore_failed_change(action, task_vars, result, guard, arm, token, host)
    if not result.get('changed'):
        # nothing changed: confirm over the same connection
        conf, err = _try_guard(action, task_vars, name=guard_name, state='confirmed', **token)
        guard['confirmed'] = bool(conf and not conf.get('failed'))
        if not guard['confirmed']:
            display.warning('firewall guard %s on %s: confirming an unchanged firewall failed (%s); '
                            'the host restores its snapshot in %d s, which is the same firewall'
                            % (guard_name, host, err or conf.get('msg'), timeout))
        return result

    guard.update(_confirm_through_new_connection(action, task_vars, guard_name, token, deadline, timeout, arm, host))
    guard.pop('msg', None)
    if 'failure' in guard:
        result.update(failed=True, msg=guard.pop('failure'))
    return result


def _watchdog(arm):
    if arm.get('unit'):
        return 'watchdog %s' % arm['unit']
    return 'watchdog process %s' % arm['pid'] if arm.get('pid') else 'its watchdog'


def _confirm_through_new_connection(action, task_vars, name, token, deadline, timeout, arm, host):
    """Reset the connection, then confirm guard ``name`` through a new one, retrying until MARGIN s
    before ``deadline`` (controller time); past it, look once more whether the host rolled back.
    Returns the guard's fields (confirmed, attempts, rolled_back) and, when it failed, ``msg``
    (the confirm module's) and ``failure`` (the task's message)."""
    _reset(action)
    last_error = None
    attempts = 0
    while time.time() < deadline - MARGIN:
        attempts += 1
        conf, err = _try_guard(action, task_vars, name=name, state='confirmed', **token)
        if conf is None:
            last_error = err
            display.v('firewall guard %s: %s not reachable yet (%s)' % (name, host, err))
            time.sleep(1)
            continue
        if conf.get('failed'):
            return dict(confirmed=False, attempts=attempts, rolled_back=bool(conf.get('rolled_back')),
                        msg=conf.get('msg'),
                        failure='firewall change on %s rolled back: the controller got back in too late to confirm '
                                'it (%s)' % (host, conf.get('msg')))
        return dict(confirmed=True, attempts=attempts)

    # Could not get back in: the host restores by itself.  Look once more after the deadline.
    wait = deadline + AFTER_DEADLINE - time.time()
    if wait > 0:
        time.sleep(wait)
    _reset(action)
    conf, err = _try_guard(action, task_vars, name=name, state='confirmed', **token)
    rolled_back = bool(conf and conf.get('rolled_back'))
    if rolled_back:
        state = 'it HAS ROLLED BACK to its previous firewall by itself (%s)' % conf.get('msg')
    else:
        state = ('it WILL ROLL BACK to its previous firewall by itself (%s, %d s after the change was armed)'
                 % (_watchdog(arm), timeout))
    return dict(confirmed=False, attempts=attempts, rolled_back=rolled_back, msg=(conf or {}).get('msg', err),
                failure='firewall change on %s cut the controller off: it could not reconnect and confirm within '
                        '%d s (last error: %s); %s' % (host, timeout, last_error, state))


def reconnect_and_confirm(action, task_vars, name, token=None, countdown=None, within=None, paths=(), services=()):
    """The end of "arm, change, reset the connection, confirm" for an arm made by an earlier task
    (the firewall_guard action plugin with ``reconnect``, role guard's ``tasks_from: confirm``).

    ``countdown``: arm the guard again with its token for that many seconds first (over the
    connection in use; the snapshot stays the first one) and try to confirm until shortly before it
    runs out; else try for ``within`` seconds (the arm's ``confirm_within``).  Returns the task's
    result: the confirm module's on success, ``failed`` with a message saying whether the host has
    rolled back or will, never unreachable (a host the controller cannot get back into fails)."""
    host = task_vars.get('inventory_hostname', 'the host')
    token = dict(token=token) if token else {}
    start = time.time()
    arm = {}
    if countdown is not None:
        timeout = int(countdown)
        arm, err = _try_guard(action, task_vars, name=name, state='armed', timeout=timeout, paths=list(paths),
                              services=list(services), **token)
        if arm is None or arm.get('failed'):
            return dict(failed=True, changed=False, msg='firewall guard %s on %s: its countdown could not be started (%s); '
                        'the change is not confirmed, the host restores its snapshot when its first arm times out'
                        % (name, host, err or arm.get('msg')))
    elif within is not None:
        timeout = int(within) + MARGIN      # confirm_within is the timeout less the margin
    else:
        raise ValueError('reconnect_and_confirm needs countdown or within')
    guard = _confirm_through_new_connection(action, task_vars, name, token, start + timeout, timeout, arm, host)
    if 'failure' in guard:
        return dict(failed=True, changed=False, msg=guard['failure'], rolled_back=guard['rolled_back'],
                    attempts=guard['attempts'], confirmed=False)
    return dict(changed=False, confirmed=True, rolled_back=False, attempts=guard['attempts'])
