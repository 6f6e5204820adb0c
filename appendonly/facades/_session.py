"""What the façades share: a database, a connection per thread, and
transactions that commit per operation or group many operations.

A façade opened on a target (path, URI, ZConfig file, ZODB.DB) keeps one
connection and one TransactionManager per thread.  Each operation runs in
its own transaction, committed by ``TransactionManager.attempts()``, which
retries ConflictErrors (and ZEO disconnections, also TransientErrors), so a
call returns only once its change is durable.  Inside ``with
facade.transaction():`` operations join that thread's open transaction
instead, and commit (or roll back) together at the end of the block.

Embedded in an application's own tree, a façade works on the persistent
data object directly and never commits: the application's transaction does.
"""
import contextlib
import threading

import transaction
import ZODB
from BTrees.OOBTree import OOBTree
from ZODB.POSException import ReadOnlyError

from appendonly.db import acquire_db
from appendonly.db import release_db

#: Key of the ZODB root under which standalone façades keep their data.
ROOT_KEY = 'appendonly'

#: Objects each connection of a façade's own database keeps in its cache.
CACHE_SIZE = 20000


class Session:
    """Connections, transactions and the data object of one façade."""

    def __init__(self, target, kind, name, factory, readonly=False,
                 attempts=100, cache_size=CACHE_SIZE):
        self.kind, self.name, self.readonly = kind, name, readonly
        self.attempts = attempts
        self.owns_db = not isinstance(target, ZODB.DB)
        self.db = acquire_db(target, read_only=readonly)
        if self.owns_db:
            self.db.setPoolSize(64)
            # Reads come from the connection's object cache; ZODB's default
            # (400 objects) is too small for a dict of thousands of keys.
            self.db.setCacheSize(max(self.db.getCacheSize(), cache_size))
        self._local = threading.local()
        self._opened = []
        self._lock = threading.Lock()
        self._closed = False
        # Create the data now (or, read-only, check that it exists), so a
        # missing container is reported by the constructor.
        try:
            self.run(lambda data: None,
                     factory=None if readonly else factory)
        except BaseException:
            self.close()
            raise

    def _thread(self):
        local = self._local
        if getattr(local, 'conn', None) is None:
            if self._closed:
                raise ValueError(f'{self.kind} {self.name!r} is closed')
            local.tm = transaction.TransactionManager()
            local.conn = self.db.open(local.tm)
            local.depth = 0
            with self._lock:
                self._opened.append(local.conn)
        return local

    def _data(self, conn, factory=None):
        local = self._local
        data = getattr(local, 'data', None)
        if data is not None:
            return data     # the same persistent object, kept up to date
        root = conn.root()
        try:
            data = local.data = root[ROOT_KEY][(self.kind, self.name)]
            return data
        except KeyError:
            if factory is None:
                raise KeyError(
                    f'no {self.kind} named {self.name!r} in this database'
                ) from None
        containers = root.get(ROOT_KEY)
        if containers is None:
            containers = root[ROOT_KEY] = OOBTree()
        data = containers[(self.kind, self.name)] = factory()
        return data

    def run(self, func, write=False, factory=None):
        """Return ``func(data)``, in this thread's open transaction if
        there is one, else in a transaction of its own (retried)."""
        if write and self.readonly:
            raise ReadOnlyError(f'{self.kind} {self.name!r} is read-only')
        local = self._thread()
        if local.depth:
            return func(self._data(local.conn, factory))
        tm = local.tm
        if not write and factory is None:
            # A read: start a fresh transaction if anything was committed
            # since this thread's snapshot (the database's last transaction
            # is known in memory), and read; nothing to commit or retry.
            last = self.db.lastTransaction()
            if last != getattr(local, 'snapshot', None):
                tm.abort()
                local.snapshot = last
            return func(self._data(local.conn))
        for attempt in tm.attempts(self.attempts):
            with attempt:
                result = func(self._data(local.conn, factory))
        return result

    @contextlib.contextmanager
    def transaction(self):
        """Group operations into one transaction: commit at the end of the
        block, roll everything back if it raises."""
        local = self._thread()
        if local.depth:
            local.depth += 1
            try:
                yield
            finally:
                local.depth -= 1
            return
        local.tm.begin()
        local.depth = 1
        try:
            yield
        except BaseException:
            local.tm.abort()
            raise
        else:
            local.tm.commit()
        finally:
            local.depth = 0

    def in_transaction(self):
        local = self._thread()
        return bool(local.depth)

    def refresh(self):
        """Let this thread's open transaction see newer commits, if it has
        changed nothing yet; return whether it could."""
        local = self._thread()
        if local.depth and local.conn._registered_objects:
            return False
        if local.depth:
            local.tm.abort()
            local.tm.begin()
        return True

    def last_transaction(self):
        """The id of the newest commit this process knows of (in memory:
        FileStorage's, or what ZEO invalidations brought)."""
        return self.db.lastTransaction()

    def close(self):
        self._closed = True
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            try:
                conn.transaction_manager.abort()
                conn.close()
            except Exception:   # another thread's connection mid-use
                pass
        if self.owns_db:
            release_db(self.db)
