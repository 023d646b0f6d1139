# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""fwknop_access (module_utils): parameters -> validated edits; equivalent values change nothing."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64

import pytest

from ansible_collections.portknock.knock.plugins.module_utils.fwknop_access import (
    access_edit, access_parser, access_values, fwknopd_edit, fwknopd_parser, fwknopd_values, secrets)
from ansible_collections.portknock.knock.plugins.module_utils.fwknop_conf import (
    AccessConf, FwknopConfError, FwknopdConf, parse_access_conf)

KEY = base64.b64encode(b'e' * 32).decode()
HMAC = base64.b64encode(b'm' * 64).decode()
TEMPLATE = 'SOURCE ANY\nKEY_BASE64 __CHANGEME__\nHMAC_KEY_BASE64 __CHANGEME__\n'


def params(**extra):
    base = dict(source='10.0.0.0/8', state='present', key_base64=KEY, hmac_key_base64=HMAC,
                open_ports=['tcp/22', 'UDP/53'], hmac_digest_type='SHA256', fw_access_timeout=30,
                require_source_address=True)
    base.update(extra)
    return base


def test_values_are_fwknopd_text():
    assert access_values(params()) == dict(
        KEY_BASE64=KEY, KEY=None, HMAC_KEY_BASE64=HMAC, HMAC_KEY=None, HMAC_DIGEST_TYPE='sha256',
        OPEN_PORTS='tcp/22, udp/53', FW_ACCESS_TIMEOUT='30', REQUIRE_SOURCE_ADDRESS='Y', REQUIRE_SOURCE=None)
    assert access_values(dict(source='ANY', open_ports=[]))['OPEN_PORTS'] is None


def test_edit_is_idempotent_for_equivalent_values():
    conf = AccessConf(TEMPLATE)
    assert access_edit(params())(conf)[0] == 'SOURCE'
    text = conf.render()
    for again in (params(), params(open_ports='tcp/22,udp/53', hmac_digest_type='sha256',
                                   key_base64=KEY.rstrip('='), require_source_address=True)):
        conf = AccessConf(text)
        assert access_edit(again)(conf) == [] and conf.render() == text


@pytest.mark.parametrize('extra, needle', [
    (dict(source='not-an-ip'), "'not-an-ip'"), (dict(source=''), "source ''"),
    (dict(open_ports=['sctp/1']), "'sctp/1'"), (dict(open_ports=7), 'open_ports 7'),
    (dict(key_base64='***'), 'key_base64 is not base64'), (dict(hmac_key_base64=KEY), 'identical'),
    (dict(fw_access_timeout=True), 'fw_access_timeout True'), (dict(hmac_digest_type='crc32'), "'crc32'"),
])
def test_bad_parameters_name_the_value_not_the_key(extra, needle):
    with pytest.raises(FwknopConfError) as info:
        access_edit(params(**extra))
    assert needle in str(info.value) and KEY not in str(info.value)


def test_absent():
    conf = AccessConf(TEMPLATE)
    assert access_edit(dict(source='any', state='absent'))(conf) == ['SOURCE'] and conf.render() == ''
    assert access_edit(dict(source='ANY', state='absent'))(conf) == []


def test_template_tolerated_by_the_module_only():
    assert access_parser('/x')(TEMPLATE).render() == TEMPLATE
    assert access_parser('/x')('') is not None
    with pytest.raises(FwknopConfError):
        access_parser('/x')(TEMPLATE + 'BOGUS 1\n')
    with pytest.raises(FwknopConfError):
        parse_access_conf(TEMPLATE)
    assert secrets(TEMPLATE) == [] and secrets('SOURCE ANY\nKEY abc\n') == ['abc']


def test_fwknopd_values_and_edit():
    values = fwknopd_values(dict(PCAP_INTF='eth1', MAX_SPA_PACKET_AGE=60, ENABLE_DIGEST_PERSISTENCE=True,
                                 ENABLE_PCAP_PROMISC=None))
    assert values == dict(PCAP_INTF='eth1', MAX_SPA_PACKET_AGE='60', ENABLE_DIGEST_PERSISTENCE='Y',
                          ENABLE_PCAP_PROMISC=None)
    conf = FwknopdConf('ENABLE_DIGEST_PERSISTENCE yes\nENABLE_PCAP_PROMISC Y\n')
    assert fwknopd_edit(values)(conf) == ['ENABLE_PCAP_PROMISC', 'MAX_SPA_PACKET_AGE', 'PCAP_INTF']
    assert fwknopd_edit(values)(conf) == []
    assert fwknopd_parser('/x')(conf.render()).get_options()['PCAP_INTF'] == 'eth1'
    assert fwknopd_values(None) is None
    for bad in ({'NOPE': 1}, {'PCAP_INTF': ['eth0']}, {'PCAP_INTF': 'a;b'}, 'PCAP_INTF=eth0'):
        with pytest.raises(FwknopConfError):
            fwknopd_values(bad)
