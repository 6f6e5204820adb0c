"""The demo: concurrent writers on an embedded FileStorage, then a check.

``python -m appendonly.demo [--dir var] [--writers 8] [--pushes 300]``

Writer threads push ``(writer, seq)`` items into an AppendStack (3 layers of
5, so layers fill and prune all the time) with an Archive as pruner;
producer threads append to an Accumulator while consumer threads consume it.
Every thread has its own connection and TransactionManager and commits one
small transaction at a time, retrying ConflictErrors with
``TransactionManager.attempts()``.  At the end the demo reopens the database
and counts what it finds against what was committed.
"""
import argparse
import os
import sys
import threading
import time

import ZODB
import ZODB.FileStorage

from appendonly import Accumulator
from appendonly import AppendStack
from appendonly import Archive
from appendonly.tests.workload import check_stack_invariants
from appendonly.tests.workload import new_counter
from appendonly.tests.workload import run_in_transaction
from appendonly.tests.workload import stack_history
from appendonly.tests.workload import stack_writer


def main(argv=None, prog='python -m appendonly.demo'):
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__.split('\n')[0])
    parser.add_argument('--dir', default='var',
                        help='folder for Data.fs (default: var)')
    parser.add_argument('--writers', type=int, default=8)
    parser.add_argument('--pushes', type=int, default=300,
                        help='pushes per writer (default: 300)')
    parser.add_argument('--producers', type=int, default=2)
    parser.add_argument('--consumers', type=int, default=2)
    args = parser.parse_args(argv)

    os.makedirs(args.dir, exist_ok=True)
    path = os.path.join(args.dir, 'demo.fs')
    for suffix in ('', '.index', '.lock', '.tmp', '.old'):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    db = ZODB.DB(ZODB.FileStorage.FileStorage(path),
                 pool_size=args.writers + args.producers + args.consumers)
    with db.transaction() as conn:
        conn.root.stack = AppendStack(3, 5)
        conn.root.archive = Archive()
        conn.root.acc = Accumulator()
    print(f'appendonly demo: {args.writers} writers x {args.pushes} pushes, '
          f'{args.producers} producers, {args.consumers} consumers on {path}')

    stack_conflicts, acc_conflicts = new_counter(), new_counter()
    batches, produced, consumed = [], [], []
    lock = threading.Lock()
    producing = threading.Event()

    def producer(n):
        for seq in range(args.pushes):
            run_in_transaction(
                db, lambda root, item=('p%d' % n, seq):
                root['acc'].append(item), acc_conflicts)
            with lock:
                produced.append(('p%d' % n, seq))

    def consumer(n):
        while True:
            last = not producing.is_set()
            got = run_in_transaction(db, lambda root: root['acc'].consume(),
                                     acc_conflicts, attempts=10000)
            with lock:
                consumed.extend(got)
            if last:
                return
            time.sleep(0.005)

    threads = [threading.Thread(
        target=stack_writer,
        args=(db, n, args.pushes, 1, stack_conflicts, batches))
        for n in range(args.writers)]
    producers = [threading.Thread(target=producer, args=(n,))
                 for n in range(args.producers)]
    consumers = [threading.Thread(target=consumer, args=(n,))
                 for n in range(args.consumers)]
    producing.set()
    start = time.monotonic()
    for t in threads + producers + consumers:
        t.start()
    while any(t.is_alive() for t in threads + producers):
        time.sleep(1)
        print(f'  {time.monotonic() - start:5.1f}s  pushed {len(batches):6d}'
              f'  produced {len(produced):6d}  consumed {len(consumed):6d}',
              flush=True)
    producing.clear()
    for t in threads + producers + consumers:
        t.join()
    elapsed = time.monotonic() - start
    db.close()

    # Reopen and verify what is really on disk.
    db = ZODB.DB(ZODB.FileStorage.FileStorage(path, read_only=True))
    with db.transaction() as conn:
        history = stack_history(conn.root.stack, conn.root.archive)
        left = list(conn.root.acc)
    db.close()
    stack = check_stack_invariants(history, batches, 5)
    pushed = sum(len(b) for b in batches)
    delivered = consumed + left
    acc_lost = len(set(produced) - set(delivered))
    acc_dup = len(delivered) - len(set(delivered))
    print(f'done in {elapsed:.1f}s')
    print(f'stack:       pushed {pushed}, found {len(history)}, '
          f'lost {stack["lost"]}, duplicated {stack["duplicated"]}, '
          f'out of order {stack["out_of_order"] + stack["writer_order"]}, '
          f'ConflictErrors surfaced {stack_conflicts["conflicts"]}')
    print(f'accumulator: appended {len(produced)}, consumed {len(consumed)}, '
          f'left {len(left)}, lost {acc_lost}, delivered twice {acc_dup}, '
          f'ConflictErrors retried {acc_conflicts["conflicts"]} '
          f'(two consumers at once: the loser retries)')
    ok = not any(stack.values()) and len(history) == pushed \
        and not acc_lost and not acc_dup
    print('OK: nothing lost, nothing duplicated' if ok else 'FAILED')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
