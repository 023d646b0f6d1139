# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lab/labtool/image.py: the mirror this machine's apt uses, the image's name (it changes with the
recipe) and the rootfs customisation.  debootstrap and the podman import itself run only in
tests/integration/test_lab.py; here podman is a faked runner."""

import os
import re
import types

import pytest

from labtool import image

DEFAULT = 'http://deb.debian.org/debian'


def sources(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_deb822_skips_the_security_stanza(tmp_path):
    path = sources(tmp_path, 'debian.sources',
                   'Types: deb\nURIs: http://security.debian.org/debian-security\nSuites: bookworm-security\n\n'
                   'Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n')
    assert image.debian_mirror([path]) == 'http://mirror.example/debian'


def test_one_line_sources_with_options(tmp_path):
    path = sources(tmp_path, 'sources.list',
                   '# deb http://commented.example/debian bookworm main\n\n'
                   'deb http://security.debian.org/debian-security bookworm-security main\n'
                   'deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://mirror.example/debian bookworm main\n')
    assert image.debian_mirror([path]) == 'http://mirror.example/debian'


def test_the_first_file_with_a_mirror_wins_and_missing_files_are_skipped(tmp_path):
    deb822 = sources(tmp_path, 'debian.sources', 'Types: deb\nURIs: http://first.example/debian\n')
    oneline = sources(tmp_path, 'sources.list', 'deb http://second.example/debian bookworm main\n')
    assert image.debian_mirror([str(tmp_path / 'missing'), deb822, oneline]) == 'http://first.example/debian'
    only_security = sources(tmp_path, 'sec.sources', 'Types: deb\nURIs: http://security.debian.org/\n')
    assert image.debian_mirror([only_security, oneline]) == 'http://second.example/debian'


def test_no_mirror_found_falls_back_to_deb_debian_org(tmp_path):
    empty = sources(tmp_path, 'empty.list', '')
    no_uri = sources(tmp_path, 'bad.list', 'deb [trusted=yes]\n')    # a line without a URI: no traceback
    assert image.debian_mirror([empty, no_uri, str(tmp_path / 'none')]) == DEFAULT


def test_image_name_is_a_digest_of_the_recipe(monkeypatch):
    monkeypatch.delenv('PKLAB_IMAGE', raising=False)
    name = image.image_name()
    assert re.match(r'^localhost/pklab-debian12:[0-9a-f]{12}$', name)
    assert image.image_name() == name                               # stable
    monkeypatch.setattr(image, 'PACKAGES', image.PACKAGES + ['strace'])
    with_package = image.image_name()
    assert with_package != name
    monkeypatch.setattr(image, 'IMAGE_RECIPE_VERSION', image.IMAGE_RECIPE_VERSION + '1')
    assert image.image_name() not in (name, with_package)


def test_image_name_changes_with_the_suite(monkeypatch):
    monkeypatch.delenv('PKLAB_IMAGE', raising=False)
    name = image.image_name()
    monkeypatch.setattr(image, 'SUITE', 'trixie')
    assert image.image_name() != name


def test_pklab_image_names_a_registry_image(monkeypatch):
    monkeypatch.setenv('PKLAB_IMAGE', 'registry.example/pklab:1')
    assert image.image_name() == 'registry.example/pklab:1'
    monkeypatch.setenv('PKLAB_IMAGE', '')                 # empty: the built one
    assert image.image_name().startswith('localhost/pklab-debian12:')


class FakePodman:
    def __init__(self, exists):
        self.exists, self.calls = exists, []

    def __call__(self, *args, check=True, **kw):
        self.calls.append(args)
        return types.SimpleNamespace(returncode=0 if self.exists else 1, stdout='', stderr='')


def no_run(*a, **k):
    raise AssertionError('nothing may be built: %r' % (a,))


def test_an_existing_image_is_reused(monkeypatch):
    fake = FakePodman(exists=True)
    monkeypatch.delenv('PKLAB_IMAGE', raising=False)
    monkeypatch.setattr(image, 'podman', fake)
    monkeypatch.setattr(image, 'run', no_run)
    assert image.build_image() == image.image_name()
    assert fake.calls == [('image', 'exists', image.image_name())]


def test_a_named_image_is_pulled_not_built(monkeypatch):
    fake = FakePodman(exists=False)
    monkeypatch.setenv('PKLAB_IMAGE', 'registry.example/pklab:1')
    monkeypatch.setattr(image, 'podman', fake)
    monkeypatch.setattr(image, 'run', no_run)
    assert image.build_image() == 'registry.example/pklab:1'
    assert fake.calls[-1] == ('pull', 'registry.example/pklab:1')


def test_a_missing_image_is_debootstrapped_from_the_mirror(tmp_path, monkeypatch):
    monkeypatch.delenv('PKLAB_IMAGE', raising=False)
    monkeypatch.setattr(image, 'STATE', str(tmp_path))
    monkeypatch.setattr(image, 'podman', FakePodman(exists=False))
    monkeypatch.setattr(image, 'debian_mirror', lambda: 'http://mirror.example/debian')
    monkeypatch.setattr(image, 'log', lambda msg: None)
    runs = []

    def fake_run(cmd, **kw):
        runs.append(cmd)
        if cmd[0] == 'debootstrap':
            os.makedirs(os.path.join(cmd[-2], 'etc', 'ssh'))
        return types.SimpleNamespace(returncode=0, stdout='', stderr='')

    class FakeTar:
        stdout = None

        def __init__(self, cmd, **kw):
            runs.append(cmd)

        def wait(self):
            return 0

    monkeypatch.setattr(image, 'run', fake_run)
    monkeypatch.setattr(image.subprocess, 'Popen', FakeTar)
    name = image.build_image()
    rootfs = os.path.join(str(tmp_path), 'cache', 'rootfs-' + name.rsplit(':', 1)[1])
    debootstrap, tar, imported = runs
    assert debootstrap[:2] == ['debootstrap', '--variant=minbase']
    assert debootstrap[2] == '--include=' + ','.join(image.PACKAGES)
    assert debootstrap[3:] == [image.SUITE, rootfs, 'http://mirror.example/debian']
    assert tar[:3] == ['tar', '-C', rootfs] and '--exclude=./.pklab-complete' in tar
    assert imported[0] == image.LAB_PODMAN and imported[1] == 'import' and imported[-2:] == ['-', name]
    assert os.path.exists(os.path.join(rootfs, '.pklab-complete'))
    # a second build (image removed, rootfs cached) imports again without debootstrap
    runs[:] = []
    image.build_image()
    assert [cmd[0] for cmd in runs] == ['tar', image.LAB_PODMAN]


def test_customise_rootfs(tmp_path):
    root = str(tmp_path)
    os.makedirs(os.path.join(root, 'etc', 'ssh'))
    for name in ('ssh_host_ed25519_key', 'ssh_host_ed25519_key.pub', 'moduli'):
        (tmp_path / 'etc' / 'ssh' / name).write_text('x')
    image.customise_rootfs(root)
    image.customise_rootfs(root)          # idempotent: links already there
    assert sorted(os.listdir(os.path.join(root, 'etc', 'ssh'))) == ['moduli', 'sshd_config.d']   # host keys per container
    sshd = (tmp_path / 'etc/ssh/sshd_config.d/pklab.conf').read_text()
    assert 'PasswordAuthentication no' in sshd and 'PermitRootLogin prohibit-password' in sshd
    assert (tmp_path / 'etc/apt/sources.list').read_text() == 'deb http://deb.debian.org/debian %s main\n' % image.SUITE
    assert os.readlink(os.path.join(root, 'etc/systemd/system/multi-user.target.wants/pklab-hostkeys.service')) == \
        '/etc/systemd/system/pklab-hostkeys.service'
    assert 'ExecStart=/usr/bin/ssh-keygen -A' in (tmp_path / 'etc/systemd/system/pklab-hostkeys.service').read_text()
    for unit in ('getty@tty1.service', 'apt-daily.timer', 'systemd-timesyncd.service'):
        assert os.readlink(os.path.join(root, 'etc/systemd/system', unit)) == '/dev/null'
    assert 'Storage=volatile' in (tmp_path / 'etc/systemd/journald.conf.d/pklab.conf').read_text()
    assert oct(os.stat(os.path.join(root, 'root/.ssh')).st_mode & 0o777) == oct(0o700)


@pytest.mark.parametrize('package', ['python3', 'openssh-server', 'nftables', 'python3-cryptography'])
def test_the_recipe_has_what_the_roles_need(package):
    assert package in image.PACKAGES
