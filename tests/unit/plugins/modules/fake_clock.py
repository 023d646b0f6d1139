# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A clock for tests: time moves only when the test (or a faked sleep) moves it.

    clock = FakeClock(100.0)
    code_under_test(clock=clock)        # clock() and clock.time() read clock.now
    clock.now += 5                      # or clock.sleep(5), as time.sleep would
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type


class FakeClock(object):
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
