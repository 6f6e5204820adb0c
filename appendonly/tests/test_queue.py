"""DurableQueue and FlushQueue on a real FileStorage: the queue.Queue API,
exactly-once delivery under threads, transactional gets, wake-ups, bad
input.  (The async variants: test_async.py.)"""
import hashlib
import queue
import threading
import time

import pytest
import transaction
import ZODB
from zope.interface.verify import verifyObject

from appendonly.facades import DurableQueue
from appendonly.facades import FlushQueue
from appendonly.facades import QueueData
from appendonly.interfaces import IDurableQueue
from appendonly.interfaces import IQueueData


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / 'Data.fs')


@pytest.fixture
def q(path):
    with DurableQueue(path) as durable:
        yield durable


def test_interfaces(q):
    assert verifyObject(IDurableQueue, q)
    assert verifyObject(IQueueData, QueueData())


def test_fifo_and_sizes(q):
    assert q.empty() and q.qsize() == 0 and not q.full()
    for item in ['a', ('b', 1), {'c': 2}]:
        q.put(item)
    assert q.qsize() == 3 and not q.empty()
    assert [q.get(), q.get_nowait(), q.get(timeout=1)] == [
        'a', ('b', 1), {'c': 2}]
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(block=False)
    start = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.1)
    assert time.monotonic() - start >= 0.1


def test_maxsize_and_full(path):
    with DurableQueue(path, 'small', maxsize=2) as q:
        q.put(1)
        q.put_nowait(2)
        assert q.full()
        with pytest.raises(queue.Full):
            q.put_nowait(3)
        with pytest.raises(queue.Full):
            q.put(3, timeout=0.05)
        threading.Timer(0.1, q.get).start()
        q.put(3, timeout=2)         # waits for the get
        assert [q.get(), q.get()] == [2, 3]


def test_durable_across_reopen(path):
    with DurableQueue(path) as q:
        q.put('survives')
    with DurableQueue(path) as q:
        assert q.get_nowait() == 'survives'


def test_transactional_get_rolls_back_to_head(q):
    for item in 'abc':
        q.put(item)
    with pytest.raises(RuntimeError):
        with q.transaction():
            assert q.get() == 'a'
            assert q.get() == 'b'
            q.put('never')
            raise RuntimeError('processing failed')
    assert q.qsize() == 3
    with q.transaction():
        assert q.get() == 'a'
        q.put('d')
    assert [q.get() for _ in range(3)] == ['b', 'c', 'd']


def test_put_inside_transaction_published_on_commit(q, path):
    seen = []
    with q.transaction():
        q.put('x')
        t = threading.Thread(target=lambda: seen.append(q.qsize()))
        t.start()
        t.join()
    assert seen == [0]          # another thread saw nothing before commit
    assert q.get_nowait() == 'x'


def test_blocked_get_wakes_within_100ms(q):
    result = []

    def consumer():
        result.append(q.get(timeout=5))
        result.append(time.monotonic())

    t = threading.Thread(target=consumer)
    t.start()
    time.sleep(0.2)
    put_at = time.monotonic()
    q.put('wake')
    t.join()
    assert result[0] == 'wake'
    assert result[1] - put_at < 0.1


def test_blocked_get_wakes_for_a_put_by_another_facade(path):
    # Another DurableQueue object on the same path (as another component of
    # the application would have): no in-process notification shared.
    with DurableQueue(path, 'shared') as a, DurableQueue(path, 'shared') as b:
        result = []
        t = threading.Thread(target=lambda: result.append(
            (a.get(timeout=5), time.monotonic())))
        t.start()
        time.sleep(0.2)
        put_at = time.monotonic()
        b.put('wake')
        t.join()
        assert result[0][0] == 'wake'
        assert result[0][1] - put_at < 0.1


def test_unpicklable_item_changes_nothing(q, path):
    q.put('keep')
    with open(path, 'rb') as f:
        before = hashlib.sha256(f.read()).hexdigest()
    with pytest.raises(TypeError, match='cannot store'):
        q.put(lambda: None)
    with open(path, 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest() == before
    assert q.qsize() == 1 and q.get_nowait() == 'keep'


def test_task_done_and_join(q):
    for i in range(5):
        q.put(i)
    done = threading.Event()

    def worker():
        for _ in range(5):
            q.get()
            time.sleep(0.01)
            q.task_done()

    threading.Thread(target=worker).start()
    t = threading.Thread(target=lambda: (q.join(), done.set()))
    t.start()
    t.join(5)
    assert done.is_set()
    with pytest.raises(ValueError, match='too many'):
        q.task_done()


def test_exactly_once_4_producers_4_consumers(q):
    produced, consumed, lock = [], [], threading.Lock()
    stop = threading.Event()

    def producer(n):
        for i in range(50):
            q.put((n, i))
            with lock:
                produced.append((n, i))

    def consumer():
        while True:
            try:
                item = q.get(timeout=0.2)
            except queue.Empty:
                if stop.is_set():
                    return
                continue
            with lock:
                consumed.append(item)

    consumers = [threading.Thread(target=consumer) for _ in range(4)]
    producers = [threading.Thread(target=producer, args=(n,))
                 for n in range(4)]
    for t in consumers + producers:
        t.start()
    for t in producers:
        t.join()
    stop.set()
    for t in consumers:
        t.join()
    assert len(consumed) == len(set(consumed)) == 200
    assert sorted(consumed) == sorted(produced)
    for n in range(4):          # per-producer order
        mine = [i for m, i in consumed if m == n]
        assert sorted(mine) == list(range(50))
    assert q.qsize() == 0


def test_embedded_queue_in_application_transaction(tmp_path):
    db = ZODB.DB(str(tmp_path / 'app.fs'))
    with db.transaction() as conn:
        conn.root.jobs = QueueData()
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    jobs = DurableQueue(conn.root.jobs)
    jobs.put('job')
    tm.abort()
    with pytest.raises(queue.Empty):
        jobs.get_nowait()
    jobs.put('job')
    tm.commit()
    assert jobs.get() == 'job'
    tm.commit()
    conn.close()
    db.close()


def test_flush_queue(path):
    fq = FlushQueue(path, 'fast')
    for i in range(10):
        fq.put(i)
    assert fq.flush() == 10
    assert fq.qsize() == 0
    fq.join()                   # moved items count as done here
    fq.close()
    fq = FlushQueue(path, 'fast')   # as after a restart
    assert fq.ingest() == 10
    assert [fq.get_nowait() for _ in range(10)] == list(range(10))
    assert fq.ingest() == 0
    fq.close()


def test_readonly_refuses_writes_and_keeps_file(path):
    from ZODB.POSException import ReadOnlyError
    with DurableQueue(path, 'ro') as q:
        q.put('kept')
    with open(path, 'rb') as f:
        before = hashlib.sha256(f.read()).hexdigest()
    with DurableQueue(path, 'ro', readonly=True) as ro:
        assert ro.qsize() == 1
        for write in (lambda: ro.put('x'), ro.get_nowait, ro.task_done):
            with pytest.raises(ReadOnlyError):
                write()
    with open(path, 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest() == before


def test_counts_resolve_by_adding_changes():
    from ZODB.POSException import ConflictError

    from appendonly.facades._queue import _Counts
    counts = _Counts()
    # old (5 items, 5 unfinished); committed: 2 gets; new: 3 puts + 1 done
    assert counts._p_resolveConflict((5, 5), (3, 5), (8, 7)) == (6, 7)
    for bad in [None, (1,), (1, 'x'), [1, 2], (1, True)]:
        with pytest.raises(ConflictError, match='malformed'):
            counts._p_resolveConflict((5, 5), bad, (8, 7))


def test_transaction_spans_facades_of_one_database(path):
    from appendonly.facades import DurableDict
    with DurableQueue(path, 'inbox') as inbox, \
            DurableQueue(path, 'done') as done, \
            DurableDict(path, 'stats') as stats:
        inbox.put('job')
        with pytest.raises(RuntimeError):
            with inbox.transaction():
                done.put(inbox.get())
                stats['moved'] = 1
                raise RuntimeError
        assert (inbox.qsize(), done.qsize(), 'moved' in stats) == (1, 0,
                                                                   False)
        with inbox.transaction():
            done.put(inbox.get())
            stats['moved'] = 1
        assert (inbox.qsize(), done.get_nowait(), stats['moved']) == (
            0, 'job', 1)


def test_attempts_reach_the_session(path):
    with DurableQueue(path, 'a', attempts=7) as q:
        assert q._session.attempts == 7
