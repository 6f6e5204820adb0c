"""Concurrent workloads and invariant checks shared by the functional tests
(threads on a FileStorage, processes on ZEO) and the demo.

Items are ``(writer, seq)`` pairs, unique per run, so loss and duplication
are counted exactly.
"""
import random
import threading
import time

import transaction


def run_in_transaction(db, func, counter=None, attempts=50):
    """Run ``func(root)`` in a fresh connection and transaction, committed
    by ``TransactionManager.attempts()``, which retries ConflictErrors.

    Every retry was caused by a ConflictError that reached the caller:
    their number is added to ``counter['conflicts']``.
    """
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    try:
        for retries, attempt in enumerate(tm.attempts(attempts)):
            with attempt:
                result = func(conn.root())
        if counter is not None and retries:
            with counter['lock']:
                counter['conflicts'] += retries
        return result
    finally:
        conn.close()


def new_counter():
    return {'lock': threading.Lock(), 'conflicts': 0}


def stack_writer(db, writer, pushes, per_txn, counter, committed,
                 stack_name='stack', archive_name='archive', rng=None):
    """Push ``pushes`` items ``(writer, seq)``, ``per_txn`` (an int, or a
    (lo, hi) range) per transaction; append each committed batch to
    ``committed``."""
    rng = rng or random.Random(writer)
    seq = 0
    while seq < pushes:
        n = per_txn if isinstance(per_txn, int) else rng.randint(*per_txn)
        batch = [(writer, s) for s in range(seq, min(seq + n, pushes))]

        def push(root, batch=batch):
            stack, archive = root[stack_name], root[archive_name]
            for item in batch:
                stack.push(item, archive.addLayer)

        run_in_transaction(db, push, counter)
        committed.append(batch)
        seq += len(batch)


def stack_history(stack, archive):
    """Everything the stack and its archive hold, oldest first, as
    ``(generation, index, item)``."""
    return list(reversed(list(stack))) + [] if archive is None else \
        list(reversed(list(archive))) + list(reversed(list(stack)))


def check_stack_invariants(history, batches, max_length):
    """Return a dict of violation counts (all zero when correct).

    ``history``: oldest-first (generation, index, item) of stack + archive.
    ``batches``: the committed batches, each a list of items.
    """
    items = [item for _, _, item in history]
    expected = [item for batch in batches for item in batch]
    seen = set()
    duplicated = 0
    for item in items:
        if item in seen:
            duplicated += 1
        seen.add(item)
    lost = len(set(expected) - seen)
    unknown = len(seen - set(expected))
    positions = [(g, i) for g, i, _ in history]
    out_of_order = sum(1 for a, b in zip(positions, positions[1:])
                       if not a < b)
    too_long = sum(1 for _, i, _ in history if i >= max_length)
    # Each writer's items appear in its push order, and each committed
    # batch is contiguous.
    where = {item: n for n, item in enumerate(items)}
    order = 0
    by_writer = {}
    for batch in batches:
        for item in batch:
            by_writer.setdefault(item[0], []).append(item)
    for writer_items in by_writer.values():
        places = [where[i] for i in writer_items if i in where]
        order += sum(1 for a, b in zip(places, places[1:]) if a > b)
    split = 0
    for batch in batches:
        places = [where[i] for i in batch if i in where]
        if places and places != list(range(places[0],
                                           places[0] + len(places))):
            split += 1
    return {'lost': lost, 'duplicated': duplicated, 'unknown': unknown,
            'out_of_order': out_of_order, 'too_long': too_long,
            'writer_order': order, 'split_batches': split}


class Poller(threading.Thread):
    """A reader polling ``newer()`` on the stack (and the archive for what
    was pruned before it looked), collecting every item once."""

    def __init__(self, db, stack_name='stack', archive_name='archive',
                 interval=0.002):
        super().__init__(daemon=True)
        self.db = db
        self.names = stack_name, archive_name
        self.interval = interval
        self.seen = []
        self.cursor = (-1, -1)
        self.polls = 0
        self.stopping = threading.Event()

    def poll(self, conn):
        stack = conn.root()[self.names[0]]
        archive = conn.root()[self.names[1]]
        fresh = list(stack.newer(*self.cursor))
        oldest = None
        for generation, index, _ in stack:
            oldest = (generation, index)
        if fresh and oldest is not None and oldest > self.cursor:
            # Items between the cursor and the stack's oldest were pruned
            # in the meantime: they are in the archive, same snapshot.
            fresh += [entry for entry in archive
                      if self.cursor < entry[:2] < oldest]
        fresh.sort(key=lambda entry: entry[:2])
        if fresh:
            self.seen.extend(fresh)
            self.cursor = fresh[-1][:2]
        self.polls += 1

    def run(self):
        tm = transaction.TransactionManager()
        conn = self.db.open(tm)
        try:
            while True:
                stop = self.stopping.is_set()
                tm.begin()
                self.poll(conn)
                tm.abort()
                if stop:
                    return
                time.sleep(self.interval)
        finally:
            conn.close()

    def stop(self):
        self.stopping.set()
        self.join()
