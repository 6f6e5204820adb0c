"""What the façades share: a database, and the transaction runner
(:mod:`appendonly._txn`).

Every thread gets one connection and one TransactionManager per database,
shared by all the façades of that database (so that a block ``with
q.transaction():`` also holds ``d[k] = v`` on a dict of the same database,
and both commit or roll back together).  Reads run there, in a new
transaction each (on a FileStorage, only if something was committed since
the thread's last one: see :func:`appendonly._txn.fresh`).
Each write outside such a block goes to the database's group commit: it
returns once its change is durable, applied exactly once, or raises its
own error.

Embedded in an application's own tree, a façade works on the persistent
data object directly and never commits: the application's transaction does.
"""
import contextlib
import os

import ZODB
from BTrees.OOBTree import OOBTree
from ZODB.POSException import ReadOnlyError

from appendonly import _txn
from appendonly import config
from appendonly._keys import FACADES_KEY as ROOT_KEY
from appendonly.db import acquire_db
from appendonly.db import release_db


class Session:
    """The database and data object of one façade."""

    def __init__(self, target, kind, name, factory, readonly=False,
                 attempts=_txn.ATTEMPTS):
        self.kind, self.name, self.readonly = kind, name, readonly
        self.key = (kind, name)
        self.attempts = attempts
        self.owns_db = not isinstance(target, ZODB.DB)
        self.db = acquire_db(target, read_only=readonly)
        self._closed = False
        if self.owns_db:
            _txn.tune(self.db)
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
        return _txn.thread_state(self.db)

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
        if not write and factory is None:
            # A read: the thread's snapshot, made current if anything was
            # committed since; nothing to commit or retry.  The read-only
            # transaction stays open until this thread's next call.
            _txn.fresh(state, self.db)
            return func(self._data(state))
        return _txn.group_commit(self.db).run(
            lambda committing: func(self._data(committing, factory)),
            self.attempts)

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


class Facade:
    """What DurableDict and DurableQueue have in common: standalone on a
    Session, or embedded on a persistent data object of class
    ``data_class``."""

    kind = data_class = None

    def __init__(self, target, name, readonly, attempts=_txn.ATTEMPTS):
        #: The ``<appendonly NAME>`` section configuring this façade, if
        #: ``target`` is a ZConfig file that has one.
        self.settings = None
        if isinstance(target, self.data_class):
            self._session, self._data = None, target
        else:
            self.settings = config.settings(target, name)
            if self.settings is not None and \
                    self.settings.kind != self.kind:
                raise ValueError(
                    f'{os.fspath(target)}: <appendonly {name}> configures '
                    f'a {self.settings.kind}, not a {self.kind}')
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
