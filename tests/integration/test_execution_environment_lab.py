# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""site.yml from inside an execution environment, run the way AWX runs jobs.

The EE-style image is built from the build context `ansible-builder create` makes out of
execution-environment.yml (tools/ee_local.py image: the context's Containerfile, unchanged,
on a locally made stand-in for ee-minimal).  ansible-runner then runs site.yml in it with
process isolation (podman through lab/lab-podman), the container on the lab network with an
address of the lab's own range, against two fresh lab hosts (an iptables and an nftables
door).  The connection plugin portknock.knock.ssh knocks from inside the container: the
hosts' doors and sshd saw the container's address and never this machine's.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab_hosts import LAB_PODMAN, STATE, lab  # noqa: E402

pytestmark = pytest.mark.integration

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
LAB = 'it-ee'
OUT = os.path.join(REPO, '.cache', 'ee')
RECAP = re.compile(r'^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', re.M)
KEY_IN_EE = '/runner/keys/lab_key'
EE_OCTET = 200   # the EE container's address in the lab's /24 (hosts are .11 up)


def lab_record():
    with open(os.path.join(STATE, 'labs', LAB, 'hosts.json')) as fh:
        return json.load(fh)


def ee_addresses(record):
    v4 = record['subnet4'].split('/')[0].rsplit('.', 1)[0] + '.%d' % EE_OCTET
    v6 = record['subnet6'].split('/')[0].rsplit(':', 1)[0] + ':%x' % EE_OCTET
    return v4, v6


def private_data_dir(record):
    """ansible-runner's private data directory: project (site.yml), inventory, the lab key.

    Owned by root, group root, nothing for others: the EE runs as uid 1000 with group root
    (ansible-runner adds --group-add=root), as AWX's jobs do; the inventory holds the sequences.
    """
    pdd = os.path.join(OUT, 'runner-' + LAB)
    shutil.rmtree(pdd, ignore_errors=True)
    os.makedirs(os.path.join(pdd, 'project'))
    shutil.copy(os.path.join(REPO, 'site.yml'), os.path.join(pdd, 'project', 'site.yml'))
    shutil.copytree(os.path.join(REPO, 'inventory'), os.path.join(pdd, 'inventory'))
    fleet = os.path.join(pdd, 'inventory', 'lab.json')
    subprocess.run([sys.executable, os.path.join(REPO, 'tools', 'site_fleet.py'),
                    os.path.join(STATE, 'labs', LAB, 'hosts.json'), fleet], check=True)
    with open(fleet) as fh:
        inventory = json.load(fh)
    inventory['all']['vars']['ansible_ssh_private_key_file'] = KEY_IN_EE
    with open(fleet, 'w') as fh:
        json.dump(inventory, fh, indent=2)
    os.makedirs(os.path.join(pdd, 'keys'))
    shutil.copy(record['key'], os.path.join(pdd, 'keys', 'lab_key'))
    os.makedirs(os.path.join(pdd, 'env'))
    with open(os.path.join(pdd, 'env', 'envvars'), 'w') as fh:
        json.dump({'ANSIBLE_FORKS': '4', 'ANSIBLE_NOCOLOR': '1', 'ANSIBLE_FORCE_COLOR': '0'}, fh)
    # ssh refuses a key file its user owns with group bits; this one is root's, group-readable
    for root, dirs, files in os.walk(pdd):
        os.chmod(root, 0o770)
        for name in files:
            os.chmod(os.path.join(root, name), 0o640)
    os.makedirs(os.path.join(pdd, 'artifacts'), mode=0o770)
    os.chmod(os.path.join(pdd, 'artifacts'), 0o770)
    return pdd


def podman_on_path():
    """ansible-runner runs containers only through an executable named podman or docker:
    a `podman` that is lab/lab-podman (the lab's settings), first on PATH for ansible-runner.
    lab-podman itself runs the real podman from the PATH without this directory."""
    bindir = os.path.join(OUT, 'bin')
    os.makedirs(bindir, exist_ok=True)
    wrapper = os.path.join(bindir, 'podman')
    with open(wrapper, 'w') as fh:
        fh.write('#!/bin/sh\nPATH=%s exec %s "$@"\n' % (shlex.quote(os.environ['PATH']), shlex.quote(LAB_PODMAN)))
    os.chmod(wrapper, stat.S_IRWXU)
    return bindir


def sshd_sources(host, since):
    """The addresses sshd accepted logins from since ``since`` (epoch seconds)."""
    out = host.run('journalctl -q -o cat -u ssh --since @%d' % int(since)).stdout
    return re.findall(r'Accepted publickey for root from (\S+) port', out)


def tcp_open(address, port=22, timeout=3):
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


@pytest.fixture(scope='module')
def ee():
    """One 2-host lab, the image, and a runner for site.yml in it; removed on exit."""
    with lab(LAB, 2) as hosts:
        record = lab_record()
        t0 = time.time()
        res = subprocess.run([sys.executable, os.path.join(REPO, 'tools', 'ee_local.py'), 'image', '--lab', LAB,
                              '--out', OUT], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True, check=False)
        assert res.returncode == 0, res.stdout[-6000:]
        image = res.stdout.strip().splitlines()[-1]
        build_seconds = time.time() - t0
        pdd = private_data_dir(record)
        env = dict(os.environ, PATH=podman_on_path() + os.pathsep + os.environ['PATH'])
        env.pop('SSH_AUTH_SOCK', None)   # ansible-runner would mount this machine's agent into the job
        v4, v6 = ee_addresses(record)
        runs = []

        def run(ident):
            # ansible-runner makes these 0700 unless they exist: the job (uid 1000, group root) writes there
            for sub in ('', 'job_events'):
                path = os.path.join(pdd, 'artifacts', ident, sub)
                os.makedirs(path, exist_ok=True)
                os.chmod(path, 0o770)
            started = time.time()
            proc = subprocess.run(
                [os.path.join(os.path.dirname(sys.executable), 'ansible-runner'), 'run', pdd, '-p', 'site.yml',
                 '--ident', ident, '--process-isolation', '--process-isolation-executable', 'podman',
                 '--container-image', image, '--container-option=--network=pklab',
                 '--container-option=--ip=' + v4, '--container-option=--ip6=' + v6],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False,
                timeout=1200)
            recap = dict((name, dict(ok=int(ok), changed=int(changed), unreachable=int(unreach), failed=int(failed)))
                         for name, ok, changed, unreach, failed in RECAP.findall(proc.stdout))
            try:
                with open(os.path.join(pdd, 'artifacts', ident, 'command')) as fh:
                    command = json.load(fh)['command']
            except (OSError, ValueError):
                command = []
            result = dict(proc=proc, recap=recap, started=started, seconds=time.time() - started, command=command)
            runs.append(result)
            return result

        try:
            yield dict(hosts=hosts, record=record, image=image, run=run, runs=runs, address=v4,
                       build_seconds=build_seconds)
        finally:
            shutil.rmtree(pdd, ignore_errors=True)
            for r in runs:
                print('ee run: %.0f s, recap %s' % (r['seconds'], r['recap']))
            print('ee image %s built or reused in %.0f s' % (image, build_seconds))


@pytest.fixture(scope='module')
def first_run(ee):
    result = ee['run']('first')
    assert result['proc'].returncode == 0, result['proc'].stdout[-8000:]
    return result


def test_runner_ran_the_playbook_in_the_image_on_the_lab_network(ee, first_run):
    command = first_run['command']
    assert command[0] == 'podman' and command[1] == 'run'
    assert ee['image'] in command and '--network=pklab' in command
    # the playbook ran inside the container: ansible-playbook comes after the image
    assert 'ansible-playbook' in command[command.index(ee['image']):]
    image = subprocess.run([LAB_PODMAN, 'image', 'inspect', ee['image']], check=True, stdout=subprocess.PIPE,
                           universal_newlines=True).stdout
    config = json.loads(image)[0]['Config']
    assert config['Labels']['ansible-execution-environment'] == 'true'
    assert config['User'] == '1000'


def test_rollout_succeeds_from_the_ee(ee, first_run):
    recap = first_run['recap']
    names = [h.name for h in ee['hosts']]
    assert sorted(recap) == sorted(names), first_run['proc'].stdout[-4000:]
    assert all(recap[h]['failed'] == 0 and recap[h]['unreachable'] == 0 and recap[h]['changed'] > 0
               for h in names), recap
    iptables_host, nft_host = ee['hosts']
    assert 'PK-ssh' in iptables_host.run('iptables -S').stdout
    assert 'portknock_ssh' in nft_host.run('nft list tables').stdout


def test_the_doors_saw_the_knock_from_the_containers_address(ee, first_run):
    container, machine = ee['address'], ee['record']['gateway4']
    for host in ee['hosts']:
        # every login since the run began came from the EE container (and there were logins)
        sources = sshd_sources(host, first_run['started'] - 1)
        assert sources and set(sources) == {container}, (host.name, sources)
        # and the door is closed to this machine, which never knocked
        assert not tcp_open(host.ipv4), host.name
    # the iptables door's lists (PK_ssh_1 .. PK_ssh_<n>, the last one open) hold the container
    lists = ee['hosts'][0].run('grep -H . /proc/net/xt_recent/PK_ssh_* /dev/null').stdout
    assert 'src=%s ' % container in lists, lists
    assert 'src=%s ' % machine not in lists, lists


def test_second_run_from_the_ee_knocks_again_and_changes_nothing(ee, first_run):
    second = ee['run']('second')
    assert second['proc'].returncode == 0, second['proc'].stdout[-8000:]
    assert all(r['changed'] == 0 and r['failed'] == 0 for r in second['recap'].values()), second['recap']
    for host in ee['hosts']:
        assert set(sshd_sources(host, second['started'])) == {ee['address']}, host.name
