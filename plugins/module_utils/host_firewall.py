# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""The doors' firewall on a host, running and saved, in one model: ``scripts/portknock-firewall``.

The roles copy module_utils to their hosts (role ``portknock.knock.host_python``); the
launcher runs ``main``::

  portknock-firewall [--dir DIR] save [--check]      DIR/rules.{v4,v6,nft} <- the running rules
  portknock-firewall [--dir DIR] restore             the running rules <- DIR/rules.* (boot unit)
  portknock-firewall [--dir DIR] baseline [--check]  the running baseline <- DIR/baseline.*
  portknock-firewall chains {apply|start} SPEC [--check]   the knockd role's door chains

``save``, ``baseline`` and ``chains`` print ``changed`` when something changed (or would).

What the collection owns, per family:

* ``ipv4`` / ``ipv6`` (table filter): the chains named ``PK-*`` (recent_knock doors and
  baseline, knockd door chains), the INPUT rules that jump to them, and INPUT's policy
  when the recent_knock baseline is on.  Read with ``<iptables>-save``, written with
  ``<iptables>-restore --noflush -w`` (the variant recent_knock's iptables backend picks).
* ``nft``: the tables ``inet portknock_*``.  Read with ``nft -t list table`` (without the
  sets' addresses: no knocker survives a reboot), written with ``nft -f``.

Every change of a family is ONE transaction (one restore input, one ``nft -f``): a family is
loaded whole or not at all, so a door is never half there (an ACCEPT without its DROP).  A
family that fails does not stop the others; the command then exits 1 and names each family
that failed.  Saved files are written atomically, mode 0600 from their creation, fsynced
with their directory.  Messages never quote rules (they hold the knock ports): a damaged
file is named with its line numbers, and numbers in a tool's error output are masked.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import sys

from . import nft_rules
from . import recent_rules
from .atomic_file import write_atomic
from .door import CHAIN_PREFIX
from .firewall_snapshot import default_run, nft_tables, which
from .iptables_backend import BackendError, IptablesBackend

XTABLES = ('ipv4', 'ipv6')
FAMILIES = XTABLES + ('nft',)
SAVED = {'ipv4': 'rules.v4', 'ipv6': 'rules.v6', 'nft': 'rules.nft'}
BASELINE = {'ipv4': 'baseline.v4', 'ipv6': 'baseline.v6', 'nft': 'baseline.nft'}
BASELINE_STAMP = '.baseline.nft.applied'   # the baseline.nft that is live (nft cannot be compared)
BASELINE_CHAIN = CHAIN_PREFIX + 'baseline'
BASELINE_TABLE = '%s %sbaseline' % (nft_rules.TABLE_FAMILY, nft_rules.TABLE_PREFIX)
BASELINE_JUMP = '-A %s -j %s' % (recent_rules.HOOK_CHAIN, BASELINE_CHAIN)
NFT_HEADER = '# portknock: the tables %s %s*, loaded in one nft -f transaction\n' % (
    nft_rules.TABLE_FAMILY, nft_rules.TABLE_PREFIX)
NFT_TOP = re.compile(r'\A(?:(?:add|delete) )?table (\S+) (\S+)(?: \{)?\Z')
STATIC_TAG = '--comment pk-static'       # the knockd door chains' own rules (filter/knockd_commands.py)
DEFAULT_DIR = '/etc/portknock/recent_knock'


class FirewallError(Exception):
    """One family could not be read, checked or written; the message names it."""


def _masked(text, data):
    """A tool's error output, one line, with every number that occurs in its input masked (knock ports)."""
    numbers = set(re.findall(r'\d+', data or ''))
    return re.sub(r'\d+', lambda m: '#' if m.group(0) in numbers else m.group(0), ' '.join((text or '').split()))[:400]


def read_file(path):
    """The file's text, or None when it does not exist."""
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError) as exc:
        if not os.path.exists(path):
            return None
        raise FirewallError('cannot read %s: %s' % (path, exc.strerror or exc))


def owned_chain(name):
    return name.startswith(CHAIN_PREFIX)


def jump_target(line):
    """The chain an ``-A INPUT ... -j PK-x`` line jumps to, or None for any other line."""
    words = line.split()
    if len(words) >= 4 and words[1] == recent_rules.HOOK_CHAIN and words[-2] == '-j' and owned_chain(words[-1]):
        return words[-1]
    return None


# ---- iptables: the owned part of a family, as the saved file holds it ----

def owned_xtables(save_text, with_policy):
    """The saved form of what the collection owns in ``iptables-save -t filter`` output.

    Declarations first, then the rules in table order (INPUT's jumps come first), as
    ``iptables-save`` prints them, counters zeroed.  INPUT's policy only ``with_policy``.
    """
    table = recent_rules.parse_save(save_text)
    lines = ['*' + recent_rules.TABLE]
    if with_policy and recent_rules.HOOK_CHAIN in table.policies:
        lines.append(':%s %s [0:0]' % (recent_rules.HOOK_CHAIN, table.policies[recent_rules.HOOK_CHAIN]))
    lines.extend(':%s - [0:0]' % chain for chain in table.chains if owned_chain(chain))
    lines.extend(line for line in table.rules
                 if jump_target(line) or owned_chain(recent_rules.rule_chain(line)))
    lines.append('COMMIT')
    return '\n'.join(lines) + '\n'


def checked_xtables(text, label, chains_allowed=owned_chain):
    """Parse a saved (or baseline) iptables file; FirewallError if it holds anything but owned rules."""
    table = recent_rules.parse_save(text)
    if not table.found or not table.committed:
        raise FirewallError('%s is damaged: no complete *%s table (header and COMMIT)' % (label, recent_rules.TABLE))
    if table.unknown:
        raise FirewallError('%s is damaged: line(s) %s are not chain declarations or -A rules' % (
            label, ', '.join(str(n) for n in table.unknown[:10])))
    declared = [chain for chain in table.chains if chain != recent_rules.HOOK_CHAIN]
    foreign = [chain for chain in declared if not chains_allowed(chain)]
    foreign.extend(name for name in table.policies if name != recent_rules.HOOK_CHAIN)
    for line in table.rules:
        chain = recent_rules.rule_chain(line)
        if chain == recent_rules.HOOK_CHAIN:
            target = jump_target(line)
            if target is None or target not in declared:
                foreign.append(chain)
        elif chain not in declared:
            foreign.append(chain)
    if foreign:
        raise FirewallError('%s holds rules of chains it does not own or declare: %s' % (
            label, ', '.join(sorted(set(foreign)))))
    return table


def xtables_restore_input(saved, running_text):
    """``iptables-restore --noflush`` input that loads a checked saved table, in one transaction.

    The saved chains are declared (created, or emptied) and refilled; the INPUT jumps to them
    that are live now are deleted and the saved ones inserted on top of INPUT in their saved
    order, so restoring twice leaves one jump each.  Nothing else is touched.
    """
    running = recent_rules.parse_save(running_text)
    chains = [chain for chain in saved.chains if chain != recent_rules.HOOK_CHAIN]
    out = ['*' + recent_rules.TABLE]
    if recent_rules.HOOK_CHAIN in saved.policies:
        out.append(':%s %s [0:0]' % (recent_rules.HOOK_CHAIN, saved.policies[recent_rules.HOOK_CHAIN]))
    out.extend('-D' + line[2:] for line in running.rules if jump_target(line) in chains)
    out.extend(':%s - [0:0]' % chain for chain in chains)
    out.extend(line for line in saved.rules if recent_rules.rule_chain(line) != recent_rules.HOOK_CHAIN)
    jumps = [line for line in saved.rules if recent_rules.rule_chain(line) == recent_rules.HOOK_CHAIN]
    out.extend('-I %s %d%s' % (recent_rules.HOOK_CHAIN, number, line[len('-A ' + recent_rules.HOOK_CHAIN):])
               for number, line in enumerate(jumps, 1))
    out.append('COMMIT')
    return '\n'.join(out) + '\n'


def xtables_baseline_input(baseline, running_text):
    """``iptables-restore --noflush`` input that makes the live baseline the file's ('' if it is).

    ``baseline``: the checked baseline file, None to remove the baseline.  The baseline is the
    chain PK-baseline, jumped to first in INPUT exactly once, and INPUT's policy.
    """
    running = recent_rules.parse_save(running_text)
    jumps = running.rules.count(BASELINE_JUMP)
    delete = ['-D %s -j %s' % (recent_rules.HOOK_CHAIN, BASELINE_CHAIN)] * jumps
    if baseline is None:
        if BASELINE_CHAIN not in running.chains:
            return ''
        out = [':%s ACCEPT [0:0]' % recent_rules.HOOK_CHAIN] + delete + ['-F ' + BASELINE_CHAIN, '-X ' + BASELINE_CHAIN]
    else:
        wanted_rules = [line for line in baseline.rules if recent_rules.rule_chain(line) == BASELINE_CHAIN]
        live_rules = [line for line in running.rules if recent_rules.rule_chain(line) == BASELINE_CHAIN]
        first = [line for line in running.rules if recent_rules.rule_chain(line) == recent_rules.HOOK_CHAIN][:1]
        policy = baseline.policies.get(recent_rules.HOOK_CHAIN)
        if (BASELINE_CHAIN in running.chains and jumps == 1 and first == [BASELINE_JUMP]
                and live_rules == wanted_rules
                and policy in (None, running.policies.get(recent_rules.HOOK_CHAIN))):
            return ''
        out = [':%s %s [0:0]' % (recent_rules.HOOK_CHAIN, policy)] if policy else []
        out += [':%s - [0:0]' % BASELINE_CHAIN] + wanted_rules + delete
        out.append('-I %s 1 -j %s' % (recent_rules.HOOK_CHAIN, BASELINE_CHAIN))
    return '\n'.join(['*' + recent_rules.TABLE] + out + ['COMMIT']) + '\n'


# ---- the knockd role's door chains (filter/knockd_commands.knockd_firewall_chains) ----

def chains_input(chains, running_text, forget_knockers=False):
    """``iptables-restore --noflush`` input for one family's knockd door chains ('' if nothing to do).

    ``chains``: that family's entries of ``knockd_firewall_chains`` or ``fwknop_firewall_chains``
    (chain, state, jump, static, and ``position``: ``first``, the default, or ``last``).
    A present chain gets exactly one INPUT jump (the wanted one, inserted first, or appended last:
    fwknopd's own FWKNOP_INPUT jump must stay ahead of the fwknop role's closing chain) and ends with its
    static rules, DROP last.  Its static rules are replaced with ``-D``/``-A`` inside the one
    transaction, so the chain never lacks its DROP and the knockers' ACCEPT rules (added and
    removed by knockd's commands meanwhile) are left alone.  ``forget_knockers`` (before the daemon
    starts) re-declares the chain instead: emptied and refilled with the static rules, atomically.
    """
    running = recent_rules.parse_save(running_text)
    declare, delete, add, insert, remove = [], [], [], [], []
    for entry in chains:
        chain = entry['chain']
        if not owned_chain(chain):
            raise FirewallError('chain %r is not a door chain (%s*)' % (chain, CHAIN_PREFIX))
        exists = chain in running.chains
        rules = [line for line in running.rules if recent_rules.rule_chain(line) == chain]
        jumps = [line for line in running.rules if jump_target(line) == chain]
        if entry['state'] != 'present':
            if exists:
                delete.extend('-D' + line[2:] for line in jumps)
                remove.append(chain)
            continue
        static = ['-A %s %s' % (chain, rule) for rule in entry['static']]
        live_static = [line for line in rules if STATIC_TAG in line]
        knockers = [line for line in rules if STATIC_TAG not in line]
        if not exists or (forget_knockers and knockers):
            declare.append(':%s - [0:0]' % chain)
            add.extend(static)
        elif live_static != static or rules[len(rules) - len(static):] != static:
            delete.extend('-D' + line[2:] for line in live_static)
            add.extend(static)
        jump = '-A %s %s' % (recent_rules.HOOK_CHAIN, entry['jump'])
        if jumps != [jump]:
            delete.extend('-D' + line[2:] for line in jumps)
            insert.append(jump if entry.get('position') == 'last' else '-I %s 1 %s' % (recent_rules.HOOK_CHAIN, entry['jump']))
    body = declare + delete + add + insert + ['-F ' + chain for chain in remove] + ['-X ' + chain for chain in remove]
    if not body:
        return ''
    return '\n'.join(['*' + recent_rules.TABLE] + body + ['COMMIT']) + '\n'


# ---- nft: the tables inet portknock_* ----

def checked_nft(text, label, allowed=lambda family, name: family == nft_rules.TABLE_FAMILY
                and name.startswith(nft_rules.TABLE_PREFIX)):
    """FirewallError unless every top-level statement of an nft file is about an allowed table."""
    if not text.strip():
        raise FirewallError('%s is damaged: empty' % label)
    bad = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line[0] in ' \t}#':
            continue
        match = NFT_TOP.match(line.rstrip())
        if not match or not allowed(match.group(1), match.group(2)):
            bad.append(str(number))
    if bad:
        raise FirewallError('%s is damaged or holds other tables than %s %s*: line(s) %s' % (
            label, nft_rules.TABLE_FAMILY, nft_rules.TABLE_PREFIX, ', '.join(bad[:10])))
    return text


class HostFirewall(object):
    """What the collection owns in the running firewall and in its saved files, per family.

    Like ansible.posix firewalld's FirewallTransaction (runtime and permanent together):
    ``running(family)`` and ``saved(family)`` are the same form (the saved file's text), so
    ``save`` writes the one into the other and ``restore`` loads the other into the one.
    Each operation returns {family: outcome} and collects failures in ``errors``.
    """

    def __init__(self, directory=DEFAULT_DIR, run=default_run, which=which):
        self.dir = directory
        self.run = run
        self.which = which
        self.errors = {}
        self._xtables = None

    # -- tools --
    def _xtables_tools(self, family):
        """(save, restore) of ``family``, the variant recent_knock's iptables backend writes."""
        if self._xtables is None:
            try:
                self._xtables = IptablesBackend(self.run, self.which, use_iptc=False)
            except BackendError as exc:
                self._xtables = str(exc)
        if not isinstance(self._xtables, IptablesBackend):
            raise FirewallError('iptables is not usable: %s' % self._xtables)
        try:
            return self._xtables._binary(family, 'save'), self._xtables._binary(family, 'restore')
        except BackendError as exc:
            raise FirewallError(str(exc))

    def _nft(self):
        nft = self.which('nft')
        if not nft:
            raise FirewallError('no nft binary found')
        return nft

    def _call(self, args, data=None, what=None):
        rc, out, err = self.run(args, data)
        if rc != 0:
            raise FirewallError('%s failed (rc %s): %s' % (what or os.path.basename(args[0]), rc, _masked(err or out, data)))
        return out

    def running_xtables(self, family, tools=None):
        save, _restore = tools or self._xtables_tools(family)
        return self._call([save, '-t', recent_rules.TABLE])

    def _load_xtables(self, family, script, what):
        _save, restore = self._xtables_tools(family)
        self._call([restore, '--noflush', '-w'], script, '%s --noflush (%s)' % (os.path.basename(restore), what))

    def running(self, family):
        """The owned rules of ``family`` now, in the saved file's form."""
        if family in XTABLES:
            return owned_xtables(self.running_xtables(family), os.path.exists(self.path(BASELINE[family])))
        nft = self._nft()
        tables = sorted(name for fam, name in nft_tables(self._call([nft, 'list', 'tables']))
                        if fam == nft_rules.TABLE_FAMILY and name.startswith(nft_rules.TABLE_PREFIX))
        text = NFT_HEADER
        for name in tables:
            qualified = '%s %s' % (nft_rules.TABLE_FAMILY, name)
            listing = self._call([nft, '-t', 'list', 'table', nft_rules.TABLE_FAMILY, name])
            listing = nft_rules.stateless(listing)   # the doors' counters start at 0 after a boot
            text += nft_rules.replace_table(qualified, listing if listing.endswith('\n') else listing + '\n')
        return text

    def path(self, name):
        return os.path.join(self.dir, name)

    def saved(self, family):
        """The saved file's text (None when there is none)."""
        return read_file(self.path(SAVED[family]))

    def available(self, family):
        try:
            if family in XTABLES:
                self._xtables_tools(family)
            else:
                self._nft()
        except FirewallError:
            return False
        return True

    def _each(self, families, action):
        outcome = {}
        for family in families:
            try:
                outcome[family] = action(family)
            except (FirewallError, IOError, OSError) as exc:
                self.errors[family] = str(exc)
                outcome[family] = 'failed'
        return outcome

    # -- operations --
    def save(self, check=False):
        """Saved files <- running rules, for each family whose tool is installed."""
        def one(family):
            if not self.available(family):
                return 'not installed'
            text = self.running(family)
            if text == self.saved(family):
                return 'unchanged'
            if not check:
                write_atomic(self.path(SAVED[family]), text)
            return 'changed'
        return self._each(FAMILIES, one)

    def restore(self):
        """Running rules <- saved files: each family in one transaction, every family attempted."""
        def one(family):
            text = self.saved(family)
            if text is None:
                return 'nothing saved'
            label = self.path(SAVED[family])
            if family in XTABLES:
                saved = checked_xtables(text, label)
                self._load_xtables(family, xtables_restore_input(saved, self.running_xtables(family)), SAVED[family])
            else:
                self._call([self._nft(), '-f', '-'], checked_nft(text, label), 'nft -f (%s)' % SAVED[family])
                baseline = read_file(self.path(BASELINE['nft']))
                if baseline is not None:
                    write_atomic(self.path(BASELINE_STAMP), baseline)
            return 'loaded'
        return self._each(FAMILIES, one)

    def baseline(self, check=False):
        """The running baseline <- DIR/baseline.{v4,v6,nft} (removed where the file is gone)."""
        def xtables(family):
            text = read_file(self.path(BASELINE[family]))
            if text is None and not self.available(family):
                return 'not installed'
            wanted = None if text is None else checked_xtables(
                text, self.path(BASELINE[family]), lambda chain: chain == BASELINE_CHAIN)
            script = xtables_baseline_input(wanted, self.running_xtables(family))
            if not script:
                return 'unchanged'
            if not check:
                self._load_xtables(family, script, BASELINE[family])
            return 'changed'

        def nft(family):
            text = read_file(self.path(BASELINE[family]))
            if text is None and not self.available(family):
                return 'not installed'
            binary = self._nft()
            rc, _out, _err = self.run([binary, 'list', 'table'] + BASELINE_TABLE.split())
            live = rc == 0
            if text is None:
                if not live:
                    return 'unchanged'
                if not check:
                    self._call([binary, 'delete', 'table'] + BASELINE_TABLE.split())
                    if os.path.exists(self.path(BASELINE_STAMP)):
                        os.unlink(self.path(BASELINE_STAMP))
                return 'changed'
            checked_nft(text, self.path(BASELINE[family]), lambda fam, name: '%s %s' % (fam, name) == BASELINE_TABLE)
            if live and read_file(self.path(BASELINE_STAMP)) == text:
                return 'unchanged'
            if not check:
                self._call([binary, '-f', '-'], nft_rules.replace_table(BASELINE_TABLE, text), 'nft -f (%s)' % BASELINE[family])
                write_atomic(self.path(BASELINE_STAMP), text)
            return 'changed'

        outcome = self._each(XTABLES, xtables)
        outcome.update(self._each(('nft',), nft))
        return outcome

    def chains(self, spec, forget_knockers=False, check=False):
        """The knockd door chains of ``spec`` (knockd_firewall_chains), one transaction per family."""
        def one(family):
            entries = [entry for entry in spec if entry.get('family') == family]
            if not entries:
                return 'unchanged'
            binaries = set(entry['binary'] for entry in entries)
            if len(binaries) != 1:
                raise FirewallError('one iptables binary per family, got %s' % ', '.join(sorted(binaries)))
            binary = binaries.pop()
            tools = []
            for suffix in ('-save', '-restore'):
                path = binary + suffix
                tool = (path if os.access(path, os.X_OK) else None) if os.path.isabs(path) else self.which(path)
                if not tool:
                    raise FirewallError('%s: no such program (from knockd_iptables/knockd_ip6tables)' % path)
                tools.append(tool)
            script = chains_input(entries, self.running_xtables(family, tools), forget_knockers)
            if not script:
                return 'unchanged'
            if not check:
                self._call([tools[1], '--noflush', '-w'], script, '%s --noflush (door chains)' % os.path.basename(tools[1]))
            return 'changed'
        return self._each(XTABLES, one)


def load_spec(path):
    """The knockd role's chain list (JSON written by the role); FirewallError if unreadable."""
    text = read_file(path)
    if text is None:
        raise FirewallError('%s: no such file' % path)
    try:
        spec = json.loads(text)
    except ValueError as exc:
        raise FirewallError('%s is not JSON: %s' % (path, exc))
    keys = ('chain', 'family', 'binary', 'state')
    if not isinstance(spec, list) or not all(isinstance(e, dict) and all(k in e for k in keys) for e in spec):
        raise FirewallError('%s: expected a list of chains with %s' % (path, ', '.join(keys)))
    for entry in spec:
        if entry['state'] == 'present' and not (isinstance(entry.get('jump'), str) and isinstance(entry.get('static'), list)):
            raise FirewallError('%s: chain %r needs jump and static' % (path, entry['chain']))
        if entry.get('position', 'first') not in ('first', 'last'):
            raise FirewallError('%s: chain %r: position must be first or last' % (path, entry['chain']))
    return spec


USAGE = ('usage: portknock-firewall [--dir DIR] {save [--check] | restore | baseline [--check]}\n'
         '       portknock-firewall chains {apply|start} SPEC [--check]\n')


def main(argv=None, out=None, err=None, run=default_run, which=which):
    """The command line; returns the exit status (0 done, 1 a family failed, 2 usage)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    out = out or sys.stdout
    err = err or sys.stderr
    directory = DEFAULT_DIR
    if argv[:1] == ['--dir'] and len(argv) >= 2:
        directory, argv = argv[1], argv[2:]
    check = '--check' in argv
    words = [word for word in argv if word != '--check']
    firewall = HostFirewall(directory, run, which)
    try:
        if words == ['save']:
            outcome = firewall.save(check)
        elif words == ['restore'] and not check:
            outcome = firewall.restore()
        elif words == ['baseline']:
            outcome = firewall.baseline(check)
        elif len(words) == 3 and words[0] == 'chains' and words[1] in ('apply', 'start'):
            outcome = firewall.chains(load_spec(words[2]), forget_knockers=words[1] == 'start', check=check)
        else:
            err.write(USAGE)
            return 2
    except FirewallError as exc:
        err.write('portknock-firewall: %s\n' % exc)
        return 1
    if words == ['restore']:
        for family in FAMILIES:
            out.write('%s: %s\n' % (family, outcome[family]))
    elif 'changed' in outcome.values():
        out.write('changed\n')
    for family in FAMILIES:
        if family in firewall.errors:
            err.write('portknock-firewall: %s: %s\n' % (family, firewall.errors[family]))
    if firewall.errors:
        err.write('portknock-firewall: FAILED for %s (the other families were %s)\n' % (
            ', '.join(f for f in FAMILIES if f in firewall.errors), 'still applied' if not check else 'checked'))
        return 1
    return 0
