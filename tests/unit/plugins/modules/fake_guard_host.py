# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host for the firewall guard's tests, without a firewall or a watchdog.

    @pytest.fixture
    def host(tmp_path, monkeypatch):
        return guard_host(tmp_path, monkeypatch)

The guard root is tmp_path/guard; no firewall tool is found (``which`` answers None), the boot
is ``boot-1``, systemd is not running and the watchdog is not started: its starts and stops are
recorded (``host.started``, ``host.stopped``).  ``host.conf`` is a file holding ``old``.
``guard(**args)`` runs the firewall_guard module in this process: (result, output, failed?).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.portknock.knock.plugins.module_utils import firewall_snapshot as fs
from ansible_collections.portknock.knock.plugins.module_utils import guard_watchdog
from ansible_collections.portknock.knock.plugins.modules import firewall_guard

from utils import module_result


def guard(**args):
    return module_result(firewall_guard.main, args)


class Watchdogs(object):
    def __init__(self):
        self.started, self.stopped = [], []

    def start(self, module, name, root, helper, directory, timeout, kind, token):
        self.started.append((name, token, timeout))
        return dict(watchdog='process', pid=4242)

    def stop(self, module, name, root):
        self.stopped.append(name)


def guard_host(tmp_path, monkeypatch):
    root = tmp_path / 'guard'
    monkeypatch.setattr(fs, 'GUARD_ROOT', str(root))
    monkeypatch.setattr(fs, 'which', lambda name: None)
    monkeypatch.setattr(fs, 'boot_id', lambda: 'boot-1')
    monkeypatch.setattr(guard_watchdog, 'systemd_available', lambda module: False)
    dogs = Watchdogs()
    monkeypatch.setattr(guard_watchdog, 'start_watchdog', dogs.start)
    monkeypatch.setattr(guard_watchdog, 'stop_watchdog', dogs.stop)
    dogs.root = root
    dogs.conf = tmp_path / 'knockd.conf'
    dogs.conf.write_text('old')
    return dogs
