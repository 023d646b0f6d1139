# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the host-side launchers (``portknock-knockd``, ``portknock-firewall``) import the collection.

scripts/ sits next to plugins/ in the collection: under
``<prefix>/ansible_collections/<namespace>/<name>/scripts/`` the directory holding
``ansible_collections`` goes on sys.path and module_utils is imported as part of the
collection; in a plain source checkout module_utils is imported as a plain package.
A launcher puts its own directory on sys.path and calls ``module_utils_main``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib
import os
import sys


def module_utils_main(launcher, name):
    """``main`` of ``plugins/module_utils/<name>`` of the collection that holds ``launcher``."""
    for here in (os.path.abspath(launcher), os.path.realpath(launcher)):
        parts = os.path.dirname(os.path.dirname(here)).split(os.sep)
        if len(parts) >= 4 and parts[-3] == 'ansible_collections':
            sys.path.insert(0, os.sep.join(parts[:-3]) or os.sep)
            try:
                return importlib.import_module('ansible_collections.%s.%s.plugins.module_utils.%s'
                                               % (parts[-2], parts[-1], name)).main
            except ImportError:
                del sys.path[0]
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(launcher))), 'plugins'))
    return importlib.import_module('module_utils.' + name).main
