# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""What happens at a host's doors: knocks per step, opens, open sources, refusals (read-only).

Used by the module ``portknock.knock.door_info`` (in AnsiballZ) and by the host-side command
``scripts/portknock-metrics`` (Prometheus text format for node_exporter's textfile
collector, written by the roles' timer).  Per enforcer, what it can tell:

* ``iptables`` (recent_rules): the rule counters of the chains ``PK-<name>``
  (``iptables-save -c``, both families summed).  Step 1: the rule that puts a source in the
  first list; step k >= 2: the rule that moves it from list k-1 to list k; opens: the last
  step's; refusals: knocks on a later step's port by a source not in the list before it
  (wrong order or too slow: xt_recent cannot tell which); connections accepted / refused
  on the protected ports.  Open sources: ``/proc/net/xt_recent/PK_<name>_<last>`` (and
  ``PK6_``), whose ``last_seen`` is in jiffies: the time left needs the current jiffies
  (``/proc/timer_list``, else uptime and HZ) and is ``None`` when neither can be read.
* ``nftables`` (nft_rules): the ``counter`` of each rule of ``table inet portknock_<name>``,
  read the same way, and the elements of the open sets with their ``expires``.
* ``daemon`` (the bundled daemon): its counters file (knockd_daemon/counters.py) and the
  open doors of its state journal (knockd_daemon/actions.py) with their deadlines.
* ``knockd`` (Debian's): what its log holds (``LogFile`` of knockd.conf, else syslog through
  journalctl): ``Stage N`` lines are knocks per step, ``OPEN SESAME`` opens, ``sequence
  timeout`` refusals (too slow); a wrong-order knock is not logged (None).  Open sources: the
  knockers' ACCEPT rules in the door chains ``PK-<name>-KD``, without the time left.

Every door is reported by name with numbers and addresses only: a rule is never quoted (it
holds the knock ports), a parse problem names the door and the file.  ``knock_ports`` lists
the ports seen in the rules and knockd.conf, for the module's ``no_log_values``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import json
import os
import re
import sys
import time

from . import nft_rules
from . import recent_rules
from .door import CHAIN_PREFIX, KNOCKD_CHAIN_SUFFIX
from .firewall_snapshot import default_run, which
from .atomic_file import write_atomic
from .knockd_daemon.actions import read_state_file
from .knockd_conf import KnockdConfError, parse as parse_knockd_conf, secret_ports, semantic
from .sequence import KnockValueError

ENFORCERS = ('iptables', 'nftables', 'knockd', 'daemon')
SERVICES = {'knockd': 'knockd', 'daemon': 'portknock-knockd'}
PROCESSES = {'knockd': '/usr/sbin/knockd', 'daemon': 'portknock-knockd'}
DEFAULT_KNOCKD_CONF = '/etc/knockd.conf'
DEFAULT_DAEMON_DIR = '/run/portknock-knockd'
DAEMON_UNIT_FILE = '/etc/systemd/system/portknock-knockd.service'
XT_RECENT_DIR = '/proc/net/xt_recent'
DEFAULT_HZ = 250          # Debian's kernels (CONFIG_HZ_250); only used when nothing better is found
METRICS_NAME = 'portknock.prom'


class CountersError(Exception):
    """Something could not be read; the message names it (never a rule or a sequence)."""


# ---------------------------------------------------------------------------------------------
# small helpers

def read_text(path):
    """The file's text, or None when it does not exist or cannot be read."""
    try:
        with open(path, 'rb') as handle:
            return handle.read().decode('utf-8', 'replace')
    except (IOError, OSError):
        return None


def empty_door(name, enforcer, steps=0):
    return {'name': name, 'enforcer': enforcer, 'steps': steps, 'knocks': [0] * steps, 'opens': 0,
            'refusals': None, 'refusal_reasons': {}, 'connections': None, 'open_sources': [],
            'open_window': None}


def _refusals_total(door):
    reasons = door['refusal_reasons']
    door['refusals'] = sum(reasons.values()) if reasons else None
    return door


# ---------------------------------------------------------------------------------------------
# iptables: rule counters of the chains PK-<name> (recent_rules)

_SAVE_COUNTERS = re.compile(r'^\[(\d+):(\d+)\]\s+(-A\s+\S+.*)$')
_RECENT = re.compile(r'-m recent --(rcheck|set|remove|update)(?: --seconds (\d+))?(?: --hitcount \d+)? '
                     r'--name (PK6?_)(\w+)_(\d+)\b')


def parse_counted_save(text, table=recent_rules.TABLE):
    """``iptables-save -c -t filter``: (chains, [(packets, rule line)]) of ``table``, in order."""
    chains, rules, in_table = [], [], False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith('*'):
            in_table = line[1:] == table
            continue
        if not in_table or not line or line.startswith('#'):
            continue
        if line.startswith(':') and len(line) > 1:
            chains.append(line[1:].split()[0])
            continue
        match = _SAVE_COUNTERS.match(line)
        if match:
            rules.append((int(match.group(1)), match.group(3)))
        elif line.startswith('-A '):
            rules.append((0, line))      # saved without counters: nothing counted yet
    return chains, rules


def iptables_door_names(chains):
    """The recent_knock doors of a table: chains PK-<name> that have their reset chain PK-<name>-R."""
    names = []
    for chain in chains:
        if chain.startswith(CHAIN_PREFIX) and not chain.endswith(('-R', KNOCKD_CHAIN_SUFFIX)):
            name = chain[len(CHAIN_PREFIX):]
            if name != 'baseline' and chain + '-R' in chains and name not in names:
                names.append(name)
    return names


def iptables_door(name, rules, door=None):
    """Add one family's counters of door ``name`` (rules of parse_counted_save) to ``door``.

    Classifies the rules by their shape (recent_rules.chain_rules), never by their ports.
    """
    chain = CHAIN_PREFIX + name
    reset = chain + '-R'
    door = door or empty_door(name, 'iptables')
    own = [(packets, line) for packets, line in rules if recent_rules.rule_chain(line) == chain]
    steps = 0
    for _packets, line in own:
        for match in _RECENT.finditer(line):
            if match.group(4) == name:
                steps = max(steps, int(match.group(5)))
    if steps > door['steps']:
        door['knocks'] += [0] * (steps - door['steps'])
        door['steps'] = steps
    connections = door['connections'] or {'accepted': 0, 'refused': 0}
    reasons = door['refusal_reasons']
    previous = None
    for packets, line in own:
        recent = [(m.group(1), m.group(2), int(m.group(5))) for m in _RECENT.finditer(line) if m.group(4) == name]
        target = line.rsplit(' -j ', 1)[-1] if ' -j ' in line else ''
        if target == 'ACCEPT':
            connections['accepted'] += packets
            for action, seconds, _k in recent:
                if action == 'rcheck' and seconds:
                    door['open_window'] = int(seconds)
        elif target == reset:
            pass                                   # every knock that neither advanced nor repeated
        elif target == 'DROP':
            sets = [k for action, _s, k in recent if action == 'set']
            if sets:
                k = sets[0]
                if 1 <= k <= door['steps']:
                    door['knocks'][k - 1] += packets
                    if k == door['steps']:
                        door['opens'] += packets
            elif not recent:
                if previous == 'ACCEPT':
                    connections['refused'] += packets     # the protected port's closing DROP
                elif previous == reset:
                    reasons['wrong_order_or_too_slow'] = reasons.get('wrong_order_or_too_slow', 0) + packets
            # a lone rcheck: a retransmitted knock, nothing changes
        previous = target
    door['connections'] = connections
    return _refusals_total(door)


_XT_ENTRY = re.compile(r'^src=(\S+)\s+ttl:\s*\d+\s+last_seen:\s*(\d+)')


def parse_xt_recent(text):
    """[(address, last_seen jiffies)] of a ``/proc/net/xt_recent/<list>`` file."""
    entries = []
    for line in (text or '').splitlines():
        match = _XT_ENTRY.match(line.strip())
        if match:
            try:
                address = str(ipaddress.ip_address(match.group(1)))   # IPv6 is printed in full
            except ValueError:
                continue
            entries.append((address, int(match.group(2))))
    return entries


def jiffies_now(timer_list=None, uptime=None, hz=None):
    """(jiffies now, HZ) from /proc/timer_list, else from /proc/uptime and HZ; (None, None) if unknown.

    On 64-bit kernels jiffies start at 2**32 - 300 * HZ (INITIAL_JIFFIES), so uptime gives
    jiffies once HZ is known, and /proc/timer_list's jiffies with the uptime give HZ.
    """
    current = None
    for line in (timer_list or '').splitlines():
        match = re.match(r'^jiffies:\s*(\d+)', line)
        if match:
            current = int(match.group(1))
            break
    seconds = None
    if uptime:
        try:
            seconds = float(uptime.split()[0])
        except (ValueError, IndexError):
            seconds = None
    if current is not None:
        if hz is None and seconds and seconds > 310:
            guess = (current - 2 ** 32) / (seconds - 300.0)
            hz = min((100, 250, 300, 1000), key=lambda value: abs(value - guess))
        return current, hz or DEFAULT_HZ
    if seconds is None:
        return None, None
    hz = hz or DEFAULT_HZ
    return int(2 ** 32 + (seconds - 300.0) * hz), hz


def xt_open_sources(entries, open_window, now_jiffies, hz, family):
    """The sources of an open list still inside ``open_window``, with the seconds left."""
    found = []
    for address, last_seen in entries:
        left = None
        if now_jiffies is not None and hz and open_window:
            age = (now_jiffies - last_seen) / float(hz)
            left = open_window - age
            if left <= 0:
                continue
            left = round(left, 1)
        found.append({'address': address, 'family': family, 'expires_in': left})
    return found


# ---------------------------------------------------------------------------------------------
# nftables: the counters of table inet portknock_<name> (nft_rules)

_NFT_ADVANCE = re.compile(r'saddr @step(\d+)_v[46] delete @step\1_v[46] \{ ip6? saddr \} add @step(\d+)_v[46] ')
_NFT_ADD = re.compile(r'\badd @step(\d+)_v[46] ')
_NFT_SET = re.compile(r'^set (step(\d+)_v([46])) \{$')
_NFT_TIMEOUT = re.compile(r'^timeout (\S+)$')


def parse_nft_table(text):
    """The door table as ``nft list table`` prints it: ({set: {timeout, elements}}, [(packets, rule)])."""
    sets, rules = {}, []
    current, in_chain, elements = None, False, None
    for raw in (text or '').splitlines():
        line = raw.strip()
        if elements is not None:
            elements += ' ' + line
            if '}' in line:
                sets[current]['elements'] = _nft_elements(elements)
                elements = None
            continue
        match = _NFT_SET.match(line)
        if match:
            current = match.group(1)
            sets[current] = {'step': int(match.group(2)), 'family': 'ipv%s' % match.group(3),
                             'timeout': None, 'elements': []}
            continue
        if line.startswith('chain '):
            in_chain, current = True, None
            continue
        if line == '}':
            current, in_chain = None, False
            continue
        if current is not None:
            timeout = _NFT_TIMEOUT.match(line)
            if timeout:
                sets[current]['timeout'] = nft_rules.nft_seconds(timeout.group(1))
            elif line.startswith('elements = {'):
                elements = line[len('elements = '):]
                if '}' in line:
                    sets[current]['elements'] = _nft_elements(elements)
                    elements = None
            continue
        if in_chain and not line.startswith('type '):
            counter = nft_rules.COUNTER.search(line)
            rules.append((int(counter.group(1)) if counter else None, line))
    return sets, rules


def _nft_elements(text):
    """[(address, seconds left or None)] of an ``elements = { a expires 1s, b timeout 9s expires 3s }``."""
    found = []
    for item in text.strip().strip('{}').split(','):
        words = item.split()
        if not words:
            continue
        left = None
        if 'expires' in words[1:]:
            index = words.index('expires')
            if index + 1 < len(words):
                left = nft_rules.nft_seconds(words[index + 1])
        found.append((words[0], left))
    return found


def nft_door(name, text):
    """The counters and open sources of one door table (``nft list table inet portknock_<name>``)."""
    sets, rules = parse_nft_table(text)
    steps = max([info['step'] for info in sets.values()] or [0])
    door = empty_door(name, 'nftables', steps)
    counted = any(packets is not None for packets, _rule in rules)
    if not counted:
        door['knocks'] = [None] * steps      # a table of an older release: no counter statements
        door['opens'] = None
    else:
        door['connections'] = {'accepted': 0, 'refused': 0}
        door['refusal_reasons'] = {'wrong_order_or_too_slow': 0}
    for packets, rule in rules:
        if packets is None:
            continue
        advance = _NFT_ADVANCE.search(rule)
        if rule.endswith(' accept'):
            door['connections']['accepted'] += packets
        elif advance:
            k = int(advance.group(2))
            if 1 <= k <= steps:
                door['knocks'][k - 1] += packets
        elif ' delete @step' in rule:           # the reset rule of a knock port: start again or refuse
            adds = _NFT_ADD.findall(rule)
            if adds and int(adds[-1]) == 1:
                door['knocks'][0] += packets
            else:
                door['refusal_reasons']['wrong_order_or_too_slow'] += packets
        elif '@step' not in rule:
            door['connections']['refused'] += packets      # the protected port's closing drop
        # a membership test alone: a retransmitted knock
    if counted and steps:
        door['opens'] = door['knocks'][steps - 1]
    for info in sets.values():
        if info['step'] == steps:
            door['open_window'] = int(info['timeout']) if info['timeout'] is not None else None
            door['open_sources'].extend({'address': address, 'family': info['family'],
                                         'expires_in': left} for address, left in info['elements'])
    return _refusals_total(door)


# ---------------------------------------------------------------------------------------------
# the bundled daemon and Debian's knockd

def parse_daemon_counters(text, label='counters file'):
    """{name: door} from the daemon's counters.json; CountersError naming the file if it is damaged."""
    try:
        data = json.loads(text)
    except ValueError:
        raise CountersError('%s is not JSON' % label)
    if not isinstance(data, dict) or not isinstance(data.get('doors'), dict):
        raise CountersError('%s has no doors' % label)
    doors = {}
    for name, entry in sorted(data['doors'].items()):
        if not isinstance(entry, dict):
            raise CountersError('%s: door %s is not an object' % (label, name))
        knocks = entry.get('knocks') or []
        refusals = entry.get('refusals') or {}
        numbers = list(knocks) + [entry.get('opens', 0)] + list(refusals.values())
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
            raise CountersError('%s: door %s has a count that is not a number' % (label, name))
        door = empty_door(str(name), 'daemon', len(knocks))
        door['knocks'] = list(knocks)
        door['opens'] = entry.get('opens', 0)
        door['refusal_reasons'] = dict((str(key), value) for key, value in refusals.items())
        doors[door['name']] = _refusals_total(door)
    return doors


def daemon_open_sources(records, now):
    """{door name: [open source]} from the state journal's open doors (actions.read_state_file)."""
    found = {}
    for record in records:
        try:
            name = str(record['stanza'])
            address = str(record['source'])
            expires = record.get('expires')
            left = round(float(expires) - now, 1) if expires is not None else None
        except (KeyError, TypeError, ValueError):
            continue
        if left is not None and left <= 0:
            continue       # past its deadline: being closed
        family = 'ipv6' if ':' in address else 'ipv4'
        found.setdefault(name, []).append({'address': address, 'family': family, 'expires_in': left})
    return found


_KNOCKD_LINE = re.compile(r'^(?:\[[^\]]*\] )?(?:\S+: )?(\S+): (\S+): (Stage (\d+)|OPEN SESAME|sequence timeout \(stage \d+\))$')


def parse_knockd_log(text, doors):
    """Count knockd's log lines into ``doors`` ({name: door}): Stage N, OPEN SESAME, sequence timeout."""
    for raw in (text or '').splitlines():
        match = _KNOCKD_LINE.match(raw.strip())
        if not match or match.group(2) not in doors:
            continue
        door = doors[match.group(2)]
        what = match.group(3)
        if match.group(4):
            k = int(match.group(4))
            if 1 <= k <= door['steps']:
                door['knocks'][k - 1] += 1
        elif what == 'OPEN SESAME':
            door['opens'] += 1
        else:
            door['refusal_reasons']['too_slow'] = door['refusal_reasons'].get('too_slow', 0) + 1
    for door in doors.values():
        _refusals_total(door)
    return doors


def knockd_chain_sources(rules, name):
    """Knockers' ACCEPT rules in the door chain ``PK-<name>-KD`` (filter/knockd_commands.py): sources."""
    chain = CHAIN_PREFIX + name + KNOCKD_CHAIN_SUFFIX
    found = []
    for _packets, line in rules:
        words = line.split()
        if recent_rules.rule_chain(line) != chain or 'pk-static' in line or '-s' not in words:
            continue
        if words[-2:] != ['-j', 'ACCEPT']:
            continue
        address = words[words.index('-s') + 1].split('/')[0]
        if address not in [item['address'] for item in found]:
            found.append({'address': address, 'family': 'ipv6' if ':' in address else 'ipv4', 'expires_in': None})
    return found


# ---------------------------------------------------------------------------------------------
# reading a host

class DoorInfo(object):
    """Read the doors of this host: ``report()`` -> {'enforcers': [...], 'doors': [...]}."""

    def __init__(self, run=default_run, which=which, knockd_conf=DEFAULT_KNOCKD_CONF, daemon_dir=DEFAULT_DAEMON_DIR,
                 read=read_text, clock=time.time, xt_recent_dir=XT_RECENT_DIR):
        self.run, self.which, self.read, self.clock = run, which, read, clock     # how the host is read
        self.knockd_conf, self.daemon_dir, self.xt_recent_dir = knockd_conf, daemon_dir, xt_recent_dir   # where
        self.knock_ports = set()
        self.warnings = []
        self._saves = None

    # -- tools --
    def _saves_by_family(self):
        """{family: (chains, rules)} of iptables-save -c (the variant recent_knock writes)."""
        if self._saves is not None:
            return self._saves
        self._saves = {}
        iptables = self.which('iptables')
        if not iptables:
            return self._saves
        rc, out, _err = self.run([iptables, '--version'])
        variant = 'nft' if '(nf_tables)' in out else 'legacy'
        for family, base in (('ipv4', 'iptables'), ('ipv6', 'ip6tables')):
            save = self.which('%s-%s-save' % (base, variant)) or self.which('%s-save' % base)
            if not save:
                continue
            rc, out, err = self.run([save, '-c', '-t', recent_rules.TABLE])
            if rc != 0:
                self.warnings.append('%s -c failed (rc %s): its doors are not counted' % (os.path.basename(save), rc))
                continue
            self._saves[family] = parse_counted_save(out)
        return self._saves

    def service_state(self, enforcer):
        """systemctl is-active of the enforcer's unit, else whether its process runs."""
        unit = SERVICES[enforcer]
        systemctl = self.which('systemctl')
        if systemctl:
            rc, out, _err = self.run([systemctl, 'is-active', unit])
            state = out.strip().splitlines()[-1] if out.strip() else ''
            if state in ('active', 'inactive', 'failed', 'activating', 'deactivating', 'reloading'):
                return state
        return 'running' if self._process_runs(PROCESSES[enforcer]) else 'not running'

    @staticmethod
    def _process_runs(needle):
        try:
            pids = [pid for pid in os.listdir('/proc') if pid.isdigit()]
        except OSError:
            return False
        for pid in pids:
            try:
                with open('/proc/%s/cmdline' % pid, 'rb') as handle:
                    words = handle.read().decode('utf-8', 'replace').split('\0')
            except (IOError, OSError):
                continue
            if any(word == needle or word.endswith('/' + needle) for word in words[:3]):
                return True
        return False

    def kernel_hz(self):
        """CONFIG_HZ of the running kernel (/boot/config-<release>), or None."""
        text = self.read('/boot/config-%s' % os.uname()[2]) or ''
        match = re.search(r'^CONFIG_HZ=(\d+)$', text, re.M)
        return int(match.group(1)) if match else None

    # -- enforcers --
    def iptables_doors(self):
        saves = self._saves_by_family()
        doors = {}
        for family in recent_rules.FAMILIES:
            if family not in saves:
                continue
            chains, rules = saves[family]
            for name in iptables_door_names(chains):
                doors[name] = iptables_door(name, rules, doors.get(name))
                self._ports_of(rules, CHAIN_PREFIX + name)
        if doors:
            now, hz = jiffies_now(self.read('/proc/timer_list'), self.read('/proc/uptime'), self.kernel_hz())
            for name, door in doors.items():
                for family in recent_rules.FAMILIES:
                    prefix = recent_rules.LIST_PREFIX[family]
                    path = os.path.join(self.xt_recent_dir, '%s%s_%d' % (prefix, name, door['steps']))
                    entries = parse_xt_recent(self.read(path))
                    door['open_sources'].extend(xt_open_sources(entries, door['open_window'], now, hz, family))
        return [doors[name] for name in sorted(doors)]

    def _ports_of(self, rules, chain):
        """The knock ports of a door chain: its ports but the protected ones (those it accepts)."""
        lines = [line for _packets, line in rules if recent_rules.rule_chain(line) == chain]
        protected = set(port for line in lines if line.endswith(' -j ACCEPT') for port in re.findall(r'--dport (\d+)', line))
        self.knock_ports.update(port for line in lines for port in re.findall(r'--dport (\d+)', line)
                                if port not in protected)

    def nftables_doors(self):
        nft = self.which('nft')
        if not nft:
            return []
        rc, out, _err = self.run([nft, 'list', 'tables'])
        if rc != 0:
            self.warnings.append('nft list tables failed (rc %s): its doors are not counted' % rc)
            return []
        names = sorted(line.split()[2][len(nft_rules.TABLE_PREFIX):] for line in out.splitlines()
                       if len(line.split()) == 3 and line.split()[1] == nft_rules.TABLE_FAMILY
                       and line.split()[2].startswith(nft_rules.TABLE_PREFIX)
                       and line.split()[2] != nft_rules.TABLE_PREFIX + 'baseline')
        doors = []
        for name in names:
            rc, text, _err = self.run([nft, 'list', 'table', nft_rules.TABLE_FAMILY, nft_rules.TABLE_PREFIX + name])
            if rc != 0:
                self.warnings.append('nft list table %s failed (rc %s)' % (nft_rules.TABLE_PREFIX + name, rc))
                continue
            ports = [(line.rstrip().endswith(' accept'), port) for line in text.splitlines()
                     for port in re.findall(r'\b(?:tcp|udp) dport (\d+)', line)]
            protected = set(port for accept, port in ports if accept)
            self.knock_ports.update(port for _accept, port in ports if port not in protected)
            doors.append(nft_door(name, text))
        return doors

    def knockd_stanzas(self):
        """Stanzas of knockd.conf (name -> Stanza) and its options; None without a readable file."""
        text = self.read(self.knockd_conf)
        if text is None:
            return None
        try:
            conf = parse_knockd_conf(text)
            self.knock_ports.update(secret_ports(conf))
            parsed = semantic(conf)
        except (KnockdConfError, KnockValueError) as exc:
            raise CountersError('%s cannot be read: %s' % (self.knockd_conf, exc))
        return parsed

    def knockd_enforcer(self):
        """'daemon', 'knockd' or None: which daemon enforces knockd.conf here."""
        daemon = (os.path.exists(DAEMON_UNIT_FILE)
                  or self.read(os.path.join(self.daemon_dir, 'counters.json')) is not None)
        debian = bool(self.which('knockd'))
        if daemon and debian:
            return 'daemon' if self.service_state('daemon') in ('active', 'running') else 'knockd'
        return 'daemon' if daemon else ('knockd' if debian else None)

    def knockd_doors(self, enforcer, parsed):
        stanzas = parsed['stanzas']
        doors = dict((s.name, empty_door(s.name, enforcer, len(s.sequence or ()))) for s in stanzas)
        cmd_timeouts = dict((s.name, s.cmd_timeout) for s in stanzas)
        if enforcer == 'daemon':
            counters_path = os.path.join(self.daemon_dir, 'counters.json')
            text = self.read(counters_path)
            if text is None:
                self.warnings.append('%s not found: the daemon has not written its counters' % counters_path)
                for door in doors.values():
                    door['knocks'] = [None] * door['steps']
                    door['opens'] = None
            else:
                for name, counted in parse_daemon_counters(text, counters_path).items():
                    if name in doors:
                        counted['steps'] = doors[name]['steps'] or counted['steps']
                        doors[name] = counted
            state_path = os.path.join(self.daemon_dir, 'state.json')
            try:
                records = read_state_file(state_path) if os.path.exists(state_path) else []
            except (IOError, OSError, ValueError):
                self.warnings.append('%s cannot be read: the open doors are not listed' % state_path)
                records = []
            for name, sources in daemon_open_sources(records, self.clock()).items():
                if name in doors:
                    doors[name]['open_sources'] = sources
        else:
            text, where = None, None
            log_file = parsed['options'].get('log_file')
            if log_file:
                text, where = self.read(log_file), log_file
            elif parsed['options'].get('use_syslog') and self.which('journalctl'):
                rc, out, _err = self.run([self.which('journalctl'), '-t', 'knockd', '-o', 'cat', '--no-pager', '-q'])
                text, where = (out if rc == 0 else None), 'the journal (knockd)'
            if text is None:
                self.warnings.append('knockd logs nowhere this module can read (%s): its doors are not counted'
                                     % (where or 'no LogFile, no UseSyslog'))
                for door in doors.values():
                    door['knocks'] = [None] * door['steps']
                    door['opens'] = None
            else:
                parse_knockd_log(text, doors)
            saves = self._saves_by_family()
            for name, door in doors.items():
                for family in recent_rules.FAMILIES:
                    if family in saves:
                        door['open_sources'].extend(knockd_chain_sources(saves[family][1], name))
        for name, door in doors.items():
            door['open_window'] = cmd_timeouts.get(name)
        return [doors[name] for name in sorted(doors)]

    # -- everything --
    def report(self, enforcers=None, names=None):
        """{'enforcers': [{name, up, service, state}], 'doors': [door]} for ``enforcers`` (None: every one found)."""
        wanted = list(enforcers or ENFORCERS)
        unknown = [item for item in wanted if item not in ENFORCERS]
        if unknown:
            raise CountersError('unknown enforcer %s (one of %s)' % (', '.join(map(str, unknown)), ', '.join(ENFORCERS)))
        explicit = enforcers is not None
        found, doors = [], []
        kernel_enforcers = (('iptables', self.iptables_doors, 'kernel (chains PK-<name>)'),
                            ('nftables', self.nftables_doors, 'kernel (tables inet portknock_<name>)'))
        for enforcer, read_doors, service in kernel_enforcers:
            if enforcer not in wanted:
                continue
            kernel = read_doors()
            if kernel or explicit:
                found.append({'name': enforcer, 'up': bool(kernel), 'service': service,
                              'state': 'loaded' if kernel else 'no doors'})
            doors.extend(kernel)
        daemons = [item for item in ('knockd', 'daemon') if item in wanted]
        if daemons:
            parsed = self.knockd_stanzas()
            present = self.knockd_enforcer()
            for enforcer in daemons:
                if not explicit and enforcer != present:
                    continue
                state = self.service_state(enforcer)
                found.append({'name': enforcer, 'up': state in ('active', 'running', 'reloading'),
                              'service': SERVICES[enforcer], 'state': state})
                if parsed is not None and (enforcer == present or explicit):
                    doors.extend(self.knockd_doors(enforcer, parsed))
        if names:
            doors = [door for door in doors if door['name'] in names]
        return {'enforcers': found, 'doors': doors}


# ---------------------------------------------------------------------------------------------
# Prometheus text format (exposition format 0.0.4)

METRICS = (
    ('portknock_door_knocks_total', 'counter', 'Knocks that reached each step of a door (a repeated knock counts once).'),
    ('portknock_door_opens_total', 'counter', 'Complete knock sequences: times the door opened (or was extended).'),
    ('portknock_door_open_sources', 'gauge', 'Sources the door is open to now.'),
    ('portknock_door_refusals_total', 'counter', 'Knock attempts refused (wrong order or too slow, as far as known).'),
    ('portknock_door_connections_total', 'counter', 'New connections to the protected ports, accepted or refused (kernel doors).'),
    ('portknock_enforcer_up', 'gauge', '1 when the enforcer is running (daemon) or its doors are loaded (kernel).'),
    ('portknock_door_info_timestamp_seconds', 'gauge', 'When these counters were read (Unix time).'),
)


def _labels(*pairs):
    """``{door="ssh",enforcer="nftables"}`` from (name, value) pairs, values escaped as the format wants."""
    return '{%s}' % ','.join('%s="%s"' % (key, str(value).replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n'))
                             for key, value in pairs)


def render_metrics(report, now=None):
    """The report as Prometheus text: HELP and TYPE for each family, samples sorted, unknowns left out."""
    samples = dict((name, []) for name, _type, _help in METRICS)
    for door in report['doors']:
        base = (('door', door['name']), ('enforcer', door['enforcer']))
        for step, count in enumerate(door['knocks'] or [], 1):
            if count is not None:
                samples['portknock_door_knocks_total'].append((_labels(*base + (('step', step),)), count))
        if door['opens'] is not None:
            samples['portknock_door_opens_total'].append((_labels(*base), door['opens']))
        samples['portknock_door_open_sources'].append((_labels(*base), len(door['open_sources'])))
        for reason, count in sorted((door['refusal_reasons'] or {}).items()):
            samples['portknock_door_refusals_total'].append((_labels(*base + (('reason', reason),)), count))
        for verdict, count in sorted((door['connections'] or {}).items()):
            samples['portknock_door_connections_total'].append((_labels(*base + (('verdict', verdict),)), count))
    for enforcer in report['enforcers']:
        samples['portknock_enforcer_up'].append((_labels(('enforcer', enforcer['name'])), 1 if enforcer['up'] else 0))
    samples['portknock_door_info_timestamp_seconds'].append(('', round(time.time() if now is None else now, 3)))
    lines = []
    for name, kind, text in METRICS:
        if not samples[name]:
            continue
        lines.append('# HELP %s %s' % (name, text))
        lines.append('# TYPE %s %s' % (name, kind))
        for labels, value in sorted(samples[name]):
            lines.append('%s%s %s' % (name, labels, value))
    return '\n'.join(lines) + '\n'


def write_metrics(path, text):
    """Write ``text`` to ``path`` atomically (the host applier's write: temporary file, fsync, rename), mode 0644."""
    write_atomic(path, text, mode=0o644)


USAGE = ('usage: portknock-metrics [--out FILE] [--json] [--enforcer NAME ...] [--knockd-conf PATH] '
         '[--daemon-dir DIR]\n'
         '  writes the doors\' counters in the Prometheus text format (FILE atomically, else stdout)\n')


def main(argv=None, out=None, err=None, info=None):
    """``portknock-metrics``: 0 written, 1 a problem (named), 2 usage."""
    argv = list(sys.argv[1:] if argv is None else argv)
    out = out or sys.stdout
    err = err or sys.stderr
    options = {'out': None, 'json': False, 'enforcer': [], 'knockd-conf': DEFAULT_KNOCKD_CONF,
               'daemon-dir': DEFAULT_DAEMON_DIR}
    while argv:
        word = argv.pop(0)
        key = word[2:] if word.startswith('--') else None
        if key == 'json':
            options['json'] = True
        elif key in ('out', 'enforcer', 'knockd-conf', 'daemon-dir') and argv:
            value = argv.pop(0)
            if key == 'enforcer':
                options['enforcer'].extend(item for item in value.split(',') if item)
            else:
                options[key] = value
        else:
            err.write(USAGE)
            return 2
    info = info or DoorInfo(knockd_conf=options['knockd-conf'], daemon_dir=options['daemon-dir'])
    try:
        report = info.report(options['enforcer'] or None)
    except CountersError as exc:
        err.write('portknock-metrics: %s\n' % exc)
        return 1
    for warning in info.warnings:
        err.write('portknock-metrics: %s\n' % warning)
    text = (json.dumps(report, indent=2, sort_keys=True) + '\n') if options['json'] else render_metrics(report)
    if options['out']:
        try:
            write_metrics(options['out'], text)
        except (IOError, OSError) as exc:
            err.write('portknock-metrics: cannot write %s: %s\n' % (options['out'], exc.strerror or exc))
            return 1
    else:
        out.write(text)
    return 0
