# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""knockd_stanza warns about a door a port scan opens, naming it and no knock port (issue 11, item 16)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

import pytest

import test_knockd_stanza
from test_knockd_stanza import CMD, run

pytestmark = test_knockd_stanza.pytestmark   # the same skip (no ansible CLI in the venv)


def stanza(tmp_path, sequence):
    args = {'path': str(tmp_path / 'knockd.conf'), 'name': 'admin', 'sequence': sequence, 'start_command': CMD,
            'create': True}
    return run(tmp_path, args)


@pytest.mark.parametrize('sequence', [[7000, 8000, 9000], '4444:udp,3333,2222', [1600], '7000,7000:udp'])
def test_a_sequence_a_scan_opens_is_written_with_a_warning(tmp_path, sequence):
    result, out = stanza(tmp_path, sequence)
    assert not result['failed'] and result['changed'], result
    warnings = re.findall(r"\[WARNING\]: (door 'admin' has .*)", out)
    assert len(warnings) == 1, out
    for port in ('7000', '8000', '9000', '2222', '3333', '4444', '1600'):
        assert port not in warnings[0]


@pytest.mark.parametrize('sequence', [[7313, 4187, 9421], '8243:udp,7311,9127'])
def test_other_sequences_get_no_warning(tmp_path, sequence):
    result, out = stanza(tmp_path, sequence)
    assert not result['failed'] and result['changed'], result
    assert "door 'admin'" not in out, out
