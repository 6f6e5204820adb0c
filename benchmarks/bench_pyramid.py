"""The cost of one request to the Pyramid add-on's feed view, against the
size of the log: 1k, 10k, 100k and 1M entries (issue #12).

Each log is one ``ActivityLog`` of the add-on's default window (10 layers
of 100) in a FileStorage of its own, built once before the rounds (one
transaction per 10,000 appends), entries ``'entry N'``.  A request goes
through a real Pyramid application (pyramid_tm, pyramid_zodbconn, the
add-on, ``appendonly.feed_limit`` = ``--limit``), driven by WebTest, on a
fresh FileStorage connection in a fresh child process.  Workloads:

- ``fresh``: no cursor, a client's first poll (the newest entries);
- ``recent``: a cursor 10 entries behind the newest, a client polling
  along;
- ``deep``: a cursor at the middle of the log (deep in the archive, except
  for the 1k log, which the window holds whole);
- ``start``: ``gen=-1&index=-1``, the first page of the whole log.

In each child: one request to warm the application up (a feed that does
not exist), then the workload's first request, timed alone (``first``:
the deep and start ones walk the archive down to their cursor there, once
per connection), then ``--requests`` more; the time of a request is the
median of those.  Every response is checked: the entries expected, in
order.  The harness (``_harness.py``) runs one child per log size,
workload and round, interleaved, and reports paired ratios to the 1k log.
The target: max/min of the median times over the four sizes below 3.

Usage::

    python benchmarks/bench_pyramid.py              # R=5, 20 requests
    python benchmarks/bench_pyramid.py --quick      # 1k..100k, 1 round
"""
import atexit
import contextlib
import os
import sys
import shutil
import statistics
import tempfile
import time

import _harness
from _harness import Option
from _harness import Target

#: (key, label, entries).
SIZES = [('1k', '1k entries', 1_000), ('10k', '10k entries', 10_000),
         ('100k', '100k entries', 100_000), ('1M', '1M entries', 1_000_000)]
#: Appends per transaction while building a log.
BUILD_BATCH = 10_000
#: The window of the logs: the add-on's defaults.
MAX_LAYERS, MAX_LENGTH = 10, 100
#: What the target asks: max/min of the medians below this.
FLAT = 3


def position(n):
    """``(generation, index)`` of entry ``n`` of a log built here."""
    return n // MAX_LENGTH, n % MAX_LENGTH


def build(path, count):
    """A FileStorage at ``path`` holding the add-on's log ``bench`` with
    ``count`` entries."""
    import ZODB
    from BTrees.OOBTree import OOBTree

    from appendonly import ActivityLog
    from appendonly.pyramid import ROOT_KEY
    db = ZODB.DB(path)
    with db.transaction() as conn:
        conn.root()[ROOT_KEY] = container = OOBTree()
        container[('log', 'bench')] = ActivityLog(MAX_LAYERS, MAX_LENGTH)
    for start in range(0, count, BUILD_BATCH):
        with db.transaction() as conn:
            log = conn.root()[ROOT_KEY][('log', 'bench')]
            for n in range(start, min(start + BUILD_BATCH, count)):
                log.append('entry %d' % n)
    db.close()


def request_for(workload, count, limit):
    """``(query, expected entries)`` of one request of ``workload``."""
    if workload == 'fresh':
        return {}, range(max(count - limit, 0), count)
    if workload == 'recent':
        cursor = count - 11
    elif workload == 'deep':
        cursor = count // 2
    else:
        cursor = -1
    gen, index = position(cursor) if cursor >= 0 else (-1, -1)
    return ({'gen': gen, 'index': index},
            range(cursor + 1, min(cursor + 1 + limit, count)))


class PyramidBench(_harness.Bench):
    title = ('Pyramid feed view: time per request against the size of the '
             'log')
    competitors = [(key, label) for key, label, _ in SIZES]
    baseline = '1k'
    workloads = [('fresh', 'no cursor (newest)'),
                 ('recent', 'cursor 10 behind'),
                 ('deep', 'cursor mid-log'),
                 ('start', 'from the start')]
    child_per_workload = True
    measure = 'time'
    competitor_heading = 'log'
    ratio_heading = 'x 1k'
    options = [
        Option('--requests', default=20, quick=5,
               help='timed requests per child, after the first'),
        Option('--limit', default=100,
               help='appendonly.feed_limit: entries per response'),
    ]
    rounds = (5, 1)
    packages = ('ZODB', 'persistent', 'BTrees', 'transaction', 'pyramid',
                'pyramid_zodbconn', 'pyramid_tm', 'WebTest')

    def prepare(self, args):
        self.folder = tempfile.mkdtemp(prefix='bench_pyramid.',
                                       dir=args.tmpdir)
        atexit.register(shutil.rmtree, self.folder, True)
        skipped = {}
        for key, label, count in SIZES:
            if args.quick and count > 100_000:
                skipped[key] = 'not with --quick'
                continue
            began = time.perf_counter()
            build(os.path.join(self.folder, key + '.fs'), count)
            print(f'built the log of {label} in '
                  f'{time.perf_counter() - began:.1f} s', file=sys.stderr)
        return skipped

    @contextlib.contextmanager
    def around(self, args, key, workload):
        yield {'path': os.path.join(self.folder, key + '.fs')}

    def run(self, args, key, workloads, extra):
        import webtest
        from pyramid.config import Configurator
        _harness.check_import()
        [workload] = workloads
        count = dict((k, n) for k, _, n in SIZES)[key]
        settings = {'zodbconn.uri': 'file://' + extra['path'],
                    'appendonly.feed_limit': str(args.limit)}
        with Configurator(settings=settings) as config:
            config.include('appendonly.pyramid')
            wsgi = config.make_wsgi_app()
        app = webtest.TestApp(wsgi)
        app.get('/appendonly/feed/warm-up')
        query, expected = request_for(workload, count, args.limit)
        expected = ['entry %d' % n for n in expected]
        times, problems = [], set()
        for _ in range(1 + args.requests):
            began = time.perf_counter()
            feed = app.get('/appendonly/feed/bench', query).json
            times.append(time.perf_counter() - began)
            found = [entry for _, _, entry in feed['entries']]
            if found != expected:
                problems.add(f'{len(found)} entries, not the '
                             f'{len(expected)} expected in order')
        wsgi.registry._zodb_databases[''].close()
        first, median = times[0], statistics.median(times[1:])
        m = _harness.measurement(1, median, expected, found,
                                 first_ms=first * 1e3, median_ms=median * 1e3)
        m['problems'] = sorted(problems)
        return {'workloads': {workload: m}}

    def header(self, data):
        p = data['parameters']
        return [self.title,
                f'logs of {MAX_LAYERS}x{MAX_LENGTH} (window) on FileStorage;'
                f' feed_limit={p["limit"]}; per child: 1 warm-up, 1 first '
                f'request (timed alone), {p["requests"]} timed requests']

    def columns(self, data):
        return [('median ms', lambda s, key: f'{s["extra"]["median_ms"]:.2f}'),
                ('first ms', lambda s, key: f'{s["extra"]["first_ms"]:.1f}')]

    def notes(self, data):
        lines = []
        for workload, label in data['workloads']:
            ratio = max_over_min(data, workload)
            if ratio is not None:
                lines.append(f'{label}: max/min of the medians over the '
                             f'sizes {ratio:.2f}')
        return lines

    def targets(self, data):
        return [Target(f'{label}: max/min < {FLAT} from 1k to 1M entries',
                       workload, '1M', '1k', FLAT, of='time',
                       condition=_flat(workload))
                for workload, label in self.workloads]


def max_over_min(data, workload):
    medians = [s['seconds'] for s in data['summary'].get(
        workload, {}).values()]
    if len(medians) < 2:
        return None
    return max(medians) / min(medians)


def _flat(workload):
    def condition(data):
        ratio = max_over_min(data, workload)
        sizes = len(data['summary'].get(workload, {}))
        return (ratio is not None and ratio < FLAT and sizes == len(SIZES),
                f'max/min {ratio:.2f} over {sizes} sizes')
    return condition


if __name__ == '__main__':
    _harness.main(PyramidBench())
