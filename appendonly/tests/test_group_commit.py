"""Group commit keeps exactly-once and per-operation failure isolation:
3 processes of 8 threads each on one shared path (one hosts the file, two
are ZEO clients of it), every autocommit write going through the
transaction runner's group commit."""
import collections
import json

import pytest

from appendonly import _txn
from appendonly.facades import DurableDict
from appendonly.facades import DurableQueue
from appendonly.tests._procs import Procs

PROCESSES = 3
OPS = 40


@pytest.fixture
def procs(tmp_path):
    with Procs(tmp_path) as procs:
        yield procs


def test_three_processes_of_eight_threads(tmp_path, procs):
    path = tmp_path / 'Data.fs'
    names = [f'p{i}' for i in range(PROCESSES)]
    workers = [procs.python(name, 'appendonly.tests.group_commit_worker',
                            path, name, OPS) for name in names]
    for worker in workers:
        assert worker.popen.wait(300) == 0, worker.stderr()
    reports = [json.loads(w.out.read_text().splitlines()[-1])
               for w in workers]
    put = [i for r in reports for i in r['put']]
    got = [i for r in reports for i in r['got']]
    with DurableQueue(path, 'jobs', readonly=True) as q, \
            DurableDict(path, 'dict', readonly=True) as d, \
            DurableQueue(path, 'full', readonly=True) as full:
        left = []
        while True:
            try:
                left.append(q.get_nowait())
            except Exception:
                break
        dict_items = dict(d.items())
        full_size = full.qsize()
    expected = {f'{name}-{t}-{n}' for name in names for t in range(8)
                for n in range(OPS)}
    # Every put acknowledged; every item delivered exactly once (got by
    # an acknowledged get, or still queued), none twice.
    assert set(put) == expected and len(put) == len(expected)
    duplicates = [i for i, c in collections.Counter(got + left).items()
                  if c > 1]
    assert duplicates == []
    assert set(got) | set(left) == expected
    # Every set is there with its value; the failing deletes touched
    # nothing and each failed alone.
    assert dict_items == {i: int(i.rsplit('-', 1)[1]) for i in expected}
    assert sum(r['missing'] for r in reports) == len(expected)
    # The bounded queue took exactly one item; every other put_nowait was
    # refused on its own.
    assert full_size == 1
    assert sum(r['full'] for r in reports) == len(expected) - 1


def test_batches_are_shared_between_threads(tmp_path):
    # The same workload in this process: fewer transactions than writes.
    import threading

    import ZODB.FileStorage
    path = str(tmp_path / 'Data.fs')
    q = DurableQueue(path, 'jobs')
    try:
        def producer(t):
            for n in range(50):
                q.put((t, n))

        threads = [threading.Thread(target=producer, args=(t,))
                   for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert q.qsize() == 400
    finally:
        q.close()
    storage = ZODB.FileStorage.FileStorage(path, read_only=True)
    try:
        tokens = [t.extension.get(_txn.CALL_KEY) for t in storage.iterator()]
    finally:
        storage.close()
    commits = sum(1 for t in tokens if t)
    assert commits < 400, commits
