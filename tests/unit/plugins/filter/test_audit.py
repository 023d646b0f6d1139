# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""filter/audit.py: audit_report formats, and a clear error for anything else."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.portknock.knock.plugins.filter.audit import audit_report


def test_formats():
    probes = [dict(host='a', door='ssh', checks=[])]
    assert audit_report(probes, 'failures') == []
    assert audit_report(probes, 'junit').startswith('<?xml')
    assert isinstance(audit_report(probes), list)


@pytest.mark.parametrize('probes, fmt', [([{}], 'table'), ('text', 'table'), ([dict(host='a', door='d')], 'yaml')])
def test_bad_input(probes, fmt):
    with pytest.raises(AnsibleFilterError):
        audit_report(probes, fmt)
