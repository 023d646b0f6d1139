# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""knock --sequence-file: the sequence off the command line, from a file only its owner can read."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from ansible_collections.portknock.knock.plugins.module_utils import knock_cli
from ansible_collections.portknock.knock.plugins.module_utils.sequence import Step


def write(tmp_path, text, mode=0o600):
    path = tmp_path / 'seq'
    path.write_text(text)
    os.chmod(str(path), mode)
    return str(path)


@pytest.mark.parametrize('mode', [False, True])
def test_sequence_from_file(tmp_path, monkeypatch, mode):
    monkeypatch.setenv('PORTKNOCK_SEQUENCE', '1111')   # the file wins over the environment
    path = write(tmp_path, '# door of server\n7311,9127:udp\n 8243  # last\n')
    argv = ['--proxy', '--sequence-file', path, 'host', '22'] if mode else ['--sequence-file', path, 'host']
    args = knock_cli.parse_args(argv)
    assert args.sequence == (Step(7311, 'tcp'), Step(9127, 'udp'), Step(8243, 'tcp'))


@pytest.mark.parametrize('mode', [0o640, 0o604, 0o660, 0o644, 0o606])
def test_file_others_can_access_is_refused(tmp_path, capsys, mode):
    path = write(tmp_path, '7311,9127,8243\n', mode)
    with pytest.raises(SystemExit) as exit_:
        knock_cli.parse_args(['--proxy', '--sequence-file', path, 'host', '22'])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert 'chmod 600' in err and '7311' not in err and '9127' not in err


@pytest.mark.parametrize('text', ['7311;9127,8243', '7311,99999', '', '# nothing\n'])
def test_bad_file_content_is_not_quoted(tmp_path, capsys, text):
    path = write(tmp_path, text)
    with pytest.raises(SystemExit):
        knock_cli.parse_args(['--sequence-file', path, 'host'])
    err = capsys.readouterr().err
    assert '7311' not in err and '9127' not in err and '8243' not in err


def test_missing_file_and_both_forms(tmp_path, capsys):
    with pytest.raises(SystemExit):
        knock_cli.parse_args(['--sequence-file', str(tmp_path / 'none'), 'host'])
    assert 'No such file' in capsys.readouterr().err
    path = write(tmp_path, '7311,9127\n')
    with pytest.raises(SystemExit):
        knock_cli.parse_args(['--sequence-file', path, 'host', '8243'])
    assert 'not both' in capsys.readouterr().err


def test_docs_never_teach_a_sequence_in_the_proxy_command():
    docs = os.path.join(os.path.dirname(knock_cli.__file__), '..', '..', 'docs', 'knock-client.md')
    with open(docs) as handle:
        for line in handle:
            if 'ProxyCommand' in line and 'knock --proxy' in line:
                assert line.rstrip().endswith(('%h %p', "%h %p' server.example.org`.", "%p' host` (keep it out of your shell")), line
