# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""The door audit's report: the probes of ``door_probe`` as a table a person reads, as
JSON, and as JUnit XML (one test suite per host, one test case per door, address and check).
Pure; the probes hold no sequences."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
from xml.sax.saxutils import quoteattr, escape

COLUMNS = ('closed_to_stranger', 'closed_to_knocker', 'wrong_order_stays_closed', 'opens_for_knocker',
           'closed_to_stranger_while_open', 'closes_after_window', 'replay_stays_closed')
HEADERS = ('stranger', 'before', 'wrong order', 'opens', 'stranger open', 'closes', 'replay')


def _mark(check):
    if check is None:
        return '-'
    if check.get('skipped'):
        return 'skip'
    return 'ok' if check.get('ok') else 'FAIL'


def table(probes):
    """Lines: host, door, enforcer, family, each check, time to open."""
    head = ('host', 'door', 'enforcer', 'family') + HEADERS + ('open in',)
    rows = [head]
    for probe in probes:
        by = dict((c['check'], c) for c in probe.get('checks', []))
        opened = by.get('opens_for_knocker', {}).get('seconds')
        opened = opened if isinstance(opened, (int, float)) and not isinstance(opened, bool) else None
        row = (probe['host'], probe['door'], probe.get('enforcer', ''), probe.get('family', ''))
        if 'probe' in by:
            row += ('FAIL: ' + by['probe'].get('detail', ''),) + ('',) * (len(COLUMNS) - 1) + ('',)
        else:
            row += tuple(_mark(by.get(c)) for c in COLUMNS) + ('%d ms' % round(opened * 1000) if opened is not None else '-',)
        rows.append(row)
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(head))]
    return ['  '.join(str(cell).ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in rows]


def failures(probes):
    """One sentence per failed check, naming the host, the door and the check."""
    out = []
    for probe in probes:
        for check in probe.get('checks', []):
            if not check.get('ok') and not check.get('skipped'):
                out.append('%s: door %s (%s, %s): %s failed%s' % (
                    probe['host'], probe['door'], probe.get('enforcer', ''), probe.get('address', ''),
                    check.get('title', check['check']), ': ' + check['detail'] if check.get('detail') else ''))
    return out


def to_json(probes):
    return json.dumps({'probes': probes, 'failures': failures(probes), 'ok': not failures(probes)},
                      indent=2, sort_keys=True) + '\n'


def junit(probes):
    """JUnit XML: a <testsuite> per host, a <testcase> per door, address and check."""
    hosts = []
    for probe in probes:
        if probe['host'] not in hosts:
            hosts.append(probe['host'])
    lines = ['<?xml version="1.0" encoding="UTF-8"?>']
    total = sum(len(p.get('checks', [])) for p in probes)
    failed = sum(1 for p in probes for c in p.get('checks', []) if not c.get('ok') and not c.get('skipped'))
    lines.append('<testsuites name="portknock.knock.audit" tests="%d" failures="%d">' % (total, failed))
    for host in hosts:
        cases = [(p, c) for p in probes if p['host'] == host for c in p.get('checks', [])]
        lines.append('  <testsuite name=%s tests="%d" failures="%d" skipped="%d">' % (
            quoteattr(host), len(cases), sum(1 for _p, c in cases if not c.get('ok') and not c.get('skipped')),
            sum(1 for _p, c in cases if c.get('skipped'))))
        for probe, check in cases:
            name = '%s %s %s' % (probe['door'], probe.get('family', ''), check.get('title', check['check']))
            seconds = check.get('seconds')
            seconds = seconds if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) else 0
            lines.append('    <testcase classname=%s name=%s time="%.3f">' % (
                quoteattr('%s.%s' % (host, probe['door'])), quoteattr(name), seconds))
            if check.get('skipped'):
                lines.append('      <skipped message=%s/>' % quoteattr(check.get('detail', '')))
            elif not check.get('ok'):
                lines.append('      <failure message=%s>%s</failure>' % (
                    quoteattr(check.get('detail', '') or 'failed'),
                    escape('%s %s %s' % (probe.get('enforcer', ''), probe.get('address', ''), check.get('detail', '')))))
            lines.append('    </testcase>')
        lines.append('  </testsuite>')
    lines.append('</testsuites>')
    return '\n'.join(lines) + '\n'
