# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bad-input suite's tally, printed at the end of the run (also with ``pytest -q``).

Each test records every bad input it tries: ``error`` (the project's own error, naming the
value), ``traceback`` (any other exception: a bug) and ``changed`` (a file, a ruleset or a
packet changed or sent by an input that was refused: a bug).  Inputs a parser accepts are
recorded as ``accepted`` and are not counted as bad inputs.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'modules'))


class Tally:
    KINDS = ('error', 'traceback', 'changed', 'accepted')

    def __init__(self):
        self.counts = collections.defaultdict(collections.Counter)

    def record(self, target, kind):
        assert kind in self.KINDS, kind
        self.counts[target][kind] += 1

    def total(self, kind):
        return sum(counter[kind] for counter in self.counts.values())


TALLY = Tally()


@pytest.fixture(scope='session')
def tally():
    return TALLY


def pytest_terminal_summary(terminalreporter):
    if not TALLY.counts:
        return
    write = terminalreporter.write_line
    bad = TALLY.total('error') + TALLY.total('traceback')
    terminalreporter.section('bad-input suite')
    for target in sorted(TALLY.counts):
        counter = TALLY.counts[target]
        write('  %-28s %5d clear errors, %d tracebacks, %d changed, %d accepted'
              % (target, counter['error'], counter['traceback'], counter['changed'], counter['accepted']))
    write('bad inputs: %d; clear errors: %d; tracebacks: %d (must be 0); files/rulesets changed: %d (must be 0)'
          % (bad, TALLY.total('error'), TALLY.total('traceback'), TALLY.total('changed')))
