"""ZODBStorage: the Storage contract on ZODB.

Where the data lives
    One key of the ZODB root, ``'appendonly.storage'`` (:data:`ROOT_KEY`),
    holds an ``OOBTree`` mapping each container id to an ``OOBTree`` of its
    items, str to str.  Nothing else in the database is touched, so the
    storage can share a database with an application, and with the
    façades, which keep their data under ``'appendonly'``.  Only
    ``BTrees`` classes are stored: a ZEO server resolving conflicts needs
    nothing from this package.

When a storage exists
    When the root has that key.  ``create=True`` adds it (and a new
    FileStorage file if the path does not exist yet);
    :class:`DuplicateStorageError` if it is there already.  Without
    ``create`` a missing path, an empty file, or a database without the
    key raise :class:`StorageNotFoundError` and nothing is written.

Opening
    ``path`` is anything :func:`appendonly.db.open_db` accepts: a file path
    (an embedded FileStorage, shared with the other processes that open it,
    see :mod:`appendonly.db`), a zodburi URI (``zeo://``, RelStorage's
    ``postgres://``, ...), a ZConfig file, or a ``ZODB.DB`` (then left open
    by :meth:`close`).  Databases are obtained with
    :func:`appendonly.db.acquire_db`, shared by every instance (and façade)
    of the process that names the same target.  On a database it opened,
    the storage raises the object cache to at least :data:`CACHE_SIZE`
    objects per connection and the pool to :data:`POOL_SIZE` connections.

Isolation
    Each instance has its own connection and its own
    ``TransactionManager``.  ``begin()`` is ``tm.begin()``, which pins the
    connection's MVCC snapshot at once: the transaction reads the database
    as of that moment, however late its first read.  Outside ``begin()``
    each call runs in a transaction of its own: reads in ``tm.begin()`` ...
    ``tm.abort()``; writes go to the database's group commit
    (:mod:`appendonly._txn`, shared with the façades), which applies the
    single writes of all threads that arrive together in one transaction,
    retries them on ``ConflictError``, and returns once they are durable.

    On a FileStorage, whose ``lastTransaction()`` moves with every commit
    to the file (from any connection, and with a shared path from any
    process), an implicit read skips the new transaction while nothing was
    committed since the connection's snapshot was taken: that snapshot is
    then the latest.

    On ZEO, where ``tm.begin()`` does not ask the server unless the client
    has ``server_sync``, every transaction starts with ZEO's ``ping()``:
    after a round trip to the server, the invalidations of every commit
    finished before it have arrived, so the transaction sees the commits
    other processes made just before.

Concurrent writers
    Two instances writing different keys of one container merge: the
    buckets' conflict resolution (in BTrees) combines the inserts, and
    neither transaction fails.  Writes that cannot merge (the same key; a
    bucket that splits or empties in both) conflict.  Implicit
    transactions are retried (up to :data:`ATTEMPTS` times);
    ``commit()`` of an explicit one rolls it back and raises
    :class:`StorageConflictError`: the caller begins again.
    ``clear_container`` replaces the container's tree, and
    ``delete_container`` unlinks it, so a concurrent write to the old
    tree commits into a tree no longer reachable, which is the result of
    running the write first and the clear second.

ZODB's errors
    Inside an explicit transaction, ZODB's and ZEO's errors that are no
    fault of the caller's become the contract's and doom the transaction
    (see :mod:`appendonly.storage._base`), chained to the original:

    ======================================  ===============================
    raised by ZODB or ZEO                   raised to the caller
    ======================================  ===============================
    ``ConflictError`` at ``commit()``       :class:`StorageConflictError`
    ``ReadConflictError`` (a state that a   :class:`StorageConflictError`
    pack removed after ``begin()``)
    ``ZEO.Exceptions.ClientDisconnected``   :class:`StorageUnavailableError`
    ======================================  ===============================

    Implicit transactions raise the same classes (writes once their
    :data:`ATTEMPTS` tries are spent).  A ``ClientDisconnected`` from
    ``commit()`` is ambiguous when the server was lost while finishing the
    commit: the message says so.

Durability
    FileStorage fsyncs the data file in ``tpc_finish`` of every commit, so
    a call (or ``commit()``) returns after its data is on disk.

Threads
    The connection is used under the instance's lock only, and every
    result is read out of the BTrees before the lock is released (the
    generators iterate over lists).  See :mod:`appendonly.storage._base`.
"""
import os

import transaction
import ZODB
from BTrees.OOBTree import OOBTree
from ZEO.Exceptions import ClientDisconnected
from ZODB.POSException import ConflictError

import appendonly.db
from appendonly import _txn
from appendonly import share
from appendonly._keys import STORAGE_KEY
from appendonly.db import acquire_db
from appendonly.db import release_db
from appendonly.storage._base import ContainerNotFoundError
from appendonly.storage._base import DuplicateContainerError
from appendonly.storage._base import DuplicateStorageError
from appendonly.storage._base import LockedStorage
from appendonly.storage._base import NotAStorageError
from appendonly.storage._base import StorageConflictError
from appendonly.storage._base import StorageError
from appendonly.storage._base import StorageNotFoundError
from appendonly.storage._base import StorageUnavailableError
from appendonly.storage._base import THREAD_TIMEOUT

#: The key of the ZODB root under which the containers live.
ROOT_KEY = STORAGE_KEY

#: How many times an implicit write is tried on ConflictError (the
#: transaction runner's, shared with the façades).
ATTEMPTS = _txn.ATTEMPTS


class ZODBStorage(LockedStorage):
    """See :class:`appendonly.storage.IStorage`; the module documentation
    says how the contract is met on ZODB."""

    def __init__(self, path, create=False, readonly=False,
                 thread_timeout=THREAD_TIMEOUT):
        if create and readonly:
            raise ValueError('create=True and readonly=True exclude each '
                             'other')
        super().__init__(readonly, thread_timeout)
        self._owns_db = not isinstance(path, ZODB.DB)
        self._db = _acquire(path, create, readonly)
        self._conn = self._view = None
        try:
            if self._owns_db:
                _txn.tune(self._db)
            self._committer = _txn.group_commit(self._db)
            self._ping = _round_trip(self._db.storage)
            # A FileStorage object sees every commit to its file (hosting
            # a shared path, ZEO clients' commits too): while its last
            # transaction is the one seen when our snapshot was taken, an
            # implicit read needs no new transaction.
            self._last = None
            if share.sees_every_commit(self._db.storage):
                self._last = self._db.storage.lastTransaction
            self._seen = None
            # Not explicit: DB.close() aborts every open connection's
            # transaction manager, which explicit mode refuses outside a
            # transaction.  Every transaction here is begun explicitly.
            self._tm = transaction.TransactionManager()
            self._conn = self._db.open(self._tm)
            if create:
                self._committer.run(lambda state: _create(state, path))
            self._view = _Containers(self._find(path))
        except BaseException:
            self._close()
            raise

    def _find(self, path):
        """The containers' tree, as our connection sees it."""
        self._new_transaction()
        try:
            containers = self._conn.root().get(ROOT_KEY)
        finally:
            self._tm.abort()
        if containers is None:
            raise StorageNotFoundError(
                f'{path}: the database holds no storage (no '
                f'{ROOT_KEY!r} in its root)')
        if not isinstance(containers, OOBTree):
            raise NotAStorageError(
                f'{path}: the root\'s {ROOT_KEY!r} is a '
                f'{type(containers).__name__}, not a storage')
        return containers

    # Transactions

    def _new_transaction(self):
        if self._ping is not None:
            self._ping()
        if self._view is not None:
            self._view.trees.clear()
        if self._last is not None:
            # Before begin(): a commit in between makes us sync again.
            self._seen = self._last()
        self._tm.begin()

    def _implicit(self, write, func, args):
        if write:
            # func is an operation of our view; the group commit runs the
            # same operation on a view of its own connection.
            self._seen = None
            operation = func.__func__
            try:
                return self._committer.run(
                    lambda state: operation(_Containers.of(state), *args),
                    ATTEMPTS)
            except ConflictError as e:
                raise StorageConflictError(
                    f'still conflicting after {ATTEMPTS} attempts: {e}'
                ) from e
            except ClientDisconnected as e:
                raise StorageUnavailableError(
                    f'the database is unreachable ({_why(e)}) after '
                    f'{ATTEMPTS} attempts') from e
        try:
            if self._seen is not None and self._last() == self._seen:
                # Nothing committed since our snapshot: it is current.
                return func(*args)
            self._new_transaction()
            try:
                return func(*args)
            finally:
                self._tm.abort()
        except (ConflictError, ClientDisconnected) as e:
            raise self._storage_error(e) from e

    def _storage_error(self, error):
        # The errors the caller cannot avoid, which it answers by
        # beginning again: ZODB's conflicts, and ZEO's lost server.
        if isinstance(error, ConflictError):
            # A ReadConflictError, in an operation: with MVCC, a state
            # that a pack removed after our snapshot was taken.
            return StorageConflictError(
                f'conflicts with a concurrent commit or pack ({error})')
        if isinstance(error, ClientDisconnected):
            return StorageUnavailableError(
                f'the database is unreachable ({_why(error)})')
        return super()._storage_error(error)

    def _begin(self):
        try:
            self._new_transaction()
        except ClientDisconnected as e:
            # From ZEO's ping, or from tm.begin()'s sync, once the
            # transaction is begun: end it.
            self._tm.abort()
            raise StorageUnavailableError(
                f'begin(): the database is unreachable ({_why(e)})') from e

    def _commit(self):
        self._view.trees.clear()    # it may hold this transaction's trees
        try:
            self._tm.commit()
        except ConflictError as e:
            self._tm.abort()
            raise StorageConflictError(
                f'commit(): conflicts with a concurrent commit ({e}); '
                f'rolled back') from e
        except ClientDisconnected as e:
            self._tm.abort()
            # Lost while the server finished the commit, it may be there.
            raise StorageUnavailableError(
                f'commit(): the database is unreachable ({_why(e)}); '
                f'rolled back here, but if the server was lost while it '
                f'finished the commit, the commit may have been made: '
                f'read before writing again') from e
        except BaseException:
            self._tm.abort()
            raise

    def _rollback(self):
        self._view.trees.clear()
        self._tm.abort()

    def _close(self):
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                self._tm.abort()
            finally:
                conn.close()
        if self._owns_db:
            release_db(self._db)

    # The operations: those of our connection's view (the LockedStorage
    # methods call them in our transaction; writes outside one go to the
    # group commit, see _implicit).

    _op_add_container = property(lambda self: self._view.add_container)
    _op_delete_container = property(lambda self: self._view.delete_container)
    _op_clear_container = property(lambda self: self._view.clear_container)
    _op_clear = property(lambda self: self._view.clear)
    _op_len = property(lambda self: self._view.len)
    _op_keys = property(lambda self: self._view.keys)
    _op_get = property(lambda self: self._view.get)
    _op_items = property(lambda self: self._view.items)
    _op_set = property(lambda self: self._view.set)
    _op_delete = property(lambda self: self._view.delete)


def _why(error):
    """An error's message, or its class name (ZEO's ClientDisconnected
    often has no message)."""
    return str(error) or type(error).__name__


def _create(state, path):
    """Add the containers' tree to the root (an operation of the group
    commit)."""
    root = state.conn.root()
    if ROOT_KEY in root:
        raise DuplicateStorageError(f'{path}: a storage exists already')
    root[ROOT_KEY] = OOBTree()


class _Containers:
    """The storage's operations on the containers' tree as one connection
    sees it.  ``trees`` remembers the containers looked up in the current
    transaction (its snapshot is fixed; changes to the containers' tree
    empty it); whoever begins a new transaction empties it too."""

    def __init__(self, containers):
        self.containers = containers
        self.trees = {}

    @classmethod
    def of(cls, state):
        """A view for one operation in the group commit's transaction."""
        return cls(state.conn.root()[ROOT_KEY])

    def tree(self, c_id):
        tree = self.trees.get(c_id)
        if tree is None:
            tree = self.containers.get(c_id)
            if tree is None:
                raise ContainerNotFoundError(f'no container {c_id!r}')
            self.trees[c_id] = tree
        return tree

    def add_container(self, c_id):
        if c_id in self.containers:
            raise DuplicateContainerError(f'container {c_id!r} exists')
        self.trees.clear()
        self.containers[c_id] = OOBTree()

    def delete_container(self, c_id):
        self.tree(c_id)
        self.trees.clear()
        del self.containers[c_id]

    def clear_container(self, c_id):
        if self.tree(c_id):
            self.trees.clear()
            self.containers[c_id] = OOBTree()

    def clear(self):
        if self.containers:
            self.trees.clear()
            self.containers.clear()

    def len(self, c_id):
        return len(self.tree(c_id))

    def keys(self, c_id):
        return list(self.tree(c_id).keys())

    def get(self, c_id, key):
        try:
            return self.tree(c_id)[key]
        except KeyError:
            raise KeyError(key) from None

    def items(self, c_id, keys):
        tree = self.tree(c_id)
        if keys is None:
            return list(tree.items())
        get = tree.get
        return [(key, get(key)) for key in keys]

    def set(self, c_id, pairs):
        tree = self.tree(c_id)
        if len(pairs) == 1:
            key, value = pairs[0]
            tree[key] = value
        else:
            tree.update(pairs)

    def delete(self, c_id, keys):
        tree = self.tree(c_id)
        for key in keys:
            tree.pop(key, None)


def _acquire(path, create, readonly):
    """``acquire_db(path)``; open errors become StorageErrors.  A missing
    path or an empty file without ``create`` raise StorageNotFoundError
    before anything is opened (open_db would create the file)."""
    if isinstance(path, ZODB.DB):
        return path
    target = os.fspath(path)
    if '://' not in target and not create:
        if not os.path.exists(target):
            raise StorageNotFoundError(f'{target}: no such storage')
        if os.path.isfile(target) and os.path.getsize(target) == 0:
            raise StorageNotFoundError(f'{target}: an empty file, not a '
                                       f'storage')
    try:
        return acquire_db(target, read_only=readonly)
    except appendonly.db.NotADatabaseError as e:
        raise NotAStorageError(str(e)) from e
    except FileNotFoundError as e:
        raise StorageNotFoundError(str(e)) from e
    except _OPEN_ERRORS as e:
        raise StorageError(f'{target}: cannot open: {e}') from e
    except _CONFIG_ERRORS as e:
        raise NotAStorageError(f'{target}: not a ZConfig file ZODB can '
                               f'open: {e}') from e


def _open_errors():
    from zc.lockfile import LockError
    errors = [LockError]
    unavailable = getattr(appendonly.db, 'DatabaseUnavailableError', None)
    if unavailable is not None:
        errors.append(unavailable)
    return tuple(errors)


def _config_errors():
    import ZConfig
    return (ZConfig.ConfigurationError,)


_OPEN_ERRORS = _open_errors()
_CONFIG_ERRORS = _config_errors()


def _round_trip(storage):
    """ZEO's ``ping`` if ``storage`` is a ZEO client whose ``sync()`` (what
    ``tm.begin()`` calls) makes no round trip to the server; else None."""
    try:
        from ZEO.ClientStorage import ClientStorage
    except ImportError:     # pragma: no cover  (ZEO is a test extra)
        return None
    if not isinstance(storage, ClientStorage):
        return None
    sync = getattr(storage.sync, '__func__', None)
    if sync is ClientStorage.sync:      # ZEO's no-op: no server_sync
        return storage.ping
    return None
