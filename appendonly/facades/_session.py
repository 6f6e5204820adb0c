"""What the façades share: a database, a connection per thread, and
transactions that commit per operation or group many operations.

Every thread gets one connection and one TransactionManager per database,
shared by all the façades of that database (so that a block ``with
q.transaction():`` also holds ``d[k] = v`` on a dict of the same database,
and both commit or roll back together).  Each operation outside such a
block runs in its own transaction, committed by
:meth:`Session.run`, which retries ConflictErrors (and ZEO disconnections,
also TransientErrors), so a call returns only once its change is durable,
and applies it once even when the process serving the database dies
before answering a commit that it did write.  Reads start a new
transaction only if something was committed since the thread's last one
(the database knows its last transaction in memory), and commit nothing.

Embedded in an application's own tree, a façade works on the persistent
data object directly and never commits: the application's transaction does.
"""
import contextlib
import os
import random
import threading
import time
import weakref

import transaction
import ZODB
from BTrees.OOBTree import OOBTree
from transaction.interfaces import TransientError
from ZODB.POSException import ConflictError
from ZODB.POSException import ReadOnlyError
from ZODB.utils import p64
from ZODB.utils import u64

from appendonly.db import acquire_db
from appendonly.db import release_db

#: Key of the ZODB root under which standalone façades keep their data.
ROOT_KEY = 'appendonly'

#: Objects each connection of a façade's own database keeps in its cache.
CACHE_SIZE = 20000

#: Key of the transaction extension under which each commit of a call
#: carries a token of its own (see :meth:`Session.run`).
CALL_KEY = 'appendonly.call'

#: Seconds a call whose commit failed keeps looking for it among the
#: database's transactions (through the next host or server: a takeover
#: can take seconds, and can be cut short itself), and seconds between
#: two looks, before it gives up.
LOOK_TIMEOUT = 60
LOOK_PAUSE = 0.05

_threads = threading.local()


class _ThreadState:
    """One thread's connection to one database."""

    def __init__(self, db):
        self.tm = transaction.TransactionManager()
        self.conn = db.open(self.tm)
        self.depth = 0              # nesting of transaction() blocks
        self.snapshot = None        # last transaction seen by a read
        self.data = {}              # (kind, name) -> persistent data


def _state(db):
    states = getattr(_threads, 'states', None)
    if states is None:
        states = _threads.states = weakref.WeakKeyDictionary()
    state = states.get(db)
    if state is None or state.conn.opened is None:
        state = states[db] = _ThreadState(db)
    return state


class Session:
    """The database and data object of one façade."""

    def __init__(self, target, kind, name, factory, readonly=False,
                 attempts=100, cache_size=CACHE_SIZE):
        self.kind, self.name, self.readonly = kind, name, readonly
        self.key = (kind, name)
        self.attempts = attempts
        self.owns_db = not isinstance(target, ZODB.DB)
        self.db = acquire_db(target, read_only=readonly)
        self._closed = False
        if self.owns_db:
            self.db.setPoolSize(64)
            # Reads come from the connection's object cache; ZODB's default
            # (400 objects) is too small for a dict of thousands of keys.
            self.db.setCacheSize(max(self.db.getCacheSize(), cache_size))
        # Create the data now (or, read-only, check that it exists), so a
        # missing container is reported by the constructor.
        try:
            self.run(lambda data: None,
                     factory=None if readonly else factory)
        except BaseException:
            self.close()
            raise

    def _thread(self):
        if self._closed:
            raise ValueError(f'{self.kind} {self.name!r} is closed')
        return _state(self.db)

    def _data(self, state, factory=None):
        data = state.data.get(self.key)
        if data is not None:
            return data     # the same persistent object, kept up to date
        root = state.conn.root()
        try:
            data = state.data[self.key] = root[ROOT_KEY][self.key]
            return data
        except KeyError:
            if factory is None:
                raise KeyError(
                    f'no {self.kind} named {self.name!r} in this database'
                ) from None
        containers = root.get(ROOT_KEY)
        if containers is None:
            containers = root[ROOT_KEY] = OOBTree()
        # Not remembered until committed: a retry must create it again.
        data = containers[self.key] = factory()
        return data

    def run(self, func, write=False, factory=None):
        """Return ``func(data)``, in this thread's open transaction if
        there is one, else in a transaction of its own (retried)."""
        if write and self.readonly:
            raise ReadOnlyError(f'{self.kind} {self.name!r} is read-only')
        state = self._thread()
        if state.depth:
            return func(self._data(state, factory))
        tm = state.tm
        if not write and factory is None:
            # A read: start a fresh transaction if anything was committed
            # since this thread's snapshot, and read; nothing to commit or
            # retry.  The read-only transaction stays open until this
            # thread's next call.
            last = self.db.lastTransaction()
            if last != state.snapshot:
                tm.abort()
                state.snapshot = last
            return func(self._data(state))
        # Not tm.attempts(): it retries a commit that failed in its second
        # phase like any other, yet that commit may be on disk (the ZEO
        # server, or the host of a shared path, died before answering), and
        # a queue put applied twice puts the item twice, a get takes two.
        # So each commit carries a token, and after a failed commit that
        # is not a conflict the call looks for it among the transactions
        # committed since it began: found, the call is done; not found, it
        # is tried again; the look failing, the error is raised.
        last = self.attempts - 1
        for retry in range(self.attempts):
            if retry:
                # Back off a little, at random, so that many clients
                # racing for one key (a queue's head) take turns.
                time.sleep(random.uniform(0, min(0.002 * retry, 0.05)))
            since, token = self.db.lastTransaction(), os.urandom(8).hex()
            tm.begin().setExtendedInfo(CALL_KEY, token)
            try:
                result = func(self._data(state, factory))
            except BaseException as exc:
                tm.abort()
                if retry < last and isinstance(exc, TransientError):
                    continue
                raise
            try:
                tm.commit()
            except ConflictError:
                tm.abort()
                if retry == last:
                    raise
            except Exception as exc:
                tm.abort()
                try:
                    found = _committed(self.db, since, token)
                except Exception as look:
                    raise exc from look
                if found:
                    return result
                if retry == last or not isinstance(exc, TransientError):
                    raise
            except BaseException:
                tm.abort()
                raise
            else:
                return result

    @contextlib.contextmanager
    def transaction(self):
        """Group operations into one transaction: commit at the end of the
        block, roll everything back if it raises.  Covers every façade of
        this database used in the block by this thread."""
        state = self._thread()
        if state.depth:
            state.depth += 1
            try:
                yield
            finally:
                state.depth -= 1
            return
        state.tm.begin()
        state.depth = 1
        try:
            yield
        except BaseException:
            state.tm.abort()
            raise
        else:
            state.tm.commit()
        finally:
            state.depth = 0

    def refresh(self):
        """Let this thread's open transaction see newer commits, if it has
        changed nothing yet; return whether it could."""
        state = self._thread()
        if state.depth and state.conn._registered_objects:
            return False
        if state.depth:
            state.tm.abort()
            state.tm.begin()
        return True

    def last_transaction(self):
        """The id of the newest commit this process knows of (in memory:
        FileStorage's, or what ZEO invalidations brought)."""
        return self.db.lastTransaction()

    def close(self):
        """Give the database back: it is closed with the last façade that
        opened it by path or URI (a ``ZODB.DB`` passed in stays open)."""
        if self._closed:
            return
        self._closed = True
        if self.owns_db:
            release_db(self.db)


def _committed(db, since, token):
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
            # No host yet, or one that died too, or a FileStorage
            # iterator that met a commit being written.
            if time.monotonic() > deadline:
                raise
            time.sleep(LOOK_PAUSE)


class Facade:
    """What DurableDict and DurableQueue have in common: standalone on a
    Session, or embedded on a persistent data object of class
    ``data_class``."""

    kind = data_class = None

    def __init__(self, target, name, readonly, attempts=100):
        if isinstance(target, self.data_class):
            self._session, self._data = None, target
        else:
            self._session = Session(target, self.kind, name, self.data_class,
                                    readonly=readonly, attempts=attempts)
        self.name = name

    def _run(self, func, write=False):
        if self._session is None:
            return func(self._data)
        return self._session.run(func, write=write)

    def transaction(self):
        """Group calls into one commit; see the interface."""
        if self._session is None:
            raise TypeError(f'an embedded {type(self).__name__} uses the '
                            f"application's transaction")
        return self._session.transaction()

    def close(self):
        """Close the connections, and the database if this façade opened
        it."""
        if self._session is not None:
            self._session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f'<{type(self).__name__} {self.name!r}>'
