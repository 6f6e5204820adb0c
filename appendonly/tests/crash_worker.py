"""A writer to be killed: ``python -m appendonly.tests.crash_worker KIND
PATH START``.  Commits batches forever and prints ``committed N`` (flushed)
after each commit returns; the test SIGKILLs it at a random moment.

KIND: ``stack`` (AppendStack + Archive, 1-5 pushes per transaction),
``dict`` (DurableDict, a batch of keys per transaction) or ``queue``
(DurableQueue: moves items from 'in' to 'out' transactionally, printing
``moved ITEM`` after each commit).  Items are large (20 KB) so that the
kill often lands in the middle of writing a transaction.
"""
import random
import sys

import ZODB
import ZODB.FileStorage

from appendonly import AppendStack
from appendonly import Archive

PAD = 'x' * 20000


def stack(path, start):
    db = ZODB.DB(ZODB.FileStorage.FileStorage(path))
    with db.transaction() as conn:
        if 'stack' not in conn.root():
            conn.root.stack = AppendStack(3, 4)
            conn.root.archive = Archive()
    rng = random.Random(start)
    n = start
    while True:
        size = rng.randint(1, 5)
        with db.transaction() as conn:
            for i in range(size):
                conn.root.stack.push((n, i, size, PAD),
                                     conn.root.archive.addLayer)
        print('committed', n, size, flush=True)
        n += 1


def dict_(path, start):
    from appendonly.facades import DurableDict
    d = DurableDict(path, 'crash')
    n = start
    while True:
        with d.transaction():
            for i in range(3):
                d[(n, i)] = PAD
        print('committed', n, 3, flush=True)
        n += 1


def storage(path, start):
    from appendonly.storage import ZODBStorage
    store = ZODBStorage(path, create=not _exists(path))
    if start == 0:
        store.add_container('crash')
    n = start
    while True:
        store.begin()
        store.set_container_items('crash', {f'{n}-{i}': PAD for i in
                                            range(3)})
        store.commit()
        print('committed', n, 3, flush=True)
        n += 1


def _exists(path):
    import os
    return os.path.exists(path)


def zeo_client(address, start):
    """Push through a ZEO server that gets killed and restarted: each
    batch carries its number, and a retry after a lost connection first
    looks whether the batch already committed (its reply may have been
    lost with the server), so no batch is pushed twice."""
    import transaction
    import ZEO
    host, port = address.rsplit(':', 1)
    db = ZEO.DB((host, int(port)), wait_timeout=60)
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    n = start
    while True:
        for attempt in tm.attempts(1000):
            with attempt:
                stack = conn.root()['stack']
                if not any(entry[2][0] == n for entry in
                           _newest(stack, 10)):
                    for i in range(2):
                        stack.push((n, i, 2, 'zeo'),
                                   conn.root()['archive'].addLayer)
        print('committed', n, 2, flush=True)
        n += 1


def _newest(stack, count):
    for k, entry in enumerate(stack):
        if k >= count:
            return
        yield entry


def queue(path, start):
    from appendonly.facades import DurableQueue
    source, sink = DurableQueue(path, 'in'), DurableQueue(path, 'out')
    while True:
        with source.transaction():
            item = source.get(timeout=5)
            sink.put((item, PAD))
        print('moved', item, flush=True)


if __name__ == '__main__':
    kind, path, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
    {'stack': stack, 'dict': dict_, 'queue': queue, 'storage': storage,
     'zeo': zeo_client}[kind](path, start)
