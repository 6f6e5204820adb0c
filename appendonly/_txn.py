"""The one transaction runner of the façades and the Storage bridge.

An operation meets the database in one of three ways:

- **Reads** run in the calling thread's own connection (one per thread and
  database, shared by every façade of that database: :func:`thread_state`)
  and commit nothing.  :func:`fresh` starts a new transaction only when
  something was committed since the last one.
- **Explicit blocks** (a façade's ``with q.transaction():``, the Storage
  bridge's ``begin()``/``commit()``) run in a connection of their own and
  commit or roll back as the caller says.
- **Autocommit writes** (``q.put``, ``q.get``, ``d[k] = v``, a Storage
  single-item write) go to the database's :class:`GroupCommit`: operations
  that arrive while a commit is under way wait, and are then applied
  together, in arrival order, in one transaction with one fsync.  Each
  caller returns once that transaction is durable, with its own result or
  its own exception.

The constants below are the only ones; the façades and the Storage bridge
take them from here.
"""
import os
import random
import threading
import time
import weakref

import transaction
from transaction.interfaces import TransientError
from ZEO.Exceptions import ClientDisconnected
from ZODB.POSException import ConflictError
from ZODB.utils import p64
from ZODB.utils import u64
from zope.interface import implementer

from appendonly import share
from appendonly.interfaces import IGroupCommit

#: Objects each connection keeps in its cache, at least, on a database
#: the package opened (ZODB's default, 400, is too small for a dict of
#: thousands of keys).
CACHE_SIZE = 20000

#: Connections in the pool of a database the package opened, at least:
#: one per thread and Storage instance (ZODB warns past the pool size).
POOL_SIZE = 64

#: How many times an autocommit operation is tried on a TransientError
#: (ConflictError, a ZEO disconnection) before the error is raised.
ATTEMPTS = 100

#: Seconds a commit waits, at most, for the threads that called lately to
#: queue their next operation (a lone caller never waits).
LINGER = 0.0005

#: Seconds since its last call during which a thread counts as one that
#: will call again soon (a commit waits for it, up to LINGER).
RECENT = 0.01

#: The most operations one transaction applies.
MAX_BATCH = 512

#: Key of the transaction extension where each autocommit transaction
#: carries a token of its own (see :meth:`GroupCommit._committed`).
CALL_KEY = 'appendonly.call'

#: Seconds a batch whose commit failed keeps looking for it among the
#: database's transactions (through the next host or server: a takeover
#: can take seconds, and can be cut short itself), and seconds between two
#: looks, before it gives up.
LOOK_TIMEOUT = 60
LOOK_PAUSE = 0.05

#: Seconds an autocommit operation keeps retrying while the storage is
#: disconnected (ClientDisconnected: no ZEO server, no host of a shared
#: path), whatever attempts it has left.  A takeover of a shared path
#: takes well under a second; a ZEO server that is down would otherwise
#: hold the caller for ATTEMPTS times the client's wait_timeout.
DISCONNECTED_TIMEOUT = 60


def tune(db):
    """Raise a database's cache and pool to this package's minimums."""
    db.setCacheSize(max(db.getCacheSize(), CACHE_SIZE))
    db.setPoolSize(max(db.getPoolSize(), POOL_SIZE))


def backoff(retry):
    """Sleep a little, at random, before try number ``retry`` (from 1), so
    that clients racing for one key (a queue's head) take turns."""
    time.sleep(random.uniform(0, min(0.002 * retry, 0.05)))


class ThreadState:
    """One connection and its TransactionManager, with what the façades
    found in it (``data``: persistent objects by key)."""

    def __init__(self, db):
        self.tm = transaction.TransactionManager()
        self.conn = db.open(self.tm)
        self.depth = 0              # nesting of explicit blocks
        self.snapshot = None        # last transaction seen by a read
        self.data = {}


_threads = threading.local()


def thread_state(db):
    """The calling thread's :class:`ThreadState` on ``db``."""
    states = getattr(_threads, 'states', None)
    if states is None:
        states = _threads.states = weakref.WeakKeyDictionary()
    state = states.get(db)
    if state is None or state.conn.opened is None:
        state = states[db] = ThreadState(db)
    return state


def fresh(state, db):
    """Make ``state``'s snapshot current for a read: abort its transaction
    (which holds no change; the next access starts a new one), unless the
    storage sees every commit as it is made (a FileStorage, alone or
    hosting a shared path) and none was made since the snapshot.  A ZEO
    client or RelStorage learns of other processes' commits only when it
    asks, which a new transaction does."""
    if share.sees_every_commit(db.storage):
        last = db.lastTransaction()
        if last == state.snapshot:
            return
        state.snapshot = last
    state.tm.abort()


class _Operation:
    __slots__ = ('func', 'attempts', 'tries', 'done', 'result', 'error')

    def __init__(self, func, attempts):
        self.func, self.attempts, self.tries = func, attempts, 0
        self.done, self.result, self.error = False, None, None

    def settle(self, result=None, error=None):
        self.done, self.result, self.error = True, result, error


@implementer(IGroupCommit)
class GroupCommit:
    """See IGroupCommit: autocommit writes to one database, many at a time.

    Whoever calls :meth:`run` while no commit is under way commits, with
    the operations that queued up meanwhile (waiting up to :attr:`linger`
    for the threads that called lately): leader and followers, no thread
    of its own.  Followers wait for the commit under way, then return if
    it carried their operation.  Invariants, each checked by
    ``tests/test_txn.py``:

    - An operation is applied exactly once, or not at all and its caller
      gets the error: a batch that conflicts is applied again from the
      start on a fresh snapshot; a commit that fails in its second phase
      (the ZEO server, or the host of a shared path, died before
      answering) may be on disk all the same, so each transaction carries
      a token (:data:`CALL_KEY`) that is looked for before trying again.
    - An operation that raises (``KeyError``, ``queue.Empty``...) fails
      alone: the batch is aborted and applied again without it, so none
      of its changes commit.  A commit that fails for another reason
      than a conflict (an object that cannot be pickled) is retried one
      operation per transaction, so that only the culprit fails.
    - Operations of one batch run one after the other, in arrival order,
      in one transaction: two queue gets take two different items.
    """

    def __init__(self, db, linger=LINGER):
        self.db = db
        self.linger = linger
        self._queue = []
        lock = threading.Lock()
        self._arrived = threading.Condition(lock)   # an operation queued
        self._finished = threading.Condition(lock)  # a commit is over
        self._committing = False
        self._state = None          # the committing connection
        self._callers = {}          # thread id -> when it last called

    def run(self, func, attempts=ATTEMPTS):
        """``func(state)`` applied and committed; its result, or its
        exception once the transaction is over."""
        op = _Operation(func, attempts)
        now = time.monotonic()
        with self._arrived:
            self._queue.append(op)
            self._callers[threading.get_ident()] = now
            self._arrived.notify()
        while True:
            # Wait for the commit under way (it may carry our operation);
            # if ours is still to do, commit the queue ourselves.
            with self._finished:
                while self._committing and not op.done:
                    self._finished.wait()
                if op.done:
                    break
                self._committing = True
            try:
                self._apply(self._batch(now))
            finally:
                with self._finished:
                    self._committing = False
                    self._finished.notify_all()
        if op.error is not None:
            raise op.error
        return op.result

    def _batch(self, now):
        """The queued operations, once the threads that called lately
        have queued theirs (they may be between two calls: with the GIL,
        they cannot queue while a commit computes) or :attr:`linger`
        seconds have passed.  A lone caller never waits."""
        deadline = now + self.linger
        with self._arrived:
            recent = now - RECENT
            for ident, last in list(self._callers.items()):
                if last < recent:
                    del self._callers[ident]
            expected = min(len(self._callers), MAX_BATCH)
            while len(self._queue) < expected:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._arrived.wait(remaining)
            batch = self._queue[:MAX_BATCH]
            del self._queue[:MAX_BATCH]
        return batch

    def _connection(self):
        if self._state is None or self._state.conn.opened is None:
            self._state = ThreadState(self.db)
        return self._state

    def _apply(self, batch):
        tm = self._connection().tm
        started = time.monotonic()
        while batch:
            error = self._try(batch)
            if error is None:
                return
            # Try again (after a pause) those with tries left, unless the
            # storage has been unreachable for too long.
            gone = isinstance(error, ClientDisconnected) and \
                time.monotonic() - started > DISCONNECTED_TIMEOUT
            for op in batch:
                op.tries += 1
                if gone or op.tries >= op.attempts:
                    op.settle(error=error)
            batch = [op for op in batch if not op.done]
            if batch:
                backoff(max(op.tries for op in batch))
        tm.abort()

    def _try(self, batch):
        """Apply and commit the batch once.  None when every operation is
        settled, else the TransientError to try again after."""
        state = self._state
        tm = state.tm
        since, token = self.db.lastTransaction(), os.urandom(8).hex()
        try:
            results = self._run(state, batch, token)
            if not results:
                tm.abort()
                return None
        except TransientError as exc:       # a conflict reading, say
            tm.abort()
            return exc
        except BaseException as exc:
            tm.abort()
            _settle_all(batch, exc)
            raise
        try:
            tm.commit()
        except ConflictError as exc:
            tm.abort()
            return exc
        except Exception as exc:
            tm.abort()
            found = self._committed(since, token)
            if found is None:           # cannot tell: say what failed
                _settle_all(batch, exc)
            elif found:
                for op, result in results:
                    op.settle(result)
            elif isinstance(exc, TransientError):
                return exc
            else:
                self._alone(batch, exc)
            return None
        except BaseException as exc:
            tm.abort()
            _settle_all(batch, exc)
            raise
        for op, result in results:
            op.settle(result)
        return None

    def _run(self, state, batch, token):
        """Begin a transaction and apply the batch's operations in it;
        ``[(op, result)]``.  An operation that raises is settled with its
        error and the batch begun again without it."""
        tm = state.tm
        while True:
            tm.begin().setExtendedInfo(CALL_KEY, token)
            results = []
            for op in batch:
                if op.done:
                    continue
                try:
                    results.append((op, op.func(state)))
                except TransientError:
                    raise
                except Exception as exc:
                    op.settle(error=exc)
                    break
            else:
                return results
            tm.abort()

    def _alone(self, batch, error):
        """A commit failed for another reason than a conflict, and did not
        happen: apply each operation in a transaction of its own, so that
        the one to blame gets the error."""
        live = [op for op in batch if not op.done]
        if len(live) == 1:
            live[0].settle(error=error)
            return
        for op in live:
            self._apply([op])

    def _committed(self, since, token):
        """After a commit failed in its second phase: was the transaction
        carrying ``token`` committed after ``since`` all the same?  None
        if we cannot tell."""
        try:
            return _has_transaction(self.db, since, token)
        except Exception:
            return None


def _settle_all(batch, error):
    for op in batch:
        if not op.done:
            op.settle(error=error)


def _has_transaction(db, since, token):
    """Whether a transaction carrying ``token`` (see :data:`CALL_KEY`) was
    committed to ``db`` after the transaction ``since``.  Raises if it
    cannot tell."""
    iterator = db.storage.iterator     # AttributeError: cannot tell
    deadline = time.monotonic() + LOOK_TIMEOUT
    while True:
        try:
            transactions = iterator(p64(u64(since) + 1))
            try:
                return any(txn.extension.get(CALL_KEY) == token
                           for txn in transactions)
            finally:
                close = getattr(transactions, 'close', None)
                if close is not None:
                    close()
        except Exception:
            # No host yet, or one that died too, or a FileStorage iterator
            # that met a commit being written.
            if time.monotonic() > deadline:
                raise
            time.sleep(LOOK_PAUSE)


_committers = weakref.WeakKeyDictionary()
_committers_lock = threading.Lock()


def group_commit(db):
    """The :class:`GroupCommit` of ``db``, shared by all its users."""
    with _committers_lock:
        committer = _committers.get(db)
        if committer is None:
            committer = _committers[db] = GroupCommit(db)
        return committer
