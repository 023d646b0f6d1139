# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""Run a module under the firewall guard, from an action plugin (controller side).

arm ``portknock.knock.firewall_guard`` -> run the module -> reset the connection (so the
next command needs a NEW connection: with ``portknock.knock.ssh`` a new knock) -> confirm
through it, retrying until shortly before the watchdog fires.  If the controller cannot
get back in, the task fails and the host restores its previous firewall by itself.
Modelled on community.general's iptables_state action plugin.

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
from ansible.utils.display import Display

from ansible_collections.portknock.knock.plugins.module_utils.firewall_snapshot import AFTER_DEADLINE, CONFIRM_MARGIN

display = Display()

GUARD_MODULE = 'portknock.knock.firewall_guard'
MARGIN = CONFIRM_MARGIN     # the guard's one set of margins (firewall_snapshot.py), also the role guard's


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
                 'previous firewall by itself (watchdog %s, %d s after the change was armed)'
                 % (err, arm.get('unit') or 'process %s' % arm.get('pid'), guard['timeout']))
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

    _reset(action)
    last_error = None
    attempts = 0
    while time.time() < deadline - MARGIN:
        attempts += 1
        conf, err = _try_guard(action, task_vars, name=guard_name, state='confirmed', **token)
        if conf is None:
            last_error = err
            display.v('firewall guard %s: %s not reachable yet (%s)' % (guard_name, host, err))
            time.sleep(1)
            continue
        if conf.get('failed'):
            guard['rolled_back'] = bool(conf.get('rolled_back'))
            result.update(failed=True, msg='firewall change on %s rolled back: the controller got back in too late '
                          'to confirm it (%s)' % (host, conf.get('msg')))
            return result
        guard.update(confirmed=True, attempts=attempts)
        return result

    # Could not get back in: the host restores by itself.  Look once more after the deadline.
    wait = deadline + AFTER_DEADLINE - time.time()
    if wait > 0:
        time.sleep(wait)
    _reset(action)
    conf, err = _try_guard(action, task_vars, name=guard_name, state='confirmed', **token)
    guard.update(confirmed=False, attempts=attempts, rolled_back=bool(conf and conf.get('rolled_back')))
    if guard['rolled_back']:
        state = 'it HAS ROLLED BACK to its previous firewall by itself (%s)' % conf.get('msg')
    else:
        state = ('it WILL ROLL BACK to its previous firewall by itself (watchdog %s, %d s after the change was armed)'
                 % (arm.get('unit') or 'process %s' % arm.get('pid'), timeout))
    result.update(failed=True, msg='firewall change on %s cut the controller off: it could not reconnect and confirm '
                  'within %d s (last error: %s); %s' % (host, timeout, last_error, state))
    return result
