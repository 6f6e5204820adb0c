"""Soak: every structure and façade at once, over a real ZEO server, for
minutes rather than milliseconds.

Eight writer threads in this process and four writer processes share one
``runzeo`` server.  Each writer loops until a deadline, picking at random
among: pushing 1-3 items onto an ``AppendStack`` (with an ``Archive`` as
pruner) in one transaction, appending to or consuming an ``Accumulator``,
``put``/``get`` on a ``DurableQueue``, and setting keys of a
``DurableDict``.  It records everything it committed and consumed.  A
reader thread polls the stack meanwhile (``workload.Poller``) and checks
what it sees on every poll.  At the end, every invariant count must be
zero:

- stack: ``check_stack_invariants`` on what the server stored, and the
  reader saw exactly that history, in order;
- accumulator and queue: every item produced was delivered exactly once
  (consumed by a writer, or left over and drained at the end);
- dict: every key a writer set holds the last value that writer set.

An operation whose every attempt conflicted ("gave up": the façades make
100 attempts, the structures here ``ATTEMPTS``) raised ConflictError and
committed nothing; it is counted and reported, not recorded, and does not
fail the test: it is a matter of liveness under contention, not of
correctness.  (Twelve writers taking the head of one ``DurableQueue``
do give up now and then.)

A summary line per structure (operations/s, conflicts, invariant counts)
is printed (run pytest with ``-s`` to see it) and, if
``APPENDONLY_SOAK_REPORT`` names a file, written there.

Out of the default run: skipped unless ``APPENDONLY_SOAK_SECONDS`` is set
(the duration in seconds).  CI runs::

    APPENDONLY_SOAK_SECONDS=60 .venv/bin/python -m pytest -q -s -m soak \\
        appendonly/tests/test_soak.py -p no:cacheprovider

This module is also the worker process::

    python -m appendonly.tests.test_soak --addr HOST:PORT --writer p0 \\
        --seconds 60 --barrier DIR

which prints one JSON line with what it committed and consumed.
"""
import argparse
import json
import os
import queue
import random
import subprocess
import sys
import threading
import time
import traceback

import pytest
import ZEO
from ZODB.POSException import ConflictError

from appendonly import Accumulator
from appendonly import AppendStack
from appendonly import Archive
from appendonly.facades import DurableDict
from appendonly.facades import DurableQueue
from appendonly.tests.workload import Poller
from appendonly.tests.workload import check_stack_invariants
from appendonly.tests.workload import new_counter
from appendonly.tests.workload import run_in_transaction
from appendonly.tests.workload import stack_history
from appendonly.tests.zeo_worker import _address
from appendonly.tests.zeo_worker import _wait_at_barrier

SECONDS_VARIABLE = 'APPENDONLY_SOAK_SECONDS'
REPORT_VARIABLE = 'APPENDONLY_SOAK_REPORT'

pytestmark = [
    pytest.mark.soak,
    pytest.mark.zeo,
    pytest.mark.skipif(not os.environ.get(SECONDS_VARIABLE),
                       reason=f'a soak test: set {SECONDS_VARIABLE} to its '
                              f'duration in seconds to run it'),
]

THREADS = 8
PROCESSES = 4
WINDOW = (3, 5)             # small layers: pushes prune all the time
DICT_KEYS = 50              # keys per writer, so that values get replaced
ATTEMPTS = 200              # tm.attempts() per transaction, under contention
CONNECT_TIMEOUT = 30
# Beyond the duration: connecting, the last transactions, the final JSON.
GRACE = 120
POLL_INTERVAL = 0.02

# What a writer does on each round, and how often (weights).
OPERATIONS = [
    ('push', 30),
    ('append', 15),
    ('consume', 5),
    ('put', 15),
    ('get', 15),
    ('set', 20),
]


#
# One writer: a thread of the test, or a worker process
#

def soak_writer(db, writer, seconds, rng=None):
    """Run random operations on every structure for ``seconds``; return
    what was committed and consumed, as JSON-able lists."""
    rng = rng or random.Random(writer)
    names = [name for name, _ in OPERATIONS]
    weights = [weight for _, weight in OPERATIONS]
    stack_counter, acc_counter = new_counter(), new_counter()
    batches, appended, acc_batches = [], [], []
    put, got, last_set = [], [], {}
    counts = dict.fromkeys(names, 0)
    gave_up = dict.fromkeys(names, 0)
    seqs = dict.fromkeys(('stack', 'acc', 'queue', 'dict'), 0)
    q = DurableQueue(db, 'soak')
    d = DurableDict(db, 'soak')

    def push():
        batch = [(writer, seqs['stack'] + i)
                 for i in range(rng.randint(1, 3))]

        def push(root):
            for item in batch:
                root['stack'].push(item, root['archive'].addLayer)
        run_in_transaction(db, push, stack_counter, ATTEMPTS)
        batches.append(batch)
        seqs['stack'] += len(batch)

    def append():
        item = (writer, seqs['acc'])
        run_in_transaction(db, lambda root: root['acc'].append(item),
                           acc_counter, ATTEMPTS)
        appended.append(item)
        seqs['acc'] += 1

    def consume():
        batch = run_in_transaction(db, lambda root: root['acc'].consume(),
                                   acc_counter, ATTEMPTS)
        if batch:
            acc_batches.append(batch)

    def put_():
        item = (writer, seqs['queue'])
        q.put(item)
        put.append(item)
        seqs['queue'] += 1

    def get():
        try:
            got.append(q.get_nowait())
        except queue.Empty:
            pass

    def set_():
        key = (writer, rng.randrange(DICT_KEYS))
        d[key] = seqs['dict']
        last_set[key] = seqs['dict']
        seqs['dict'] += 1

    operations = {'push': push, 'append': append, 'consume': consume,
                  'put': put_, 'get': get, 'set': set_}
    try:
        began = time.monotonic()
        deadline = began + seconds
        while time.monotonic() < deadline:
            op = rng.choices(names, weights)[0]
            try:
                operations[op]()
            except ConflictError:
                # Every attempt conflicted.  The last one was aborted, so
                # nothing of it was committed, and nothing was recorded.
                gave_up[op] += 1
            else:
                counts[op] += 1
        elapsed = time.monotonic() - began
    finally:
        q.close()
        d.close()
    return {
        'writer': writer, 'elapsed': elapsed, 'counts': counts,
        'gave_up': gave_up,
        'stack_batches': batches,
        'stack_conflicts': stack_counter['conflicts'],
        'acc_appended': appended, 'acc_batches': acc_batches,
        'acc_conflicts': acc_counter['conflicts'],
        'queue_put': put, 'queue_got': got,
        'dict_last': [[key[0], key[1], value]
                      for key, value in last_set.items()],
    }


#
# The reader
#

class CheckingPoller(Poller):
    """A Poller that checks, on every poll, what it has just seen:
    nothing seen twice, positions increasing, no layer longer than the
    window, each writer's items in its push order."""

    def __init__(self, db, max_length, **kw):
        super().__init__(db, **kw)
        self.max_length = max_length
        self.violations = dict.fromkeys(
            ('duplicated', 'out_of_order', 'too_long', 'writer_order'), 0)
        self.checked = 0
        self._items = set()
        self._last_seq = {}

    def poll(self, conn):
        before = len(self.seen)
        previous = self.seen[before - 1][:2] if before else None
        super().poll(conn)
        for generation, index, item in self.seen[before:]:
            if item in self._items:
                self.violations['duplicated'] += 1
            self._items.add(item)
            if previous is not None and not previous < (generation, index):
                self.violations['out_of_order'] += 1
            previous = (generation, index)
            if index >= self.max_length:
                self.violations['too_long'] += 1
            writer, seq = item
            if seq <= self._last_seq.get(writer, -1):
                self.violations['writer_order'] += 1
            self._last_seq[writer] = seq
            self.checked += 1


#
# The test
#

def _tuples(items):
    return [tuple(item) for item in items]


class _Processes:
    """The worker processes: this module run as a script."""

    def __init__(self, addr, directory, seconds):
        self.directory = directory
        self.barrier = directory / 'barrier'
        self.barrier.mkdir()
        self.addr = '%s:%d' % addr
        self.seconds = seconds
        self.running = []

    def start(self, writer):
        out = self.directory / f'{writer}.out'
        err = self.directory / f'{writer}.err'
        with open(out, 'wb') as o, open(err, 'wb') as e:
            process = subprocess.Popen(
                [sys.executable, '-m', 'appendonly.tests.test_soak',
                 '--addr', self.addr, '--writer', writer,
                 '--seconds', str(self.seconds),
                 '--barrier', str(self.barrier)],
                stdin=subprocess.DEVNULL, stdout=o, stderr=e,
                env=_env(), cwd=self.directory)
        self.running.append((writer, process, out, err))

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while len(list(self.barrier.glob('ready-*'))) < len(self.running):
            for writer, process, _, err in self.running:
                if process.poll() is not None:
                    pytest.fail(f'{writer} exited with {process.returncode} '
                                f'before starting:\n{err.read_text()}')
            if time.monotonic() > deadline:
                pytest.fail('worker processes not ready in time')
            time.sleep(0.02)

    def go(self):
        (self.barrier / 'go').touch()

    def results(self, timeout):
        deadline = time.monotonic() + timeout
        results = []
        for writer, process, out, err in self.running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(f'{writer} still running:\n{err.read_text()}')
            if process.returncode != 0:
                pytest.fail(f'{writer} exited with {process.returncode}:\n'
                            f'{err.read_text()}')
            results.append(json.loads(out.read_text().splitlines()[-1]))
        return results

    def kill(self):
        for _, process, _, _ in self.running:
            if process.poll() is None:
                process.kill()
                process.wait(5)


def _env():
    from appendonly.tests.zeoserver import env
    return env()


def _delivered_exactly_once(produced, delivered):
    """Violation counts of exactly-once delivery."""
    produced_set, delivered_set = set(produced), set(delivered)
    return {'lost': len(produced_set - delivered_set),
            'duplicated': len(delivered) - len(delivered_set),
            'unknown': len(delivered_set - produced_set)}


def _nonzero(violations):
    return {name: n for name, n in violations.items() if n}


@pytest.fixture
def processes(zeo_server, tmp_path):
    workers = _Processes(zeo_server, tmp_path,
                         float(os.environ.get(SECONDS_VARIABLE, '0') or 0))
    yield workers
    workers.kill()


def test_soak_every_structure_over_zeo(zeo_server, processes):
    seconds = float(os.environ[SECONDS_VARIABLE])
    db = ZEO.DB(zeo_server, wait_timeout=CONNECT_TIMEOUT)
    # Each thread: a connection per transaction, one for its façades.
    db.setPoolSize(THREADS * 2 + 4)
    # The reader's own client: server_sync, so its last poll sees every
    # commit the writers finished.
    reader_db = ZEO.DB(zeo_server, wait_timeout=CONNECT_TIMEOUT,
                       server_sync=True)
    try:
        with db.transaction() as conn:
            conn.root.stack = AppendStack(*WINDOW)
            conn.root.archive = Archive()
            conn.root.acc = Accumulator()
        # Create the façades' data before the writers race to.
        DurableQueue(db, 'soak').close()
        DurableDict(db, 'soak').close()

        for n in range(PROCESSES):
            processes.start(f'p{n}')
        processes.wait_ready(CONNECT_TIMEOUT + 10)

        results, errors = {}, []

        def thread_writer(writer):
            try:
                results[writer] = soak_writer(db, writer, seconds)
            except BaseException:
                errors.append(f'{writer}:\n{traceback.format_exc()}')

        threads = [threading.Thread(target=thread_writer, args=(f't{n}',),
                                    daemon=True)
                   for n in range(THREADS)]
        poller = CheckingPoller(reader_db, WINDOW[1],
                                interval=POLL_INTERVAL)
        began = time.monotonic()
        processes.go()
        poller.start()
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(max(0.1, began + seconds + GRACE -
                                time.monotonic()))
            assert not any(t.is_alive() for t in threads), \
                'writer thread still running'
            assert not errors, '\n'.join(errors)
            for result in processes.results(
                    max(0.1, began + seconds + GRACE - time.monotonic())):
                results[result['writer']] = result
            wall = time.monotonic() - began
        finally:
            # Its last poll begins after every writer has committed.
            poller.stopping.set()
            poller.join(60)
        assert not poller.is_alive(), 'reader still running'
    finally:
        reader_db.close()
        db.close()

    # What the server stored, read by a fresh client (no cache), and what
    # was left in the accumulator and queue, drained.
    fresh = ZEO.DB(zeo_server, wait_timeout=CONNECT_TIMEOUT)
    try:
        with fresh.transaction() as conn:
            history = stack_history(conn.root.stack, conn.root.archive)
            acc_left = _tuples(conn.root.acc)
        queue_left = []
        with DurableQueue(fresh, 'soak') as q:
            while True:
                try:
                    queue_left.append(tuple(q.get_nowait()))
                except queue.Empty:
                    break
        with DurableDict(fresh, 'soak') as d:
            stored = dict(d.items())
    finally:
        fresh.close()

    all_results = list(results.values())
    assert len(all_results) == THREADS + PROCESSES

    def total(name):
        return sum(r['counts'][name] for r in all_results)

    def gave_up(*names):
        counts = {name: sum(r['gave_up'][name] for r in all_results)
                  for name in names}
        return ' '.join(f'{name} {n}' for name, n in counts.items())

    batches = [_tuples(batch) for r in all_results
               for batch in r['stack_batches']]
    stack_violations = check_stack_invariants(history, batches, WINDOW[1])
    stack_violations['reader_missed'] = len(
        set(history) - set(poller.seen))
    stack_violations['reader_mismatch'] = int(poller.seen != history)
    stack_violations.update(
        {f'reader_{name}': n for name, n in poller.violations.items()})

    appended = [tuple(i) for r in all_results for i in r['acc_appended']]
    consumed = [tuple(i) for r in all_results for b in r['acc_batches']
                for i in b]
    acc_violations = _delivered_exactly_once(appended, consumed + acc_left)

    put = [tuple(i) for r in all_results for i in r['queue_put']]
    got = [tuple(i) for r in all_results for i in r['queue_got']]
    queue_violations = _delivered_exactly_once(put, got + queue_left)

    expected = {(writer, k): value for r in all_results
                for writer, k, value in r['dict_last']}
    dict_violations = {
        'missing': sum(1 for key in expected if key not in stored),
        'wrong_value': sum(1 for key, value in expected.items()
                           if key in stored and stored[key] != value),
        'unknown': sum(1 for key in stored if key not in expected),
    }

    pushes = len(history)
    stack_txns = total('push')

    def done_by(prefix):
        return sum(sum(r['counts'].values()) for r in all_results
                   if r['writer'].startswith(prefix))
    # The threads share this process's ZEO ClientStorage, which commits
    # one transaction at a time: each process is one commit stream.
    per_thread = done_by('t') / THREADS / wall
    per_process = done_by('p') / PROCESSES / wall
    lines = [
        f'soak: {seconds:g} s, {THREADS} threads + {PROCESSES} processes '
        f'over ZEO, {wall:.1f} s wall; '
        f'{sum(sum(r["counts"].values()) for r in all_results) / wall:.1f} '
        f'operations/s in all',
        f'writers:     {per_thread:7.1f} op/s per thread ({THREADS} threads '
        f'sharing one ZEO client), {per_process:.1f} op/s per process '
        f'({PROCESSES} processes)',
        f'stack:       {stack_txns / wall:7.1f} txn/s '
        f'({pushes / wall:.1f} pushes/s; {stack_txns} txns, {pushes} '
        f'pushes, AppendStack{WINDOW} + Archive); conflicts retried '
        f'{sum(r["stack_conflicts"] for r in all_results)}, gave up '
        f'{gave_up("push")}; reader '
        f'{poller.polls} polls, {poller.checked} items checked; '
        f'violations {stack_violations}',
        f'accumulator: {(total("append") + total("consume")) / wall:7.1f} '
        f'op/s ({total("append")} appends, {total("consume")} consumes, '
        f'{len(consumed)} consumed, {len(acc_left)} left); conflicts '
        f'retried {sum(r["acc_conflicts"] for r in all_results)}, gave up '
        f'{gave_up("append", "consume")}; violations {acc_violations}',
        f'queue:       {(total("put") + total("get")) / wall:7.1f} op/s '
        f'({total("put")} puts, {total("get")} gets, {len(got)} got, '
        f'{len(queue_left)} left); gave up {gave_up("put", "get")}; '
        f'violations {queue_violations}',
        f'dict:        {total("set") / wall:7.1f} op/s '
        f'({total("set")} sets, {len(expected)} keys); gave up '
        f'{gave_up("set")}; violations {dict_violations}',
    ]
    report = '\n'.join(lines)
    print('\n' + report)
    if os.environ.get(REPORT_VARIABLE):
        with open(os.environ[REPORT_VARIABLE], 'w') as f:
            f.write(report + '\n')

    assert _nonzero(stack_violations) == {}
    assert _nonzero(acc_violations) == {}
    assert _nonzero(queue_violations) == {}
    assert _nonzero(dict_violations) == {}
    assert len(history) == sum(len(b) for b in batches)


#
# The worker process
#

def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m appendonly.tests.test_soak',
        description='One soak writer in its own ZEO client process.')
    parser.add_argument('--addr', type=_address, required=True,
                        help='the ZEO server, HOST:PORT')
    parser.add_argument('--writer', required=True,
                        help='this writer\'s name, first in its items')
    parser.add_argument('--seconds', type=float, required=True,
                        help='how long to run, from the barrier')
    parser.add_argument('--barrier', metavar='DIR',
                        help='wait for DIR/go before starting')
    args = parser.parse_args(argv)
    db = ZEO.DB(args.addr, wait_timeout=CONNECT_TIMEOUT)
    try:
        if args.barrier:
            _wait_at_barrier(args.barrier)
        result = soak_writer(db, args.writer, args.seconds)
    finally:
        db.close()
    print(json.dumps(result), flush=True)


if __name__ == '__main__':
    main()
