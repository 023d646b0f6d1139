# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Splitting rendered iptables lines into python-iptables matches and targets."""

from __future__ import absolute_import, division, print_function

import pytest

from ansible_collections.portknock.knock.plugins.module_utils.iptc_rules import split_rule


def test_split_rule_with_several_recent_matches():
    line = ('-A PK-d -p tcp -m tcp --dport 8000 --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate NEW '
            '-m recent --rcheck --seconds 3 --name PK_d_1 --mask 255.255.255.255 --rsource '
            '-m recent --set --name PK_d_2 --mask 255.255.255.255 --rsource -j DROP')
    chain, protocol, parts = split_rule(line)
    assert chain == 'PK-d' and protocol == 'tcp'
    assert parts[0] == ('match', 'tcp', [('dport', ['8000']), ('tcp-flags', ['FIN,SYN,RST,ACK', 'SYN'])])
    assert parts[1] == ('match', 'conntrack', [('ctstate', ['NEW'])])
    assert parts[2] == ('match', 'recent', [('rcheck', []), ('seconds', ['3']), ('name', ['PK_d_1']),
                                            ('mask', ['255.255.255.255']), ('rsource', [])])
    assert parts[3][2][0] == ('set', [])
    assert parts[4] == ('target', 'DROP', [])


def test_split_rule_without_target():
    chain, protocol, parts = split_rule('-A PK-d-R -m recent --remove --name PK_d_1 --mask 255.255.255.255 --rsource')
    assert chain == 'PK-d-R' and protocol is None and [p[0] for p in parts] == ['match']


@pytest.mark.parametrize('line', ['-I INPUT 1 -j X', '-A X --dport 22', '-A X -m'])
def test_split_rule_rejects_what_it_does_not_know(line):
    with pytest.raises(ValueError):
        split_rule(line)
