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
    assert words[1] == proxy.knock_script() and words[1].endswith('/scripts/knock')


def test_spa_proxy_command_has_no_key_and_no_delay():
    command = proxy.build_proxy_command(delay_ms=50, spa=dict(access='tcp/22', spa_port=62201, allow_ip=None))
    words = shlex.split(command.replace('%%', '%'))
    assert words[words.index('--proxy'):] == ['--proxy', '--spa', '--access', 'tcp/22', '--spa-port', '62201',
                                              '--connect-timeout', '10.0', '%h', '%p']
    assert 'KEY' not in command


def test_no_code_of_its_own_to_find_the_collection_root():
    # the launcher (scripts/knock -> scripts/portknock_launcher.py) is the one root finder (issue 12)
    import inspect
    source = inspect.getsource(proxy)
    assert 'ansible_collections' not in source.replace('ansible_collections.portknock', '')


def test_the_command_runs_the_knock_cli_next_to_it():
    # the import line finds knock_cli.py where this module lives: ask the real CLI for its help
    command = proxy.build_proxy_command(fdpass=True)
    words = shlex.split(command.replace('%%', '%'))
    result = subprocess.run(words[:3] + ['--help'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, check=False)
    assert result.returncode == 0, result.stdout
    assert '--proxy' in result.stdout and '--fdpass' in result.stdout
