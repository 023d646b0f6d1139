# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""knock --spa: fwknop's client options in the common case; keys from a 0600 file or the environment."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import os
import socket
import subprocess
import sys

import pytest

from ansible_collections.portknock.knock.plugins.module_utils import knock_cli as cli
from ansible_collections.portknock.knock.plugins.module_utils import knock_proxy_command, spa

KEY, HMAC_KEY = os.urandom(32), os.urandom(64)
KEY_B64, HMAC_B64 = base64.b64encode(KEY).decode(), base64.b64encode(HMAC_KEY).decode()


@pytest.fixture
def env_keys(monkeypatch):
    monkeypatch.setenv('KNOCK_SPA_KEY', KEY_B64)
    monkeypatch.setenv('KNOCK_SPA_HMAC_KEY', HMAC_B64)
    monkeypatch.setenv('HOME', '/nonexistent')


@pytest.fixture
def no_keys(monkeypatch, tmp_path):
    monkeypatch.delenv('KNOCK_SPA_KEY', raising=False)
    monkeypatch.delenv('KNOCK_SPA_HMAC_KEY', raising=False)
    monkeypatch.setenv('HOME', str(tmp_path))


def key_file(tmp_path, extra='', mode=0o600):
    path = tmp_path / 'keys'
    path.write_text('KEY_BASE64 %s\nHMAC_KEY_BASE64 %s\n%s' % (KEY_B64, HMAC_B64, extra))
    os.chmod(str(path), mode)
    return str(path)


def test_fwknop_style_options(env_keys):
    args = cli.parse_args(['--spa', '-A', 'tcp/22,udp/53', '-a', '10.231.250.9', '-D', 'srv', '--spa-port', '40111',
                           '-f', '60', '-U', 'alice'])
    assert (args.host, args.access, args.allow_ip, args.spa_port, args.fw_timeout, args.spoof_user) == (
        'srv', 'tcp/22,udp/53', '10.231.250.9', 40111, 60, 'alice')
    assert (args.keys.key, args.keys.hmac_key, args.port, args.sequence) == (KEY, HMAC_KEY, None, ())


def test_dash_s_is_fwknops_any_source_in_spa_mode_and_the_bind_address_otherwise(env_keys):
    args = cli.parse_args(['--spa', '-s', '-A', 'tcp/22', 'srv'])
    assert (args.allow_ip, args.source, args.host) == ('0.0.0.0', None, 'srv')
    args = cli.parse_args(['--spa', '-s', '--source', '127.0.0.1', '-A', 'tcp/22', 'srv'])
    assert (args.allow_ip, args.source) == ('0.0.0.0', '127.0.0.1')
    args = cli.parse_args(['-s', '127.0.0.1', 'srv', '7313'])
    assert (args.source, args.spa) == ('127.0.0.1', False)


def test_defaults_kernel_picked_claim_port_62201_and_proxy_access(env_keys):
    args = cli.parse_args(['--spa', '--proxy', 'srv', '2222'])
    assert (args.access, args.allow_ip, args.spa_port, args.port, args.fw_timeout) == (
        'tcp/2222', None, spa.DEFAULT_SPA_PORT, 2222, 0)


def test_key_file_settings_and_named_stanza(no_keys, tmp_path):
    path = key_file(tmp_path, '[lab]\nSPA_SERVER lab.example\nSPA_SERVER_PORT 40111\nACCESS tcp/2222\n')
    args = cli.parse_args(['--spa', '--key-file', path, '-n', 'lab'])
    assert (args.host, args.spa_port, args.access, args.keys.key) == ('lab.example', 40111, 'tcp/2222', KEY)
    args = cli.parse_args(['--spa', '--rc-file', path, '-n', 'lab', '--spa-port', '40112', '-A', 'udp/53', 'h'])
    assert (args.host, args.spa_port, args.access) == ('h', 40112, 'udp/53')


def test_default_rc_file_in_home(no_keys, tmp_path):
    key_file(tmp_path)
    os.rename(str(tmp_path / 'keys'), str(tmp_path / '.fwknoprc'))
    assert cli.parse_args(['--spa', '-A', 'tcp/22', 'h']).keys.hmac_key == HMAC_KEY


@pytest.mark.parametrize('argv, message', [
    (['--spa', '-A', 'tcp/22', 'h'], 'no SPA keys: give --key-file FILE or -n NAME'),
    (['--spa', '--key-file', '{keys}', 'h'], 'nothing to open: give -A'),
    (['--spa', '--key-file', '{keys}', '-A', 'tcp/22'], 'no host given'),
    (['--spa', '--key-file', '{keys}', '-A', 'icmp/22', 'h'], "SPA access 'icmp/22' is not proto/port"),
    (['--spa', '--key-file', '{keys}', '-A', 'tcp/22', '-a', 'myhost', 'h'], "SPA source address 'myhost'"),
    (['--spa', '--key-file', '{keys}', '-A', 'tcp/22', '--spa-port', '0', 'h'], "SPA port '0' is out of range"),
    (['--spa', '--key-file', '{keys}', '-A', 'tcp/22', '-f', 'soon', 'h'], "--fw-timeout 'soon'"),
    (['--spa', '--key-file', '{keys}', '-A', 'tcp/22', 'h', '7313'], '--spa sends no sequence'),
    (['--spa', '--key-file', '{keys}', '--proxy', 'h'], '--proxy --spa needs HOST PORT'),
    (['--spa', '--key-file', '{keys}', '--knock-host', 'fw', '--proxy', 'h', '22'], 'not --spa'),
    (['--spa', '--key-file', '{keys}', '-s', '-a', '10.231.250.9', '-A', 'tcp/22', 'h'], 'not allowed with'),
    (['--spa', '--key-file', '{keys}', '-n', 'db', '-A', 'tcp/22', 'h'], 'has no stanza [db]'),
    (['--spa', '--key-file', '{loose}', '-A', 'tcp/22', 'h'], 'is accessible by others (mode 0644): chmod 600 it'),
    (['-A', 'tcp/22', 'h', '7313'], '--access only makes sense with --spa'),
    (['--key-file', '{keys}', 'h', '7313'], '--key-file only makes sense with --spa'),
])
def test_bad_spa_arguments_are_clear_and_never_show_a_key(argv, message, no_keys, tmp_path, capsys):
    keys = key_file(tmp_path)
    loose = tmp_path / 'loose'
    loose.write_text(open(keys).read())
    os.chmod(str(loose), 0o644)
    with pytest.raises(SystemExit) as exc:
        cli.parse_args([word.format(keys=keys, loose=str(loose)) for word in argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert KEY_B64 not in err and HMAC_B64 not in err


def test_no_key_option_on_the_command_line():
    # keys never come from argv: no option takes one
    text = cli.build_parser().format_help()
    assert '--key ' not in text and '--key-base64' not in text and '--hmac-key' not in text


def test_spa_mode_sends_one_packet_to_the_spa_port(env_keys):
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(('127.0.0.1', 0))
    receiver.settimeout(5)
    try:
        port = receiver.getsockname()[1]
        assert cli.main(['--spa', '-A', 'tcp/22', '--spa-port', str(port), '127.0.0.1']) == 0
        msg = spa.decode(receiver.recvfrom(2000)[0], KEY, HMAC_KEY)
    finally:
        receiver.close()
    assert (msg.source, msg.access_string) == ('127.0.0.1', 'tcp/22')


def test_proxy_spa_closed_port_says_the_spa_packet_went_out(env_keys, tmp_path, capsys):
    status = tmp_path / 'status'
    os.environ[knock_proxy_command.STATUS_FILE_ENV] = str(status)
    try:
        closed = socket.socket()
        closed.bind(('127.0.0.1', 0))
        port = closed.getsockname()[1]
        closed.close()                      # nothing listens there: refused
        assert cli.main(['--proxy', '--spa', '--connect-timeout', '0.3', '--spa-port', '9', '127.0.0.1',
                         str(port)]) == 1
    finally:
        del os.environ[knock_proxy_command.STATUS_FILE_ENV]
    text = status.read_text()
    assert 'SPA packet sent but port stayed closed: 127.0.0.1 port %d' % port in text
    assert KEY_B64 not in text + capsys.readouterr().err


def test_the_launcher_runs_spa_mode(tmp_path):
    # scripts/knock (through portknock_launcher) with the keys in its environment only
    env = dict(os.environ, KNOCK_SPA_KEY=KEY_B64, KNOCK_SPA_HMAC_KEY='not base64!', HOME=str(tmp_path))
    result = subprocess.run([sys.executable, knock_proxy_command.knock_script(), '--spa', '-A', 'tcp/22', '127.0.0.1'],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                            check=False)
    assert result.returncode == 2
    assert '$KNOCK_SPA_HMAC_KEY is not base64' in result.stdout and KEY_B64 not in result.stdout
