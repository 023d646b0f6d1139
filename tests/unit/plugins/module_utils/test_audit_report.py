# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils/audit_report.py: table, failures, JSON and JUnit XML of the audit."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.portknock.knock.plugins.module_utils import audit_report
from ansible_collections.portknock.knock.plugins.module_utils.door_probe import CHECKS, CHECK_TITLES


def probe(host, ok=True, failing='closed_to_stranger', family='ipv4'):
    checks = [dict(check=c, title=CHECK_TITLES[c], ok=ok or c != failing, skipped=False,
                   detail='' if ok or c != failing else 'port 22 accepted a connection from the stranger',
                   seconds=0.012 if c == 'opens_for_knocker' else None) for c in CHECKS]
    return dict(host=host, door='ssh', enforcer='nftables', address='10.231.2.11', family=family, port=22,
                ok=all(c['ok'] for c in checks), checks=checks)


PROBES = [probe('a'), probe('b', ok=False), probe('c', family='ipv6')]


def test_table_has_a_row_per_probe_and_marks_the_failure():
    lines = audit_report.table(PROBES)
    assert lines[0].split()[:4] == ['host', 'door', 'enforcer', 'family']
    assert len(lines) == 4
    assert 'FAIL' in lines[2] and 'FAIL' not in lines[1] and '12 ms' in lines[1]


def test_failures_name_host_door_and_check():
    assert audit_report.failures(PROBES) == [
        'b: door ssh (nftables, 10.231.2.11): closed to stranger failed: port 22 accepted a connection from the stranger']
    assert audit_report.failures([probe('a')]) == []


def test_json_round_trip():
    data = json.loads(audit_report.to_json(PROBES))
    assert data['ok'] is False and len(data['probes']) == 3 and len(data['failures']) == 1


def test_junit_is_valid_and_counts():
    junitparser = pytest.importorskip('junitparser')
    text = audit_report.junit(PROBES)
    root = ET.fromstring(text)
    assert root.tag == 'testsuites' and root.get('failures') == '1' and root.get('tests') == str(3 * len(CHECKS))
    xml = junitparser.JUnitXml.fromstring(text)
    suites = dict((s.name, s) for s in xml)
    assert set(suites) == {'a', 'b', 'c'}
    assert suites['b'].failures == 1 and suites['a'].failures == 0
    failed = [case for case in suites['b'] if case.result]
    assert len(failed) == 1 and 'closed to stranger' in failed[0].name


def test_junit_escapes_hostile_names():
    p = probe('<evil "host">', ok=False)
    root = ET.fromstring(audit_report.junit([p]))
    assert root.find('testsuite').get('name') == '<evil "host">'
