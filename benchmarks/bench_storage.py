"""The storage bridge: ZODBStorage against SqliteStorage, its reference.

Workloads, each on a fresh storage in a new temporary directory, run in a
fresh child process (this script, re-invoked with ``--child``):

- ``bulk-write``: ``set_container_items()`` of N pairs, one transaction;
- ``read-all``: ``get_container_items()`` of those N pairs, by an instance
  opened after the writer closed (the storage's caches cold, the
  operating system's page cache warm);
- ``single-commits``: M ``set_container_item()`` calls, each a transaction
  of its own, durable (fsync'ed) when it returns;
- ``random-reads``: K ``get_container_item()`` of random keys between
  ``begin()`` and ``commit()``, by a warm instance (it has read every item
  once, then K other random keys);
- ``random-reads-implicit``: the same without ``begin()``, each read a
  transaction of its own (no target; for callers who never begin).

Keys are 20 hex characters (a hash of the index, so in random order),
values 60 characters.  Implementations: ``ZODBStorage`` on a path (an
embedded FileStorage, opened as users open it), ``ZODBStorage`` on a
``ZODB.DB(FileStorage)`` passed in (exclusive: no sharing between
processes), and ``SqliteStorage``.  Each workload runs R times per
implementation, round-robin; the table shows medians, and each median's
ratio to SqliteStorage's, against the issue's targets.

Usage::

    python benchmarks/bench_storage.py            # N=100k M=10k K=10k R=3
    python benchmarks/bench_storage.py --quick    # a few seconds
    python benchmarks/bench_storage.py --json out.json

See ``docs/storage.rst`` for the results and the caveats.
"""
import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VALUE = 'v' * 60

# (key, label), in table order; SqliteStorage is the baseline.
IMPLEMENTATIONS = [
    ('zodb', 'ZODBStorage (path)'),
    ('zodb-db', 'ZODBStorage (DB given)'),
    ('sqlite', 'SqliteStorage'),
]
BASELINE = 'sqlite'

# (key, label, count argument, target: the most ZODB/SQLite time allowed)
WORKLOADS = [
    ('bulk-write', 'bulk write, {:,} pairs', 'n', 1.5),
    ('read-all', 'read back, {:,} pairs', 'n', None),
    ('single-commits', '{:,} single-item commits', 'm', 1.0),
    ('random-reads', '{:,} random reads, begin()', 'k', 1 / 3),
    ('random-reads-implicit', '{:,} random reads, implicit', 'k', None),
]


def keys_for(count):
    return [hashlib.blake2b(str(i).encode(), digest_size=10).hexdigest()
            for i in range(count)]


#
# One run, in the child process
#

class Opener:
    """Opens storages of one implementation at one path; closes what it
    opened."""

    def __init__(self, impl, path):
        self.impl, self.path, self.dbs = impl, path, []

    def __call__(self, create=False):
        if self.impl == 'sqlite':
            from appendonly.storage.sqlite import SqliteStorage
            return SqliteStorage(self.path, create=create)
        from appendonly.storage import ZODBStorage
        if self.impl == 'zodb':
            return ZODBStorage(self.path, create=create)
        import ZODB
        import ZODB.FileStorage
        db = ZODB.DB(ZODB.FileStorage.FileStorage(self.path),
                     cache_size=10_000)
        self.dbs.append(db)
        return ZODBStorage(db, create=create)

    def close(self):
        for db in self.dbs:
            db.close()


def run_workload(impl, workload, n, m, k, tmpdir=None):
    """One run of one workload; returns a dict (times in seconds)."""
    workdir = tempfile.mkdtemp(prefix='appendonly-bench-', dir=tmpdir)
    path = os.path.join(workdir,
                        'storage.db' if impl == 'sqlite' else 'Data.fs')
    opener = Opener(impl, path)
    try:
        storage = opener(create=True)
        storage.add_container('c')
        if workload == 'single-commits':
            keys = keys_for(m)
            began = time.perf_counter()
            for key in keys:
                storage.set_container_item('c', key, VALUE)
            seconds = time.perf_counter() - began
            ops, check = m, storage.get_container_len('c') == m
            storage.close()
        else:
            keys = keys_for(n)
            pairs = {key: VALUE for key in keys}
            began = time.perf_counter()
            storage.set_container_items('c', pairs)
            seconds = time.perf_counter() - began
            ops, check = 1, True
            storage.close()
            opener.close()
            if workload != 'bulk-write':
                storage = opener()
                began = time.perf_counter()
                items = list(storage.get_container_items('c'))
                seconds = time.perf_counter() - began
                ops, check = 1, len(items) == n
            if workload.startswith('random-reads'):
                # Warm: every item read once (above), then K random reads
                # of other keys; both off the clock.
                del items
                get = storage.get_container_item
                for key in random.Random(7).choices(keys, k=k):
                    get('c', key)
                wanted = random.Random(42).choices(keys, k=k)
                explicit = workload == 'random-reads'
                began = time.perf_counter()
                if explicit:
                    storage.begin()
                values = [get('c', key) for key in wanted]
                if explicit:
                    storage.commit()
                seconds = time.perf_counter() - began
                ops, check = k, values == [VALUE] * k
            storage.close()
        size = sum(os.path.getsize(os.path.join(workdir, name))
                   for name in os.listdir(workdir)
                   if os.path.isfile(os.path.join(workdir, name)))
    finally:
        opener.close()
        shutil.rmtree(workdir, ignore_errors=True)
    if not check:
        raise RuntimeError(f'{impl} {workload}: wrong results')
    return {'impl': impl, 'workload': workload, 'seconds': seconds,
            'ops': ops, 'bytes': size}


def child_main(args):
    import appendonly
    where = os.path.realpath(appendonly.__file__)
    assert where.startswith(ROOT + os.sep), (
        f'appendonly imported from {where}, not from this checkout')
    print(json.dumps(run_workload(args.child, args.workload, args.n, args.m,
                                  args.k, args.tmpdir)))


#
# The parent: runs the children round-robin, prints the table
#

def run_child(args, impl, workload):
    cmd = [sys.executable, os.path.abspath(__file__), '--child', impl,
           '--workload', workload, '-n', str(args.n), '-m', str(args.m),
           '-k', str(args.k)]
    if args.tmpdir:
        cmd += ['--tmpdir', args.tmpdir]
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f'child {impl} {workload} failed')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarize(runs):
    summary = {}
    for (impl, workload), mine in runs.items():
        times = [r['seconds'] for r in mine]
        summary[impl, workload] = {
            'seconds': statistics.median(times),
            'min': min(times), 'max': max(times),
            'ops': mine[0]['ops'],
            'bytes': statistics.median(r['bytes'] for r in mine),
        }
    for (impl, workload), values in summary.items():
        base = summary.get((BASELINE, workload))
        values['ratio'] = (values['seconds'] / base['seconds']
                           if base else None)
    return summary


def _time(seconds, unit=None):
    """``seconds`` in s or ms; ``unit`` (a median's) gives a bare number."""
    if (unit or ('s' if seconds >= 1 else 'ms')) == 's':
        return f'{seconds:.2f}' + ('' if unit else ' s')
    return f'{seconds * 1e3:.0f}' + ('' if unit else ' ms')


def format_table(summary, args, impls, workloads):
    counts = {'n': args.n, 'm': args.m, 'k': args.k}
    header = ['workload', 'implementation', 'median', 'min..max', 'per op',
              'x SQLite', 'target']
    rows = []
    for workload, label, count, target in workloads:
        first = True
        for impl, impl_label in impls:
            s = summary.get((impl, workload))
            if s is None:
                continue
            per_op = (f'{s["seconds"] / s["ops"] * 1e6:.1f} us'
                      if s['ops'] > 1 else '-')
            if target is None or impl == BASELINE:
                verdict = ''
            else:
                met = 'met' if s['ratio'] <= target else 'NOT met'
                verdict = f'<= {target:.2f}: {met}'
            unit = 's' if s['seconds'] >= 1 else 'ms'
            rows.append([
                label.format(counts[count]) if first else '',
                impl_label, _time(s['seconds']),
                f'{_time(s["min"], unit)}..{_time(s["max"], unit)}', per_op,
                f'{s["ratio"]:.2f}', verdict])
            first = False
    widths = [max(len(row[i]) for row in [header] + rows)
              for i in range(len(header))]

    def line(row):
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [c.rjust(w) for c, w in zip(row[2:6], widths[2:6])]
        cells.append(row[6].ljust(widths[6]))
        return '  '.join(cells).rstrip()

    rule = '  '.join('-' * w for w in widths)
    return '\n'.join([line(header), rule] + [line(r) for r in rows])


def _versions():
    names = ('ZODB', 'BTrees', 'persistent', 'transaction')
    versions = {name: metadata.version(name) for name in names}
    import sqlite3
    versions['SQLite'] = sqlite3.sqlite_version
    return versions


def parent_main(args):
    impls = [i for i in IMPLEMENTATIONS
             if args.only_impl is None or i[0] in args.only_impl
             or i[0] == BASELINE]
    workloads = [w for w in WORKLOADS
                 if args.only is None or w[0] in args.only]
    pairs = [(impl, w[0]) for w in workloads for impl, _ in impls]
    load_before = os.getloadavg()
    runs = {pair: [] for pair in pairs}
    began = time.perf_counter()
    for rep in range(args.repeat):
        # Round-robin, starting one run later each round.
        shift = rep % len(pairs)
        for impl, workload in pairs[shift:] + pairs[:shift]:
            os.sync()       # write back what the last run left, off clock
            result = run_child(args, impl, workload)
            runs[impl, workload].append(result)
            if args.verbose:
                print(f'  [{rep + 1}/{args.repeat}] {impl} {workload}: '
                      f'{_time(result["seconds"])}', file=sys.stderr)
    elapsed = time.perf_counter() - began
    load_after = os.getloadavg()
    summary = summarize(runs)
    versions = _versions()

    print(f'appendonly storage benchmark: N={args.n:,} pairs, '
          f'M={args.m:,} commits, K={args.k:,} reads, R={args.repeat} '
          f'repetitions round-robin; medians shown')
    print('each run in a fresh child process on a fresh storage in a '
          'temporary directory; fsync on every commit (FileStorage '
          'default, SQLite WAL + synchronous=FULL)')
    print(f'Python {platform.python_version()}, '
          + ', '.join(f'{n} {v}' for n, v in versions.items())
          + f'; {os.cpu_count()} CPUs')
    print()
    print(format_table(summary, args, impls, workloads))
    print()
    print('x SQLite: median time / SqliteStorage\'s median time (lower is '
          'faster); target: the most the issue allows.')
    print(f'Noise: a shared {os.cpu_count()}-CPU machine; load average '
          f'{load_before[0]:.2f} before, {load_after[0]:.2f} after; '
          f'{elapsed:.0f} s in all.  Compare ratios within one run.')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({
                'parameters': {
                    'n': args.n, 'm': args.m, 'k': args.k,
                    'repeat': args.repeat, 'versions': versions,
                    'python': platform.python_version(),
                    'cpus': os.cpu_count(), 'loadavg_before': load_before,
                    'loadavg_after': load_after, 'elapsed_s': elapsed},
                'summary': {f'{impl} {workload}': values
                            for (impl, workload), values in summary.items()},
                'runs': {f'{impl} {workload}': mine
                         for (impl, workload), mine in runs.items()},
            }, f, indent=2)
            f.write('\n')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('-n', type=int, help='pairs written in bulk and '
                        'read back (default: 100,000; 10,000 with --quick)')
    parser.add_argument('-m', type=int, help='single-item commits '
                        '(default: 10,000; 500 with --quick)')
    parser.add_argument('-k', type=int, help='random reads (default: '
                        '10,000; 2,000 with --quick)')
    parser.add_argument('-r', '--repeat', type=int, help='repetitions '
                        '(default: 3; 1 with --quick)')
    parser.add_argument('--quick', action='store_true',
                        help='a small run, for trying the script out')
    parser.add_argument('--json', metavar='FILE',
                        help='also write parameters and raw results here')
    parser.add_argument('--only', action='append', metavar='WORKLOAD',
                        choices=[w[0] for w in WORKLOADS],
                        help='run only this workload (repeatable): '
                             '%(choices)s')
    parser.add_argument('--only-impl', action='append', metavar='IMPL',
                        choices=[i[0] for i in IMPLEMENTATIONS],
                        help='run only this implementation (repeatable; '
                             'SqliteStorage always runs): %(choices)s')
    parser.add_argument('--tmpdir', default=None,
                        help='where the temporary storages go (default: '
                             'the system temp directory)')
    parser.add_argument('-v', '--verbose', action='store_true',
                        help='print each run to stderr as it ends')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    parser.add_argument('--workload', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    defaults = ({'n': 10_000, 'm': 500, 'k': 2_000, 'repeat': 1}
                if args.quick else
                {'n': 100_000, 'm': 10_000, 'k': 10_000, 'repeat': 3})
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        child_main(args)
    else:
        parent_main(args)


if __name__ == '__main__':
    main()
