# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The README's "From the lab to your own fleet" section, run command for command.

Every ```sh block of that section runs as written (bash, one command at a time) in a copy of
the repository, with HOME in a scratch directory (the vault password file, the installed
collection); its ```yaml block becomes my-fleet/hosts.yml, the only change being the lab
addresses of the README's two host names.  The hosts are lab hosts of this test (not
site.sh's); a third lab host, which never knocked before, checks the doors from outside.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil
import subprocess
import tempfile

import pytest

from lab_hosts import lab

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason='needs root (rootful podman lab)')]

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
SEQUENCE = '41873 2213:udp 30119'   # the README's example sequence, for the outside check
RECAP = re.compile(r'^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', re.M)


def readme_section():
    with open(os.path.join(REPO, 'README.md')) as fh:
        text = fh.read()
    section = text.split('## From the lab to your own fleet', 1)[1].split('\n## ', 1)[0]
    blocks = []
    for lang, body in re.findall(r'```(sh|yaml)\n(.*?)```', section, re.S):
        lines = body.splitlines()
        indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
        blocks.append((lang, '\n'.join(line[indent:] for line in lines) + '\n'))
    return blocks


def test_readme_section_has_every_step():
    blocks = readme_section()
    commands = ' '.join(body for lang, body in blocks if lang == 'sh')
    for needle in ('ansible-galaxy collection build', 'ansible-galaxy collection install', 'cp -r inventory my-fleet',
                   'ansible-vault encrypt_string', '--check --diff', 'state: absent'):
        assert needle in commands
    assert [lang for lang, _body in blocks].count('yaml') == 1


def probe_port(probe, address):
    res = probe.run('nc -z -w 2 %s 22 && echo OPEN || echo CLOSED' % address)
    return res.stdout.strip().splitlines()[-1]


def knock_then_probe(probe, knock, address):
    res = probe.run('python3 %s -d 20 %s %s >/dev/null 2>&1; nc -z -w 2 %s 22 && echo OPEN || echo CLOSED' % (
        knock, address, SEQUENCE, address))
    return res.stdout.strip().splitlines()[-1]


@pytest.fixture
def control_dir():
    """ssh's ControlPath sockets: a unix socket path has at most 108 bytes, and pytest's
    tmp_path (under pytest-xdist: .../popen-gwN/...) can be longer than that leaves."""
    path = tempfile.mkdtemp(prefix='pkcp-', dir='/tmp')
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_readme_fleet_commands(tmp_path, control_dir):
    work, home = tmp_path / 'clone', tmp_path / 'home'
    shutil.copytree(REPO, str(work), symlinks=True,
                    ignore=shutil.ignore_patterns('.git', '.lab', '.cache', '.venv', '.venv-compat', 'dist', 'my-fleet'))
    home.mkdir()
    vault_pass = home / '.portknock-vault'
    vault_pass.write_text('lab-only vault password\n')
    vault_pass.chmod(0o600)
    with lab('it-readme', 3) as hosts:
        web1, db1, probe = hosts
        knock = probe.install_collection() + '/scripts/knock'
        env = dict(os.environ, HOME=str(home), ANSIBLE_NOCOLOR='1', ANSIBLE_FORKS='2',
                   ANSIBLE_SSH_CONTROL_PATH_DIR=control_dir,
                   ANSIBLE_COLLECTIONS_PATH=str(home / '.ansible' / 'collections'),
                   ANSIBLE_REMOTE_USER='root', ANSIBLE_PRIVATE_KEY_FILE=web1.key,
                   ANSIBLE_PYTHON_INTERPRETER='/usr/bin/python3', ANSIBLE_HOST_KEY_CHECKING='False',
                   ANSIBLE_SSH_COMMON_ARGS='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR')
        addresses = {'web1.example.net': web1.ipv4, 'db1.example.net': db1.ipv4}
        outputs = []
        for lang, body in readme_section():
            if lang == 'yaml':
                for name, address in addresses.items():
                    body = body.replace('%s: {}' % name, '%s: {ansible_host: %s}' % (name, address))
                (work / 'my-fleet' / 'hosts.yml').write_text(body)
                continue
            for command in body.splitlines():
                if not command.strip():
                    continue
                res = subprocess.run(['bash', '-c', command], cwd=str(work), env=env, check=False, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, universal_newlines=True, timeout=1200)
                assert res.returncode == 0, '%s\n%s' % (command, res.stdout[-6000:])
                outputs.append((command, res.stdout))
                if 'encrypt_string' in command:
                    vault = (work / 'my-fleet' / 'group_vars' / 'portknock_fleet' / 'vault.yml').read_text()
                    assert '$ANSIBLE_VAULT' in vault and '41873' not in vault and '30119' not in vault
                if command.startswith('ansible-playbook') and '--check' in command:
                    # predicted, not made: plain ssh still works on both
                    assert RECAP.search(res.stdout)
                    assert probe_port(probe, web1.ipv4) == 'OPEN' and probe_port(probe, db1.ipv4) == 'OPEN'
                elif command.startswith('ansible-playbook') and not outputs[-2][0].startswith('sed'):
                    # the rollout: plain ssh refused, a knock opens it, on both enforcers
                    for host in (web1, db1):
                        assert probe_port(probe, host.ipv4) == 'CLOSED', host.name
                        assert knock_then_probe(probe, knock, host.ipv4) == 'OPEN', host.name
                    assert '41873' not in res.stdout and '30119' not in res.stdout
        # after the undo: no door left, plain ssh works again
        assert outputs[-2][0].startswith('sed') and 'state: absent' in outputs[-2][0]
        for host in (web1, db1):
            assert probe_port(probe, host.ipv4) == 'OPEN', host.name
        assert 'PK-ssh' not in web1.run('iptables -S').stdout
        assert '[ssh]' not in db1.run('cat /etc/knockd.conf').stdout
