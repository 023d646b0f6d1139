# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One_Time_Sequences file semantics (knockd 0.8): first valid line, consumed in place."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.one_time_sequences import (
    OneTimeSequences)
from ansible_collections.portknock.knock.plugins.module_utils.sequence import parse_sequence

CONTENT = (b'# one-time sequences\n'
           b'\n'
           b' 7313,4187,9421\n'
           b' 7313;oops\n'
           b' 99999,1\n'
           b' 8123:udp 5311 6271\n')


def make(tmp_path, content=CONTENT):
    path = tmp_path / 'otp'
    path.write_bytes(content)
    return OneTimeSequences(str(path)), path


def test_current_is_the_first_valid_line(tmp_path):
    otp, dummy = make(tmp_path)
    assert otp.current() == parse_sequence('7313,4187,9421')


def test_consume_overwrites_one_byte_and_skips_bad_lines(tmp_path):
    otp, path = make(tmp_path)
    nxt = otp.consume(parse_sequence('7313,4187,9421'))
    assert nxt == parse_sequence('8123:udp,5311,6271')
    data = path.read_bytes()
    assert len(data) == len(CONTENT)
    assert data == CONTENT.replace(b' 7313,4187,9421', b'#7313,4187,9421')
    assert otp.consume(nxt) is None
    assert otp.current() is None


def test_consume_of_a_sequence_not_in_the_file_changes_nothing(tmp_path):
    otp, path = make(tmp_path)
    assert otp.consume(parse_sequence('5311,6271')) == parse_sequence('7313,4187,9421')
    assert path.read_bytes() == CONTENT


def test_empty_and_undecodable_files(tmp_path):
    assert make(tmp_path, b'')[0].current() is None
    otp, dummy = make(tmp_path, b'\xff\xfe garbage\n 9421,7313\n')
    assert otp.current() == parse_sequence('9421,7313')
