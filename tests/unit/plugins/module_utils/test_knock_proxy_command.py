# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

import shlex
import subprocess

from ansible_collections.portknock.knock.plugins.module_utils import knock_proxy_command as proxy


def test_build_proxy_command_keeps_sequence_out_and_escapes_percent():
    command = proxy.build_proxy_command(python='/opt/py%3/python', delay_ms=50, family=6, knock_host='fw',
                                        connect_timeout=9)
    assert '1600' not in command
    assert '/opt/py%%3/python' in command
    words = shlex.split(command.replace('%%', '%'))
    assert words[words.index('--proxy'):] == ['--proxy', '-d', '50', '--connect-timeout', '9', '-6',
                                              '--knock-host', 'fw', '%h', '%p']
    assert 'knock_cli import main' in words[2]


def test_the_command_runs_the_knock_cli_next_to_it():
    # the import line finds knock_cli.py where this module lives: ask the real CLI for its help
    command = proxy.build_proxy_command(fdpass=True)
    words = shlex.split(command.replace('%%', '%'))
    result = subprocess.run(words[:3] + ['--help'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, check=False)
    assert result.returncode == 0, result.stdout
    assert '--proxy' in result.stdout and '--fdpass' in result.stdout
