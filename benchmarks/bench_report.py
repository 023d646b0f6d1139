# Copyright: portknock.knock contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the two daemon benchmarks share (daemon_vs_knockd.py, spa_vs_fwknopd.py): the protected
port's listener, the signal handling of a run, one flood step's row and line, one latency
result and line, and the summary: latency table, latency ratios to the daemon compared with,
the flood table of the first two flooded daemons.

Imported as a plain module: ``python3 benchmarks/<x>.py`` puts this directory on sys.path.
Nothing here asserts; it prints.
"""

import json
import signal
import statistics
import time

_LISTENER = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', %d))
s.listen(4096)
while True:
    c, _a = s.accept()
    c.close()
"""
SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
NO_FLOOD = {'sent': 0, 'pps': 0, 'seconds': 0}


def say(message):
    print(message, flush=True)


def listener(port):
    """A python3 script that accepts (and closes) every TCP connection to ``port``."""
    return _LISTENER % port


def end_on_signals():
    """SIGTERM, SIGHUP and SIGINT end the run as KeyboardInterrupt, once: the teardown in the
    caller's ``finally`` then runs to its end (later signals are ignored)."""
    def on_signal(signum, _frame):
        for other in SIGNALS:
            signal.signal(other, signal.SIG_IGN)   # let the teardown finish
        raise KeyboardInterrupt('signal %d' % signum)
    for signum in SIGNALS:
        signal.signal(signum, on_signal)


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return float('nan')
    return ordered[min(len(ordered) - 1, max(0, int(round(fraction * (len(ordered) - 1)))))]


def flood_sent(out):
    """The flood sender's last output line ({sent, pps, seconds}); nothing sent if it printed nothing."""
    return json.loads(out.strip().splitlines()[-1]) if out.strip() else dict(NO_FLOOD)


def flood_row(rate, flood, trials, packets, before, after, what):
    """One flood step's row: ``before``/``after`` are the daemon's (rss KiB, cpu seconds),
    ``packets`` all it was sent; says the step's line (``what`` opened: knocks, SPA)."""
    ok = sum(1 for t in trials if t['ok'])
    row = {'rate': rate, 'pps': flood['pps'], 'sent': flood['sent'], 'ok': ok, 'knocks': len(trials),
           'rss_kib': after[0], 'cpu_s': round(after[1] - before[1], 3),
           'cpu_per_100k': round((after[1] - before[1]) * 100000.0 / packets, 3) if packets else None}
    say('  flood %-6s achieved %8.0f pps: %2d/%2d %s opened (%5.1f %%), RSS %6.1f MiB, CPU %.3f s/100k pkts'
        % (rate or 'max', flood['pps'], ok, len(trials), what, 100.0 * ok / max(1, len(trials)),
           after[0] / 1024.0, row['cpu_per_100k'] or 0))
    return row


def latency_result(name, idle_rss_kib, trials, what):
    """A daemon's result from its latency trials ([{ok, ms}], one a fresh source); says its line."""
    times = [t['ms'] for t in trials if t['ok']]
    result = {'name': name, 'idle_rss_kib': idle_rss_kib, 'latency_ok': len(times), 'latency_n': len(trials),
              'p50': statistics.median(times) if times else float('nan'), 'p90': percentile(times, 0.9),
              'flood': []}
    say('  %s over %d fresh sources: p50 %.2f ms, p90 %.2f ms (%d/%d opened)'
        % (what, len(trials), result['p50'], result['p90'], len(times), len(trials)))
    return result


def summary(results, base_name):
    """The summary tables: every result's latency, its ratio to ``base_name``'s (when that one
    ran), and the flood steps of the first two flooded results side by side."""
    say('')
    say('== summary (%s; load average %s)' % (time.strftime('%Y-%m-%d %H:%M'), ' '.join(
        open('/proc/loadavg').read().split()[:3])))
    width = max([len(r['name']) for r in results] + [10]) + 2
    say('%-*s %9s %9s %9s %12s' % (width, '', 'p50 ms', 'p90 ms', 'opened', 'idle RSS MiB'))
    for r in results:
        say('%-*s %9.2f %9.2f %5d/%-3d %12.1f' % (
            width, r['name'], r['p50'], r['p90'], r['latency_ok'], r['latency_n'], r['idle_rss_kib'] / 1024.0))
    base = [r for r in results if r['name'] == base_name]
    if base:
        say('')
        for r in results:
            if r is not base[0] and r['p50'] == r['p50']:
                say('latency %s/%s: p50 %.3fx, p90 %.3fx (target p50 <= 0.1x)' % (
                    r['name'], base_name, r['p50'] / base[0]['p50'], r['p90'] / base[0]['p90']))
    flooded = [r for r in results if r['flood']]
    if len(flooded) >= 2:
        old, new = flooded[:2]
        say('')
        say('%-8s | %-42s | %-42s' % ('flood', old['name'], new['name']))
        say('%-8s | %9s %7s %8s %14s | %9s %7s %8s %14s' % (
            'target', 'pps', 'opened', 'RSS MiB', 'CPU s/100k', 'pps', 'opened', 'RSS MiB', 'CPU s/100k'))
        for a, b in zip(old['flood'], new['flood']):
            say('%-8s | %9.0f %6.0f%% %8.1f %14.3f | %9.0f %6.0f%% %8.1f %14.3f' % (
                a['rate'] or 'max',
                a['pps'], 100.0 * a['ok'] / max(1, a['knocks']), a['rss_kib'] / 1024.0, a['cpu_per_100k'] or 0,
                b['pps'], 100.0 * b['ok'] / max(1, b['knocks']), b['rss_kib'] / 1024.0, b['cpu_per_100k'] or 0))
