# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test files are imported by path (pytest.ini: --import-mode=importlib), so tests of
plugins with the same name (modules/knock.py, lookup/knock.py, ...) may all be test_knock.py
at their mirrored paths.  The shared helpers are plain modules on sys.path."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
for helpers in ('integration', os.path.join('unit', 'plugins', 'modules'), os.path.join('unit', 'plugins', 'action')):
    path = os.path.join(HERE, helpers)
    if path not in sys.path:
        sys.path.insert(0, path)
