# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Values the bundled daemon cannot hold are refused where knockd.conf is parsed (issue 11 item 9)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.portknock.knock.plugins.module_utils import knockd_conf
from ansible_collections.portknock.knock.plugins.module_utils.sequence import KnockValueError

TOO_BIG = ['2147483648', '99999999999', '1' + '0' * 309, '7' * 4301, '9' * 50000, 2 ** 31, 10 ** 309]


@pytest.mark.parametrize('key', ['seq_timeout', 'cmd_timeout'])
@pytest.mark.parametrize('value', TOO_BIG, ids=['int32+1', '11-digits', '1e309', '4301-digits', '50000-digits',
                                                'int-2**31', 'int-10**309'])
def test_timeouts_above_a_c_int_are_refused_everywhere(key, value):
    for call in (knockd_conf.normalize_value, knockd_conf.format_value):
        with pytest.raises(KnockValueError, match='greater than 2147483647 seconds'):
            call(key, value)
    if isinstance(value, str):
        text = '[door]\n    sequence = 7313,4187,9421\n    %s = %s\n' % (key, value)
        with pytest.raises(knockd_conf.KnockdConfError, match='line 3: .*greater than') as raised:
            knockd_conf.parse(text)
        assert len(str(raised.value)) < 200          # a huge value is not quoted whole
        with pytest.raises(KnockValueError):
            knockd_conf.semantic(knockd_conf.parse(text, validate=False))


@pytest.mark.parametrize('key', ['seq_timeout', 'cmd_timeout'])
def test_largest_timeout_is_kept(key):
    assert knockd_conf.normalize_value(key, '2147483647') == 2147483647
    assert knockd_conf.format_value(key, 2147483647) == '2147483647'


# -- issue 11 item 11: a bad Target is an error, never "no target" ----------------------------
BAD_TARGETS = ['host.example', 'localhost', '10.99.4.300', '10.99.4.0/24', '10.99.4.1,10.99.4.2', 'fd42::1::2',
               '10.99.4', '0x0a630401', '10.99.4.1 # lab', 'fe80::1%eth0', '*', '[fd42::1]', '::ffff:10.99.4.1/128']


@pytest.mark.parametrize('target', BAD_TARGETS)
def test_a_target_that_is_not_an_address_is_refused_naming_it(target):
    for call in (knockd_conf.normalize_value, knockd_conf.format_value):
        with pytest.raises(KnockValueError, match='is not an IPv4 or IPv6 address') as raised:
            call('target', target)
        assert repr(target)[:30] in str(raised.value)
    text = '[door]\n    sequence = 7313,4187,9421\n    target = %s\n' % target
    with pytest.raises(knockd_conf.KnockdConfError, match='line 3: target .* is not an IPv4 or IPv6 address'):
        knockd_conf.parse(text)
    with pytest.raises(KnockValueError):
        knockd_conf.semantic(knockd_conf.parse(text, validate=False))
    conf = knockd_conf.parse('[door]\n    sequence = 7313,4187,9421\n')
    with pytest.raises(KnockValueError):
        conf.set_stanza('door', {'target': target})


@pytest.mark.parametrize('target, canonical', [('10.99.4.1', '10.99.4.1'), (' FD42:99:4:0::1 ', 'fd42:99:4::1'),
                                               ('::ffff:10.99.4.1', '::ffff:a63:401')])
def test_a_numeric_target_is_kept(target, canonical):
    assert knockd_conf.normalize_value('target', target) == canonical
    text = '[door]\n    sequence = 7313,4187,9421\n    Target = %s\n' % target
    assert knockd_conf.semantic(knockd_conf.parse(text))['stanzas'][0].target == canonical
