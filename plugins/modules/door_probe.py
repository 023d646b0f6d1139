#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: door_probe
short_description: Prove from outside that a host's doors are shut to strangers and open for the knocker
version_added: 0.1.0
author: portknock.knock contributors (@portknock)
description:
  - Runs on a vantage host (usually the controller, with C(delegate_to)) and probes every present door
    of one target host with real packets from two source addresses of the vantage, a knocker and a
    stranger.
  - "Per door and address: the protected port is closed to the stranger and to the knocker before the
    knock; a wrong-order knock (the steps reversed, sent by the stranger) does not open it; after the
    right knock it opens for the knocker within O(deadline) seconds and stays closed to the stranger;
    it is closed again O(margin) seconds after the door's O(doors[].open_window)."
  - Changes nothing anywhere; sends only the knocks and connection attempts of these checks. In check
    mode it sends nothing and returns the probes it would run.
  - The playbook C(portknock.knock.audit) runs it for a fleet and reports the results.
options:
  host:
    description: Name of the target host, for the report.
    type: str
    required: true
  addresses:
    description:
      - Addresses of the target host to probe. A door is probed on each address of the families its
        C(ip_version) covers.
    type: list
    elements: str
    required: true
  doors:
    description:
      - The site's doors, as in C(portknock_doors) (the fields of P(portknock.knock.recent_knock#module),
        and for an SPA door, C(kind=spa), its keys and C(spa_port)).
        Doors with C(state=absent) are not probed. Sequences and keys are secrets; they are never returned.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Door name.
        type: str
        required: true
      kind:
        description: V(knock) (a sequence) or V(spa) (one fwknop-compatible SPA packet, keys instead of a sequence).
        type: str
        default: knock
        choices: [knock, spa]
      sequence:
        description: Knock sequence (secret). Required for a knock door.
        type: raw
      key_base64:
        description: SPA encryption key, base64 (secret). Required for an SPA door.
        type: str
      hmac_key_base64:
        description: SPA HMAC key, base64 (secret). Required for an SPA door.
        type: str
      hmac_digest_type:
        description: SPA HMAC digest type (fwknop's names, V(sha256) by default).
        type: str
      spa_port:
        description: UDP port of the SPA server (V(62201) by default).
        type: raw
      source:
        description: Accepted for the site door list (access.conf C(SOURCE)); not used by the probe.
        type: raw
      require_source_address:
        description: Accepted for the site door list; not used by the probe (it always claims its own address).
        type: raw
      fw_access_timeout:
        description: The SPA door's C(FW_ACCESS_TIMEOUT), the same as O(doors[].open_window).
        type: raw
      port:
        description: Protected port(s); the first is probed.
        type: raw
        required: true
      step_timeout:
        description: Seconds between two knocks.
        type: raw
      open_window:
        description: Seconds the door stays open (knockd's C(cmd_timeout)); the probe waits it out.
        type: raw
      protocol:
        description: Protocol of the protected port.
        type: str
      ip_version:
        description: V(ipv4), V(ipv6) or V(both).
        type: str
      tcpflags:
        description: Accepted for the site door list; not used by the probe.
        type: raw
      state:
        description: Doors with V(absent) are not probed.
        type: str
        default: present
        choices: [present, absent]
      allow_monotonic:
        description: Accepted for the site door list; not used by the probe.
        type: raw
  enforcer:
    description: What enforces the doors on the host (for the report).
    type: str
    default: unknown
  knocker_source:
    description:
      - Source address of the knocker per family (keys C(ipv4), C(ipv6)). A missing family lets the
        kernel choose the source.
    type: dict
    default: {}
  stranger_source:
    description:
      - Source address of the stranger per family (keys C(ipv4), C(ipv6)). Required for every family
        probed, and different from the knocker's.
    type: dict
    required: true
  deadline:
    description: Seconds the door may take to open after the knock.
    type: float
    default: 5
  margin:
    description: Seconds after the door's window before it must be closed again.
    type: float
    default: 3
  delay:
    description: Milliseconds between two knocks.
    type: int
    default: 20
  connect_timeout:
    description: Seconds one connection attempt waits (a closed door drops, so this is how long "closed" takes).
    type: float
    default: 1
notes:
  - Only TCP protected ports can be probed; doors protecting UDP ports are reported as skipped.
  - An SPA door is probed with SPA packets instead of knocks - the wrong-order check sends one made
    with random keys from the stranger, and a last check (C(replay_stays_closed)) sends the knocker's
    packet again byte for byte after the door closed. Knock doors skip that check.
  - Probing an SPA door needs the Python package C(cryptography) where the probe runs (Debian's
    C(python3-cryptography) on a vantage host; ansible-core already has it on the controller).
'''

EXAMPLES = r'''
- name: Probe this host's doors from the controller
  portknock.knock.door_probe:
    host: "{{ inventory_hostname }}"
    addresses: ["{{ ansible_host }}"]
    doors: "{{ portknock_doors }}"
    enforcer: "{{ portknock_enforcer }}"
    stranger_source:
      ipv4: 10.0.0.250
  delegate_to: localhost
  register: probe
'''

RETURN = r'''
probes:
  description: One entry per door and address, with the checks in the order they ran.
  returned: always
  type: list
  elements: dict
  contains:
    host: {description: The target host., type: str}
    door: {description: The door's name., type: str}
    enforcer: {description: What enforces it., type: str}
    address: {description: The address probed., type: str}
    family: {description: V(ipv4) or V(ipv6)., type: str}
    port: {description: The protected port probed., type: int}
    ok: {description: Every check passed (or was skipped)., type: bool}
    checks:
      description: C(check), C(title), C(ok), C(skipped), C(detail), C(seconds) (time to open).
      type: list
      elements: dict
audit_ok:
  description: Every check of every probe passed.
  returned: always
  type: bool
'''

import threading

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_text

from ..module_utils.door import SPA_KEYS, door_from_dict
from ..module_utils.door_probe import CHECKS, CHECK_TITLES, ProbeError, family_of, probe_door
from ..module_utils.sequence import KnockValueError

DOOR_KEYS = ('name', 'kind', 'sequence', 'port', 'step_timeout', 'open_window', 'protocol', 'ip_version',
             'tcpflags') + SPA_KEYS
OTHER_KEYS = ('hmac_digest_type', 'spa_port', 'source', 'require_source_address', 'fw_access_timeout',
              'step_timeout', 'open_window', 'protocol', 'ip_version', 'tcpflags', 'allow_monotonic')
TEXT_KEYS = ('hmac_digest_type', 'protocol', 'ip_version')


def planned(module):
    """(door, address, family, sources) for every probe, validated; sequences added to no_log."""
    plans = []
    for data in module.params['doors']:
        if not isinstance(data, dict):
            module.fail_json(msg='doors: every door must be a dict, got %s' % type(data).__name__)
        if data.get('state') == 'absent':
            continue
        try:
            door = door_from_dict(dict((k, v) for k, v in data.items() if k in DOOR_KEYS and v is not None))
        except KnockValueError as exc:
            module.fail_json(msg='door %s: %s' % (data.get('name'), to_text(exc)))
        for step in door.sequence:
            module.no_log_values.add(str(step.port))
        families = ('ipv4', 'ipv6') if door.ip_version == 'both' else (door.ip_version,)
        for address in module.params['addresses']:
            family = family_of(address)
            if family not in families:
                continue
            stranger = (module.params['stranger_source'] or {}).get(family)
            knocker = (module.params['knocker_source'] or {}).get(family)
            if not stranger:
                module.fail_json(msg='stranger_source has no %s address: the %s door %s on %s needs one'
                                     % (family, family, door.name, address))
            if stranger == knocker:
                module.fail_json(msg='stranger_source and knocker_source are both %s' % stranger)
            plans.append((door, address, family, knocker, stranger))
    return plans


def run_probe(module, door, address, family, knocker, stranger, out):
    entry = dict(host=module.params['host'], door=door.name, enforcer=module.params['enforcer'],
                 address=address, family=family, port=door.ports[0])
    if door.protocol != 'tcp':
        entry['checks'] = [dict(check=c, title=CHECK_TITLES[c], ok=True, skipped=True, seconds=None,
                                detail='a UDP port cannot be probed by connecting') for c in CHECKS]
    else:
        try:
            entry['checks'] = probe_door(door, address, knocker, stranger, door.open_window,
                                         deadline=module.params['deadline'], margin=module.params['margin'],
                                         delay_ms=module.params['delay'], timeout=module.params['connect_timeout'])
        except ProbeError as exc:
            entry['checks'] = [dict(check='probe', title='probe', ok=False, skipped=False, seconds=None,
                                    detail=to_text(exc))]
        except Exception as exc:   # a probe thread must never vanish: the audit would pass with it missing
            entry['checks'] = [dict(check='probe', title='probe', ok=False, skipped=False, seconds=None,
                                    detail='the probe failed: %s' % type(exc).__name__)]
    entry['ok'] = all(c['ok'] for c in entry['checks'])
    out.append(entry)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            host=dict(type='str', required=True),
            addresses=dict(type='list', elements='str', required=True),
            # only the sequences and keys are secret: the rest (names, ports, windows) is what the report shows
            doors=dict(type='list', elements='dict', required=True, options=dict(
                name=dict(type='str', required=True),
                kind=dict(type='str', default='knock', choices=['knock', 'spa']),
                sequence=dict(type='raw', no_log=True),
                key_base64=dict(type='str', no_log=True),
                hmac_key_base64=dict(type='str', no_log=True),
                port=dict(type='raw', required=True),
                state=dict(type='str', default='present', choices=['present', 'absent']),
                # the other fields of the door list, validated by the door model
                **dict((key, dict(type='str' if key in TEXT_KEYS else 'raw')) for key in OTHER_KEYS)
            )),
            enforcer=dict(type='str', default='unknown'),
            knocker_source=dict(type='dict', default={}),
            stranger_source=dict(type='dict', required=True),
            deadline=dict(type='float', default=5),
            margin=dict(type='float', default=3),
            delay=dict(type='int', default=20),
            connect_timeout=dict(type='float', default=1),
        ),
        supports_check_mode=True,
    )
    plans = planned(module)
    if module.check_mode:
        module.exit_json(changed=False, audit_ok=True, probes=[
            dict(host=module.params['host'], door=d.name, enforcer=module.params['enforcer'], address=a, family=f,
                 port=d.ports[0], ok=True, checks=[dict(check=c, title=CHECK_TITLES[c], ok=True, skipped=True,
                                                        seconds=None, detail='check mode: not probed')
                                                   for c in CHECKS])
            for d, a, f, _k, _s in plans])
    probes, threads = [], []
    for plan in plans:   # doors and families do not disturb each other: probe them at once
        thread = threading.Thread(target=run_probe, args=(module,) + plan + (probes,))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    if len(probes) != len(plans):
        module.fail_json(msg='%d of %d probes did not report: the audit is incomplete' % (len(plans) - len(probes), len(plans)),
                         probes=probes, audit_ok=False)
    probes.sort(key=lambda p: (p['door'], p['family'], p['address']))
    module.exit_json(changed=False, probes=probes, audit_ok=all(p['ok'] for p in probes))


if __name__ == '__main__':
    main()
