"""Durable queue and dict throughput: the façades against their peers.

Each call durable when it returns, and returned before the same thread
makes its next call.  Every library runs the same workloads, where it has
a way to do them:

- queue put and get, one thread: N items, one ``put`` (``get``) per call;
- queue put and get, T threads (default 8): N items in all, N/T per
  thread, all threads started at once;
- dict set, one thread and T threads: N distinct keys, one
  ``d[key] = value`` per call;
- dict get: N reads of random keys, after one warm-up read of every key;
- batched: N puts, N gets, N sets, B (default 1,000) per transaction.

Libraries: this checkout's ``DurableQueue`` and ``DurableDict`` on a
FileStorage; persist-queue (``SQLiteQueue`` and ``PDict``, its defaults:
WAL, synchronous FULL); diskcache (``Deque`` and ``Index`` on a ``Cache``
with ``sqlite_synchronous=2``, FULL, so it syncs every commit);
sqlitedict (``autocommit=True`` as shipped, which runs with
``synchronous=OFF``, and with ``PRAGMA synchronous=FULL`` sent through its
connection).  Peers that are not installed are skipped with a note.

The harness (``_harness.py``) runs every library once per round, each in a
fresh child process and temporary directory, and reports paired ratios to
persist-queue.  For appendonly the child also counts the records ZODB
pickles (``ObjectWriter.serialize`` calls) per operation.

Usage::

    python benchmarks/bench_facades.py              # N=2,000, T=8, R=5
    python benchmarks/bench_facades.py --quick      # seconds
    python benchmarks/bench_facades.py --json out.json
    python benchmarks/bench_facades.py --report out.json   # print it again
    python benchmarks/plot_facades.py out.json      # the PNG for the docs

See ``benchmarks/README.rst`` for the workloads and caveats.
"""
import contextlib
import importlib.util
import os
import random
import shutil
import tempfile
import threading
import time

import _harness
from _harness import Option
from _harness import Target

ITEM_LENGTH = 100
INSTALL_PEERS = 'pip install persist-queue sqlitedict diskcache matplotlib'
OURS, BASELINE = 'appendonly', 'persist-queue'

#: (key, label; T is the number of threads, B the batch size).
WORKLOADS = [
    ('q-put-1', 'q put, 1 thread'),
    ('q-get-1', 'q get, 1 thread'),
    ('q-put-T', 'q put, {T} threads'),
    ('q-get-T', 'q get, {T} threads'),
    ('d-set-1', 'd set, 1 thread'),
    ('d-set-T', 'd set, {T} threads'),
    ('d-get', 'd get, 1 thread'),
    ('q-put-B', 'q put x{B:,}'),
    ('q-get-B', 'q get x{B:,}'),
    ('d-set-B', 'd set x{B:,}'),
]


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
    has_queue = has_dict = True
    config = ''             # how it is opened, in words
    batching = ''           # what a batch is, in words
    missing = {}            # workload -> why the library can't do it
    put_batch = get_batch = set_batch = None

    def open_queue(self, path, batched):
        raise NotImplementedError

    def queue_ops(self, q):
        """``(put, get)``: put one item / take the oldest, durably."""
        return q.put, lambda: q.get(block=False)

    def open_dict(self, path, batched):
        raise NotImplementedError

    def dict_ops(self, d):
        return d.__setitem__, d.__getitem__

    def durability(self, store):
        """``(fsyncs on every commit?, what is configured)``."""
        return _sqlite_durability(*self.pragmas(store))

    def pragmas(self, store):
        """``(journal_mode, synchronous)`` of the connection that
        commits."""
        conn = store._putter
        (mode,), = conn.execute('PRAGMA journal_mode').fetchall()
        (sync,), = conn.execute('PRAGMA synchronous').fetchall()
        return mode, sync

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


class PersistQueue(Library):
    key = BASELINE
    label = 'persist-queue SQLiteQueue / PDict'
    modules = ('persistqueue',)
    config = ('SQLiteQueue(path, multithreading=True) / PDict(path, '
              "'default', multithreading=True)")
    batching = ('gets: SQLiteQueue(auto_commit=False), B gets, then '
                'task_done() (one DELETE + commit)')
    missing = {
        'q-put-B': 'every put() commits, whatever auto_commit says',
        'd-set-B': 'PDict commits every set (always auto_commit)',
    }

    def open_queue(self, path, batched):
        from persistqueue import SQLiteQueue
        return SQLiteQueue(path, multithreading=True,
                           auto_commit=not batched)

    def get_batch(self, q, count):
        items = [q.get(block=False) for _ in range(count)]
        q.task_done()
        return items

    def open_dict(self, path, batched):
        from persistqueue import PDict
        return PDict(path, 'default', multithreading=True)


class SqliteDictPeer(Library):
    key = 'sqlitedict'
    label = 'sqlitedict'
    modules = ('sqlitedict',)
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

    def pragmas(self, store):
        mode, = store.conn.select_one('PRAGMA journal_mode')
        sync, = store.conn.select_one('PRAGMA synchronous')
        return mode, sync


class SqliteDictFull(SqliteDictPeer):
    key = 'sqlitedict-full'
    label = 'sqlitedict synchronous=FULL'
    config = SqliteDictPeer.config + \
        ", then conn.execute('PRAGMA synchronous=FULL')"
    force_full = True


class DiskCache(Library):
    key = 'diskcache'
    label = 'diskcache Deque / Index'
    modules = ('diskcache',)
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

    def pragmas(self, store):
        sql = store.cache._sql
        (mode,), = sql('PRAGMA journal_mode').fetchall()
        (sync,), = sql('PRAGMA synchronous').fetchall()
        return mode, sync

    def close(self, store):
        store.cache.close()


LIBRARIES = [Ours(), PersistQueue(), DiskCache(), SqliteDictPeer(),
             SqliteDictFull()]
BY_KEY = {lib.key: lib for lib in LIBRARIES}


#
# The workloads, run in the child process
#

class PickleCounter:
    """Counts the records ZODB pickles: calls to
    ``ZODB.serialize.ObjectWriter.serialize``, in every thread."""

    def __init__(self):
        from ZODB.serialize import ObjectWriter
        self.count, self.lock = 0, threading.Lock()
        original = ObjectWriter.serialize

        def serialize(writer, obj):
            with self.lock:
                self.count += 1
            return original(writer, obj)
        ObjectWriter.serialize = serialize


def _items(count, rng, thread=0):
    """``count`` distinct 100-character strings, numbered in order."""
    return [(f'{thread:02d}.{i:06d}.' + rng.randbytes(ITEM_LENGTH // 2).hex())
            [:ITEM_LENGTH] for i in range(count)]


def _chunks(seq, size):
    return [seq[i:i + size] for i in range(0, len(seq), size)]


def _threads(func, parts):
    """``func(part)`` in one thread per part, all released at once;
    ``(seconds from the release to the last end, [results])``."""
    start = threading.Barrier(len(parts) + 1)
    results, errors = [None] * len(parts), []

    def work(i):
        try:
            start.wait()
            results[i] = func(parts[i])
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,))
               for i in range(len(parts))]
    for thread in threads:
        thread.start()
    os.sync()           # write back what came before, off the clock
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    if errors:
        raise errors[0]
    return seconds, results


def _order_problems(takes):
    """Each consumer must see each producer's items in the order put."""
    late = 0
    for taken in takes:
        last = {}
        for item in taken:
            producer, seq = item.split('.')[:2]
            if seq < last.get(producer, ''):
                late += 1
            last[producer] = seq
    return [f'{late} items out of order'] if late else []


class Run:
    """One library's workloads in one child: fresh stores in ``workdir``."""

    def __init__(self, lib, args, workdir, counter):
        self.lib, self.args, self.workdir = lib, args, workdir
        self.counter = counter
        self.rng = random.Random(args.round)  # the same items for all
        self.results, self.durability = {}, None

    @contextlib.contextmanager
    def opened(self, opener, name, batched=False):
        path = os.path.join(self.workdir, name)
        os.mkdir(path)
        store = opener(path, batched)
        if self.durability is None:
            self.durability = self.lib.durability(store)
        try:
            yield store
        finally:
            self.lib.close(store)

    def record(self, workload, ops, seconds, *check, problems=()):
        """One measurement: ``check`` is ``(expected, found)``."""
        m = _harness.measurement(ops, seconds, *check)
        m['problems'] += list(problems)
        if self.counter is not None:
            m['pickled_per_op'] = (self.counter.count - self.pickled) / ops
        self.results[workload] = m

    def timed(self, func, parts):
        """``func(part)`` for each part, a thread each if there are
        several; one runs in this thread, whose connection the checks and
        warm-up reads use too."""
        if self.counter is not None:
            self.pickled = self.counter.count
        if len(parts) > 1:
            return _threads(func, parts)
        seconds, result = _harness.timed(lambda: func(parts[0]))
        return seconds, [result]

    def queues(self):
        lib, n, threads = self.lib, self.args.n, self.args.threads
        items = _items(n, self.rng)
        with self.opened(lib.open_queue, 'queue') as q:
            put, get = lib.queue_ops(q)
            seconds, _ = self.timed(lambda part: [put(i) for i in part],
                                    [items])
            self.record('q-put-1', n, seconds)
            seconds, (got,) = self.timed(
                lambda count: [get() for _ in range(count)], [n])
            self.record('q-get-1', n, seconds, items, got,
                        problems=[] if got == items or set(got) != set(items)
                        else ['items out of order'])

        each = n // threads
        parts = [_items(each, self.rng, t) for t in range(threads)]
        with self.opened(lib.open_queue, 'queue-threads') as q:
            put, get = lib.queue_ops(q)
            seconds, _ = self.timed(lambda part: [put(i) for i in part],
                                    parts)
            self.record('q-put-T', each * threads, seconds)
            seconds, takes = self.timed(
                lambda count: [get() for _ in range(count)],
                [each] * threads)
            self.record('q-get-T', each * threads, seconds,
                        [i for part in parts for i in part],
                        [i for taken in takes for i in taken],
                        problems=_order_problems(takes))

    def queue_batches(self):
        lib, n, batch = self.lib, self.args.n, self.args.batch
        if not (lib.put_batch or lib.get_batch):
            return
        items = _items(n, self.rng)
        chunks = _chunks(items, batch)
        with self.opened(lib.open_queue, 'queue-batch', True) as q:
            if lib.put_batch:
                seconds, _ = self.timed(lambda chunks: [
                    lib.put_batch(q, chunk) for chunk in chunks], [chunks])
                self.record('q-put-B', n, seconds)
            else:       # fill it one by one, off the clock
                put, _ = lib.queue_ops(q)
                for item in items:
                    put(item)
            if lib.get_batch:
                seconds, (got,) = self.timed(lambda chunks: [
                    item for chunk in chunks
                    for item in lib.get_batch(q, len(chunk))], [chunks])
                self.record('q-get-B', n, seconds, items, got)

    def _found(self, getitem, expected):
        """The keys whose value reads back right (off the clock)."""
        found = []
        for key, value in expected.items():
            try:
                if getitem(key) == value:
                    found.append(key)
            except KeyError:
                pass
        return found

    def dicts(self):
        lib, n, threads = self.lib, self.args.n, self.args.threads
        values = _items(n, self.rng)
        keys = [f'key-{i:06d}' for i in range(n)]
        expected = dict(zip(keys, values))
        with self.opened(lib.open_dict, 'dict') as d:
            setitem, getitem = lib.dict_ops(d)
            seconds, _ = self.timed(lambda pairs: [
                setitem(k, v) for k, v in pairs], [list(expected.items())])
            self.record('d-set-1', n, seconds, keys,
                        self._found(getitem, expected))
            picks = [self.rng.choice(keys) for _ in range(n)]
            seconds, (got,) = self.timed(
                lambda picks: [getitem(k) for k in picks], [picks])
            wrong = sum(value != expected[key]
                        for key, value in zip(picks, got))
            self.record('d-get', n, seconds,
                        problems=[f'{wrong} wrong values'] if wrong else [])

        each = n // threads
        parts = _chunks(list(expected.items())[:each * threads], each)
        with self.opened(lib.open_dict, 'dict-threads') as d:
            setitem, getitem = lib.dict_ops(d)
            seconds, _ = self.timed(lambda pairs: [
                setitem(k, v) for k, v in pairs], parts)
            wanted = dict(pair for part in parts for pair in part)
            self.record('d-set-T', each * threads, seconds, list(wanted),
                        self._found(getitem, wanted))

        if lib.set_batch:
            chunks = _chunks(list(expected.items()), self.args.batch)
            with self.opened(lib.open_dict, 'dict-batch', True) as d:
                seconds, _ = self.timed(lambda chunks: [
                    lib.set_batch(d, chunk) for chunk in chunks], [chunks])
                self.record('d-set-B', n, seconds, keys,
                            self._found(lib.dict_ops(d)[1], expected))


class FacadesBench(_harness.Bench):
    title = __doc__.split('\n\n')[0]
    competitors = [(lib.key, lib.label) for lib in LIBRARIES]
    baseline = BASELINE
    always = (OURS,)
    workloads = WORKLOADS
    competitor_heading = 'library'
    ratio_heading = 'x persist-queue'
    options = [
        Option('-n', default=2_000, quick=200,
               help='operations per workload (N)'),
        Option('-t', '--threads', default=8,
               help='threads of the threaded workloads (T)'),
        Option('-b', '--batch', default=1_000, quick=50,
               help='operations per batched transaction (B)'),
    ]
    rounds = (5, 1)
    packages = ('ZODB', 'persistent', 'BTrees', 'transaction',
                'persist-queue', 'diskcache', 'sqlitedict')

    def prepare(self, args):
        self.workloads = [(w, label.format(T=args.threads, B=args.batch))
                          for w, label in WORKLOADS]
        return {lib.key: f'not installed ({INSTALL_PEERS})'
                for lib in LIBRARIES
                if any(importlib.util.find_spec(m) is None
                       for m in lib.modules)}

    def run(self, args, key, workloads, extra):
        lib = BY_KEY[key]
        counter = None
        if key == OURS:
            _harness.check_import()
            counter = PickleCounter()
        workdir = tempfile.mkdtemp(prefix=f'facades-bench-{key}-',
                                   dir=args.tmpdir)
        run = Run(lib, args, workdir, counter)
        wanted = ' '.join(workloads)
        try:
            if lib.has_queue and ('-1' in wanted or 'q-put-T' in wanted
                                  or 'q-get-T' in wanted):
                run.queues()
            if lib.has_queue and '-B' in wanted:
                run.queue_batches()
            if lib.has_dict and 'd-' in wanted:
                run.dicts()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        fsyncs, detail = run.durability
        return {'workloads': run.results,
                'info': {'fsync': fsyncs, 'durability': detail}}

    def header(self, data):
        p = data['parameters']
        return [f'appendonly façades against peers: N={p["n"]:,} operations '
                f'per workload, T={p["threads"]} threads (N/T each), '
                f'B={p["batch"]:,} per batched transaction',
                f'items and values: {ITEM_LENGTH}-char strings; every call '
                f'returns once durable (where the library syncs), before '
                f'its thread makes the next']

    def columns(self, data):
        def fsync(s, key):
            return 'yes' if data['info'].get(key, {}).get('fsync') else 'no'

        def pickled(s, key):
            value = s['extra'].get('pickled_per_op')
            return '' if value is None else f'{value:.2f}'
        return [('fsync', fsync), ('pickled/op', pickled)]

    def notes(self, data):
        p = data['parameters']
        lines = [
            'q: queue, d: dict; fsync: each commit is synced before the '
            'call returns (SQLite: read back from the PRAGMAs in the run);',
            'pickled/op: records ZODB pickled (ObjectWriter.serialize calls '
            'in the appendonly child) per operation.',
            'configuration; durability:']
        for key, label in data['competitors']:
            if key in data['info']:
                lines.append(f'  {label}: {BY_KEY[key].config}; '
                             f'{data["info"][key]["durability"]}')
        lines.append(f'batching (B={p["batch"]:,} operations per commit):')
        for key, label in data['competitors']:
            lib = BY_KEY[key]
            if key in data['info'] and lib.batching:
                lines.append(f'  {label}: {lib.batching}')
            for workload, why in lib.missing.items():
                if workload in data['runs']:
                    lines.append(f'  {label}: no '
                                 f'{dict(data["workloads"])[workload]}: '
                                 f'{why}')
        return lines

    def _fastest_fsyncing(self, data, workload):
        rates = [(s['rate'], key)
                 for key, s in data['summary'].get(workload, {}).items()
                 if key != OURS and data['info'][key].get('fsync')]
        return max(rates)[1] if rates else BASELINE

    def targets(self, data):
        labels = dict(data['competitors'])
        # Every workload named, run or not: the harness leaves out the
        # targets of workloads that did not run.
        names = dict(self.workloads)
        out = [Target(f'{names["q-put-T"]} >= 1.0x persist-queue '
                      f'SQLiteQueue at {data["parameters"]["threads"]} '
                      f'threads', 'q-put-T', OURS, BASELINE, 1.0)]
        for workload in ('q-get-T', 'd-set-T'):
            fastest = self._fastest_fsyncing(data, workload)
            out.append(Target(
                f'{names[workload]} >= 1.0x the fastest peer that fsyncs '
                f'({labels[fastest]})', workload, OURS, fastest, 1.0))
        out += [Target(f'{names["q-put-1"]} >= 0.5x persist-queue '
                       f'SQLiteQueue', 'q-put-1', OURS, BASELINE, 0.5),
                Target(f'{names["d-set-1"]} >= 0.5x persist-queue PDict',
                       'd-set-1', OURS, BASELINE, 0.5)]
        readers = [(s['rate'], key) for key, s in
                   data['summary'].get('d-get', {}).items()
                   if key.startswith('sqlitedict')]
        if readers:
            out.append(Target(f'{names["d-get"]} >= 5x sqlitedict (the '
                              f'faster row)', 'd-get', OURS,
                              max(readers)[1], 5.0))
        out.append(Target(f'{names["q-put-B"]} >= 10x {names["q-put-1"]}',
                          'q-put-B', OURS, (OURS, 'q-put-1'), 10.0))
        return out


if __name__ == '__main__':
    _harness.main(FacadesBench())
