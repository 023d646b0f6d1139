# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures shared by the lab tests: the site lab (lab_hosts.site_lab), made and rolled out once a session."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

import lab_hosts


def pytest_configure(config):
    config.addinivalue_line('markers', 'site_lab_destructive: changes the shared site lab for good (runs last)')


# Files whose tests use the shared site lab (fixture site_lab): under pytest-xdist they run on
# one worker, one after the other (the fixture is made once per worker, and lab names are
# machine-wide).  pytest_collection_modifyitems checks that the list is complete.
SITE_LAB_FILES = ('test_audit_lab.py', 'test_door_info_lab.py', 'test_site_rollout.py')


def pytest_collection_modifyitems(session, config, items):
    """Tests that change the shared site lab for good run after every other test."""
    last = [item for item in items if item.get_closest_marker('site_lab_destructive')]
    items[:] = [item for item in items if not item.get_closest_marker('site_lab_destructive')] + last
    strays = sorted(set(os.path.basename(str(item.fspath)) for item in items
                        if 'site_lab' in getattr(item, 'fixturenames', ())) - set(SITE_LAB_FILES))
    if strays:
        raise pytest.UsageError('tests/integration/conftest.py: add %s to SITE_LAB_FILES' % ', '.join(strays))


try:
    from xdist.scheduler import LoadScopeScheduling
except ImportError:   # pragma: no cover - without pytest-xdist the tests run one by one
    LoadScopeScheduling = None

if LoadScopeScheduling is not None:
    class LabScheduling(LoadScopeScheduling):
        """tools/test.sh runs the integration tests on two workers (``-n 2``): a file's tests
        on one worker (a module's lab is made once), the site lab's files all on one."""

        def _split_scope(self, nodeid):
            path = nodeid.split('::', 1)[0]
            return 'site_lab' if os.path.basename(path) in SITE_LAB_FILES else path

    def pytest_xdist_make_scheduler(config, log):
        return LabScheduling(config, log)


@pytest.fixture(scope='session')
def site_lab():
    with lab_hosts.site_lab() as lab:
        yield lab
