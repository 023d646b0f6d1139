# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""The ``portknock.knock.knock`` task: its arguments and what it does.

Shared by the module (knocks from the host it runs on, used with
``delegate_to``) and the action plugin (knocks from the controller).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from .knock_sender import DEFAULT_DELAY_MS, KnockSendError, knock
from .sequence import KnockValueError, format_sequence, parse_sequence, show

MAX_DELAY_MS = 60000     # a minute between knocks is longer than any door waits
# the names recent_knock uses for address families; 'any' is the old name of 'both'
IP_VERSIONS = ('ipv4', 'ipv6', 'both')
DEPRECATED_IP_VERSIONS = {'any': 'both'}
DEPRECATION_VERSION = '1.0.0'
DEPRECATION_COLLECTION = 'portknock.knock'

ARGUMENT_SPEC = dict(
    host=dict(type='str', required=True),
    sequence=dict(type='raw', required=True, no_log=True),
    delay=dict(type='int', default=DEFAULT_DELAY_MS),
    ip_version=dict(type='str', default='both', choices=list(IP_VERSIONS) + sorted(DEPRECATED_IP_VERSIONS)),
    source=dict(type='str'),
)


class KnockTaskError(Exception):
    """A bad argument or a knock that could not be sent (message safe to show)."""


def ip_version_deprecation(params):
    """The deprecation message for a deprecated ``ip_version`` in ``params``, or None."""
    value = params.get('ip_version')
    if value in DEPRECATED_IP_VERSIONS:
        return ('ip_version=%s is deprecated, use ip_version=%s (same meaning)'
                % (value, DEPRECATED_IP_VERSIONS[value]))
    return None


def run_knock_task(params, check_mode=False):
    """Knock as the task ``params`` say; return the task result (never the sequence)."""
    try:
        steps = parse_sequence(params['sequence'])
    except KnockValueError as exc:
        # the message names the bad step only, not the whole sequence
        raise KnockTaskError('sequence is invalid: %s' % exc)
    delay = params.get('delay')
    if delay is None:
        delay = DEFAULT_DELAY_MS
    if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= MAX_DELAY_MS:
        raise KnockTaskError('delay %s must be 0 to %d milliseconds' % (show(delay), MAX_DELAY_MS))
    family = params.get('ip_version') or 'both'
    family = DEPRECATED_IP_VERSIONS.get(family, family)
    if family not in IP_VERSIONS:
        raise KnockTaskError('ip_version %s is not one of %s' % (show(family), ', '.join(IP_VERSIONS)))
    result = dict(changed=False, host=params['host'], knocks=len(steps),
                  protocols=sorted(set(step.protocol for step in steps)))
    if check_mode:
        result['address'] = None
        result['msg'] = 'check mode: would knock %d ports on %s' % (len(steps), params['host'])
        return result
    try:
        address = knock(params['host'], format_sequence(steps), delay_ms=delay, family=family,
                        source=params.get('source'))
    except KnockSendError as exc:
        raise KnockTaskError(str(exc))
    result['address'] = address
    result['msg'] = 'knocked %d ports on %s (%s)' % (len(steps), params['host'], address)
    return result
