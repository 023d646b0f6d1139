# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""Read and apply a door's native nftables table (the ``nftables`` backend).

The table comes from nft_rules.  The live tables are read as ``nft -a -t list
ruleset`` prints them (``-t``: without the addresses currently in the sets; read
table by table in one ``nft -i``, see ``_list_tables_one_by_one``) and compared with
the wanted text; a change is one ``nft -f -`` transaction that deletes and
recreates (or only deletes) the door's table.

The door fails closed (nft_rules: it marks what it accepts), and a door that
cannot open is an error, not a success: the whole ruleset (``nft -a -t list
ruleset``) is read as well, and a base chain of the host on the input hook that
would drop what the door accepts (the seed's iptables ``INPUT`` policy DROP on
iptables-nft, a Debian ``nftables.conf`` with ``policy drop``) makes ``wanted``
raise, unless ``integrate_input_chain`` is on: then the door owns one rule at
the top of each such chain (``... accept comment "portknock_<name>"``, state
key ``host``), applied in the same ``nft -f`` transaction as the table and
removed with it.

``run`` is a callable ``run(args, data=None) -> (rc, stdout, stderr)`` and
``which`` returns a binary's path or None.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from . import nft_rules
from .firewall_errors import BackendError

NAME = 'nftables'


class NftablesBackend(object):
    name = NAME

    def __init__(self, run, which, set_size=nft_rules.DEFAULT_SET_SIZE, integrate_input_chain=False):
        self.run = run
        self.integrate = integrate_input_chain
        self.set_size = set_size
        self._options = {}        # door name -> (set_size, integrate_input_chain) when not the defaults
        self._chains = None
        self._host_live = {}      # door name -> [(chain, text, handle)]
        self._host_wanted = {}    # door name -> [(chain, text)]
        self.nft = which('nft')
        if not self.nft:
            raise BackendError('no nft binary found on PATH')
        self.warnings = []
        rc, out, err = run([self.nft, '--version'])
        self.version = out.strip() if rc == 0 else 'nft'

    def configure(self, door, set_size=None, integrate_input_chain=None):
        """Per-door options (the ``doors`` form of the module); None keeps the backend's default."""
        self._options[door.name] = (self.set_size if set_size is None else set_size,
                                    self.integrate if integrate_input_chain is None else integrate_input_chain)

    def _option(self, door):
        return self._options.get(door.name, (self.set_size, self.integrate))

    def describe(self):
        return '%s (%s, table %s %s)' % (self.name, self.version, nft_rules.TABLE_FAMILY, nft_rules.TABLE_PREFIX + '<name>')

    def _read_ruleset(self):
        out = self._list_tables_one_by_one()
        if out is None:
            rc, out, err = self.run([self.nft, '-a', '-t', 'list', 'ruleset'])
            if rc != 0:
                raise BackendError('nft list ruleset failed: %s' % (err or out).strip())
        self._chains = nft_rules.parse_ruleset(out)
        return out

    def _list_tables_one_by_one(self):
        """The text of ``nft -a -t list ruleset``, read in two cheap calls: the table names
        (``nft -a list chains``, no rules), then every table with ``list table`` commands on the
        standard input of ONE ``nft -a -t -i``.  nft 1.0.x builds its cache of every rule of every
        table for ``list ruleset`` in time that grows faster than the number of rules; ``list
        table`` caches only that table (50 doors: about 7 times less CPU).  None when this way
        fails in any way (a table gone in between, an nft without ``-i``): the caller reads the
        whole ruleset then."""
        rc, out, err = self.run([self.nft, '-a', 'list', 'chains'])
        if rc != 0 or err.strip():
            return None
        names = nft_rules.listed_tables(out)
        if names is None:
            return None
        if not names:
            return ''
        rc, out, err = self.run([self.nft, '-a', '-t', '-i'], data=''.join('list table %s\n' % name for name in names))
        if rc != 0 or err.strip() or nft_rules.listed_tables(out) != names:
            return None
        return out

    def live(self, door):
        """{'inet': lines} of the door's table now ([] when it does not exist), and under 'host'
        the door's own rules in the host's chains (only when there are any)."""
        return self.live_many([door])[door.name]

    def live_many(self, doors):
        """{door name: state} of ``doors`` from one read of the ruleset (``nft -a -t list ruleset``:
        the tables as ``nft -t list table`` prints them, plus handles, which are left out)."""
        tables = nft_rules.table_listings(self._read_ruleset())
        state = {}
        for door in doors:
            text = tables.get('%s %s' % (nft_rules.TABLE_FAMILY, nft_rules.table_name(door)), '')
            one = {'inet': [line for line in nft_rules.stateless(text).splitlines() if line.strip()]}   # counted packets are no change
            self._host_live[door.name] = nft_rules.integration_live(self._chains, door)
            if self._host_live[door.name]:
                one['host'] = [text for _chain, text, _handle in self._host_live[door.name]]
            state[door.name] = one
        return state

    def wanted(self, door, present):
        """The door's table, and the host rules it needs; BackendError when it could never open."""
        self._host_wanted[door.name] = []
        if not present:
            return {'inet': []}
        if self._chains is None:
            self._read_ruleset()
        set_size, integrate = self._option(door)
        blocks = nft_rules.blocking_chains(self._chains, door)
        message = nft_rules.cannot_open_message(door, blocks, integrate)
        if message:
            raise BackendError(message)
        if integrate:
            for block in blocks:
                if not nft_rules.integrable(block.chain):
                    raise BackendError('cannot integrate into the input chain %s (a name nft would need quoted): '
                                       'add "%s" to it yourself' % (nft_rules.chain_label(block.chain),
                                                                    nft_rules.ACCEPT_MARKED))
            self._host_wanted[door.name] = nft_rules.integration_wanted(blocks, door)
        state = {'inet': [line for line in nft_rules.table_text(door, set_size).splitlines() if line.strip()]}
        if self._host_wanted[door.name]:
            state['host'] = [text for _chain, text in self._host_wanted[door.name]]
        return state

    def _script(self, door, wanted, live):
        script = ''
        if live.get('inet') != wanted['inet']:
            script = nft_rules.apply_script(door, bool(wanted['inet']), self._option(door)[0])
        host_live = self._host_live.get(door.name, [])
        host_wanted = self._host_wanted.get(door.name, [])
        if [text for _chain, text, _handle in host_live] != [text for _chain, text in host_wanted]:
            script += nft_rules.host_script(
                [(chain, handle) for chain, _text, handle in host_live],
                [(chain, nft_rules.integration_rule(door)) for chain, _text in host_wanted])
        return script

    def apply(self, door, wanted, live):
        """Take one door from ``live`` to ``wanted`` (a ``wanted()`` result of this backend; a bool
        ``present`` is accepted as well) in one ``nft -f``."""
        if isinstance(wanted, bool):
            wanted = self.wanted(door, wanted)
        self.apply_many([(door, wanted, live)])

    def apply_many(self, items):
        """Every door of ``items`` (``(door, wanted, live)``, ``wanted`` from this backend) in ONE
        ``nft -f`` transaction."""
        parts = [(door, self._script(door, wanted, live)) for door, wanted, live in items]
        parts = [(door, script) for door, script in parts if script]
        if not parts:
            return
        rc, out, err = self.run([self.nft, '-f', '-'], data=''.join(script for _door, script in parts))
        if rc != 0:
            raise BackendError('nft -f rejected the door%s %s (nothing changed): %s' % (
                's' if len(parts) > 1 else '', ', '.join(door.name for door, _s in parts), (err or out).strip()))

    @staticmethod
    def as_text(state):
        lines = state['inet'] + ['# in a host chain: ' + text for text in state.get('host', [])]
        return '\n'.join(lines) + ('\n' if lines else '')
