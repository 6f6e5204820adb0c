"""Real concurrency on a real FileStorage: 8 threads, each with its own
connection and TransactionManager, pushing into small windows so layers fill
and prune while transactions conflict."""
import threading

import pytest

from appendonly import Accumulator
from appendonly import AppendStack
from appendonly import Archive
from appendonly.tests.workload import Poller
from appendonly.tests.workload import check_stack_invariants
from appendonly.tests.workload import new_counter
from appendonly.tests.workload import run_in_transaction
from appendonly.tests.workload import stack_history
from appendonly.tests.workload import stack_writer

THREADS = 8


def _setup_stack(db, max_layers, max_length):
    with db.transaction() as conn:
        conn.root.stack = AppendStack(max_layers, max_length)
        conn.root.archive = Archive()


def _run_threads(target, count=THREADS):
    errors = []

    def wrapped(n):
        try:
            target(n)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=wrapped, args=(n,))
               for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.mark.parametrize('window',
                         [(3, 5), (1, 4), (4, 1), (10, 100), (2, 30)])
def test_single_pushes_merge_without_conflict(db, window):
    _setup_stack(db, *window)
    counter, batches = new_counter(), []
    poller = Poller(db)
    poller.start()
    _run_threads(lambda n: stack_writer(db, n, 40, 1, counter, batches))
    poller.stop()
    with db.transaction() as conn:
        history = stack_history(conn.root.stack, conn.root.archive)
    violations = check_stack_invariants(history, batches, window[1])
    assert violations == dict.fromkeys(violations, 0)
    assert len(history) == THREADS * 40
    # One push per transaction must always merge: no ConflictError even
    # reached the retry loop.
    assert counter['conflicts'] == 0
    # The polling reader saw every item exactly once, in position order.
    assert poller.seen == history


@pytest.mark.parametrize('window', [(3, 5), (1, 4), (4, 1), (3, 30)])
def test_multi_push_transactions_stay_contiguous(db, window):
    _setup_stack(db, *window)
    counter, batches = new_counter(), []
    poller = Poller(db)
    poller.start()
    _run_threads(lambda n: stack_writer(db, n, 30, (1, 7), counter, batches))
    poller.stop()
    with db.transaction() as conn:
        history = stack_history(conn.root.stack, conn.root.archive)
        stack = conn.root.stack
        # A push prunes any surplus a merge left; at rest the window holds.
        stack.push(('final', 0), conn.root.archive.addLayer)
        assert len(stack._layers) <= window[0]
    violations = check_stack_invariants(history, batches, window[1])
    assert violations == dict.fromkeys(violations, 0)
    assert len(history) == THREADS * 30
    assert poller.seen == history


def test_accumulator_producers_and_consumers(db):
    with db.transaction() as conn:
        conn.root.acc = Accumulator()
    counter = new_counter()
    produced, consumed, calls = [], [], []
    lock = threading.Lock()
    done = threading.Event()

    def producer(n):
        for seq in range(60):
            def add(root, item=(n, seq)):
                if seq % 3:
                    root['acc'].append(item)
                else:
                    root['acc'].extend([item])
            run_in_transaction(db, add, counter)
            with lock:
                produced.append((n, seq))

    def consumer(n):
        while True:
            last = done.is_set()
            got = run_in_transaction(db, lambda root: root['acc'].consume(),
                                     counter, attempts=1000)
            with lock:
                consumed.extend(got)
                calls.append(got)
            if last:
                return

    consumers = [threading.Thread(target=consumer, args=(n,))
                 for n in range(4)]
    for t in consumers:
        t.start()
    _run_threads(producer, 4)
    done.set()
    for t in consumers:
        t.join()
    with db.transaction() as conn:
        left = list(conn.root.acc)
    delivered = consumed + left
    assert len(delivered) == len(set(delivered)), 'delivered twice'
    assert sorted(delivered) == sorted(produced), 'lost'
    # Each consume() returned each producer's items in append order.
    for got in calls:
        for n in range(4):
            mine = [item for item in got if item[0] == n]
            assert mine == sorted(mine)


def test_archive_direct_concurrent_adds_of_same_layers(db):
    with db.transaction() as conn:
        conn.root.archive = Archive()
    counter = new_counter()

    def add(n):
        for gen in range(20):
            run_in_transaction(
                db, lambda root, gen=gen: root['archive'].addLayer(
                    gen, ['g%d-%d' % (gen, i) for i in range(3)]), counter)

    _run_threads(add)
    with db.transaction() as conn:
        history = list(conn.root.archive)
    assert [g for g, i, _ in history] == [g for g in range(19, -1, -1)
                                          for i in range(3)]
    assert counter['conflicts'] == 0
