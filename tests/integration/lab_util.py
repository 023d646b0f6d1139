# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small helpers of the tests and benchmarks that run daemons on this machine.

    write_private(path, text)        a file only root reads (keys, configurations): 0600 from the start
    wait_until(predicate, timeout)   poll until true (its value) or the deadline (the last answer)
    stop_process(proc)               SIGTERM, then SIGKILL what does not end within 10 s
    kill_processes_naming(text)      SIGKILL every process whose command line holds ``text``
    in_parallel(function, calls)     function(*args) for each args of ``calls``, one thread each

Imported as a plain module (tests/conftest.py puts this directory on sys.path; the benchmarks
and the lab tests insert it themselves).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import signal
import subprocess
import threading
import time


def write_private(path, text):
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as handle:
        handle.write(text)
    return str(path)


def wait_until(predicate, timeout, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def stop_process(proc, timeout=10, sig=signal.SIGTERM):
    """End ``proc`` (a Popen) if it still runs: ``sig``, then SIGKILL after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def kill_processes_naming(text):
    """SIGKILL the processes (not this one) whose command line holds ``text``: e.g. the ssh
    masters and proxies of a test, which name its temp dir."""
    for pid in os.listdir('/proc'):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as handle:
                if text.encode() in handle.read():
                    os.kill(int(pid), signal.SIGKILL)
        except (IOError, OSError):
            pass


def in_parallel(function, calls):
    """``function(*args)`` for each ``args`` of ``calls``, each in its own thread (e.g. preparing
    lab hosts); once all have ended, the first exception raised, if any, is raised here."""
    errors = []

    def call(args):
        try:
            function(*args)
        except Exception as exc:  # pylint: disable=broad-except
            errors.append(exc)
    threads = [threading.Thread(target=call, args=(args,)) for args in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
