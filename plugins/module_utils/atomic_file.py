# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""One atomic file write for the host side: the firewall applier, the metrics file, the replay cache,
the daemon's state journal, the firewall guard's records and watchdog helper."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os


def write_atomic(path, text, mode=0o600):
    """Write ``text`` to ``path`` if it differs: ``mode`` (0600) from creation, fsynced, renamed, directory fsynced."""
    try:
        with open(path) as handle:
            if handle.read() == text:
                return False
    except (IOError, OSError, ValueError):   # missing, unreadable, or not text: write it
        pass
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, '.%s.%d.tmp' % (os.path.basename(path), os.getpid()))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        fd = os.open(tmp, flags, mode)
    except FileExistsError:      # left by a process of this pid that died while writing: ours now
        os.unlink(tmp)
        fd = os.open(tmp, flags, mode)
    try:
        os.fchmod(fd, mode)      # the umask can only take bits away; make it exactly the mode
        with os.fdopen(fd, 'w') as handle:
            fd = None
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, path)
    except BaseException:
        if fd is not None:
            os.close(fd)
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True
