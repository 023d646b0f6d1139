# -*- coding: utf-8 -*-
# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""portknock-fwknopd's decisions (pure: the codec, the replay cache in memory, a fake clock)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import io
import random
import socket
import struct

import pytest

from ansible_collections.portknock.knock.plugins.module_utils import spa
from ansible_collections.portknock.knock.plugins.module_utils.fwknop_conf import (parse_access_conf,
                                                                                  parse_fwknopd_conf)
from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon import fwknopd_main as fm
from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon import spa_receiver as rx
from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.counters import DoorCounters
from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.log import KnockdLog
from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.packet import parse_ip
from ansible_collections.portknock.knock.plugins.module_utils.knockd_daemon.replay_cache import ReplayCache

KEY, HMAC_KEY = b'k' * 32, b'h' * 64
OTHER_KEY, OTHER_HMAC = b'o' * 32, b'p' * 64
NOW = 1700000000
SRC = '10.231.250.2'
B64 = base64.b64encode


def access_text(key=KEY, hmac_key=HMAC_KEY, source='10.231.250.0/24, fd42:706b:6c61::/64', extra=''):
    return ('SOURCE %s\nOPEN_PORTS tcp/22, udp/5353\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nFW_ACCESS_TIMEOUT 7\n'
            'MAX_FW_TIMEOUT 60\n%s' % (source, B64(key).decode(), B64(hmac_key).decode(), extra))


def receiver(text=None, conf='', packet_source=False, now=NOW, penalty_failures=0, **kw):
    """A receiver at wall-clock time ``now``; without the per-source penalty unless asked (tests send many)."""
    config = parse_fwknopd_conf(conf or 'MAX_SPA_PACKET_AGE 60\n', 'fwknopd.conf')
    stanzas = parse_access_conf(text or access_text(), 'access.conf')
    cache = ReplayCache(None, config.max_spa_packet_age, clock=lambda: now)
    return rx.SpaReceiver(config, stanzas, cache, require_packet_source=packet_source, clock=lambda: now,
                          penalty_failures=penalty_failures, **kw)


def packet(source=SRC, access='tcp/22', key=KEY, hmac_key=HMAC_KEY, timestamp=NOW, **kw):
    return spa.encode(source, access, key, hmac_key, timestamp=timestamp, **kw).encode('ascii')


def test_accepts_and_opens_the_message_address_for_the_stanza_timeout():
    d = receiver().decide(packet('10.231.250.9'), SRC)
    assert d.accepted and d.reason is None
    assert (d.address, d.timeout, d.stanza) == ('10.231.250.9', 7, 1)
    assert d.access == (spa.Access('tcp', 22),)


def test_the_same_packet_twice_is_a_replay():
    r = receiver()
    data = packet()
    assert r.decide(data, SRC).accepted
    assert r.decide(data, SRC).reason == rx.REPLAY
    assert r.decide(data, '10.231.250.3').reason == rx.REPLAY    # from any source


@pytest.mark.parametrize('kw, reason', [
    (dict(hmac_key=OTHER_HMAC), rx.BAD_HMAC),
    (dict(key=OTHER_KEY), rx.DECRYPT),
    (dict(timestamp=NOW - 61), rx.TOO_OLD),
    (dict(timestamp=NOW + 61), rx.TOO_NEW),
    (dict(access='tcp/23'), rx.PORT),
    (dict(access='tcp/22,udp/53'), rx.PORT),
])
def test_refusals(kw, reason):
    d = receiver().decide(packet(**kw), SRC)
    assert not d.accepted and d.reason == reason


@pytest.mark.parametrize('skew', [-60, -1, 0, 1, 60])
def test_clock_skew_allowance_is_the_max_age_both_ways(skew):
    assert receiver().decide(packet(timestamp=NOW + skew), SRC).accepted


def test_packet_aging_off_accepts_any_timestamp():
    r = receiver(conf='ENABLE_SPA_PACKET_AGING N\n')
    assert r.decide(packet(timestamp=NOW - 10 ** 6), SRC).accepted


def test_a_refused_packet_that_decrypted_is_still_a_replay_afterwards():
    r = receiver()
    data = packet(access='tcp/23')
    assert r.decide(data, SRC).reason == rx.PORT
    assert r.decide(data, SRC).reason == rx.REPLAY


def test_a_wrong_key_packet_does_not_enter_the_cache():
    r = receiver()
    data = packet(hmac_key=OTHER_HMAC)
    assert r.decide(data, SRC).reason == rx.BAD_HMAC
    assert r.decide(data, SRC).reason == rx.BAD_HMAC


def test_source_not_in_any_stanza():
    assert receiver().decide(packet(), '10.231.1.1').reason == rx.NO_STANZA
    assert receiver().decide(packet(), 'fd42:706b:6c62::1').reason == rx.NO_STANZA


def test_zero_address_opens_the_packet_source_unless_required():
    d = receiver().decide(packet('0.0.0.0'), SRC)
    assert d.accepted and d.address == SRC
    d = receiver(access_text(extra='REQUIRE_SOURCE_ADDRESS Y\n')).decide(packet('0.0.0.0'), SRC)
    assert d.reason == rx.SOURCE_REQUIRED
    v6 = 'fd42:706b:6c61::fa:2'
    d = receiver().decide(packet('::'), v6)
    assert d.accepted and d.address == v6


def test_require_packet_source_extension():
    assert receiver().decide(packet('10.231.250.9'), SRC).accepted        # fwknopd: the message's address
    r = receiver(packet_source=True)
    d = r.decide(packet('10.231.250.9'), SRC)
    assert d.reason == rx.SOURCE_MISMATCH and d.address == '10.231.250.9'
    assert r.decide(packet(SRC), SRC).accepted
    assert r.decide(packet('0.0.0.0'), SRC).accepted


def test_ipv6_message_from_an_ipv6_source():
    v6 = 'fd42:706b:6c61::fa:2'
    d = receiver().decide(packet(v6, 'udp/5353'), v6)
    assert d.accepted and d.address == v6 and d.access == (spa.Access('udp', 5353),)


def test_client_timeout_is_used_and_capped_by_max_fw_timeout():
    assert receiver().decide(packet(client_timeout=45), SRC).timeout == 45
    assert receiver().decide(packet(client_timeout=7313), SRC).timeout == 60


def test_stanzas_tried_in_order_the_first_that_verifies_takes_it():
    text = access_text(OTHER_KEY, OTHER_HMAC, 'ANY') + '\n' + access_text(source='10.231.250.0/24, fd42::/16').replace(
        'OPEN_PORTS tcp/22, udp/5353', 'OPEN_PORTS tcp/4187')
    r = receiver(text)
    d = r.decide(packet(access='tcp/4187'), SRC)
    assert d.accepted and d.stanza == 8
    d = r.decide(packet(access='tcp/4187', key=OTHER_KEY, hmac_key=OTHER_HMAC), SRC)
    assert d.reason == rx.PORT and d.stanza == 1


def test_restrict_ports_username_and_expiry():
    r = receiver(access_text(source='ANY', extra='RESTRICT_PORTS tcp/22\n'))
    assert r.decide(packet(), SRC).reason == rx.PORT
    r = receiver(access_text(extra='REQUIRE_USERNAME alice\n'))
    assert r.decide(packet(username='bob'), SRC).reason == rx.USERNAME
    assert r.decide(packet(username='alice'), SRC).accepted
    r = receiver(access_text(extra='ACCESS_EXPIRE_EPOCH %d\n' % (NOW - 1)))
    assert r.decide(packet(), SRC).reason == rx.EXPIRED


def test_no_open_ports_allows_any_port():
    text = access_text().replace('OPEN_PORTS tcp/22, udp/5353\n', '')
    assert receiver(text).decide(packet(access='tcp/9421'), SRC).accepted


def test_stanza_without_hmac_key():
    text = 'SOURCE ANY\nKEY_BASE64 %s\n' % B64(KEY).decode()
    r = receiver(text)
    assert r.decide(packet(hmac_key=None), SRC).accepted
    assert r.decide(packet(key=OTHER_KEY, hmac_key=None), SRC).reason in (rx.DECRYPT, rx.NOT_SPA)


@pytest.mark.parametrize('penalty', [0, 3])
def test_fuzzed_payloads_are_refused_never_raise(penalty):
    rng = random.Random(9421)
    r = receiver(penalty_failures=penalty)
    good = packet()
    for n in range(600):
        kind = n % 4
        if kind == 0:
            data = bytes(rng.randrange(256) for _n in range(rng.randrange(1600)))
        elif kind == 1:
            data = bytes(rng.choice(b'ABCDEFGHabcdef0123456789+/') for _n in range(rng.randrange(30, 400)))
        elif kind == 2:
            data = good[:rng.randrange(len(good))]
        else:
            cut = rng.randrange(len(good))
            data = good[:cut] + bytes([rng.choice(b'ABC+/')]) + good[cut + 1:]
        d = r.decide(data, rng.choice([SRC, 'fd42:706b:6c61::5', 'junk']))
        assert isinstance(d, rx.Decision)
        assert not d.accepted or data == good
        assert d.accepted or d.reason in rx.REASONS
        assert not d.detail.startswith('unexpected')     # refused by a check, not by the safety net
    assert r.decide(None, SRC).reason == (rx.PENALIZED if penalty else rx.NOT_SPA)
    assert r.decide(None, '10.231.250.77').reason == rx.NOT_SPA
    assert bool(r.penalties) == bool(penalty)


def _udp4(src, dst, sport, dport, payload, options=b''):
    ihl = 5 + len(options) // 4
    udp = struct.pack('!HHHH', sport, dport, 8 + len(payload), 0) + payload
    return struct.pack('!BBHHHBBH4s4s', 0x40 | ihl, 0, ihl * 4 + len(udp), 1, 0, 64, 17, 0,
                       socket.inet_aton(src), socket.inet_aton(dst)) + options + udp


def _udp6(src, dst, sport, dport, payload, ext=b''):
    udp = struct.pack('!HHHH', sport, dport, 8 + len(payload), 0) + payload
    nxt = 0 if ext else 17
    return struct.pack('!IHBB16s16s', 6 << 28, len(ext) + len(udp), nxt, 64, socket.inet_pton(socket.AF_INET6, src),
                       socket.inet_pton(socket.AF_INET6, dst)) + ext + udp


@pytest.mark.parametrize('make', [
    lambda p: _udp4(SRC, '10.231.250.1', 40000, 62201, p),
    lambda p: _udp4(SRC, '10.231.250.1', 40000, 62201, p, options=b'\x01\x01\x01\x00'),
    lambda p: _udp4(SRC, '10.231.250.1', 40000, 62201, p) + b'\0' * 6,    # Ethernet padding after the datagram
    lambda p: _udp6('fd42::2', 'fd42::1', 40000, 62201, p),
    lambda p: _udp6('fd42::2', 'fd42::1', 40000, 62201, p, ext=b'\x11\x00' + b'\x01\x04\0\0\0\0'),  # hop-by-hop
])
def test_udp_payload_of_captured_packets(make):
    data = packet()
    raw = make(data)
    assert rx.udp_payload(raw, parse_ip(raw)) == data


def test_udp_payload_of_truncated_or_other_packets_is_none():
    raw = _udp4(SRC, '10.231.250.1', 40000, 62201, packet())
    assert rx.udp_payload(raw[:200], parse_ip(raw[:200])) is None
    assert rx.udp_payload(raw, None) is None
    rng = random.Random(4187)
    for _n in range(300):
        junk = bytes(rng.randrange(256) for _n in range(rng.randrange(80)))
        rx.udp_payload(junk, parse_ip(junk))


# --- the per-source penalty (extension) ------------------------------------------------------

class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def penalized_receiver(failures=3, seconds=5, text=None):
    clock = Clock()
    return receiver(text, penalty_failures=failures, penalty_seconds=seconds, monotonic=clock), clock


def test_a_source_that_keeps_failing_the_hmac_is_refused_unexamined_for_a_while():
    r, clock = penalized_receiver()
    bad = [packet(hmac_key=OTHER_HMAC) for _n in range(3)]
    assert [r.decide(data, SRC).detail for data in bad[:2]] == ['', '']
    d = r.decide(bad[2], SRC)
    assert d.reason == rx.BAD_HMAC
    assert d.detail == '3 failed packets from this source within 1 s: its packets are refused unexamined for 5 s'
    good = packet()
    d = r.decide(good, SRC)                             # even a good one: the source is not examined
    assert (d.accepted, d.reason, d.detail, d.address, d.access) == (False, rx.PENALIZED, '', None, ())
    assert r.decide(packet(), '10.231.250.3').accepted     # an innocent source is not affected
    clock.now += 4.9
    assert r.decide(good, SRC).reason == rx.PENALIZED
    clock.now += 0.1
    assert r.decide(good, SRC).accepted                    # the penalty expired: examined again
    assert (r.penalties, r.penalized) == (1, 2)
    assert not r._penalized_until


def test_a_source_sharing_the_stanza_with_a_failing_one_is_never_penalized():
    r, _clock = penalized_receiver(failures=2)
    for n in range(20):
        assert r.decide(packet(hmac_key=OTHER_HMAC), SRC).reason in (rx.BAD_HMAC, rx.PENALIZED)
        d = r.decide(packet(), '10.231.250.%d' % (3 + n % 2))
        assert d.accepted and d.detail == ''
    assert r.penalties == 1


def test_failures_count_within_one_second_only():
    r, clock = penalized_receiver()
    for _n in range(10):
        r.decide(packet(hmac_key=OTHER_HMAC), SRC)
        r.decide(packet(hmac_key=OTHER_HMAC), SRC)
        clock.now += 1.0
    assert r.penalties == 0 and r.decide(packet(), SRC).accepted


def test_cheap_junk_replays_and_decrypt_failures_all_count():
    r, clock = penalized_receiver()
    rng = random.Random(7313)
    reasons = [r.decide(bytes(rng.choice(b'ABCDEFGHabcdef0123456789+/') for _n in range(rng.randrange(30, 180))),
                        SRC).reason for _n in range(21)]      # refused by the length/alphabet checks
    assert reasons[-1] == rx.PENALIZED and r.penalties == 1
    assert r.decide(packet(), '10.231.250.3').accepted       # another source is not affected
    clock.now += 10.0
    r, _clock = penalized_receiver()
    data = packet()
    assert r.decide(data, '10.231.250.3').accepted
    assert [r.decide(data, SRC).reason for _n in range(4)] == [rx.REPLAY] * 3 + [rx.PENALIZED]
    r, _clock = penalized_receiver(text='SOURCE ANY\nKEY_BASE64 %s\n' % B64(KEY).decode())    # no HMAC key
    reasons = [r.decide(packet(key=OTHER_KEY, hmac_key=None), SRC).reason for _n in range(4)]
    assert reasons[3] == rx.PENALIZED and r.penalties == 1


def test_no_penalty_with_zero_failures():
    r, _clock = penalized_receiver(failures=0)
    for _n in range(50):
        assert r.decide(packet(hmac_key=OTHER_HMAC), SRC).reason == rx.BAD_HMAC
    assert r.penalties == 0 and r.decide(packet(), SRC).accepted


def test_the_daemon_default_penalty_is_on():
    config = parse_fwknopd_conf('', 'fwknopd.conf')
    r = rx.SpaReceiver(config, parse_access_conf(access_text(), 'access.conf'), ReplayCache(None))
    assert (r.penalty_failures, r.penalty_seconds) == (rx.DEFAULT_PENALTY_FAILURES, rx.DEFAULT_PENALTY_SECONDS)
    assert r.penalty_failures > 0


def test_the_penalty_bookkeeping_is_bounded(monkeypatch):
    monkeypatch.setattr(rx, 'MAX_TRACKED_SOURCES', 8)
    r, clock = penalized_receiver(failures=2)
    bad = packet(hmac_key=OTHER_HMAC)
    for n in range(40):                        # a failure each from many sources: tracked up to the bound
        r.decide(bad, '10.231.250.%d' % (10 + n))
    assert len(r._failures) <= 8 and r.penalties == 0
    for n in range(40):                        # and penalized up to the bound
        r.decide(bad, '10.231.250.%d' % (100 + n % 20))
        r.decide(bad, '10.231.250.%d' % (100 + n % 20))
    assert len(r._penalized_until) <= 8
    clock.now += 10
    r.decide(bad, '10.231.250.200')            # a new window: expired penalties are dropped
    assert len(r._penalized_until) == 0


def test_penalties_end_in_the_order_they_started_for_the_kernel_filter():
    r, clock = penalized_receiver(failures=1, seconds=5)
    junk = b'A' * 80
    assert (r.penalized_sources(), r.next_penalty_end(), r.penalty_changes) == ([], None, 0)
    for n in range(3):                         # penalized at 1000, 1001, 1002
        r.decide(junk, '10.231.250.%d' % (10 + n))
        clock.now += 1
    assert r.penalized_sources() == ['10.231.250.12', '10.231.250.11', '10.231.250.10']   # newest first
    assert (r.next_penalty_end(), r.penalty_changes) == (1005.0, 3)
    r.expire_penalties(1005.5)
    assert r.penalized_sources() == ['10.231.250.12', '10.231.250.11'] and r.next_penalty_end() == 1006.0
    assert r.penalty_changes == 4
    r.expire_penalties(1005.9)                 # nothing ended: no change for the filter
    assert r.penalty_changes == 4
    r.expire_penalties(1010.0)
    assert (r.penalized_sources(), r.next_penalty_end(), r.penalty_changes) == ([], None, 5)


def test_sources_are_matched_without_ipaddress_objects_and_cached():
    r = receiver(access_text(source='10.231.250.0/24, fd42:706b:6c61::/64'))
    assert r.decide(packet(), '10.231.250.255').accepted
    assert r.decide(packet(), '10.231.251.0').reason == rx.NO_STANZA
    assert r.decide(packet(), 'fd42:706b:6c61::ffff').accepted
    assert r.decide(packet(), 'fd42:706b:6c61:1::1').reason == rx.NO_STANZA
    assert r.decide(packet(), '::ffff:10.231.250.2').reason == rx.NO_STANZA     # IPv4-mapped is IPv6
    assert r.decide(packet(), 'fe80::1%eth0').reason == rx.NOT_SPA
    assert set(r._sources) >= {'10.231.250.255', 'fe80::1%eth0'}


class StubDaemon:
    def __init__(self):
        self.log = KnockdLog(verbose=True, stream=io.StringIO())
        self.counters = DoorCounters(None)


def test_the_daemon_logs_a_penalty_once_and_counts_the_packets_it_refuses():
    r, _clock = penalized_receiver()
    daemon = StubDaemon()
    handler = fm.SpaHandler(daemon, r, test_mode=True)
    for _n in range(30):
        handler.handle(r.decide(packet(hmac_key=OTHER_HMAC), SRC))
    out = daemon.log.stream.getvalue()
    assert out.count('refused: bad HMAC') == 3 and out.count('refused unexamined for 5 s') == 1
    assert 'penalized' not in out
    assert daemon.counters.doors['spa']['refusals']['penalized'] == 27
    assert KEY.decode() not in out and HMAC_KEY.decode() not in out


def test_the_daemon_options_for_the_penalty():
    args = fm.build_parser().parse_args([])
    assert (args.penalty_failures, args.penalty_seconds) == (rx.DEFAULT_PENALTY_FAILURES, rx.DEFAULT_PENALTY_SECONDS)
    args = fm.build_parser().parse_args(['--penalty-failures', '0', '--penalty-seconds', '2'])
    assert (args.penalty_failures, args.penalty_seconds) == (0, 2)
    for bad in (['--penalty-failures', '-1'], ['--penalty-seconds', '0']):
        with pytest.raises(SystemExit):
            fm.build_parser().parse_args(bad)
