"""DurableQueue: the queue.Queue API kept in ZODB, exactly-once."""
import pickle
import queue
import threading
import time

from BTrees.OOBTree import OOBTree
from persistent import Persistent
from ZODB.POSException import ConflictError
from zope.interface import implementer

from appendonly.facades._dict import dumps
from appendonly.facades._dict import POSITION
from appendonly.facades._dict import next_order_key
from appendonly.facades._session import Facade
from appendonly.interfaces import IDurableQueue
from appendonly.interfaces import IQueueData


class _Counts(Persistent):
    """A queue's item count and unfinished tasks, in one small record."""

    def __init__(self):
        self.items = 0
        self.unfinished = 0

    def __getstate__(self):
        return (self.items, self.unfinished)

    def __setstate__(self, state):
        self.items, self.unfinished = state

    # Conflict resolution: a transaction only ever adds to both numbers
    # (puts, gets, task_done), so the merge adds each side's change:
    # committed + (new - old), like BTrees.Length for two numbers.  A state
    # of another shape cannot be merged.
    def _p_resolveConflict(self, old, committed, new):
        states = (old, committed, new)
        if not all(isinstance(s, tuple) and len(s) == 2 and
                   all(type(n) is int for n in s) for s in states):
            raise ConflictError('queue counts: malformed state')
        return tuple(c + n - o for o, c, n in zip(old, committed, new))


@implementer(IQueueData)
class QueueData(Persistent):
    """See IQueueData.

    ``_items``: an OOBTree from position (``OrderKeys``: time, process,
    counter) to the pickled item.  Puts insert at the end, gets remove the
    smallest position.  Concurrent puts insert different keys, which BTree
    buckets merge; once the queue spans several buckets, puts and gets
    touch different buckets.  Two gets remove the same smallest key, which
    BTrees refuse to merge: the loser retries and takes the next item, so
    every item is delivered once.  ``_counts`` (size, unfinished tasks)
    merges by adding up the changes.
    """

    def __init__(self):
        self._items = OOBTree()
        self._counts = _Counts()

    def put(self, item):
        self.put_pickled(dumps(item))

    def put_pickled(self, data):
        self._items[next_order_key()] = data
        counts = self._counts
        counts.items += 1
        counts.unfinished += 1

    def unget_pickled(self, data):
        """Put a taken item back at the head (it still counts as
        unfinished)."""
        try:
            first = POSITION.unpack(self._items.minKey())
        except ValueError:
            first = POSITION.unpack(next_order_key())
        self._items[POSITION.pack(first[0] - 1, *first[1:])] = data
        self._counts.items += 1

    def get(self):
        """Remove and return the oldest item; queue.Empty if none."""
        return pickle.loads(self.get_pickled())

    def get_pickled(self):
        try:
            position = self._items.minKey()
        except ValueError:
            raise queue.Empty from None
        self._counts.items -= 1
        return self._items.pop(position)

    def qsize(self):
        return self._counts.items

    def task_done(self):
        if self._counts.unfinished <= 0:
            raise ValueError('task_done() called too many times')
        self._counts.unfinished -= 1

    def unfinished(self):
        return self._counts.unfinished


@implementer(IDurableQueue)
class DurableQueue(Facade):
    """See IDurableQueue."""

    kind, data_class = 'queue', QueueData

    #: Seconds between checks for commits by other processes while a call
    #: blocks (an in-memory check of the database's last transaction, not
    #: a disk read).
    poll_interval = 0.02

    def __init__(self, target, name='default', maxsize=None, *,
                 readonly=False, attempts=100):
        super().__init__(target, name, readonly, attempts)
        if maxsize is None:     # as configured, else no limit
            maxsize = self.settings.maxsize if self.settings else 0
        self.maxsize = maxsize
        self._changed = threading.Condition()

    def _run(self, func, write=False):
        result = super()._run(func, write)
        if write and self._session is not None:
            with self._changed:
                self._changed.notify_all()
        return result

    def _blocking(self, op, block, timeout, empty_or_full):
        """Run ``op`` until it does not raise ``empty_or_full``, waiting
        for commits in between, as queue.Queue's put and get do."""
        if timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        deadline = None if timeout is None else time.monotonic() + timeout
        session = self._session
        while True:
            seen = session.last_transaction() if session else None
            try:
                return op()
            except empty_or_full:
                if not block or session is None:
                    raise
            while True:
                remaining = None if deadline is None else \
                    deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise empty_or_full
                with self._changed:
                    self._changed.wait(self.poll_interval if remaining is None
                                       else min(self.poll_interval, remaining))
                if session.last_transaction() != seen:
                    break
            # Inside q.transaction(), we can only see the new commit by
            # starting over, which is fine if nothing was changed yet.
            if not session.refresh():
                raise empty_or_full

    def put(self, item, block=True, timeout=None):
        """See IDurableQueue."""
        put = self._putter(dumps(item))     # an unpicklable item fails here
        self._blocking(lambda: self._run(put, write=True), block, timeout,
                       queue.Full)

    def _putter(self, data):
        """The operation putting the pickled ``data`` on the queue's data,
        or raising queue.Full (checked on the transaction's snapshot,
        which counts its own puts and gets)."""
        def put(queue_data):
            if 0 < self.maxsize <= queue_data.qsize():
                raise queue.Full
            queue_data.put_pickled(data)
        return put

    def get(self, block=True, timeout=None):
        """See IDurableQueue."""
        return pickle.loads(self._blocking(
            lambda: self._run(QueueData.get_pickled, write=True),
            block, timeout, queue.Empty))

    def put_nowait(self, item):
        return self.put(item, block=False)

    def get_nowait(self):
        return self.get(block=False)

    def qsize(self):
        return self._run(QueueData.qsize)

    def empty(self):
        return self.qsize() == 0

    def full(self):
        return 0 < self.maxsize <= self.qsize()

    def task_done(self):
        """See IDurableQueue."""
        self._run(QueueData.task_done, write=True)

    def join(self):
        """See IDurableQueue."""
        session = self._session
        if session is None:
            if self._data.unfinished() > 0:
                raise TypeError('an embedded DurableQueue cannot wait in '
                                "join(): it sees the application's "
                                'transaction only')
            return
        while True:
            # The last transaction is noted before the count is read: a
            # task_done committed in between then ends the wait below
            # (noted after, its commit could be the last one, and the
            # wait would never end).
            seen = session.last_transaction()
            if self._run(QueueData.unfinished) <= 0:
                return
            while session.last_transaction() == seen:
                with self._changed:
                    self._changed.wait(self.poll_interval)


class FlushQueue(queue.Queue):
    """A fast in-memory ``queue.Queue`` with a durable store behind it.

    ``flush()`` moves every queued item into the durable queue ``name`` in
    one transaction; ``ingest()`` moves the durable items back into memory,
    in one transaction.  Between the two, the items survive a crash.
    """

    def __init__(self, target, name='default', maxsize=0):
        super().__init__(maxsize)
        self.durable = DurableQueue(target, name)

    def flush(self):
        """Move all queued items into the durable store; return how many."""
        with self.mutex:
            items = list(self.queue)
            self.queue.clear()
            self.not_full.notify_all()
        try:
            with self.durable.transaction():
                for item in items:
                    self.durable.put(item)
        except BaseException:
            with self.mutex:        # nothing was stored: keep them here
                self.queue.extendleft(reversed(items))
                self.not_empty.notify_all()
            raise
        with self.mutex:
            self.unfinished_tasks -= len(items)
            if self.unfinished_tasks <= 0:
                self.all_tasks_done.notify_all()
        return len(items)

    def ingest(self):
        """Move every durable item into memory; return how many."""
        items = []
        with self.durable.transaction():
            while True:
                try:
                    items.append(self.durable.get_nowait())
                except queue.Empty:
                    break
                self.durable.task_done()
        for item in items:
            self.put(item)
        return len(items)

    def close(self):
        self.durable.close()
