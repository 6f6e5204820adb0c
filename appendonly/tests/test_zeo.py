"""Real concurrency through a real ZEO server: client *processes*, each with
its own ClientStorage, against a ``runzeo`` subprocess serving a
FileStorage.

With ZEO, conflict resolution runs on the server (ZEO 5+ resolves there
unless ``client-conflict-resolution`` is on): the server loads the three
states, imports the class named in the record (``appendonly.AppendStack``,
...) and calls its ``_p_resolveConflict``.  A resolver that cannot merge
raises ConflictError there, and the committing client gets a ConflictError
from its vote, which ``tm.attempts()`` retries.
"""
import json
import subprocess
import sys
import time

import pytest
import ZEO

from appendonly import Accumulator
from appendonly import AppendStack
from appendonly import Archive
from appendonly.tests.workload import Poller
from appendonly.tests.workload import check_stack_invariants
from appendonly.tests.workload import new_counter
from appendonly.tests.workload import run_in_transaction
from appendonly.tests.workload import stack_history
from appendonly.tests.zeoserver import env

pytestmark = pytest.mark.zeo

WORKERS_TIMEOUT = 60     # for all the client processes of one test


@pytest.fixture
def zeo_db(zeo_server):
    """A ZEO.DB in this process.  server_sync: each transaction starts
    with a round trip, so it sees every commit the workers finished."""
    db = ZEO.DB(zeo_server, wait_timeout=30, server_sync=True)
    yield db
    db.close()


class Workers:
    """Client processes running ``appendonly.tests.zeo_worker``, on a ZEO
    address (host, port) or on any ``open_db`` target (a string)."""

    def __init__(self, where, directory):
        self.where = ['--target', where] if isinstance(where, str) else \
            ['--addr', '%s:%d' % where]
        self.directory = directory
        self.barrier = directory / 'barrier'
        self.barrier.mkdir()
        self.running = []
        self.deadline = time.monotonic() + WORKERS_TIMEOUT

    def start(self, command, *args):
        name = f'{command}-{len(self.running)}'
        out = self.directory / f'{name}.out'
        err = self.directory / f'{name}.err'
        with open(out, 'wb') as o, open(err, 'wb') as e:
            process = subprocess.Popen(
                [sys.executable, '-m', 'appendonly.tests.zeo_worker',
                 command, *self.where,
                 '--barrier', str(self.barrier), *map(str, args)],
                stdin=subprocess.DEVNULL, stdout=o, stderr=e,
                env=env(), cwd=self.directory)
        self.running.append((name, process, out, err))
        return name

    def go(self):
        """Wait until every worker is connected, then let them all start."""
        while len(list(self.barrier.glob('ready-*'))) < len(self.running):
            for name, process, _, err in self.running:
                if process.poll() is not None:
                    self.fail(f'{name} exited with {process.returncode} '
                              f'before starting:\n{err.read_text()}')
            if time.monotonic() > self.deadline:
                self.fail('workers not ready in time')
            time.sleep(0.02)
        (self.barrier / 'go').touch()

    def wait(self, names):
        """Wait for the named workers; return their JSON results."""
        results = []
        for name, process, out, err in self.running:
            if name not in names:
                continue
            try:
                process.wait(max(0.1, self.deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.fail(f'{name} still running after '
                          f'{WORKERS_TIMEOUT} s:\n{err.read_text()}')
            if process.returncode != 0:
                self.fail(f'{name} exited with {process.returncode}:\n'
                          f'{err.read_text()}')
            results.append(json.loads(out.read_text().splitlines()[-1]))
        return results

    def fail(self, message):
        self.kill()
        pytest.fail(message)

    def kill(self):
        for _, process, _, _ in self.running:
            if process.poll() is None:
                process.kill()
                process.wait(5)


@pytest.fixture
def workers(zeo_server, tmp_path):
    workers = Workers(zeo_server, tmp_path)
    yield workers
    workers.kill()     # whatever a failing test left running


def _batches(raw):
    """JSON batches of [writer, seq] items back into lists of tuples."""
    return [[tuple(item) for item in batch] for batch in raw]


PROCESSES = 4
PUSHES = 60


@pytest.mark.parametrize('window, per_txn', [
    ((3, 5), '1-3'),
    # One layer of four: pushes prune the layer other transactions are
    # appending to, so the resolvers' "cannot merge" branches run on the
    # server, and the retries must absorb them.
    ((1, 4), '1-3'),
    ((3, 5), '1'),
])
def test_stack_pushes_from_processes(zeo_db, zeo_server, workers, window,
                                     per_txn):
    with zeo_db.transaction() as conn:
        conn.root.stack = AppendStack(*window)
        conn.root.archive = Archive()
    names = [workers.start('stack', '--writer', n, '--pushes', PUSHES,
                           '--per-txn', per_txn)
             for n in range(PROCESSES)]
    poller = Poller(zeo_db, interval=0.005)
    poller.start()
    try:
        workers.go()
        results = workers.wait(names)
    finally:
        # Its last poll begins after every worker has committed.
        poller.stopping.set()
        poller.join(30)
    assert not poller.is_alive(), 'poller still running'

    batches = [batch for result in results
               for batch in _batches(result['batches'])]
    conflicts = sum(result['conflicts'] for result in results)
    print(f'window={window} per_txn={per_txn} conflicts={conflicts} '
          f'polls={poller.polls}')
    # A fresh client: what the server stored, not what a cache remembers.
    db = ZEO.DB(zeo_server, wait_timeout=30)
    try:
        with db.transaction() as conn:
            history = stack_history(conn.root.stack, conn.root.archive)
    finally:
        db.close()
    violations = check_stack_invariants(history, batches, window[1])
    assert violations == dict.fromkeys(violations, 0)
    assert len(history) == PROCESSES * PUSHES
    # The polling reader saw every item exactly once, in position order.
    assert poller.seen == history
    if per_txn == '1':
        # One push per transaction always merges on the server: no
        # ConflictError even reached a retry loop.
        assert conflicts == 0


def test_accumulator_producers_and_consumers(zeo_db, workers, tmp_path):
    with zeo_db.transaction() as conn:
        conn.root.acc = Accumulator()
    stop_file = tmp_path / 'stop'
    producers = [workers.start('produce', '--writer', n, '--items', 60)
                 for n in range(2)]
    consumers = [workers.start('consume', '--stop-file', stop_file)
                 for n in range(2)]
    workers.go()
    produced_by = workers.wait(producers)
    stop_file.touch()
    consumed_by = workers.wait(consumers)
    with zeo_db.transaction() as conn:
        left = list(conn.root.acc)

    produced = [tuple(item) for result in produced_by
                for item in result['produced']]
    consumed = [item for result in consumed_by
                for batch in _batches(result['batches']) for item in batch]
    conflicts = sum(result['conflicts']
                    for result in produced_by + consumed_by)
    print(f'accumulator: consumed={len(consumed)} left={len(left)} '
          f'conflicts={conflicts}')
    delivered = consumed + left
    assert len(delivered) == len(set(delivered)), 'delivered twice'
    assert sorted(delivered) == sorted(produced), 'lost'
    # One consumer's consumes follow each other in time, so it got each
    # producer's items in append order.
    for result in consumed_by:
        mine = [item for batch in _batches(result['batches'])
                for item in batch]
        for n in range(2):
            theirs = [item for item in mine if item[0] == n]
            assert theirs == sorted(theirs)


def test_unmergeable_conflict_reaches_client_as_conflict_error(zeo_db):
    # Two connections of this process, each with its own transaction
    # manager, make the interleavings deterministic.
    with zeo_db.transaction() as conn:
        conn.root.stack = AppendStack(1, 4)
        conn.root.archive = Archive()
        conn.root.stack.push(('a', 0), conn.root.archive.addLayer)

    def push_one(root):
        root['stack'].push(('c', 0), root['archive'].addLayer)

    # Mergeable: both append one item to the open layer.  Only the server
    # can merge this (it must import appendonly), so no ConflictError.
    attempts = []

    def push_one_after_other(root):
        root['stack'].push(('n', 0), root['archive'].addLayer)
        if not attempts:
            attempts.append(1)
            run_in_transaction(zeo_db, push_one)
    counter = new_counter()
    run_in_transaction(zeo_db, push_one_after_other, counter)
    assert counter['conflicts'] == 0

    # Unmergeable: the open layer holds a, c, n.  This transaction pushes
    # three items, filling it and then pruning it to the archive, while
    # another commits an item into it.  The resolver on the server raises
    # ("new pruned the open layer committed appended to"); the client gets
    # a ConflictError, which the retry absorbs by redoing the pushes.
    attempts.clear()

    def push_three_after_other(root):
        for seq in range(3):
            root['stack'].push(('m', seq), root['archive'].addLayer)
        if not attempts:
            attempts.append(1)
            run_in_transaction(
                zeo_db, lambda root: root['stack'].push(
                    ('d', 0), root['archive'].addLayer))
    run_in_transaction(zeo_db, push_three_after_other, counter)
    assert counter['conflicts'] == 1

    with zeo_db.transaction() as conn:
        history = stack_history(conn.root.stack, conn.root.archive)
    batches = [[('a', 0)], [('c', 0)], [('n', 0)], [('d', 0)],
               [('m', 0), ('m', 1), ('m', 2)]]
    violations = check_stack_invariants(history, batches, 4)
    assert violations == dict.fromkeys(violations, 0)
    assert [item for _, _, item in history] == \
        [item for batch in batches for item in batch]
