# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lab/labtool/labs.py, image.py, doctor.py: the pure parts (the rest is tests/integration/test_lab.py)."""

import pytest

from labtool import doctor, image, labs


def test_addresses_and_index():
    assert labs.host_addresses(2, 1) == ('10.231.2.11', 'fd42:706b:6c61::2:b')
    assert labs.free_index({2, 3, 5}) == 4
    with pytest.raises(ValueError):
        labs.free_index(set(range(2, 250)))


def test_inventory_text():
    record = {'lab': 'it-x', 'key': '/k', 'subnet4': '10.231.4.0/24', 'subnet6': 'fd42:706b:6c61::4:0/112',
              'hosts': [{'name': 'it-x-1', 'ipv4': '10.231.4.11', 'ipv6': 'fd42:706b:6c61::4:b', 'container': 'pklab-it-x-1'}]}
    text = labs.inventory_text(record)
    assert 'lab_it_x:' in text and 'ansible_host: 10.231.4.11' in text and 'ansible_ssh_private_key_file: /k' in text


def test_debian_mirror(tmp_path):
    sources = tmp_path / 'debian.sources'
    sources.write_text('Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n')
    assert image.debian_mirror([str(sources)]) == 'http://mirror.example/debian'
    assert image.debian_mirror([str(tmp_path / 'none')]) == 'http://deb.debian.org/debian'


def test_doctor_fails_on_another_backend(monkeypatch):
    monkeypatch.setattr(doctor, 'host_info', lambda: ['cni', 'runc'])
    monkeypatch.setattr(doctor, 'podman', lambda *a, **k: type('R', (), {'stdout': '4.3.1'})())
    ok, lines = doctor.report([])
    assert not ok and any('FAIL' in line for line in lines) and any('cni' in line for line in lines)
