# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

import os

import pytest

from ansible.errors import AnsibleError

from ansible_collections.portknock.knock.plugins.connection import ssh as knock_ssh
from ansible_collections.portknock.knock.plugins.module_utils.sequence import Step


@pytest.mark.parametrize('args, expected', [
    ([None, '-C -o ControlMaster=auto -o ControlPersist=60s'], (False, None)),
    (['-o ProxyCommand="nc %h %p"'], (True, None)),
    (['-o ProxyJump=bastion'], (True, None)),
    (['-J bastion'], (True, None)),
    (['-Jbastion'], (True, None)),
    (['-o AddressFamily=inet6'], (False, 6)),
    (['-4', '-o AddressFamily=inet6'], (False, 4)),
    (['-o AddressFamily=any'], (False, None)),
])
def test_user_proxy_and_family(args, expected):
    assert knock_ssh.user_proxy_and_family(args) == expected


def test_resolve_knock_settings():
    assert knock_ssh.resolve_knock_settings(None, None, 50) is None
    assert knock_ssh.resolve_knock_settings([1600, '1601:udp'], None, 50) == (Step(1600, 'tcp'), Step(1601, 'udp'))
    assert knock_ssh.resolve_knock_settings([1600], False, 50) is None
    with pytest.raises(AnsibleError, match='knock_sequence is not set'):
        knock_ssh.resolve_knock_settings(None, True, 50)
    with pytest.raises(AnsibleError, match="knock_sequence is invalid: knock port '0' is out of range"):
        knock_ssh.resolve_knock_settings(['0'], None, 50)
    with pytest.raises(AnsibleError, match='knock_delay'):
        knock_ssh.resolve_knock_settings([1], None, -1)


KEY_B64 = 'a2V5LWZvci10ZXN0cy1vbmx5LTMyLWJ5dGVzLWxvbiE='
HMAC_B64 = 'aG1hYy1rZXktZm9yLXRlc3RzLW9ubHk='


def test_resolve_spa_settings():
    assert knock_ssh.resolve_spa_settings(None, None, 'sha256', 62201, None, None, 22) is None
    got = knock_ssh.resolve_spa_settings(KEY_B64, HMAC_B64, 'SHA512', None, None, None, 2222)
    assert (got['access'], got['spa_port'], got['allow_ip']) == ('tcp/2222', 62201, None)
    assert got['env'] == {'KNOCK_SPA_KEY': KEY_B64, 'KNOCK_SPA_HMAC_KEY': HMAC_B64,
                          'KNOCK_SPA_HMAC_DIGEST_TYPE': 'sha512'}
    got = knock_ssh.resolve_spa_settings(KEY_B64, HMAC_B64, None, 40111, 'tcp/22,udp/53', '0.0.0.0', None)
    assert (got['access'], got['spa_port'], got['allow_ip']) == ('tcp/22,udp/53', 40111, '0.0.0.0')


@pytest.mark.parametrize('args, message', [
    ((KEY_B64, None), 'knock_spa_hmac_key is missing'),
    ((None, HMAC_B64), 'knock_spa_key is missing'),
    (('!' + KEY_B64[1:], HMAC_B64), 'knock_spa_key is not base64'),
    ((KEY_B64, HMAC_B64[:-3] + '*=='), 'knock_spa_hmac_key is not base64'),
    ((KEY_B64, HMAC_B64, 'sha999'), "knock_spa_hmac_digest_type 'sha999' is not one of"),
    ((KEY_B64, HMAC_B64, None, 0), 'knock_spa_port 0 is out of range'),
    ((KEY_B64, HMAC_B64, None, None, 'ssh'), "SPA access 'ssh' is not proto/port"),
    ((KEY_B64, HMAC_B64, None, None, None, 'me'), "SPA source address 'me' is not an IP address"),
    ((KEY_B64, HMAC_B64, None, None, None, None, 22, [7313]), 'not both'),
])
def test_resolve_spa_settings_errors_never_show_a_key(args, message):
    full = list(args) + [None] * (7 - len(args))
    with pytest.raises(AnsibleError) as err:
        knock_ssh.resolve_spa_settings(*full)
    assert message in str(err.value)
    assert KEY_B64[1:-3] not in str(err.value) and HMAC_B64[:-4] not in str(err.value)


def test_explain_spa_failure():
    text = knock_ssh.explain_failure('knock: SPA packet sent but port stayed closed: 10.0.0.1 port 22', 'h', 22, 40111)
    assert text.startswith('portknock.knock.ssh: the SPA packet was sent to h (udp/40111) but port 22 stayed closed')
    assert 'knock_spa_key' in text


def test_explain_failure():
    assert knock_ssh.explain_failure('Failed to connect: Permission denied', 'h', 22) is None
    text = knock_ssh.explain_failure('kex...\nknock: knock sent but port stayed closed: 10.0.0.1 port 3371', 'h', 3371)
    assert text.startswith('portknock.knock.ssh: the knock sequence was sent to h but port 3371 stayed closed')


# Loading the plugin through ansible's plugin loader needs a clean interpreter
# (the collection finder must be installed before ansible_collections is imported),
# so these run in a child Python that prints JSON.
LOADER_SCRIPT = r"""
import io, json, os, sys
from ansible.plugins.loader import connection_loader, init_plugin_loader
init_plugin_loader([sys.argv[1]])
from ansible.playbook.play_context import PlayContext
from ansible_collections.portknock.knock.plugins.connection import ssh as knock_ssh
knocked = []
knock_ssh.knock = lambda host, steps, **kw: knocked.append([host, kw]) or host
conn = connection_loader.get('portknock.knock.ssh', PlayContext(), io.StringIO())
out = {}
for case, variables in json.loads(sys.argv[2]).items():
    for name in ('PORTKNOCK_SEQUENCE', 'KNOCK_SPA_KEY', 'KNOCK_SPA_HMAC_KEY'):
        os.environ.pop(name, None)
    variables.setdefault('ansible_ssh_control_path_dir', sys.argv[3])
    conn.set_options(var_options=variables)
    conn.host = '10.99.3.2'
    options = dict((name, repr(conn.get_option(name))) for name in json.loads(sys.argv[4]))
    cmd = [w.decode() for w in conn._build_command('ssh', 'ssh', '10.99.3.2', 'true')]
    conn._build_command('ssh', 'ssh', '10.99.3.2', 'true')
    out[case] = dict(cmd=cmd, env=os.environ.get('PORTKNOCK_SEQUENCE'),
                     spa_env=[os.environ.get(n) for n in ('KNOCK_SPA_KEY', 'KNOCK_SPA_HMAC_KEY', 'KNOCK_SPA_HMAC_DIGEST_TYPE')],
                     status=os.path.exists(os.environ.get('PORTKNOCK_STATUS_FILE', '/nonexistent')),
                     status_env='PORTKNOCK_STATUS_FILE' in os.environ,
                     knocked=list(knocked), options=options)
    del knocked[:]
conn.close()
print(json.dumps(out))
"""

OPTIONS = ['ssh_args', 'control_path_dir', 'pipelining', 'reconnection_retries', 'sftp_batch_mode',
           'knock_sequence', 'knock_delay', 'knock_host', 'knock_before_connect', 'knock_spa_key',
           'knock_spa_hmac_key', 'knock_spa_hmac_digest_type', 'knock_spa_port', 'knock_spa_access',
           'knock_spa_source']


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    import json
    import subprocess
    import sys
    root = os.path.abspath(knock_ssh.__file__)
    for dummy in range(6):
        root = os.path.dirname(root)
    cases = {
        'knock': {'knock_sequence': [1600, '1601:udp']},
        'disabled': {'knock_sequence': [1600], 'knock_before_connect': False},
        'jump': {'knock_sequence': [1600], 'ansible_ssh_common_args': '-o ProxyJump=bastion'},
        'spa': {'knock_spa_key': KEY_B64, 'knock_spa_hmac_key': HMAC_B64, 'ansible_port': 2222},
    }
    result = subprocess.run([sys.executable, '-c', LOADER_SCRIPT, root, json.dumps(cases),
                             str(tmp_path_factory.mktemp('cp')), json.dumps(OPTIONS)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_all_builtin_ssh_options_are_available(built):
    assert sorted(built['knock']['options']) == sorted(OPTIONS)
    assert built['knock']['options']['knock_delay'] == '50'


def test_build_command_injects_proxy_without_the_sequence(built):
    cmd = built['knock']['cmd']
    assert cmd[:2] == ['ssh', '-o'] and cmd[2].startswith('ProxyCommand=')
    assert '--proxy -d 50' in cmd[2] and cmd[2].endswith('%h %p')
    assert not any('1600' in word for word in cmd)
    assert built['knock']['env'] == '1600:tcp,1601:udp'
    assert built['knock']['status'] is False   # only the proxy creates it, on failure
    assert built['knock']['knocked'] == []
    assert built['knock']['status_env'] is True


def test_spa_proxy_gets_the_keys_in_its_environment_only(built):
    cmd = built['spa']['cmd']
    proxy = [word for word in cmd if word.startswith('ProxyCommand=')]
    assert len(proxy) == 1 and '--proxy --spa --access tcp/2222 --spa-port 62201' in proxy[0]
    assert not any(KEY_B64 in word or HMAC_B64 in word for word in cmd)
    assert built['spa']['spa_env'] == [KEY_B64, HMAC_B64, 'sha256']
    assert built['spa']['env'] is None            # no sequence for the proxy
    assert built['knock']['spa_env'] == [None, None, None]   # a knocked host gets no keys
    assert built['spa']['options']['knock_spa_port'] == '62201'


def test_no_knock_when_disabled(built):
    assert not any(word.startswith('ProxyCommand') for word in built['disabled']['cmd'])
    assert built['disabled']['env'] is None


def test_user_proxy_falls_back_to_direct_knock_once(built):
    assert not any(word.startswith('ProxyCommand') for word in built['jump']['cmd'])
    assert built['jump']['knocked'] == [['10.99.3.2', {'delay_ms': 50, 'family': None}]]


class FakeConfig(object):
    def __init__(self, preloaded):
        self.defs = {'connection': dict(preloaded)}

    def has_configuration_definition(self, plugin_type, name):
        return name in self.defs.get(plugin_type, {})

    def get_configuration_definitions(self, plugin_type, name):
        return self.defs.get(plugin_type, {}).get(name, {})

    def initialize_plugin_configuration_definitions(self, plugin_type, name, defs):
        self.defs.setdefault(plugin_type, {})[name] = defs


def _our_options_as_ansible_merges_them():
    """What ansible-core derives from this plugin's docs: the fragment's options (the
    builtin's, see test_builtin_ssh.py), updated by DOCUMENTATION's own (add_fragments)."""
    import yaml
    from ansible_collections.portknock.knock.plugins.doc_fragments.builtin_ssh import ModuleDocFragment
    merged = dict(yaml.safe_load(ModuleDocFragment.DOCUMENTATION)['options'])
    merged.update(yaml.safe_load(knock_ssh.DOCUMENTATION)['options'])
    return merged


def test_registered_definitions_equal_what_ansible_derives_from_the_docs(builtin_ssh_options, plain_docs):
    config = FakeConfig({'ssh': builtin_ssh_options})
    names = ('portknock.knock.ssh', 'ansible_collections.portknock.knock.plugins.connection.ssh')
    assert knock_ssh.register_config_definitions(config, names) is True
    expected = plain_docs(_our_options_as_ansible_merges_them())
    assert set(expected) > set(['knock_sequence', 'knock_delay', 'host', 'pipelining', 'ssh_args'])
    for name in names:
        assert plain_docs(config.get_configuration_definitions('connection', name)) == expected
    assert knock_ssh.register_config_definitions(config, names) is False     # once


def test_no_shortcut_without_preloaded_builtin_definitions():
    config = FakeConfig({})
    assert knock_ssh.register_config_definitions(config, ('portknock.knock.ssh',)) is False
    assert not config.has_configuration_definition('connection', 'portknock.knock.ssh')
