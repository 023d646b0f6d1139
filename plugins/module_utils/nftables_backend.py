# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read and apply a door's native nftables table (the ``nftables`` backend).

The table comes from nft_rules.  The live table is read with ``nft -t list
table`` (``-t``: without the addresses currently in the sets) and compared with
the wanted text; a change is one ``nft -f -`` transaction that deletes and
recreates (or only deletes) the door's table.

``run`` is a callable ``run(args, data=None) -> (rc, stdout, stderr)`` and
``which`` returns a binary's path or None.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from . import nft_rules
from .iptables_backend import BackendError

NAME = 'nftables'


class NftablesBackend(object):
    name = NAME

    def __init__(self, run, which, set_size=nft_rules.DEFAULT_SET_SIZE):
        self.run = run
        self.nft = which('nft')
        if not self.nft:
            raise BackendError('no nft binary found on PATH')
        self.set_size = set_size
        self.warnings = []
        rc, out, err = run([self.nft, '--version'])
        self.version = out.strip() if rc == 0 else 'nft'

    def describe(self):
        return '%s (%s, table %s %s)' % (self.name, self.version, nft_rules.TABLE_FAMILY, nft_rules.TABLE_PREFIX + '<name>')

    def live(self, door):
        """{'inet': lines} of the door's table now ([] when it does not exist)."""
        rc, out, err = self.run([self.nft, '-t', 'list', 'table', nft_rules.TABLE_FAMILY, nft_rules.table_name(door)])
        if rc != 0:
            if 'No such file or directory' in err or 'does not exist' in err:
                return {'inet': []}
            raise BackendError('nft list table failed: %s' % (err or out).strip())
        return {'inet': [line for line in out.splitlines() if line.strip()]}

    def wanted(self, door, present):
        if not present:
            return {'inet': []}
        return {'inet': [line for line in nft_rules.table_text(door, self.set_size).splitlines() if line.strip()]}

    def apply(self, door, present, live):
        script = nft_rules.apply_script(door, present, self.set_size)
        rc, out, err = self.run([self.nft, '-f', '-'], data=script)
        if rc != 0:
            raise BackendError('nft -f rejected the door %s (nothing changed): %s' % (door.name, (err or out).strip()))

    @staticmethod
    def as_text(state):
        return '\n'.join(state['inet']) + ('\n' if state['inet'] else '')
