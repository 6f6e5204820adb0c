"""The Storage contract: the interface, the abstract base class, the errors,
and the transaction and locking rules both implementations share.

Transactions
------------

A storage instance has at most one open transaction, begun by ``begin()``
and ended by ``commit()`` or ``rollback()``.  Outside one, every call is a
transaction of its own (an *implicit* transaction, as in caterpillar's
SQLite storage, whose apsw connection autocommits each statement): a write
is durable when the call returns, all of it or none of it; a read sees
every commit made before the call began.  ``commit()`` and ``rollback()``
without an open transaction do nothing.  ``begin()`` twice raises
:class:`StorageError`.

Threads
-------

An instance may be shared by threads.  A lock per instance serializes its
calls, and ``begin()`` keeps that lock for the calling thread until its
``commit()`` or ``rollback()``: while a thread has a transaction open, the
other threads' calls on the instance wait, so none sees a half-applied
transaction, and none mixes its writes into it.  Threads that want their
own transactions at the same time use one instance each.

Conflicts
---------

Two instances whose transactions overlap may conflict.  An implicit
transaction is retried by the storage (ZODB) or waits for the other writer
(SQLite).  An explicit one cannot be retried by the storage, which does not
know what the caller read and decided: it raises
:class:`StorageConflictError`, the transaction is rolled back, and the
caller begins again.  ZODB raises it from ``commit()``; SQLite from the
first write after another instance committed since ``begin()`` (and from
every later call until ``rollback()`` or ``commit()`` ends the
transaction).
"""
import abc
import contextlib
import threading

from zope.interface import implementer

from appendonly.interfaces import IStorage


class StorageError(Exception):
    """Base class of every error a storage raises (except ``KeyError`` for
    an absent key)."""


class ContainerNotFoundError(StorageError):
    """No container by that name exists."""


class DuplicateContainerError(StorageError):
    """A container by that name already exists."""


class StorageNotFoundError(StorageError):
    """There is no storage at that path (and ``create`` was not given)."""


class DuplicateStorageError(StorageError):
    """``create=True``, but a storage already exists at that path."""


class NotAStorageError(StorageError):
    """The path holds something that is not a database of this kind; it
    was left untouched."""


class ReadOnlyStorageError(StorageError):
    """A write on a storage opened with ``readonly=True``."""


class StorageConflictError(StorageError):
    """A transaction conflicted with one committed concurrently by another
    instance and was rolled back: begin it again."""


# Tracebacks (and pickles) name the errors where users import them from.
for _error in (StorageError, ContainerNotFoundError, DuplicateContainerError,
               StorageNotFoundError, DuplicateStorageError, NotAStorageError,
               ReadOnlyStorageError, StorageConflictError):
    _error.__module__ = 'appendonly.storage'
del _error


@implementer(IStorage)
class Storage(abc.ABC):
    """The key/value Storage contract: see :class:`IStorage`.

    Each abstract method's docstring is the contract's (copied from
    :class:`IStorage`, where it is written once).  ``transaction()`` and
    the context manager methods are given here.
    """

    readonly = False

    @abc.abstractmethod
    def add_container(self, c_id):
        pass

    @abc.abstractmethod
    def delete_container(self, c_id):
        pass

    @abc.abstractmethod
    def clear_container(self, c_id):
        pass

    @abc.abstractmethod
    def clear(self):
        pass

    @abc.abstractmethod
    def get_container_len(self, c_id):
        pass

    @abc.abstractmethod
    def get_container_keys(self, c_id):
        pass

    @abc.abstractmethod
    def get_container_item(self, c_id, key):
        pass

    @abc.abstractmethod
    def get_container_items(self, c_id, keys=None):
        pass

    @abc.abstractmethod
    def set_container_item(self, c_id, key, value):
        pass

    @abc.abstractmethod
    def set_container_items(self, c_id, items):
        pass

    @abc.abstractmethod
    def delete_container_item(self, c_id, key):
        pass

    @abc.abstractmethod
    def delete_container_items(self, c_id, keys):
        pass

    @abc.abstractmethod
    def begin(self):
        pass

    @abc.abstractmethod
    def commit(self):
        pass

    @abc.abstractmethod
    def rollback(self):
        pass

    @abc.abstractmethod
    def close(self):
        pass

    @contextlib.contextmanager
    def transaction(self):
        self.begin()
        try:
            yield self
        except BaseException:
            self.rollback()
            raise
        else:
            self.commit()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


# The contract is written once, in IStorage; the abstract methods carry it
# too, for help() and for readers of the abc.
for _name in IStorage.names():
    _method = getattr(Storage, _name, None)
    if callable(_method):
        _method.__doc__ = IStorage[_name].__doc__
del _name, _method


def _pairs(items):
    """``items`` (a dict or an iterable of pairs) as a list of str pairs,
    read once, before any transaction begins (a retry reuses it)."""
    if hasattr(items, 'items'):
        items = items.items()
    return [(str(key), str(value)) for key, value in items]


def _generator(values):
    """A generator over an already read list (results are read in one
    snapshot, under the instance's lock, when the method is called)."""
    yield from values


class LockedStorage(Storage):
    """What both implementations share: the instance lock, the explicit
    transaction's bookkeeping, read-only refusals and the closed state.

    It implements the contract's methods: each coerces its arguments with
    ``str()`` and runs an operation of the subclass (an ``_op_*`` method)
    in the open transaction or, if none, in an implicit one.  Subclasses
    implement the operations and these hooks: ``_implicit(write, func,
    args)`` runs ``func(*args)`` in a transaction of its own;
    ``_begin()``, ``_commit()`` and ``_rollback()`` drive the explicit one
    (``_commit`` rolls back and raises :class:`StorageConflictError` on a
    conflict); ``_close()`` releases the resources.
    """

    def __init__(self, readonly=False):
        self.readonly = bool(readonly)
        # Reentrant: begin() keeps it for its thread, whose calls re-enter.
        self._lock = threading.RLock()
        self._in_transaction = False
        self._doomed = None         # the StorageConflictError that ended it
        self._closed = False

    def _call(self, write, func, *args):
        with self._lock:
            if self._closed:
                raise StorageError('this storage is closed')
            if write and self.readonly:
                raise ReadOnlyStorageError('this storage is read-only')
            if not self._in_transaction:
                return self._implicit(write, func, args)
            if self._doomed is not None:
                raise StorageConflictError(
                    'this transaction conflicted with a concurrent commit '
                    'and was rolled back; call rollback() and begin again'
                ) from self._doomed
            try:
                return func(*args)
            except StorageConflictError as e:
                self._doomed = e
                self._rollback()
                raise

    # The contract's methods: coerce the arguments, then run the
    # implementation's operation in the right transaction.

    def add_container(self, c_id):
        self._call(True, self._op_add_container, str(c_id))

    def delete_container(self, c_id):
        self._call(True, self._op_delete_container, str(c_id))

    def clear_container(self, c_id):
        self._call(True, self._op_clear_container, str(c_id))

    def clear(self):
        self._call(True, self._op_clear)

    def get_container_len(self, c_id):
        return self._call(False, self._op_len, str(c_id))

    def get_container_keys(self, c_id):
        return _generator(self._call(False, self._op_keys, str(c_id)))

    def get_container_item(self, c_id, key):
        c_id, key = str(c_id), str(key)
        with self._lock:
            # The hot path of readers: inside begin(), no more than this.
            if self._in_transaction and self._doomed is None:
                return self._op_get(c_id, key)
        return self._call(False, self._op_get, c_id, key)

    def get_container_items(self, c_id, keys=None):
        if keys is not None:
            keys = [str(key) for key in keys]
        return _generator(
            self._call(False, self._op_items, str(c_id), keys))

    def set_container_item(self, c_id, key, value):
        self._call(True, self._op_set, str(c_id), [(str(key), str(value))])

    def set_container_items(self, c_id, items):
        self._call(True, self._op_set, str(c_id), _pairs(items))

    def delete_container_item(self, c_id, key):
        self._call(True, self._op_delete, str(c_id), [str(key)])

    def delete_container_items(self, c_id, keys):
        self._call(True, self._op_delete, str(c_id),
                   [str(key) for key in keys])

    def begin(self):
        self._lock.acquire()
        try:
            if self._closed:
                raise StorageError('this storage is closed')
            if self._in_transaction:
                raise StorageError('begin(): a transaction is already open')
            self._begin()
        except BaseException:
            self._lock.release()
            raise
        self._in_transaction = True
        self._doomed = None

    def _end(self):
        """Forget the explicit transaction; give up begin()'s hold."""
        self._in_transaction = False
        self._doomed = None
        self._lock.release()

    def commit(self):
        with self._lock:
            if not self._in_transaction:
                return
            try:
                if self._doomed is not None:
                    raise StorageConflictError(
                        'commit(): this transaction conflicted with a '
                        'concurrent commit and was rolled back'
                    ) from self._doomed
                self._commit()
            finally:
                self._end()

    def rollback(self):
        with self._lock:
            if not self._in_transaction:
                return
            try:
                if self._doomed is None:
                    self._rollback()
            finally:
                self._end()

    def close(self):
        with self._lock:
            if self._closed:
                return
            try:
                if self._in_transaction:
                    self.rollback()
            finally:
                self._closed = True
                self._close()

    # What implementations provide.  The operations run inside a
    # transaction, with str arguments; they raise ContainerNotFoundError,
    # DuplicateContainerError or KeyError as the contract says.

    def _op_add_container(self, c_id):
        raise NotImplementedError

    def _op_delete_container(self, c_id):
        raise NotImplementedError

    def _op_clear_container(self, c_id):
        raise NotImplementedError

    def _op_clear(self):
        raise NotImplementedError

    def _op_len(self, c_id):
        raise NotImplementedError

    def _op_keys(self, c_id):
        """A list of the keys, in key order."""
        raise NotImplementedError

    def _op_get(self, c_id, key):
        raise NotImplementedError

    def _op_items(self, c_id, keys):
        """A list of pairs: all, in key order, if ``keys`` is None."""
        raise NotImplementedError

    def _op_set(self, c_id, pairs):
        raise NotImplementedError

    def _op_delete(self, c_id, keys):
        raise NotImplementedError

    def _begin(self):
        raise NotImplementedError

    def _commit(self):
        raise NotImplementedError

    def _rollback(self):
        raise NotImplementedError

    def _implicit(self, write, func, args):
        raise NotImplementedError

    def _close(self):
        raise NotImplementedError
