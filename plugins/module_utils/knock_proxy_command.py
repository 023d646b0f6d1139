# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""How to run the ``knock`` CLI as an ssh ProxyCommand: the contract between the CLI
(knock_cli.py, which runs the proxy) and the connection plugin (which builds the command
and reads the proxy's report).

Kept apart from the CLI on purpose: the connection plugin is imported again by every
Ansible worker process (one per task and host), and ansible-core compiles collection
code from source each time, so the plugin imports only this small module.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shlex
import sys

# The sequence travels in the environment ssh passes to its ProxyCommand, never in argv.
SEQUENCE_ENV = 'PORTKNOCK_SEQUENCE'
# ssh with ControlPersist sends a ProxyCommand's stderr to /dev/null: proxy mode
# also writes its error to the file named here (the connection plugin reads it).
STATUS_FILE_ENV = 'PORTKNOCK_STATUS_FILE'
DEFAULT_CONNECT_TIMEOUT = 10.0   # seconds the proxy keeps trying after the knock
# Marker the connection plugin looks for in ssh's stderr.
CLOSED_MARKER = 'knock sent but port stayed closed'
SPA_CLOSED_MARKER = 'SPA packet sent but port stayed closed'
# SPA keys (base64) travel in the environment too, never in argv (knock --spa reads them there).
SPA_KEY_ENV = 'KNOCK_SPA_KEY'
SPA_HMAC_KEY_ENV = 'KNOCK_SPA_HMAC_KEY'
SPA_HMAC_DIGEST_ENV = 'KNOCK_SPA_HMAC_DIGEST_TYPE'
SPA_ENVS = (SPA_KEY_ENV, SPA_HMAC_KEY_ENV, SPA_HMAC_DIGEST_ENV)


def knock_script():
    """The ``knock`` launcher of this collection (scripts/knock next to plugins/): it finds the
    collection root with scripts/portknock_launcher.py, the one root finder of the launchers."""
    collection = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(collection, 'scripts', 'knock')


def build_proxy_command(python=None, delay_ms=None, family=None, knock_host=None,
                        connect_timeout=DEFAULT_CONNECT_TIMEOUT, host_token='%h', port_token='%p', fdpass=False,
                        spa=None):
    """An ssh ``ProxyCommand`` value running the knock CLI (knock_cli.py) in proxy mode.

    The sequence is NOT part of it: the caller puts it in $PORTKNOCK_SEQUENCE
    so it shows neither in ``ps`` nor in ``ansible -vvv`` output.  ``%`` in the
    fixed parts is escaped for ssh's token expansion.  Without ``delay_ms`` the CLI's
    default (knock_sender.DEFAULT_DELAY_MS) applies.

    ``spa``: a dict (``access``, ``spa_port``, ``allow_ip``) for SPA instead of a knock; the
    keys are not part of it either (the caller sets $KNOCK_SPA_KEY and $KNOCK_SPA_HMAC_KEY).
    """
    def quote(text):
        return shlex.quote(str(text)).replace('%', '%%')

    words = [quote(python or sys.executable), quote(knock_script()), '--proxy']
    if spa is not None:
        words.append('--spa')
        for option, key in (('--access', 'access'), ('--spa-port', 'spa_port'), ('--allow-ip', 'allow_ip')):
            if spa.get(key) not in (None, ''):
                words += [option, quote(spa[key])]
    elif delay_ms is not None:
        words += ['-d', str(int(delay_ms))]
    words += ['--connect-timeout', quote(connect_timeout)]
    if family in (4, 6):
        words.append('-%d' % family)
    if knock_host:
        words += ['--knock-host', quote(knock_host)]
    if fdpass:
        words.append('--fdpass')
    words += [host_token, port_token]
    return ' '.join(words)
