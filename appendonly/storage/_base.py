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
calls, and ``begin()`` keeps that lock for the calling thread, the
transaction's *owner*, until its ``commit()`` or ``rollback()``: while a
thread has a transaction open, the other threads' calls on the instance
wait, so none sees a half-applied transaction, and none mixes its writes
into it.  Threads that want their own transactions at the same time use one
instance each.

A call waits at most ``thread_timeout`` seconds (:data:`THREAD_TIMEOUT` by
default), then raises :class:`StorageThreadError` naming the thread it
waited for.  Without a limit, a main thread that calls ``begin()`` and
then waits in ``join()`` for workers that use the instance would wait
forever, and its workers with it.  ``commit()``,
``rollback()`` and ``close()`` from another thread than the owner raise
:class:`StorageThreadError` at once and change nothing: only the owner,
whose connection the transaction is, can end it (rolling it back from
another thread would discard its writes behind its back).

Conflicts and lost databases
----------------------------

Two instances whose transactions overlap may conflict.  An implicit
transaction is retried by the storage (ZODB) or waits for the other writer
(SQLite).  An explicit one cannot be retried by the storage, which does not
know what the caller read and decided: it raises
:class:`StorageConflictError`, the transaction is rolled back, and the
caller begins again.  ZODB raises it from ``commit()``, and from an
operation that must load a state a concurrent pack removed; SQLite from the
first write after another instance committed since ``begin()``.

A database that cannot be reached (a ZEO client that lost its server)
raises :class:`StorageUnavailableError`.

Either error, raised by an operation between ``begin()`` and ``commit()``,
*dooms* the transaction: it is rolled back at once, and every later call
raises the same class until ``rollback()`` ends the transaction (or
``commit()``, which raises it too); the instance is then usable again.
Raised by ``commit()`` itself, the error ends the transaction, rolled back.
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


class StorageUnavailableError(StorageError):
    """The database could not be reached (a ZEO client lost its server):
    the transaction was rolled back; begin again once it is back."""


class StorageThreadError(StorageError):
    """A call on an instance whose transaction another thread owns: it
    waited ``thread_timeout`` seconds for that transaction to end, or it
    was ``commit()``, ``rollback()`` or ``close()``, which only the owner
    may call.  The message names the owner thread."""


# Tracebacks (and pickles) name the errors where users import them from.
for _error in (StorageError, ContainerNotFoundError, DuplicateContainerError,
               StorageNotFoundError, DuplicateStorageError, NotAStorageError,
               ReadOnlyStorageError, StorageConflictError,
               StorageUnavailableError, StorageThreadError):
    _error.__module__ = 'appendonly.storage'
del _error

#: Seconds a call waits, by default, for another thread's transaction on
#: the same instance (or for another thread's call to return).
THREAD_TIMEOUT = 30.0


@implementer(IStorage)
class Storage(abc.ABC):
    """The key/value Storage contract: see :class:`IStorage`.

    Each abstract method's docstring is the contract's (copied from
    :class:`IStorage`, where it is written once).  ``transaction()`` and
    the context manager methods are given here.
    """

    readonly = False
    thread_timeout = THREAD_TIMEOUT

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
    """What both implementations share: the instance lock and the thread
    that owns the explicit transaction, the transaction's bookkeeping,
    read-only refusals and the closed state.

    It implements the contract's methods: each coerces its arguments with
    ``str()`` and runs an operation of the subclass (an ``_op_*`` method)
    in the open transaction or, if none, in an implicit one.  Subclasses
    implement the operations and these hooks: ``_implicit(write, func,
    args)`` runs ``func(*args)`` in a transaction of its own;
    ``_begin()``, ``_commit()`` and ``_rollback()`` drive the explicit one
    (``_commit`` rolls back and raises :class:`StorageConflictError` on a
    conflict); ``_close()`` releases the resources; ``_storage_error()``
    names the implementation's own errors that doom a transaction.
    """

    def __init__(self, readonly=False, thread_timeout=THREAD_TIMEOUT):
        self.readonly = bool(readonly)
        self.thread_timeout = _seconds(thread_timeout)
        # Reentrant: begin() keeps it for its thread, whose calls re-enter.
        self._lock = threading.RLock()
        self._owner = None          # the thread whose transaction is open
        self._doomed = None         # the StorageError that doomed it
        self._closed = False

    # Threads

    def _acquire(self):
        """Take the instance's lock, waiting at most ``thread_timeout``
        seconds for the thread that holds it."""
        if not self._lock.acquire(timeout=self.thread_timeout):
            owner = self._owner     # read once: it may end meanwhile
            if owner is None:
                held = 'by another thread\'s call, still running'
            else:
                held = (f'by thread {_describe(owner)}, whose transaction '
                        f'is open (begin() without commit() or '
                        f'rollback()); a thread that needs a transaction of '
                        f'its own meanwhile uses an instance of its own')
            raise StorageThreadError(
                f'thread {_describe(threading.current_thread())} waited '
                f'{self.thread_timeout:g} s (thread_timeout) for this '
                f'instance, held {held}')

    def _check_owner(self, method):
        """Refuse, at once, to end another thread's transaction."""
        owner = self._owner
        if owner is not None and owner is not threading.current_thread():
            raise StorageThreadError(
                f'{method}() from thread '
                f'{_describe(threading.current_thread())}: the open '
                f'transaction belongs to thread {_describe(owner)}, which '
                f'alone can end it; nothing was changed')

    # Running operations

    def _call(self, write, func, *args):
        self._acquire()
        try:
            if self._closed:
                raise StorageError('this storage is closed')
            if write and self.readonly:
                raise ReadOnlyStorageError('this storage is read-only')
            if self._owner is None:
                return self._implicit(write, func, args)
            return self._explicit(func, args)
        finally:
            self._lock.release()

    def _explicit(self, func, args):
        """``func(*args)`` in the open transaction (the caller owns it);
        an error that dooms the transaction rolls it back."""
        doomed = self._doomed
        if doomed is not None:
            raise type(doomed)(
                f'this transaction was rolled back ({doomed}); call '
                f'rollback() and begin again') from doomed
        try:
            return func(*args)
        except Exception as e:
            error = self._storage_error(e)
            if error is None:
                raise
            self._doomed = error
            self._rollback()
            if error is e:
                raise
            raise error from e

    def _storage_error(self, error):
        """The contract's error for ``error`` if it is one that is no
        fault of the caller's (a conflict, a lost database), else None.
        Raised by an operation in the explicit transaction, such an error
        dooms it.  Implementations add their own errors (ZODB's conflicts,
        ZEO's disconnections)."""
        if isinstance(error, (StorageConflictError, StorageUnavailableError)):
            return error
        return None

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
        # The hot path of readers: inside begin(), no more than this.  The
        # owner holds the lock since begin(): no other thread can be using
        # the instance, nor close it.
        if self._owner is threading.current_thread():
            return self._explicit(self._op_get, (c_id, key))
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
        self._acquire()
        try:
            if self._closed:
                raise StorageError('this storage is closed')
            if self._owner is not None:     # only we can own it here
                raise StorageError('begin(): a transaction is already open')
            self._begin()
        except BaseException:
            self._lock.release()
            raise
        # The lock stays ours until _end().
        self._doomed = None
        self._owner = threading.current_thread()

    def _end(self):
        """Forget the explicit transaction; give up begin()'s hold."""
        self._owner = None
        self._doomed = None
        self._lock.release()

    def commit(self):
        self._check_owner('commit')
        self._acquire()
        try:
            if self._owner is None:
                return
            try:
                doomed = self._doomed
                if doomed is not None:
                    raise type(doomed)(
                        f'commit(): this transaction was rolled back '
                        f'({doomed})') from doomed
                self._commit()
            finally:
                self._end()
        finally:
            self._lock.release()

    def rollback(self):
        self._check_owner('rollback')
        self._acquire()
        try:
            if self._owner is None:
                return
            try:
                if self._doomed is None:
                    self._rollback()
            finally:
                self._end()
        finally:
            self._lock.release()

    def close(self):
        # Another thread's transaction is left as it is: its owner is
        # using the connection, and would find its writes gone.
        self._check_owner('close')
        self._acquire()
        try:
            if self._closed:
                return
            try:
                if self._owner is not None:
                    self.rollback()
            finally:
                self._closed = True
                self._close()
        finally:
            self._lock.release()

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


def _seconds(timeout):
    """``thread_timeout``, checked: a positive number of seconds."""
    try:
        seconds = float(timeout)
    except (TypeError, ValueError):
        seconds = None
    if (isinstance(timeout, bool) or seconds is None
            or not 0 < seconds <= threading.TIMEOUT_MAX):
        raise ValueError(f'thread_timeout must be a positive number of '
                         f'seconds, not {timeout!r}')
    return seconds


def _describe(thread):
    """A thread as error messages name it: its name and its ident."""
    return f'{thread.name!r} (ident {thread.ident})'
