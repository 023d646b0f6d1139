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


def _import_line():
    """Python statements that import knock_cli's main() from where it lives now (next to this file)."""
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'knock_cli.py')
    parts = here.split(os.sep)
    # .../ansible_collections/NS/NAME/plugins/module_utils/knock_cli.py
    if len(parts) >= 6 and parts[-6] == 'ansible_collections':
        root = os.sep.join(parts[:-6]) or os.sep
        module = 'ansible_collections.%s.%s.plugins.module_utils.knock_cli' % (parts[-5], parts[-4])
    else:
        root = os.path.dirname(os.path.dirname(here))
        module = 'module_utils.knock_cli'
    return 'import sys;sys.path.insert(0,%r);from %s import main;sys.exit(main())' % (root, module)


def build_proxy_command(python=None, delay_ms=None, family=None, knock_host=None,
                        connect_timeout=DEFAULT_CONNECT_TIMEOUT, host_token='%h', port_token='%p', fdpass=False):
    """An ssh ``ProxyCommand`` value running the knock CLI (knock_cli.py) in proxy mode.

    The sequence is NOT part of it: the caller puts it in $PORTKNOCK_SEQUENCE
    so it shows neither in ``ps`` nor in ``ansible -vvv`` output.  ``%`` in the
    fixed parts is escaped for ssh's token expansion.  Without ``delay_ms`` the CLI's
    default (knock_sender.DEFAULT_DELAY_MS) applies.
    """
    def quote(text):
        return shlex.quote(str(text)).replace('%', '%%')

    words = [quote(python or sys.executable), '-c', quote(_import_line()), '--proxy']
    if delay_ms is not None:
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
