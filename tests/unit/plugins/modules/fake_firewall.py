# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fake host for the recent_knock backends: iptables-nft save/restore and nft, in memory.

``run(args, data)`` answers the commands the backends send; ``calls`` records them.  The
iptables side keeps the filter table as {chain: [rule lines]} and plays restore scripts
(``:C``, ``-A``, ``-I INPUT 1``, ``-D``, ``-F``, ``-X``); the nft side keeps tables as text and
plays ``table X / delete table X / <text>`` scripts.  A rejected transaction changes nothing.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections

from ansible_collections.portknock.knock.plugins.module_utils import nft_rules

BINS = ['iptables', 'iptables-nft-save', 'iptables-nft-restore', 'ip6tables-nft-save', 'ip6tables-nft-restore', 'nft']


def nft_reads(args, data, ruleset):
    """nft's answer (rc, out, err) to the backend's reads of ``ruleset`` (``nft -a -t list ruleset``
    text), or None when ``args`` is no read: the whole ruleset, ``-a list chains`` (here only the
    table headers, all the backend reads of it) and ``list table`` commands on ``-a -t -i``."""
    if args[1:] == ['-a', '-t', 'list', 'ruleset']:
        return 0, ruleset, ''
    if args[1:] == ['-a', 'list', 'chains']:
        return 0, ''.join(line + ' {\n}\n' for line in _tables(ruleset)), ''
    if args[1:] == ['-a', '-t', '-i']:
        tables, out = _tables(ruleset), ''
        for command in data.splitlines():
            header = 'table ' + command[len('list table '):]
            if not command.startswith('list table ') or header not in tables:
                return 0, out, 'Error: No such file or directory\n%s\n' % command
            out += tables[header]
        return 0, out, ''
    return None


def _tables(ruleset):
    """{'table <family> <name>': its text as listed}, in order."""
    tables, current = collections.OrderedDict(), None
    for line in ruleset.splitlines(True):
        if current is None and line.startswith('table '):
            current = line.split(' {', 1)[0]
            tables[current] = ''
        if current is not None:
            tables[current] += line
            if line.rstrip('\n') == '}':
                current = None
    return tables


class FakeBinaries(object):
    """A host where the programs named in ``bins`` are installed (in /usr/sbin); ``calls`` is for
    the commands a subclass's ``run`` records."""

    def __init__(self, bins):
        self.bins = bins
        self.calls = []

    def which(self, name):
        return '/usr/sbin/%s' % name if name in self.bins else None


class FakeFirewall(FakeBinaries):

    def __init__(self, bins=None, reject=None):
        super(FakeFirewall, self).__init__(BINS if bins is None else bins)
        self.reject = reject or set()      # e.g. {'ip6tables-nft-restore', 'nft'}
        self.filter = dict((f, collections.OrderedDict([('INPUT', [])])) for f in ('ipv4', 'ipv6'))
        self.tables = collections.OrderedDict()

    def run(self, args, data=None):
        self.calls.append((list(args), data))
        tool = args[0].rsplit('/', 1)[-1]
        family = 'ipv6' if tool.startswith('ip6') else 'ipv4'
        if args[1:] == ['--version']:
            return 0, ('iptables v1.8.9 (nf_tables)\n' if tool == 'iptables' else 'nftables v1.0.6\n'), ''
        if tool.endswith('-save'):
            return 0, self.save(family), ''
        if tool in self.reject and (tool.endswith('-restore') or args[1:] == ['-f', '-']):
            return 1, '', 'rejected'
        if tool.endswith('-restore'):
            self.restore(family, data)
            return 0, '', ''
        if tool == 'nft' and nft_reads(args, data, ''.join(self.tables.values())) is not None:
            return nft_reads(args, data, ''.join(self.tables.values()))
        if tool == 'nft' and args[1:] == ['-f', '-']:
            self.nft_script(data)
            return 0, '', ''
        raise AssertionError('unexpected call %r' % (args,))

    def save(self, family):
        chains = self.filter[family]
        out = ['*filter', ':INPUT ACCEPT [0:0]']
        out.extend(':%s - [0:0]' % name for name in chains if name != 'INPUT')
        for name, rules in chains.items():
            out.extend('-A %s %s' % (name, rule) for rule in rules)
        out.append('COMMIT')
        return '\n'.join(out) + '\n'

    def restore(self, family, script):
        chains = collections.OrderedDict((k, list(v)) for k, v in self.filter[family].items())
        lines = script.splitlines()
        assert lines[0] == '*filter' and lines[-1] == 'COMMIT' and lines.count('COMMIT') == 1, script
        for line in lines[1:-1]:
            if line.startswith(':'):
                chains[line[1:].split()[0]] = []
            elif line.startswith('-A '):
                chain, rule = line[3:].split(' ', 1)
                chains[chain].append(rule)
            elif line.startswith('-I '):
                chain, _pos, rule = line[3:].split(' ', 2)
                chains[chain].insert(0, rule)
            elif line.startswith('-D '):
                chain, rule = line[3:].split(' ', 1)
                chains[chain].remove(rule)
            elif line.startswith('-F '):
                chains[line[3:]] = []
            elif line.startswith('-X '):
                del chains[line[3:]]
            else:
                raise AssertionError('unexpected restore line %r' % line)
        self.filter[family] = chains

    def nft_script(self, script):
        tables = collections.OrderedDict(self.tables)
        rest = []
        for line in script.splitlines(True):
            words = line.split()
            if len(words) == 3 and words[0] == 'table':
                continue
            if words[:2] == ['delete', 'table']:
                tables.pop(' '.join(words[2:]), None)
                continue
            rest.append(line)
        tables.update(nft_rules.table_listings(''.join(rest)))
        self.tables = tables

    def restores(self):
        return [args[0].rsplit('/', 1)[-1] for args, data in self.calls if args[0].endswith('-restore')]

    def nft_writes(self):
        return [data for args, data in self.calls if args[1:] == ['-f', '-']]
