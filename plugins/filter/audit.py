# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The door audit's report formats (module_utils/audit_report.py) for the audit playbook."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible_collections.portknock.knock.plugins.module_utils import audit_report as report

FORMATS = {'table': report.table, 'failures': report.failures, 'json': report.to_json, 'junit': report.junit}


def audit_report(probes, fmt='table'):
    if fmt not in FORMATS:
        raise AnsibleFilterError('audit_report: format %r is not one of %s' % (fmt, ', '.join(sorted(FORMATS))))
    if not isinstance(probes, list) or not all(isinstance(p, dict) and 'host' in p and 'door' in p for p in probes):
        raise AnsibleFilterError('audit_report: expects the probes returned by portknock.knock.door_probe')
    return FORMATS[fmt](probes)


class FilterModule(object):
    def filters(self):
        return {'audit_report': audit_report}
