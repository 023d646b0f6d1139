# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE to the collection portknock.knock: not a public API, may change without notice
"""Read and apply a door's iptables rules on a host (the ``iptables`` backend).

The rules come from recent_rules.  Which iptables is written is decided by the
host's own ``iptables`` (the first one on PATH, like the admin's shell):

* ``iptables --version`` says ``(nf_tables)``: ``iptables-nft-save`` /
  ``iptables-nft-restore --noflush -w`` (one transaction per family).  Legacy
  tables are never written on such a host (python-iptables would build a
  hidden parallel rule set there).
* it says ``(legacy)`` (or has no tag, iptables < 1.8): read with
  ``iptables-legacy-save``, write with python-iptables (one ``commit()`` per
  family) when ``iptc`` is importable, else ``iptables-legacy-restore
  --noflush -w`` (the module warns).

``run`` is a callable ``run(args, data=None) -> (rc, stdout, stderr)``
(AnsibleModule.run_command fits) and ``which`` returns a binary's path or None.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from . import iptc_rules
from .firewall_errors import BackendError  # noqa: F401 (re-exported: older callers import it from here)
from . import recent_rules
from .recent_rules import FAMILIES

BINARY = {'ipv4': 'iptables', 'ipv6': 'ip6tables'}
NAME = 'iptables'


def variant_of(version_text):
    """'nf_tables' or 'legacy' from the output of ``iptables --version``."""
    return 'nf_tables' if '(nf_tables)' in version_text else 'legacy'


class IptablesBackend(object):
    name = NAME

    def __init__(self, run, which, use_iptc=True):
        self.run = run
        self.which = which
        iptables = which('iptables')
        if not iptables:
            raise BackendError('no iptables binary found on PATH')
        rc, out, err = run([iptables, '--version'])
        if rc != 0:
            raise BackendError('%s --version failed: %s' % (iptables, (err or out).strip()))
        self.version = out.strip()
        self.variant = variant_of(out)
        self.iptc = iptc_rules.import_iptc() if (use_iptc and self.variant == 'legacy') else None
        self.warnings = []
        if self.variant == 'legacy' and self.iptc is None:
            self.warnings.append('python-iptables (iptc) is not importable by %s: legacy tables are written with '
                                 'iptables-legacy-restore --noflush instead (install python3-iptables)' % 'this Python')
        self.tool = 'python-iptables' if self.iptc else ('%s-restore' % self._prefix('ipv4'))

    def _prefix(self, family):
        base = BINARY[family]
        flavoured = '%s-%s' % (base, 'nft' if self.variant == 'nf_tables' else 'legacy')
        return flavoured if self.which(flavoured + '-save') else base

    def _binary(self, family, what):
        path = self.which('%s-%s' % (self._prefix(family), what))
        if not path:
            raise BackendError('no %s-%s binary found' % (BINARY[family], what))
        return path

    def describe(self):
        return '%s (%s, written with %s)' % (self.name, self.version, self.tool)

    def live(self, door):
        """{family: lines} of what the door owns now (recent_rules.live_state)."""
        return self.live_many([door])[door.name]

    def live_many(self, doors):
        """{door name: {family: lines}}, one ``iptables-save`` per family for all ``doors``."""
        state = dict((door.name, {}) for door in doors)
        for family in FAMILIES:
            save = self._binary(family, 'save')
            rc, out, err = self.run([save, '-t', recent_rules.TABLE])
            if rc != 0:
                raise BackendError('%s failed: %s' % (save, (err or out).strip()))
            for name, lines in recent_rules.live_states(out, doors).items():
                state[name][family] = lines
        return state

    def wanted(self, door, present):
        return dict((family, recent_rules.wanted_state(door, family, present)) for family in FAMILIES)

    def apply(self, door, wanted, live):
        """Take each family of one door from ``live`` to ``wanted`` (a ``wanted()`` result; a bool
        ``present`` is accepted as well), one atomic transaction per family."""
        if isinstance(wanted, bool):
            wanted = self.wanted(door, wanted)
        self.apply_many([(door, wanted, live)])

    def apply_many(self, items):
        """Take every door of ``items`` (``(door, wanted, live)``) to its wanted lines: one atomic
        ``iptables-restore --noflush`` per family for all of them (python-iptables: one ``commit()``
        per family for all of them).  Jumps the doors lack are inserted so that they read in list order."""
        for family in FAMILIES:
            todo = [(door, wanted, live) for door, wanted, live in items if wanted[family] != live[family]]
            if not todo:
                continue
            if self.iptc is not None:
                specs = [(recent_rules.owned_chains(door),
                          recent_rules.chain_rules(door, family) if wanted[family] else [],
                          recent_rules.chain_name(door), bool(wanted[family])) for door, wanted, _live in todo]
                try:
                    iptc_rules.write_doors(self.iptc, family, recent_rules.HOOK_CHAIN, specs)
                except Exception as exc:
                    raise BackendError('python-iptables could not write the %s door%s %s (its %s rules were left '
                                       'as they were): %s' % (family, 's' if len(todo) > 1 else '',
                                                              ', '.join(door.name for door, _w, _l in todo), family, exc))
                continue
            # -I INPUT 1 puts each jump on top: the last door's first, so the list's first ends on top
            bodies = [recent_rules.restore_script(door, family, live[family], bool(wanted[family]))
                      for door, wanted, live in reversed(todo)]
            script = recent_rules.merge_restore_scripts(bodies)
            restore = self._binary(family, 'restore')
            rc, out, err = self.run([restore, '--noflush', '-w'], data=script)
            if rc != 0:
                raise BackendError('%s --noflush rejected the door%s %s (its %s rules were left as they were): %s' % (
                    restore, 's' if len(todo) > 1 else '', ', '.join(door.name for door, _w, _l in todo), family,
                    (err or out).strip()))

    @staticmethod
    def as_text(state):
        out = []
        for family in FAMILIES:
            out.append('# %s %s' % (family, BINARY[family]))
            out.extend(state[family])
        return '\n'.join(out) + '\n'
