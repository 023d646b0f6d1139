# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lab/labtool/doctor.py: its verdict on the podman it finds (pinned netavark and runc, or not)
and the package versions it reports.  podman and dpkg-query are faked runners."""

import types

import pytest

from labtool import doctor, podman


def fake_podman(monkeypatch, info, version='4.3.1'):
    """lab-podman answers `info` with `info` and `version` with `version`; records the calls."""
    calls = []

    def run(cmd, check=True, **kw):
        calls.append(cmd)
        assert cmd[0] == podman.LAB_PODMAN            # never a bare podman
        out = {'info': info, 'version': version}[cmd[1]]
        return types.SimpleNamespace(returncode=0, stdout=out + '\n', stderr='')

    monkeypatch.setattr(podman, 'run', run)
    return calls


def fake_dpkg(monkeypatch, installed):
    def run(cmd, **kw):
        assert cmd[:4] == ['dpkg-query', '-W', '-f', '${Version}']
        name = cmd[4]
        if name in installed:
            return types.SimpleNamespace(returncode=0, stdout=installed[name])
        return types.SimpleNamespace(returncode=1, stdout='')

    monkeypatch.setattr(doctor.subprocess, 'run', run)


def test_pinned_backend_and_runtime_pass(monkeypatch):
    calls = fake_podman(monkeypatch, 'netavark runc')
    fake_dpkg(monkeypatch, {})
    ok, lines = doctor.report([])
    assert ok
    assert not any('FAIL' in line for line in lines)
    assert 'podman network backend: netavark (pinned: netavark)' in lines
    assert 'podman OCI runtime: runc (pinned: runc)' in lines
    assert lines[0].endswith('podman 4.3.1')
    assert calls[0][1:] == ['info', '--format', '{{.Host.NetworkBackend}} {{.Host.OCIRuntime.Name}}']


@pytest.mark.parametrize('info, shown', [
    ('cni runc', 'podman network backend: cni'),
    ('netavark crun', 'podman OCI runtime: crun'),
    ('cni crun', 'podman network backend: cni'),
    ('', 'podman network backend: ?'),               # podman printed nothing: not a pass
])
def test_any_other_backend_or_runtime_fails(monkeypatch, info, shown):
    fake_podman(monkeypatch, info)
    fake_dpkg(monkeypatch, {})
    ok, lines = doctor.report([])
    assert not ok
    assert lines[-1].startswith('FAIL: podman does not use the pinned backend/runtime')
    assert any(line.startswith(shown) for line in lines)


def test_unknown_podman_version_is_a_question_mark(monkeypatch):
    fake_podman(monkeypatch, 'netavark runc', version='')
    fake_dpkg(monkeypatch, {})
    ok, lines = doctor.report([])
    assert ok and lines[0].endswith('podman ?')


def test_package_versions_says_not_installed(monkeypatch):
    fake_dpkg(monkeypatch, {'runc': '1.1.5+ds1-1+deb12u1\n', 'netavark': '1.4.0-3', 'half': '  \n'})
    assert doctor.package_versions(['runc', 'netavark', 'crun', 'half']) == [
        ('runc', '1.1.5+ds1-1+deb12u1'), ('netavark', '1.4.0-3'),
        ('crun', 'not installed'), ('half', 'not installed')]    # dpkg knows it but has no version


def test_report_lists_the_packages_and_the_settings(monkeypatch):
    fake_podman(monkeypatch, 'netavark runc')
    fake_dpkg(monkeypatch, {'apt-cacher-ng': '3.7.4-1'})
    monkeypatch.setenv('PKLAB_CONTAINERS_CONF', '/tmp/other.conf')
    ok, lines = doctor.report(['apt-cacher-ng', 'debootstrap'])
    assert ok
    assert lines[-2:] == ['package apt-cacher-ng 3.7.4-1', 'package debootstrap not installed']
    assert 'podman settings: CONTAINERS_CONF=/tmp/other.conf' in lines
    monkeypatch.delenv('PKLAB_CONTAINERS_CONF')
    assert 'podman settings: CONTAINERS_CONF=%s' % podman.CONTAINERS_CONF in doctor.report([])[1]
