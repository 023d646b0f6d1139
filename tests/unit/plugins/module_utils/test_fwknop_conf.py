# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""fwknop_conf: the one parser of fwknopd.conf / access.conf (semantic + round trip), and the same
verdict as Debian's fwknopd 2.6.10 (``fwknopd --exit-parse-config``) on good and bad files."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import ipaddress
import os
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.portknock.knock.plugins.module_utils.fwknop_conf import (
    AccessConf, FwknopConfError, FwknopdConf, load_access_conf, load_fwknopd_conf, parse_access_conf,
    parse_fwknopd_conf, secret_values)
from ansible_collections.portknock.knock.plugins.module_utils.sequence import KnockValueError

KEY = base64.b64encode(b'k' * 32).decode()
HMAC = base64.b64encode(b'h' * 64).decode()
GOOD = 'SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n' % (KEY, HMAC)
DEBIAN_FWKNOPD = '/etc/fwknop/fwknopd.conf'
DEBIAN_ACCESS = '/etc/fwknop/access.conf'
FWKNOPD = shutil.which('fwknopd') or ('/usr/sbin/fwknopd' if os.path.exists('/usr/sbin/fwknopd') else None)


def test_defaults_are_fwknopds():
    config = parse_fwknopd_conf('')
    assert (config.pcap_intf, config.pcap_filter, config.spa_port, config.max_spa_packet_age) == (
        'eth0', 'udp port 62201', 62201, 120)
    assert config.enable_digest_persistence and config.enable_spa_packet_aging
    assert config.digest_file == '/run/fwknop/digest.cache' and config.options == {}


def test_fwknopd_conf_values():
    config = parse_fwknopd_conf('PCAP_INTF  ens3;\n  PCAP_FILTER udp dst port 40111 ; comment\n'
                                'MAX_SPA_PACKET_AGE 30\nENABLE_DIGEST_PERSISTENCE N\n'
                                'ENABLE_SPA_PACKET_AGING yes\nFWKNOP_RUN_DIR /var/run/x\n'
                                'DIGEST_FILE $FWKNOP_RUN_DIR/d.cache\n')
    assert (config.pcap_intf, config.spa_port, config.max_spa_packet_age) == ('ens3', 40111, 30)
    assert not config.enable_digest_persistence and config.enable_spa_packet_aging
    assert config.digest_file == '/var/run/x/d.cache'
    assert config.options['PCAP_FILTER'] == 'udp dst port 40111'


@pytest.mark.parametrize('text, needle', [
    ('PCAP_FILTER tcp port 22\n', "1: PCAP_FILTER 'tcp port 22'"),
    ('PCAP_FILTER udp port 22 or udp port 23\n', "PCAP_FILTER 'udp port 22 or udp port 23'"),
    ('PCAP_FILTER udp port 0\n', "PCAP_FILTER 'udp port 0'"),
    ('#c\nNO_SUCH 1\n', "2: unknown key 'NO_SUCH'"),
    ('pcap_intf eth0\n', "unknown key 'pcap_intf'"),
    ('MAX_SPA_PACKET_AGE soon\n', "MAX_SPA_PACKET_AGE 'soon'"),
    ('MAX_SPA_PACKET_AGE 0\n', "MAX_SPA_PACKET_AGE '0'"),
    ('ENABLE_DIGEST_PERSISTENCE maybe\n', "ENABLE_DIGEST_PERSISTENCE 'maybe' is not Y or N"),
    ('PCAP_INTF\n', "'PCAP_INTF' has no value"),
    ('PCAP_INTF eth0\nPCAP_INTF eth1\n', '2: PCAP_INTF given again (first at line 1)'),
    ('PCAP_INTF eth\x000\n', 'control character'),
])
def test_fwknopd_conf_errors_name_line_and_value(text, needle):
    with pytest.raises(FwknopConfError) as info:
        parse_fwknopd_conf(text, '/x/fwknopd.conf')
    assert needle in str(info.value) and str(info.value).startswith('/x/fwknopd.conf')


def test_access_stanzas():
    text = ('# c\nSOURCE 10.0.0.0/8, 192.168.1.7, 172.16.0.0/255.255.0.0, fd00::/64\n'
            '    OPEN_PORTS tcp/22, udp/53;\n    KEY abcdefgh\n    HMAC_KEY_BASE64 %s\n'
            '    HMAC_DIGEST_TYPE SHA512\n    FW_ACCESS_TIMEOUT 9\n    REQUIRE_SOURCE_ADDRESS Y\n\n%s' % (HMAC, GOOD))
    first, second = parse_access_conf(text)
    networks = ('10.0.0.0/8', '192.168.1.7/32', '172.16.0.0/16', 'fd00::/64')
    assert first.source == [ipaddress.ip_network(n) for n in networks]
    assert first.open_ports == [('tcp', 22), ('udp', 53)] and first.key == b'abcdefgh'
    assert first.hmac_key == b'h' * 64 and first.hmac_digest_type == 'sha512'
    assert (first.fw_access_timeout, first.require_source_address, first.line) == (9, True, 2)
    assert second.source == 'ANY' and second.open_ports == [] and second.fw_access_timeout == 30
    assert second.key == b'k' * 32 and not second.require_source_address and second.hmac_digest_type == 'sha256'
    assert KEY not in repr(second) and 'kkkk' not in repr(second)


BAD_ACCESS = [
    ('', 'no SOURCE stanza'),
    ('# only comments\n', 'no SOURCE stanza'),
    ('SOURCE\n' + GOOD, "1: 'SOURCE' has no value"),
    ('source ANY\nKEY_BASE64 %s\n' % KEY, "unknown key 'source'"),
    ('SOURCE 10.0.0.300\nKEY_BASE64 %s\n' % KEY, "'10.0.0.300' is not an address"),
    ('SOURCE ANY\nHMAC_KEY_BASE64 %s\n' % HMAC, 'has no KEY or KEY_BASE64'),
    ('SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n' % (KEY, KEY), 'identical'),
    ('SOURCE ANY\nKEY_BASE64 !!!notb64\n', '2: KEY_BASE64 is not base64'),
    ('SOURCE ANY\nKEY_BASE64 __CHANGEME__\n', "placeholder __CHANGEME__"),
    (GOOD + 'HMAC_DIGEST_TYPE sha999\n', "4: HMAC_DIGEST_TYPE 'sha999'"),
    (GOOD + 'OPEN_PORTS tcp/99999\n', "'tcp/99999' is not tcp/PORT"),
    (GOOD + 'OPEN_PORTS icmp/22\n', "'icmp/22'"),
    (GOOD + 'FW_ACCESS_TIMEOUT abc\n', "FW_ACCESS_TIMEOUT 'abc'"),
    (GOOD + 'REQUIRE_SOURCE_ADDRESS maybe\n', "REQUIRE_SOURCE_ADDRESS 'maybe'"),
    (GOOD + 'NOT_A_KEY 1\n', "4: unknown key 'NOT_A_KEY'"),
    (GOOD + 'OPEN_PORTS tcp/22\nOPEN_PORTS tcp/23\n', 'OPEN_PORTS given again'),
    ('KEY_BASE64 %s\n' % KEY + GOOD, 'before the first SOURCE'),
    (GOOD + GOOD.replace('ANY', 'any'), "SOURCE 'any' given again (first at line 1)"),
    (GOOD + 'ENCRYPTION_MODE ECB\n', "ENCRYPTION_MODE 'ECB' is not supported"),
    ('%include /etc/fwknop/more.conf\n' + GOOD, "'%include' is not supported"),
    (GOOD + 'KEY abc\n', 'KEY and KEY_BASE64 both given'),
]


@pytest.mark.parametrize('text, needle', BAD_ACCESS)
def test_access_errors_name_line_and_value_never_the_key(text, needle):
    with pytest.raises(FwknopConfError) as info:
        parse_access_conf(text, '/x/access.conf')
    message = str(info.value)
    assert needle in message and message.startswith('/x/access.conf')
    assert KEY not in message and HMAC not in message


def test_plain_key_never_in_errors():
    with pytest.raises(FwknopConfError) as info:
        parse_access_conf('SOURCE ANY\nKEY %s\n' % ('s3cret' * 10))
    assert 's3cret' not in str(info.value) and 'KEY must be 1 to 32 bytes' in str(info.value)


def test_load_errors_name_the_path(tmp_path):
    with pytest.raises(FwknopConfError) as info:
        load_access_conf(str(tmp_path / 'missing.conf'))
    assert str(tmp_path / 'missing.conf') in str(info.value)
    path = tmp_path / 'bin.conf'
    path.write_bytes(b'SOURCE ANY\n\xff\xfe\n')
    with pytest.raises(FwknopConfError) as info:
        load_fwknopd_conf(str(path))
    assert 'not UTF-8' in str(info.value) and str(path) in str(info.value)
    path.write_text(GOOD)
    assert load_access_conf(str(path))[0].source == 'ANY'


FUZZ_LINES = GOOD.splitlines(True) + ['OPEN_PORTS tcp/22\n', '#x\n', '\n', ';\n', 'FW_ACCESS_TIMEOUT 99999999999\n',
                                      'KEY \x00\n', 'SOURCE ::/0\n', 'PCAP_FILTER udp port 1\n']


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300),
                 st.integers(0, len(GOOD)).map(lambda n: GOOD[:n]),
                 st.lists(st.sampled_from(FUZZ_LINES), max_size=12).map(''.join),
                 st.none(), st.integers(), st.lists(st.text(max_size=3), max_size=3)))
def test_fuzz_only_own_error(data):
    for call in (parse_access_conf, parse_fwknopd_conf, AccessConf, FwknopdConf, secret_values):
        try:
            call(data)
        except FwknopConfError as error:
            assert str(error)
        assert isinstance(FwknopConfError('x'), KnockValueError)


# -- round trip ---------------------------------------------------------------------------------

ACCESS = '''# header comment

SOURCE              10.0.0.0/8
    OPEN_PORTS      tcp/22 ; trailing comment
    KEY_BASE64      %s
    HMAC_KEY_BASE64 %s

# between
SOURCE ANY
KEY_BASE64 %s
''' % (KEY, HMAC, KEY)


def test_round_trip_untouched_is_byte_for_byte():
    for text in (ACCESS, ACCESS.replace('\n', '\r\n'), ACCESS.rstrip('\n'), ''):
        assert AccessConf(text).render() == text
        assert FwknopdConf(text).render() == text


def test_edit_one_stanza_keeps_the_rest():
    conf = AccessConf(ACCESS)
    assert conf.set_stanza('10.0.0.0/8', {'OPEN_PORTS': 'tcp/22, udp/53', 'FW_ACCESS_TIMEOUT': '15'}) == [
        'OPEN_PORTS', 'FW_ACCESS_TIMEOUT']
    text = conf.render()
    assert '    OPEN_PORTS      tcp/22, udp/53 ; trailing comment\n' in text
    assert '    FW_ACCESS_TIMEOUT   15\n\n# between\n' in text
    assert text.replace('tcp/22, udp/53', 'tcp/22').replace('    FW_ACCESS_TIMEOUT   15\n', '') == ACCESS
    assert conf.set_stanza('10.0.0.0/8', {'FW_ACCESS_TIMEOUT': None}) == ['FW_ACCESS_TIMEOUT']
    assert parse_access_conf(conf.render())[0].open_ports == [('tcp', 22), ('udp', 53)]


def test_add_and_remove_stanza():
    conf = AccessConf(ACCESS)
    assert conf.set_stanza('192.168.7.0/24', {'KEY_BASE64': KEY, 'HMAC_KEY_BASE64': HMAC})[0] == 'SOURCE'
    assert conf.sources() == ['10.0.0.0/8', 'ANY', '192.168.7.0/24']
    assert [s.source_text for s in parse_access_conf(conf.render())] == conf.sources()
    assert conf.remove_stanza('192.168.7.0/24') and conf.render() == ACCESS
    assert conf.remove_stanza('any') and not conf.remove_stanza('ANY')
    assert conf.render() == ACCESS[:ACCESS.index('SOURCE ANY')]
    assert conf.remove_stanza('10.0.0.0/8')
    assert conf.render() == '# header comment\n\n# between\n'


def test_set_stanza_refuses_bad_values_masking_keys():
    conf = AccessConf(ACCESS)
    for source, values, needle in [
            ('ANY', {'KEY_BASE64': KEY + '; x'}, 'KEY_BASE64 (value hidden)'),
            ('ANY', {'NOPE': '1'}, "unknown key 'NOPE'"),
            ('ANY', {'OPEN_PORTS': 'tcp/22\nKEY x'}, "OPEN_PORTS 'tcp/22\\nKEY x'"),
            ('10.0.0.300', {}, "'10.0.0.300'")]:
        with pytest.raises(FwknopConfError) as info:
            conf.set_stanza(source, values)
        assert needle in str(info.value) and KEY not in str(info.value)
    assert conf.render() == ACCESS


def test_fwknopd_set_option_under_its_example():
    text = '# c\n#PCAP_INTF                   eth0;\n\nMAX_SPA_PACKET_AGE 60\n'
    conf = FwknopdConf(text)
    assert conf.set_option('PCAP_INTF', 'ens3') and not conf.set_option('PCAP_INTF', 'ens3')
    assert conf.set_option('MAX_SPA_PACKET_AGE', '90') and conf.set_option('ENABLE_PCAP_PROMISC', 'N')
    assert conf.render() == ('# c\n#PCAP_INTF                   eth0;\nPCAP_INTF                   ens3;\n\n'
                             'MAX_SPA_PACKET_AGE 90\nENABLE_PCAP_PROMISC         N;\n')
    assert conf.remove_option('ENABLE_PCAP_PROMISC') and not conf.remove_option('ENABLE_PCAP_PROMISC')
    with pytest.raises(FwknopConfError):
        conf.set_option('NOT_A_KEY', 'x')
    assert parse_fwknopd_conf(conf.render()).pcap_intf == 'ens3'


def test_secret_values_of_invalid_text():
    assert secret_values('SOURCE\nKEY plain\nBOGUS\nHMAC_KEY_BASE64 %s ; c\n' % HMAC) == ['plain', HMAC]


# -- Debian's shipped files and Debian's fwknopd itself ----------------------------------------

@pytest.mark.skipif(not os.access(DEBIAN_FWKNOPD, os.R_OK), reason="Debian's fwknopd.conf is not here")
def test_debian_shipped_fwknopd_conf_parses_and_round_trips():
    with open(DEBIAN_FWKNOPD) as handle:
        text = handle.read()
    config = parse_fwknopd_conf(text, DEBIAN_FWKNOPD)
    assert config.spa_port == 62201 and config.pcap_intf == 'eth0'
    assert FwknopdConf(text).render() == text


@pytest.mark.skipif(not os.access(DEBIAN_ACCESS, os.R_OK), reason="Debian's access.conf is not here")
def test_debian_shipped_access_conf_round_trips_and_its_template_is_named():
    with open(DEBIAN_ACCESS) as handle:
        text = handle.read()
    assert AccessConf(text).render() == text
    # the template's keys are __CHANGEME__: fwknopd refuses it too (see below); with keys it parses
    with pytest.raises(FwknopConfError) as info:
        parse_access_conf(text, DEBIAN_ACCESS)
    assert '__CHANGEME__' in str(info.value)
    filled = text.replace('__CHANGEME__', KEY, 1).replace('__CHANGEME__', HMAC, 1)
    assert parse_access_conf(filled)[0].source == 'ANY'


def fwknopd_accepts(tmp_path, access_text, conf_text=None):
    conf = tmp_path / 'fwknopd.conf'
    access = tmp_path / 'access.conf'
    if conf_text is None:
        with open(DEBIAN_FWKNOPD) as handle:
            conf_text = handle.read()
    conf.write_text(conf_text)
    access.write_text(access_text)
    os.chmod(str(conf), 0o600)
    os.chmod(str(access), 0o600)
    res = subprocess.run([FWKNOPD, '-c', str(conf), '-a', str(access), '--exit-parse-config', '-f'],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=30,
                         check=False)
    return res.returncode == 0, res.stdout


needs_fwknopd = pytest.mark.skipif(FWKNOPD is None or not os.access(DEBIAN_FWKNOPD, os.R_OK) or os.geteuid() != 0,
                                   reason="Debian's fwknopd (fwknop-server) is not installed here")
ACCEPTED = [
    GOOD,
    ACCESS,
    'SOURCE 10.0.0.0/8, 192.168.1.1\nOPEN_PORTS tcp/22, udp/53\nKEY abcdefgh\nHMAC_KEY %s\n'
    'HMAC_DIGEST_TYPE sha512;x\nFW_ACCESS_TIMEOUT 5\nREQUIRE_SOURCE_ADDRESS Y\n' % ('z' * 40),
    'SOURCE 10.0.0.0/255.0.0.0\n  KEY_BASE64 %s\nENCRYPTION_MODE CBC\n' % KEY,
]


@needs_fwknopd
@pytest.mark.parametrize('text', ACCEPTED)
def test_accepted_here_accepted_by_fwknopd(tmp_path, text):
    parse_access_conf(text)
    ok, output = fwknopd_accepts(tmp_path, text)
    assert ok, output


@needs_fwknopd
@pytest.mark.parametrize('text, needle', [item for item in BAD_ACCESS if not any(
    lax in item[1] for lax in ('unknown key', 'FW_ACCESS_TIMEOUT', 'REQUIRE_SOURCE_ADDRESS', 'given again',
                               'before the first', 'ECB', '%include', 'both given'))])
def test_refused_by_fwknopd_refused_here(tmp_path, text, needle):
    ok, output = fwknopd_accepts(tmp_path, text)
    assert not ok, output
    with pytest.raises(FwknopConfError):
        parse_access_conf(text)


@needs_fwknopd
def test_fwknopd_conf_accepted_by_both(tmp_path):
    conf = FwknopdConf(open(DEBIAN_FWKNOPD).read())
    for key, value in (('PCAP_INTF', 'lo'), ('PCAP_FILTER', 'udp port 40111'), ('MAX_SPA_PACKET_AGE', '60'),
                       ('ENABLE_DIGEST_PERSISTENCE', 'Y')):
        conf.set_option(key, value)
    assert parse_fwknopd_conf(conf.render()).spa_port == 40111
    ok, output = fwknopd_accepts(tmp_path, GOOD, conf.render())
    assert ok, output
