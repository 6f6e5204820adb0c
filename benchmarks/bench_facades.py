"""Durable queue and dict throughput: the façades against their peers.

One thread, one process per library, each call durable when it returns.
Every library runs the same workloads, where it has a way to do them:

- queue put: N items, one ``put`` per transaction (per commit);
- queue get: the N items back, one ``get`` per transaction;
- queue put, batched: N items, B (default 1,000) per transaction;
- queue get, batched: N items, B per transaction;
- dict set: N distinct keys, one ``d[key] = value`` per transaction;
- dict get: N reads of random keys, after one warm-up read of every key;
- dict set, batched: N distinct keys, B per transaction.

Libraries: this checkout's ``DurableQueue`` and ``DurableDict`` on a
FileStorage; persist-queue (``SQLiteQueue``, file ``Queue``); iodict
(``DurableQueue``, ``IODict``); sqlitedict (as shipped, and with
``PRAGMA synchronous=FULL`` sent through its connection); diskcache
(``Deque``, ``Index``, with ``sqlite_synchronous=2``, FULL).  Peers that are
not installed are skipped with a note.

Every run happens in a fresh child process (this script, re-invoked with
``--child``) in a fresh temporary directory.  The runs are repeated R times,
round-robin, and the tables show medians.

Usage::

    python benchmarks/bench_facades.py              # N=10,000, R=3
    python benchmarks/bench_facades.py --quick      # a few seconds
    python benchmarks/bench_facades.py --json out.json
    python benchmarks/bench_facades.py --report out.json   # print it again
    python benchmarks/plot_facades.py out.json      # the PNG for the docs

See ``benchmarks/README.rst`` for the workloads and caveats.
"""
import argparse
import contextlib
import importlib.util
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ITEM_LENGTH = 100
INSTALL_PEERS = 'pip install persist-queue iodict sqlitedict diskcache ' \
                'matplotlib'

# (key, column heading; B is the batch size), in table order.
WORKLOADS = [
    ('queue-put', 'q put'),
    ('queue-get', 'q get'),
    ('queue-put-batch', 'q put x{B}'),
    ('queue-get-batch', 'q get x{B}'),
    ('dict-set', 'd set'),
    ('dict-get', 'd get'),
    ('dict-set-batch', 'd set x{B}'),
]
WORKLOAD_NAMES = {
    'queue-put': 'queue put',
    'queue-get': 'queue get',
    'queue-put-batch': 'queue put, batched',
    'queue-get-batch': 'queue get, batched',
    'dict-set': 'dict set',
    'dict-get': 'dict get-by-key',
    'dict-set-batch': 'dict set, batched',
}
OURS = 'appendonly'
# Runs of one workload whose fastest is more than this many times its
# slowest are listed below the table.
SPREAD = 1.5


#
# The libraries: how each one does each workload
#
# A library opens a queue and a dict in a directory of its own and hands out
# the callables the timing loops call.  A batch method is None where the
# library has no way to group operations into one commit; ``missing``
# says why, for the notes below the table.

class Library:
    key = label = None
    modules = ()            # import names, checked before running
    distributions = ()      # names on PyPI, for the versions line
    sqlite = False          # SQLite-based: durability read from PRAGMAs
    queue_cap = None        # at most this many queue operations ...
    cap_reason = ''         # ... because
    has_queue = has_dict = True
    config = ''             # how it is opened, in words
    batching = ''           # what a batch is, in words
    missing = {}            # workload -> why the library can't do it

    def open_queue(self, path, batched):
        raise NotImplementedError

    def queue_ops(self, q):
        """``(put, get)``: put one item / take the oldest, durably."""
        return q.put, lambda: q.get(block=False)

    def open_dict(self, path, batched):
        raise NotImplementedError

    def dict_ops(self, d):
        return d.__setitem__, d.__getitem__

    put_batch = get_batch = set_batch = None

    def durability(self, store):
        """``(fsyncs on every commit?, what is configured)``."""
        raise NotImplementedError

    def close(self, store):
        store.close()


def _sqlite_durability(journal_mode, synchronous):
    """Whether SQLite syncs at every commit, from the two PRAGMAs.  In WAL
    mode, only FULL (2) and EXTRA (3) sync the WAL at each commit; NORMAL
    syncs at checkpoints only."""
    journal_mode = journal_mode.lower()
    names = {0: 'OFF', 1: 'NORMAL', 2: 'FULL', 3: 'EXTRA'}
    fsyncs = synchronous >= 2 if journal_mode == 'wal' else synchronous >= 1
    return fsyncs, (f'journal_mode={journal_mode}, '
                    f'synchronous={names.get(synchronous, synchronous)}')


class Ours(Library):
    key = OURS
    label = 'appendonly (this checkout)'
    modules = ('appendonly',)
    config = 'DurableQueue(path) / DurableDict(path): FileStorage defaults'
    batching = 'with q.transaction() / d.transaction(): B calls'

    def open_queue(self, path, batched):
        from appendonly.facades import DurableQueue
        return DurableQueue(os.path.join(path, 'Data.fs'))

    def open_dict(self, path, batched):
        from appendonly.facades import DurableDict
        return DurableDict(os.path.join(path, 'Data.fs'))

    def put_batch(self, q, items):
        with q.transaction():
            for item in items:
                q.put(item)

    def get_batch(self, q, count):
        with q.transaction():
            return [q.get(block=False) for _ in range(count)]

    def set_batch(self, d, pairs):
        with d.transaction():
            for key, value in pairs:
                d[key] = value

    def durability(self, store):
        # FileStorage._finish_finish: flush, then os.fsync, every commit.
        return True, 'FileStorage: os.fsync in tpc_finish'


class PersistQueueSQLite(Library):
    key = 'pq-sqlite'
    label = 'persist-queue SQLiteQueue'
    modules = ('persistqueue',)
    distributions = ('persist-queue',)
    sqlite = True
    has_dict = False
    config = 'SQLiteQueue(path, auto_commit=True)'
    batching = ('gets: SQLiteQueue(auto_commit=False), B gets, then '
                'task_done() (one DELETE + commit)')
    missing = {
        'queue-put-batch': 'every put() commits, whatever auto_commit '
                           'says (auto_commit=False defers only the '
                           'deletes of get())',
    }

    def open_queue(self, path, batched):
        from persistqueue import SQLiteQueue
        return SQLiteQueue(path, auto_commit=not batched)

    def get_batch(self, q, count):
        items = [q.get(block=False) for _ in range(count)]
        q.task_done()
        return items

    def durability(self, store):
        conn = store._putter        # the connection that commits
        (mode,), = conn.execute('PRAGMA journal_mode').fetchall()
        (sync,), = conn.execute('PRAGMA synchronous').fetchall()
        return _sqlite_durability(mode, sync)


class PersistQueueFile(Library):
    key = 'pq-file'
    label = 'persist-queue Queue (files)'
    modules = ('persistqueue',)
    distributions = ('persist-queue',)
    has_dict = False
    config = 'Queue(path, autosave=True)'
    missing = {
        'queue-put-batch': 'no transactions: every put() writes its item '
                           'and the info file',
        'queue-get-batch': 'no transactions (autosave=False defers the '
                           'info file to task_done(), without an fsync)',
    }

    def open_queue(self, path, batched):
        from persistqueue import Queue
        # autosave=True: each get() saves the info file, as each put() does.
        return Queue(path, autosave=True, tempdir=path)

    def durability(self, store):
        return False, ('flush only; os.fsync every chunksize=100 puts; '
                       'info file replaced without fsync')

    def close(self, store):
        del store                   # no close(); __del__ closes the files


class IODictPeer(Library):
    key = 'iodict'
    label = 'iodict DurableQueue / IODict'
    modules = ('iodict',)
    distributions = ('iodict',)
    config = 'DurableQueue(path) / IODict(path)'
    queue_cap = 1000
    cap_reason = 'get() lists and sorts the whole directory: O(N) per get'
    missing = {
        'queue-put-batch': 'no transactions',
        'queue-get-batch': 'no transactions',
        'dict-set-batch': 'no transactions',
    }

    def open_queue(self, path, batched):
        from iodict import DurableQueue
        return DurableQueue(path)

    def open_dict(self, path, batched):
        from iodict import IODict
        return IODict(path)

    def durability(self, store):
        return False, 'one file per item (open, write, close, xattr); ' \
                      'no fsync'

    def close(self, store):
        del store       # DurableQueue.close() would delete every item


class SqliteDictPeer(Library):
    key = 'sqlitedict'
    label = 'sqlitedict'
    modules = ('sqlitedict',)
    distributions = ('sqlitedict',)
    sqlite = True
    has_queue = False
    config = ("SqliteDict(path, autocommit=True, journal_mode='WAL', "
              'outer_stack=False)')
    batching = 'SqliteDict(autocommit=False), B sets, then commit()'
    force_full = False

    def open_dict(self, path, batched):
        from sqlitedict import SqliteDict
        d = SqliteDict(os.path.join(path, 'data.sqlite'),
                       autocommit=not batched, journal_mode='WAL',
                       outer_stack=False)
        if self.force_full:
            # sqlitedict offers no setting: it runs PRAGMA synchronous=OFF
            # on the connection its worker thread owns.  Statements go
            # through that thread, so this one reaches the same connection.
            d.conn.execute('PRAGMA synchronous=FULL')
        return d

    def set_batch(self, d, pairs):
        for key, value in pairs:
            d[key] = value
        d.commit()

    def durability(self, store):
        mode, = store.conn.select_one('PRAGMA journal_mode')
        sync, = store.conn.select_one('PRAGMA synchronous')
        return _sqlite_durability(mode, sync)


class SqliteDictFull(SqliteDictPeer):
    key = 'sqlitedict-full'
    label = 'sqlitedict synchronous=FULL'
    config = SqliteDictPeer.config + \
        ", then conn.execute('PRAGMA synchronous=FULL')"
    force_full = True


class DiskCachePeer(Library):
    key = 'diskcache'
    label = 'diskcache Deque / Index'
    modules = ('diskcache',)
    distributions = ('diskcache',)
    sqlite = True
    config = ("Deque/Index.fromcache(Cache(path, eviction_policy='none', "
              'sqlite_synchronous=2))')
    batching = 'with deque.transact() / index.transact(): B calls'

    def _cache(self, path):
        from diskcache import Cache
        # Deque() and Index() make the same Cache, with SQLite's
        # synchronous at diskcache's default, NORMAL (1); FULL is 2.
        return Cache(path, eviction_policy='none', sqlite_synchronous=2)

    def open_queue(self, path, batched):
        from diskcache import Deque
        return Deque.fromcache(self._cache(path))

    def queue_ops(self, q):
        return q.append, q.popleft

    def put_batch(self, q, items):
        with q.transact():
            for item in items:
                q.append(item)

    def get_batch(self, q, count):
        with q.transact():
            return [q.popleft() for _ in range(count)]

    def open_dict(self, path, batched):
        from diskcache import Index
        return Index.fromcache(self._cache(path))

    def set_batch(self, d, pairs):
        with d.transact():
            for key, value in pairs:
                d[key] = value

    def durability(self, store):
        sql = store.cache._sql
        (mode,), = sql('PRAGMA journal_mode').fetchall()
        (sync,), = sql('PRAGMA synchronous').fetchall()
        return _sqlite_durability(mode, sync)

    def close(self, store):
        store.cache.close()


LIBRARIES = [Ours(), PersistQueueSQLite(), PersistQueueFile(), IODictPeer(),
             SqliteDictPeer(), SqliteDictFull(), DiskCachePeer()]
BY_KEY = {lib.key: lib for lib in LIBRARIES}


#
# The workloads, run in the child process
#

def _items(count, rng):
    """``count`` distinct 100-character strings."""
    return [(f'{i:06d}.' + rng.randbytes(ITEM_LENGTH // 2).hex())
            [:ITEM_LENGTH] for i in range(count)]


def _timed(func):
    os.sync()           # write back what came before, off the clock
    began = time.perf_counter()
    result = func()
    return time.perf_counter() - began, result


def _chunks(seq, size):
    return [seq[i:i + size] for i in range(0, len(seq), size)]


def _record(ops, seconds, problems=None):
    return {'ops': ops, 'seconds': seconds, 'ops_per_s': ops / seconds,
            'problems': problems or []}


def _check_queue(items, got):
    problems = []
    lost = len(set(items) - set(got))
    if lost:
        problems.append(f'{lost} items lost')
    if len(got) != len(set(got)):
        problems.append(f'{len(got) - len(set(got))} items duplicated')
    if not lost and got != items:
        problems.append('items out of order')
    return problems


@contextlib.contextmanager
def _opened(lib, opener, workdir, name, batched):
    path = os.path.join(workdir, name)
    os.mkdir(path)
    store = opener(path, batched)
    try:
        yield store
    finally:
        lib.close(store)


def run_library(lib, n, batch, seed, tmpdir=None):
    """Every workload of one library, each on a fresh store; a dict of
    results per workload, and what the library does for durability."""
    rng = random.Random(seed)
    results, durability = {}, None
    workdir = tempfile.mkdtemp(prefix=f'facades-bench-{lib.key}-',
                               dir=tmpdir)
    try:
        if lib.has_queue:
            nq = min(n, lib.queue_cap or n)
            items = _items(nq, rng)
            with _opened(lib, lib.open_queue, workdir, 'queue', False) as q:
                durability = lib.durability(q)
                put, get = lib.queue_ops(q)
                seconds, _ = _timed(lambda: [put(item) for item in items])
                results['queue-put'] = _record(nq, seconds)
                seconds, got = _timed(lambda: [get() for _ in items])
                results['queue-get'] = _record(
                    nq, seconds, _check_queue(items, got))

            if lib.put_batch or lib.get_batch:
                with _opened(lib, lib.open_queue, workdir, 'queue-batch',
                             True) as q:
                    put, get = lib.queue_ops(q)
                    chunks = _chunks(items, batch)
                    if lib.put_batch:
                        seconds, _ = _timed(lambda: [
                            lib.put_batch(q, chunk) for chunk in chunks])
                        results['queue-put-batch'] = _record(nq, seconds)
                    else:       # fill it one by one, off the clock
                        for item in items:
                            put(item)
                    if lib.get_batch:
                        seconds, got = _timed(lambda: [
                            item for chunk in chunks
                            for item in lib.get_batch(q, len(chunk))])
                        results['queue-get-batch'] = _record(
                            nq, seconds, _check_queue(items, got))

        if lib.has_dict:
            values = _items(n, rng)
            keys = [f'key-{i:06d}' for i in range(n)]
            picks = [rng.choice(keys) for _ in range(n)]
            expected = dict(zip(keys, values))
            with _opened(lib, lib.open_dict, workdir, 'dict', False) as d:
                if durability is None:
                    durability = lib.durability(d)
                setitem, getitem = lib.dict_ops(d)
                seconds, _ = _timed(lambda: [
                    setitem(key, value) for key, value in zip(keys, values)])
                results['dict-set'] = _record(n, seconds)
                for key in keys:        # warm up, off the clock
                    getitem(key)
                seconds, got = _timed(lambda: [getitem(k) for k in picks])
                wrong = sum(value != expected[key]
                            for key, value in zip(picks, got))
                results['dict-get'] = _record(
                    n, seconds, [f'{wrong} wrong values'] if wrong else [])

            if lib.set_batch:
                with _opened(lib, lib.open_dict, workdir, 'dict-batch',
                             True) as d:
                    chunks = _chunks(list(zip(keys, values)), batch)
                    seconds, _ = _timed(lambda: [
                        lib.set_batch(d, chunk) for chunk in chunks])
                    problems = [] if len(d) == n else \
                        [f'{n - len(d)} keys missing']
                    results['dict-set-batch'] = _record(n, seconds,
                                                        problems)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    fsyncs, detail = durability
    return {'library': lib.key, 'results': results,
            'fsync_per_commit': fsyncs, 'durability': detail}


def child_main(args):
    """Run one library's workloads and print the result as a JSON line."""
    lib = BY_KEY[args.child]
    if lib.key == OURS:
        import appendonly
        where = os.path.realpath(appendonly.__file__)
        assert where.startswith(ROOT + os.sep), (
            f'appendonly imported from {where}, expected under {ROOT}')
    result = run_library(lib, args.n, args.batch, args.seed, args.tmpdir)
    print(json.dumps(result))


#
# The parent: runs the children round-robin, prints the tables
#

def run_child(args, lib, seed):
    cmd = [sys.executable, os.path.abspath(__file__), '--child', lib.key,
           '-n', str(args.n), '--batch', str(args.batch),
           '--seed', str(seed)]
    if args.tmpdir:
        cmd += ['--tmpdir', args.tmpdir]
    path = os.environ.get('PYTHONPATH')
    env = dict(os.environ,
               PYTHONPATH=ROOT + (os.pathsep + path if path else ''))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f'child {lib.key} failed')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarize(runs):
    """Medians per library and workload, spreads, and the problems seen."""
    summary = {}
    for key, mine in runs.items():
        first = mine[0]
        entry = {'fsync_per_commit': first['fsync_per_commit'],
                 'durability': first['durability'], 'workloads': {}}
        for workload, _ in WORKLOADS:
            got = [r['results'][workload] for r in mine
                   if workload in r['results']]
            if not got:
                continue
            rates = [g['ops_per_s'] for g in got]
            entry['workloads'][workload] = {
                'ops_per_s': statistics.median(rates),
                'min_ops_per_s': min(rates),
                'max_ops_per_s': max(rates),
                'ops': got[0]['ops'],
                'problems': sorted({p for g in got for p in g['problems']}),
            }
        summary[key] = entry
    return summary


def _rate(summary, key, workload):
    return summary.get(key, {}).get('workloads', {}).get(
        workload, {}).get('ops_per_s')


def ratios(summary):
    """ours / peer, per peer and workload."""
    out = {}
    for key in summary:
        if key == OURS:
            continue
        out[key] = {}
        for workload, _ in WORKLOADS:
            ours, peer = _rate(summary, OURS, workload), \
                _rate(summary, key, workload)
            if ours and peer:
                out[key][workload] = ours / peer
    return out


def targets(summary, labels):
    """The issue's targets: [(name, ours, reference, ratio, wanted, text
    naming the reference)]."""
    out = []
    eligible = [key for key, lib in BY_KEY.items()
                if key in summary and lib.sqlite
                and summary[key]['fsync_per_commit']]
    for workload in ('queue-put', 'queue-get', 'dict-set'):
        ours = _rate(summary, OURS, workload)
        peers = [(_rate(summary, key, workload), key) for key in eligible
                 if _rate(summary, key, workload)]
        if ours and peers:
            rate, key = max(peers)
            out.append((f'{WORKLOAD_NAMES[workload]} >= fastest SQLite '
                        f'peer with fsync per commit',
                        ours, rate, ours / rate, 1.0, labels[key]))
    # Both sqlitedict rows read the same way (synchronous does not matter
    # to a SELECT): the faster of the two is the reference.
    ours = _rate(summary, OURS, 'dict-get')
    peers = [(_rate(summary, key, 'dict-get'), key)
             for key in ('sqlitedict', 'sqlitedict-full')
             if _rate(summary, key, 'dict-get')]
    if ours and peers:
        rate, key = max(peers)
        out.append(('dict get-by-key >= 5x sqlitedict', ours, rate,
                    ours / rate, 5.0, labels[key]))
    ours, single = _rate(summary, OURS, 'queue-put-batch'), \
        _rate(summary, OURS, 'queue-put')
    if ours and single:
        out.append(('queue put, batched >= 10x single puts', ours, single,
                    ours / single, 10.0, 'appendonly queue put'))
    return out


def _fmt_rate(value):
    return '-' if value is None else f'{value:,.0f}'


def _fmt_ratio(value):
    if value is None:
        return '-'
    return f'{value:.2f}' if value < 10 else f'{value:.1f}'


def _table(header, rows):
    widths = [max(len(row[i]) for row in [header] + rows)
              for i in range(len(header))]

    def line(row):
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:],
                                                           widths[1:])]
        return '  '.join(cells).rstrip()

    rule = '  '.join('-' * w for w in widths)
    return '\n'.join([line(header), rule] + [line(r) for r in rows])


def format_tables(summary, keys, labels, skipped, n, batch):
    head = [heading.format(B=batch) for _, heading in WORKLOADS]
    rows = []
    for key in keys:
        if key in skipped:
            rows.append([f'{labels[key]} (not installed)', '?']
                        + ['-'] * len(WORKLOADS))
            continue
        s = summary[key]
        cells = []
        for workload, _ in WORKLOADS:
            w = s['workloads'].get(workload)
            if w is None:
                cells.append('-')
            else:
                mark = '*' if w['ops'] != n else ''
                mark += '!' if w['problems'] else ''
                cells.append(_fmt_rate(w['ops_per_s']) + mark)
        rows.append([labels[key], 'yes' if s['fsync_per_commit'] else 'no']
                    + cells)
    ops = _table(['ops/s (median)', 'fsync'] + head, rows)

    rows = []
    for key, mine in ratios(summary).items():
        rows.append([labels[key]] + [_fmt_ratio(mine.get(workload))
                                     for workload, _ in WORKLOADS])
    rel = _table(['appendonly / peer'] + head, rows)
    return ops, rel


def _versions(keys):
    names = ['ZODB', 'persistent', 'BTrees', 'transaction']
    for key in keys:
        names += [d for d in BY_KEY[key].distributions if d not in names]
    return {name: metadata.version(name) for name in names}


def _installed(lib):
    return all(importlib.util.find_spec(m) is not None for m in lib.modules)


def parent_main(args):
    if args.report:
        with open(args.report) as f:
            report(json.load(f))
        return
    selected = [lib for lib in LIBRARIES
                if args.only is None or lib.key in args.only
                or lib.key == OURS]
    keys = [lib.key for lib in selected]
    labels = {lib.key: lib.label for lib in selected}
    skipped = {lib.key for lib in selected if not _installed(lib)}
    for key in sorted(skipped):
        print(f'{labels[key]} is not installed: skipped.  To benchmark '
              f'every peer: {INSTALL_PEERS}', file=sys.stderr)
    runnable = [lib for lib in selected if lib.key not in skipped]

    load_before = os.getloadavg()
    runs = {lib.key: [] for lib in runnable}
    began = time.perf_counter()
    for rep in range(args.repeat):
        # Round-robin, starting one library later each round.
        shift = rep % len(runnable)
        for lib in runnable[shift:] + runnable[:shift]:
            os.sync()
            result = run_child(args, lib, seed=rep)
            result['repetition'] = rep
            runs[lib.key].append(result)
            if args.verbose:
                done = ', '.join(
                    f'{w} {r["ops_per_s"]:,.0f}/s'
                    for w, r in result['results'].items())
                print(f'  [{rep + 1}/{args.repeat}] {lib.label}: {done}',
                      file=sys.stderr)
    elapsed = time.perf_counter() - began
    load_after = os.getloadavg()

    summary = summarize(runs)
    data = {
        'parameters': {
            'n': args.n, 'batch': args.batch, 'repeat': args.repeat,
            'python': platform.python_version(),
            'implementation': platform.python_implementation(),
            'sqlite': sqlite3.sqlite_version,
            'versions': _versions([k for k in keys if k not in skipped]),
            'cpus': os.cpu_count(),
            'loadavg_before': load_before, 'loadavg_after': load_after,
            'elapsed_s': elapsed,
        },
        'workloads': dict(WORKLOADS),
        'workload_names': WORKLOAD_NAMES,
        'labels': labels,
        'skipped': sorted(skipped),
        'summary': summary,
        'ratios': ratios(summary),
        'targets': _verdicts(targets(summary, labels)),
        'runs': runs,
    }
    report(data)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(data, f, indent=2)
            f.write('\n')


def _verdicts(goals):
    return [{'target': name, 'ours': ours, 'reference': reference,
             'against': against, 'ratio': ratio, 'wanted': wanted,
             'met': ratio >= wanted}
            for name, ours, reference, ratio, wanted, against in goals]


def report(data):
    """Print the tables, notes and targets of one run (``data`` as
    ``--json`` writes it)."""
    params = data['parameters']
    n, batch, repeat = params['n'], params['batch'], params['repeat']
    labels, skipped = data['labels'], set(data['skipped'])
    keys = list(labels)
    selected = [BY_KEY[key] for key in keys]
    runnable = [lib for lib in selected if lib.key not in skipped]
    summary = summarize(data['runs'])
    ops_table, ratio_table = format_tables(summary, keys, labels, skipped,
                                           n, batch)

    print(f'appendonly façades against peers: N={n:,} operations per '
          f'workload, B={batch:,} per batched transaction, '
          f'R={repeat} repetitions, round-robin; medians shown')
    print('one thread; each library in a fresh child process and '
          'temporary directory; items and values: '
          f'{ITEM_LENGTH}-char strings')
    print(f'Python {params["python"]} '
          f'({params.get("implementation", "CPython")}), SQLite '
          f'{params["sqlite"]}, '
          + ', '.join(f'{k} {v}' for k, v in params['versions'].items())
          + f'; {params["cpus"]} CPUs')
    print()
    print(ops_table)
    print()
    print(ratio_table)
    print()
    print(f'q: queue, d: dict; x{batch}: {batch:,} operations '
          f'per transaction; ratios above 1: appendonly faster.')
    print('fsync: each commit is fsync\'ed before the call returns '
          '(for SQLite, read back from the PRAGMAs in the run).')
    print('configuration; durability:')
    for lib in selected:
        if lib.key in skipped:
            print(f'  {lib.label}: not installed, skipped '
                  f'({INSTALL_PEERS})')
        else:
            print(f'  {lib.label}: {lib.config}; '
                  f'{summary[lib.key]["durability"]}')
    print(f'batching (B={batch:,} operations per commit):')
    for lib in runnable:
        if lib.batching:
            print(f'  {lib.label}: {lib.batching}')
        for workload, why in lib.missing.items():
            print(f'  {lib.label}: no {WORKLOAD_NAMES[workload]}: {why}')
    for lib in runnable:
        for workload, w in summary[lib.key]['workloads'].items():
            name = WORKLOAD_NAMES[workload]
            if w['ops'] != n:
                why = f' ({lib.cap_reason})' if lib.cap_reason else ''
                print(f'  * {lib.label}: {name}: N={w["ops"]:,} only{why}')
            if w['problems']:
                print(f'  ! {lib.label}: {name}: '
                      + '; '.join(w['problems']))
    spread = [(lib, workload, w) for lib in runnable
              for workload, w in summary[lib.key]['workloads'].items()
              if w['max_ops_per_s'] > SPREAD * w['min_ops_per_s']]
    if spread:
        print(f'spread above {SPREAD:g}x between the slowest and the '
              f'fastest of the {repeat} runs:')
        for lib, workload, w in spread:
            print(f'  {lib.label}: {WORKLOAD_NAMES[workload]}: '
                  f'{w["min_ops_per_s"]:,.0f}..{w["max_ops_per_s"]:,.0f}/s')

    fsyncing = [labels[key] for key, lib in BY_KEY.items()
                if key in summary and lib.sqlite
                and summary[key]['fsync_per_commit']]
    print()
    print('targets (SQLite peers with fsync per commit: '
          + (', '.join(fsyncing) or 'none measured') + '):')
    verdicts = _verdicts(targets(summary, labels))
    for v in verdicts:
        print(f'  {"met    " if v["met"] else "NOT MET"}  {v["target"]}: '
              f'{v["ours"]:,.0f}/s vs {v["against"]} '
              f'{v["reference"]:,.0f}/s = {v["ratio"]:.2f}x '
              f'(wanted >= {v["wanted"]:g}x)')
    if not verdicts:
        print('  (no peer measured to compare against)')
    print()
    print(f'Noise: a shared {params["cpus"]}-CPU machine; load average '
          f'{params["loadavg_before"][0]:.2f} before, '
          f'{params["loadavg_after"][0]:.2f} after; '
          f'{params["elapsed_s"]:.0f} s in all.  Compare ratios within one '
          f'run, not absolute numbers across runs.')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0])
    parser.add_argument('-n', type=int,
                        help='operations per workload (default: 10,000, '
                             'or 200 with --quick)')
    parser.add_argument('-r', '--repeat', type=int,
                        help='repetitions of each library (R) '
                             '(default: 3, or 1 with --quick)')
    parser.add_argument('-b', '--batch', type=int, default=1000,
                        help='operations per batched transaction (B; '
                             'default: 1,000)')
    parser.add_argument('--quick', action='store_true',
                        help='a tiny run, for trying the script out')
    parser.add_argument('--json', metavar='FILE',
                        help='also write parameters and raw results here '
                             '(benchmarks/plot_facades.py reads it)')
    parser.add_argument('--report', metavar='FILE',
                        help='run nothing: print the tables of a run that '
                             '--json saved')
    parser.add_argument('--only', action='append', metavar='KEY',
                        choices=[lib.key for lib in LIBRARIES],
                        help='run only this library (repeatable; appendonly '
                             'always runs): %(choices)s')
    parser.add_argument('--tmpdir', default=None,
                        help='where the temporary stores go '
                             '(default: the system temp directory)')
    parser.add_argument('-v', '--verbose', action='store_true',
                        help='print each run to stderr as it ends')
    # Internal: one library in a child process.
    parser.add_argument('--child', choices=[lib.key for lib in LIBRARIES],
                        help=argparse.SUPPRESS)
    parser.add_argument('--seed', type=int, default=0,
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.n is None:
        args.n = 200 if args.quick else 10_000
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.n < 1 or args.repeat < 1 or args.batch < 1:
        parser.error('-n, -r and --batch must be at least 1')
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        child_main(args)
    else:
        parent_main(args)


if __name__ == '__main__':
    main()
