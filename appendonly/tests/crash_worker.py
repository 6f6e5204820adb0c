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
    {'stack': stack, 'dict': dict_, 'queue': queue}[kind](path, start)
