# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The SPA replay cache: expiry, bound, persistence in fwknopd's digest.cache format."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import random
import stat

from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.replay_cache import ReplayCache

from fake_clock import FakeClock

D1 = 'A' * 43
D2 = 'B+/' * 14 + 'C'


class Clock(FakeClock):
    def __init__(self, now=1700000000.0):     # a real epoch: the cache file holds the seconds
        FakeClock.__init__(self, now)


class Log:
    def __init__(self):
        self.errors = []

    def error(self, message):
        self.errors.append(message)


def test_memory_cache_remembers_until_twice_the_max_age():
    clock = Clock()
    cache = ReplayCache(None, max_age=60, clock=clock)
    assert D1 not in cache
    assert cache.add(D1)
    assert D1 in cache
    clock.now += 120
    assert D1 in cache            # a packet 60 s in the future is accepted until now + 60 + 60
    clock.now += 1
    assert D1 not in cache
    assert cache.expire() == 1 and len(cache) == 0


def test_without_packet_aging_entries_never_expire():
    clock = Clock()
    cache = ReplayCache(None, max_age=None, clock=clock)
    cache.add(D1)
    clock.now += 10 ** 8
    assert D1 in cache and cache.expire() == 0


def test_full_cache_refuses_instead_of_forgetting_a_live_digest():
    clock = Clock()
    cache = ReplayCache(None, max_age=60, max_entries=2, clock=clock)
    assert cache.add(D1) and cache.add(D2)
    assert not cache.add('C' * 43)
    assert D1 in cache and D2 in cache
    clock.now += 121
    assert cache.add('C' * 43)      # the old ones expired: room again


def test_persisted_across_restarts_mode_0600_fwknopd_format(tmp_path):
    path = str(tmp_path / 'run' / 'digest.cache')
    clock = Clock()
    cache = ReplayCache(path, max_age=60, clock=clock)
    assert cache.load() == 0
    cache.add(D1, '10.231.250.2', 40000, '10.231.250.1', 62201)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = open(path).read()
    assert text.startswith('# <digest> <proto>')
    assert '%s 17 10.231.250.2 40000 10.231.250.1 62201 %d\n' % (D1, int(clock.now)) in text
    again = ReplayCache(path, max_age=60, clock=clock)
    assert again.load() == 1 and D1 in again
    clock.now += 500                 # a restart much later: the old entry is dropped and the file compacted
    third = ReplayCache(path, max_age=60, clock=clock)
    assert third.load() == 0
    assert D1 not in open(path).read()


def test_reads_fwknopds_own_cache_lines_and_skips_junk(tmp_path):
    path = tmp_path / 'digest.cache'
    path.write_text('# header\n%s 17 10.0.0.1 3131 10.0.0.2 62201 1700000000\nnot a line\n\x00\xff junk\n'
                    '%s 17 fd42::1 1 fd42::2 62201 1699999990\n' % (D1, D2))
    cache = ReplayCache(str(path), max_age=60, clock=Clock(1700000001.0))
    assert cache.load() == 2 and cache.skipped == 2
    assert D1 in cache and D2 in cache


def test_fuzzed_cache_files_never_raise(tmp_path):
    rng = random.Random(7313)
    path = tmp_path / 'digest.cache'
    for _n in range(200):
        path.write_bytes(bytes(rng.randrange(256) for _n in range(rng.randrange(300))))
        ReplayCache(str(path), max_age=60).load()
    for _n in range(200):
        fields = [rng.choice(['A' * 43, '17', '-1', '99999999999999999999', '::', 'x', '1.2.3.4', ''])
                  for _n in range(rng.randrange(9))]
        assert ReplayCache.parse_line(' '.join(fields)) is None or len(fields) == 7


def test_unwritable_file_is_one_error_and_the_cache_still_works(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('')
    log = Log()
    cache = ReplayCache(str(blocker / 'digest.cache'), max_age=60, log=log)
    cache.load()
    cache.add(D1)
    cache.add(D2)
    assert D1 in cache and D2 in cache
    assert len(log.errors) == 1 and 'digest cache' in log.errors[0]


def test_compaction_keeps_the_file_bounded(tmp_path, monkeypatch):
    from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon import replay_cache
    monkeypatch.setattr(replay_cache, 'COMPACT_MIN_LINES', 4)
    path = str(tmp_path / 'digest.cache')
    clock = Clock()
    cache = ReplayCache(path, max_age=1, clock=clock)
    cache.load()
    for n in range(40):
        cache.add('%043d' % n)
        clock.now += 5                # each one expires before the next few
    lines = [line for line in open(path) if not line.startswith('#')]
    assert len(lines) <= 10
