# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""fwknop_access in this process (utils.run_module): the real exit_json/fail_json and no_log masking."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import os
import stat

import pytest

from ansible_collections.portknock.knock.plugins.module_utils.fwknop_conf import (
    parse_access_conf, parse_fwknopd_conf)
from ansible_collections.portknock.knock.plugins.modules import fwknop_access

from .utils import module_result

KEY = base64.b64encode(b'unit-test-enc-key-0123456789abcd').decode()        # 32 bytes
HMAC = base64.b64encode(b'unit-test-hmac-key-' + b'h' * 45).decode()        # 64 bytes
KEY2 = base64.b64encode(b'another-unit-test-encryption-ke').decode()
SECRETS = (KEY, HMAC, KEY2, KEY.rstrip('='), HMAC.rstrip('='))

DEBIAN_ACCESS = '/etc/fwknop/access.conf'
DEBIAN_FWKNOPD = '/etc/fwknop/fwknopd.conf'
TEMPLATE = '''# access.conf (comments kept)

SOURCE              ANY
KEY_BASE64          __CHANGEME__
HMAC_KEY_BASE64     __CHANGEME__

# GnuPG example
#GPG_HOME_DIR           /homedir/path/.gnupg
'''
FWKNOPD = '''# fwknopd.conf
#PCAP_INTF                   eth0;

#MAX_SPA_PACKET_AGE          120;
'''


def run(args, **kwargs):
    return module_result(fwknop_access.main, args, **kwargs)


@pytest.fixture
def files(tmp_path):
    access = tmp_path / 'access.conf'
    conf = tmp_path / 'fwknopd.conf'
    access.write_text(TEMPLATE)
    conf.write_text(FWKNOPD)
    os.chmod(str(access), 0o600)
    os.chmod(str(conf), 0o600)
    return access, conf


def args_for(files, **extra):
    access, conf = files
    args = dict(path=str(access), fwknopd_conf_path=str(conf), source='10.231.0.0/16', open_ports=['tcp/22'],
                key_base64=KEY, hmac_key_base64=HMAC, hmac_digest_type='SHA256', fw_access_timeout=30,
                require_source_address=True,
                fwknopd_options=dict(PCAP_INTF='eth1', PCAP_FILTER='udp port 62201', MAX_SPA_PACKET_AGE=120,
                                     ENABLE_DIGEST_PERSISTENCE=True))
    args.update(extra)
    return args


def run_result(args, **kwargs):
    return run(args, **kwargs)[0]


def no_secret(*texts):
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def test_add_stanza_idempotent_keeps_comments(files):
    access, conf = files
    args = args_for(files)
    result, output, failed = run(args, diff=True, verbosity=4)
    assert not failed, result
    assert result['changed']
    assert 'SOURCE' in result['changed_keys'] and 'fwknopd.conf:PCAP_INTF' in result['changed_keys']
    no_secret(output, json.dumps(result))
    text = access.read_text()
    assert text.startswith(TEMPLATE.split('SOURCE', maxsplit=1)[0]) and '#GPG_HOME_DIR' in text
    stanzas = parse_access_conf(text.replace('__CHANGEME__', KEY2, 1).replace('__CHANGEME__', HMAC), str(access))
    mine = [s for s in stanzas if s.source_text == '10.231.0.0/16'][0]
    assert mine.key == base64.b64decode(KEY) and mine.hmac_key == base64.b64decode(HMAC)
    assert mine.open_ports == [('tcp', 22)] and mine.require_source_address and mine.fw_access_timeout == 30
    config = parse_fwknopd_conf(conf.read_text())
    assert config.pcap_intf == 'eth1' and config.spa_port == 62201
    assert '#PCAP_INTF                   eth0;\nPCAP_INTF                   eth1;\n' in conf.read_text()
    assert stat.S_IMODE(os.stat(str(access)).st_mode) == 0o600
    # equivalent values: no change (digest case, port list as a string, key with another padding)
    again = dict(args, hmac_digest_type='sha256', open_ports='tcp/22', key_base64=KEY.rstrip('='))
    result, output, failed = run(again, diff=True)
    assert not failed and not result['changed'], result
    assert result['changed_keys'] == []


def test_check_mode_predicts_and_writes_nothing(files):
    access, conf = files
    before = access.read_text(), conf.read_text()
    result, output, failed = run(args_for(files), check_mode=True, diff=True)
    assert not failed and result['changed']
    assert (access.read_text(), conf.read_text()) == before
    no_secret(output)
    real = run_result(args_for(files))
    assert real['changed'] and real['changed_keys'] == result['changed_keys']
    result = run_result(args_for(files), check_mode=True)
    assert not result['changed']


def test_diff_masks_every_key_also_plain_key(files):
    access = files[0]
    access.write_text('SOURCE 10.1.0.0/16\nKEY plain-secret-passphrase\nHMAC_KEY_BASE64 %s\n' % HMAC)
    result, output, failed = run(args_for(files, source='10.1.0.0/16'), diff=True, verbosity=4)
    assert not failed, result
    assert 'plain-secret-passphrase' not in output
    no_secret(output)
    after = access.read_text()
    assert 'KEY plain' not in after and 'KEY_BASE64' in after


def test_update_one_line_only(files):
    access = files[0]
    run(args_for(files))
    text = access.read_text()
    result, output, failed = run(args_for(files, fw_access_timeout=45, key_base64=KEY2))
    assert not failed and sorted(result['changed_keys']) == ['FW_ACCESS_TIMEOUT', 'KEY_BASE64']
    new = access.read_text()
    assert new.replace('45', '30').replace(KEY2, KEY) == text
    no_secret(output)


def test_absent_removes_only_that_stanza(files):
    access = files[0]
    run(args_for(files))
    result, _out, failed = run(dict(path=str(access), source='ANY', state='absent'))
    assert not failed and result['changed'] and result['changed_keys'] == ['SOURCE']
    text = access.read_text()
    assert '__CHANGEME__' not in text and '#GPG_HOME_DIR' in text and '10.231.0.0/16' in text
    assert [s.source_text for s in parse_access_conf(text)] == ['10.231.0.0/16']
    result = run_result(dict(path=str(access), source='ANY', state='absent'))
    assert not result['changed']


@pytest.mark.parametrize('extra, needle', [
    (dict(open_ports=['icmp/22']), "'icmp/22'"),
    (dict(open_ports=['tcp/70000']), "'tcp/70000'"),
    (dict(hmac_digest_type='sha999'), "'sha999'"),
    (dict(source='10.0.0.300'), "'10.0.0.300'"),
    (dict(key_base64='!!not base64!!'), 'key_base64 is not base64'),
    (dict(hmac_key_base64=KEY), 'identical'),
    (dict(fw_access_timeout=0), 'fw_access_timeout 0'),
    (dict(fwknopd_options=dict(PCAP_FILTER='tcp port 22')), "'tcp port 22'"),
    (dict(fwknopd_options=dict(NO_SUCH_KEY='1')), "'NO_SUCH_KEY'"),
    (dict(fwknopd_options=dict(MAX_SPA_PACKET_AGE='soon')), "'soon'"),
    (dict(fwknopd_options=dict(PCAP_INTF='eth0; rm')), 'cannot hold'),
])
def test_bad_input_fails_naming_value_files_untouched(files, extra, needle):
    access, conf = files
    before = access.read_text(), conf.read_text()
    result, output, failed = run(args_for(files, **extra))
    assert failed, result
    assert needle in result['msg'], result['msg']
    assert (access.read_text(), conf.read_text()) == before
    no_secret(output)


def test_invalid_existing_file_named_with_line_and_untouched(files):
    access = files[0]
    access.write_text('SOURCE ANY\nKEY_BASE64 %s\nOPEN_PORTS tcp/22\nBOGUS x\n' % KEY2)
    before = access.read_text()
    result, output, failed = run(args_for(files))
    assert failed and ':4:' in result['msg'] and "'BOGUS'" in result['msg'] and 'untouched' in result['msg']
    assert access.read_text() == before
    no_secret(output)


def test_new_files_are_0600_from_the_start(tmp_path):
    access, conf = tmp_path / 'a.conf', tmp_path / 'f.conf'
    result, output, failed = run(args_for((access, conf)))
    assert not failed and result['changed']
    for path in (access, conf):
        assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o600
    assert [s.source_text for s in parse_access_conf(access.read_text())] == ['10.231.0.0/16']


def test_present_needs_a_key(files):
    result, _out, failed = run(dict(path=str(files[0]), source='ANY'))
    assert failed and 'key_base64' in result['msg']


@pytest.mark.skipif(not os.access(DEBIAN_ACCESS, os.R_OK) or not os.access(DEBIAN_FWKNOPD, os.R_OK),
                    reason="Debian's fwknop-server files are not here")
def test_debian_shipped_files_edit_round_trip(tmp_path):
    access, conf = tmp_path / 'access.conf', tmp_path / 'fwknopd.conf'
    with open(DEBIAN_ACCESS) as handle:
        original = handle.read()
    access.write_text(original)
    with open(DEBIAN_FWKNOPD) as handle:
        conf.write_text(handle.read())
    result, _out, failed = run(args_for((access, conf)))
    assert not failed, result
    result, _out, failed = run(dict(path=str(access), source='ANY', state='absent'))
    assert not failed and result['changed']
    stanzas = parse_access_conf(access.read_text())
    assert [s.source_text for s in stanzas] == ['10.231.0.0/16']
    assert parse_fwknopd_conf(conf.read_text()).pcap_intf == 'eth1'
