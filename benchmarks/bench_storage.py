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
processes), and ``SqliteStorage``.  The harness (``_harness.py``) runs
every implementation once per round, a fresh child process per workload;
the table shows median times, the paired ratios to SqliteStorage's time,
and the targets the issue set.

Usage::

    python benchmarks/bench_storage.py            # N=100k M=10k K=10k R=3
    python benchmarks/bench_storage.py --quick    # a few seconds
    python benchmarks/bench_storage.py --json out.json

See ``docs/storage.rst`` for the results and the caveats.
"""
import hashlib
import os
import random
import shutil
import tempfile
import time

import _harness
from _harness import Option
from _harness import Target

VALUE = 'v' * 60
BASELINE = 'sqlite'

#: workload -> (the option that counts it, the most ZODB/SQLite time the
#: issue allows, or None).
TARGETS = {
    'bulk-write': ('n', 1.5),
    'read-all': ('n', None),
    'single-commits': ('m', 1.5),
    'random-reads': ('k', 1 / 3),
    'random-reads-implicit': ('k', None),
}


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


def _single_commits(storage, m):
    keys = keys_for(m)
    began = time.perf_counter()
    for key in keys:
        storage.set_container_item('c', key, VALUE)
    seconds = time.perf_counter() - began
    found = [key for key, value in storage.get_container_items('c')
             if value == VALUE]
    return _harness.measurement(m, seconds, keys, found)


def _reads(storage, keys, k, explicit):
    """K reads of random keys by a warm instance: every item read once
    (by the caller), then K random reads of other keys, off the clock."""
    get = storage.get_container_item
    for key in random.Random(7).choices(keys, k=k):
        get('c', key)
    wanted = random.Random(42).choices(keys, k=k)
    began = time.perf_counter()
    if explicit:
        storage.begin()
    values = [get('c', key) for key in wanted]
    if explicit:
        storage.commit()
    seconds = time.perf_counter() - began
    wrong = sum(value != VALUE for value in values)
    return dict(_harness.measurement(k, seconds), checked=k, lost=wrong)


def run_workload(opener, workload, args):
    """One run of one workload on a fresh storage: a measurement."""
    storage = opener(create=True)
    storage.add_container('c')
    if workload == 'single-commits':
        result = _single_commits(storage, args.m)
        storage.close()
        return result
    keys = keys_for(args.n)
    began = time.perf_counter()
    storage.set_container_items('c', {key: VALUE for key in keys})
    seconds = time.perf_counter() - began
    storage.close()
    opener.close()
    storage = opener()      # caches cold, the file in the page cache
    if workload == 'bulk-write':
        found = [key for key, _ in storage.get_container_items('c')]
        result = _harness.measurement(1, seconds, keys, found)
    else:
        began = time.perf_counter()
        items = list(storage.get_container_items('c'))
        seconds = time.perf_counter() - began
        result = _harness.measurement(
            1, seconds, keys, [key for key, value in items
                               if value == VALUE])
        del items
        if workload.startswith('random-reads'):
            result = _reads(storage, keys, args.k,
                            workload == 'random-reads')
    storage.close()
    return result


class StorageBench(_harness.Bench):
    title = __doc__.split('\n\n')[0]
    competitors = [
        ('zodb', 'ZODBStorage (path)'),
        ('zodb-db', 'ZODBStorage (DB given)'),
        ('sqlite', 'SqliteStorage'),
    ]
    baseline = BASELINE
    workloads = [
        ('bulk-write', 'bulk write, {:,} pairs'),
        ('read-all', 'read back, {:,} pairs'),
        ('single-commits', '{:,} single-item commits'),
        ('random-reads', '{:,} random reads, begin()'),
        ('random-reads-implicit', '{:,} random reads, implicit'),
    ]
    child_per_workload = True
    measure = 'time'
    competitor_heading = 'implementation'
    ratio_heading = 'x SQLite'
    options = [
        Option('-n', default=100_000, quick=10_000,
               help='pairs written in bulk and read back'),
        Option('-m', default=10_000, quick=500, help='single-item commits'),
        Option('-k', default=10_000, quick=2_000, help='random reads'),
    ]
    rounds = (3, 1)

    def run(self, args, key, workloads, extra):
        _harness.check_import()
        workdir = tempfile.mkdtemp(prefix='appendonly-bench-',
                                   dir=args.tmpdir)
        path = os.path.join(workdir,
                            'storage.db' if key == 'sqlite' else 'Data.fs')
        opener = Opener(key, path)
        try:
            result = run_workload(opener, workloads[0], args)
            result['bytes'] = sum(
                os.path.getsize(os.path.join(workdir, name))
                for name in os.listdir(workdir)
                if os.path.isfile(os.path.join(workdir, name)))
        finally:
            opener.close()
            shutil.rmtree(workdir, ignore_errors=True)
        return {'workloads': {workloads[0]: result}}

    def prepare(self, args):
        # The workloads' labels name their counts.
        self.workloads = [(w, label.format(getattr(args, TARGETS[w][0])))
                          for w, label in self.workloads]
        return {}

    def header(self, data):
        p = data['parameters']
        return [f'appendonly storage benchmark: N={p["n"]:,} pairs, '
                f'M={p["m"]:,} commits, K={p["k"]:,} reads',
                'each run on a fresh storage in a temporary directory; '
                'fsync on every commit (FileStorage default, SQLite WAL + '
                'synchronous=FULL)']

    def columns(self, data):
        def per_op(s, key):
            if s['ops'] <= 1:
                return '-'
            return f'{s["seconds"] / s["ops"] * 1e6:,.1f} us'
        return [('per op', per_op)]

    def notes(self, data):
        return ['x SQLite: per-round time / SqliteStorage\'s time in the '
                'same round (lower is faster).']

    def targets(self, data):
        labels, workloads = dict(self.competitors), dict(data['workloads'])
        return [Target(f'{workloads[workload]}: {labels[key]} <= '
                       f'{wanted:.2f}x SqliteStorage\'s time', workload,
                       key, BASELINE, wanted, of='time')
                for workload, (_, wanted) in TARGETS.items()
                if wanted is not None and workload in workloads
                for key in ('zodb', 'zodb-db')
                if key in dict(data['competitors'])]


if __name__ == '__main__':
    _harness.main(StorageBench())
