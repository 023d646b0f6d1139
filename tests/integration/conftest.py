# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures shared by the lab tests: the site lab (lab_hosts.site_lab), made and rolled out once a session."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

import lab_hosts


def pytest_configure(config):
    config.addinivalue_line('markers', 'site_lab_destructive: changes the shared site lab for good (runs last)')


def pytest_collection_modifyitems(session, config, items):
    """Tests that change the shared site lab for good run after every other test."""
    last = [item for item in items if item.get_closest_marker('site_lab_destructive')]
    items[:] = [item for item in items if not item.get_closest_marker('site_lab_destructive')] + last


@pytest.fixture(scope='session')
def site_lab():
    with lab_hosts.site_lab() as lab:
        yield lab
