# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""The firewall guard's watchdog on the host: start and stop it, and the helper script it runs.

Module ``portknock.knock.firewall_guard`` (through ``guard_states.py``) starts a watchdog per arm
that restores the snapshot after the arm's timeout unless the guard is confirmed first: a
transient systemd timer (``systemd-run --on-active``, unit ``portknock-guard-<name>``) where
systemd runs, else a process in its own session that the helper forks (its pid in
``<name>.watchdog.pid``).  Neither depends on the connection that armed it.

The watchdog runs the restore engine (``firewall_snapshot.watchdog_main``) from a script in the
guard root, ``write_helper``: module_utils files have no entry point, so the script imports a
copy of ``firewall_snapshot.py`` and ``atomic_file.py`` (its one import from the collection),
written as a package into ``<guard root>/.helper``; everything else is the standard library.

Functions take the module (an ``AnsibleModule``) for ``get_bin_path`` and ``run_command``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import inspect
import os
import signal
import sys

from . import atomic_file
from . import firewall_snapshot as fs

HELPER = 'firewall_snapshot.py'
PIDFILE = 'watchdog.pid'
# module_utils files have no entry point: on the host, the helper script runs the restore engine
# from a copy of its module_utils files, a package in HELPER_DIR beside it (a name with a dot:
# never a guard's snapshot directory)
HELPER_DIR = '.helper'
HELPER_PACKAGE = 'portknock_guard'
HELPER_MODULES = (atomic_file, fs)
MAIN_STUB = '''# The watchdog of portknock.knock's firewall guard (written by the firewall_guard module)
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), %r))
from %s.firewall_snapshot import watchdog_main  # noqa: E402

if __name__ == '__main__':
    raise SystemExit(watchdog_main(sys.argv[1:]))
''' % (HELPER_DIR, HELPER_PACKAGE)


def unit_name(name):
    return 'portknock-guard-%s' % name


def systemd_available(module):
    return os.path.isdir('/run/systemd/system') and module.get_bin_path('systemd-run') is not None


def write_helper(root):
    """The restore engine as a script on the host, run by the watchdog: its path."""
    package = os.path.join(root, HELPER_DIR, HELPER_PACKAGE)
    for directory in (root, os.path.dirname(package), package):
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
        os.chmod(directory, 0o700)
    atomic_file.write_atomic(os.path.join(package, '__init__.py'), '')
    for module in HELPER_MODULES:
        atomic_file.write_atomic(os.path.join(package, module.__name__.rsplit('.', 1)[-1] + '.py'),
                                 inspect.getsource(module))
    path = os.path.join(root, HELPER)
    atomic_file.write_atomic(path, MAIN_STUB, 0o700)     # last: it runs only once the package is there
    return path


def stop_watchdog(module, name, root):
    """Stop the systemd timer and/or the watchdog process of ``name`` (whichever exists)."""
    systemctl = module.get_bin_path('systemctl')
    if systemctl and os.path.isdir('/run/systemd/system'):
        for unit in ('%s.timer' % unit_name(name), '%s.service' % unit_name(name)):
            module.run_command([systemctl, 'stop', unit])
            module.run_command([systemctl, 'reset-failed', unit])
    pidfile = os.path.join(root, '%s.%s' % (name, PIDFILE))
    try:
        with open(pidfile) as handle:
            pid = int(handle.read().strip())
        with open('/proc/%d/cmdline' % pid, 'rb') as handle:
            cmdline = handle.read()
        if HELPER.encode() in cmdline and fs.snapshot_dir(name, root).encode() in cmdline:
            os.kill(pid, signal.SIGTERM)
    except (IOError, OSError, ValueError):
        pass
    if os.path.exists(pidfile):
        os.unlink(pidfile)


def start_watchdog(module, name, root, helper, directory, timeout, kind, token):
    python = sys.executable or '/usr/bin/python3'
    if kind == 'systemd':
        args = [module.get_bin_path('systemd-run', required=True), '--unit', unit_name(name),
                '--on-active', '%ds' % timeout, '--timer-property', 'AccuracySec=1s',
                '--description', 'portknock firewall guard %s: restore the firewall unless confirmed' % name,
                python, helper, 'restore', directory, token]
        rc, out, err = module.run_command(args)
        if rc != 0:
            raise fs.SnapshotError('systemd-run failed: %s' % (err or out).strip())
        return dict(watchdog='systemd', unit='%s.timer' % unit_name(name))
    # the helper forks the watchdog into its own session and prints its pid (run_command
    # returns at once: the child holds none of its pipes)
    rc, out, err = module.run_command([python, helper, 'spawn', str(timeout), directory, token], cwd='/')
    try:
        pid = int(out.strip())
    except ValueError:
        rc = rc or 1
    if rc != 0:
        raise fs.SnapshotError('could not start the watchdog process: %s' % (err or out).strip())
    fs._write(os.path.join(root, '%s.%s' % (name, PIDFILE)), str(pid))
    return dict(watchdog='process', pid=pid)
