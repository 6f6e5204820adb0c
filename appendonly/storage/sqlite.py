"""SqliteStorage: the Storage contract on SQLite, the reference
implementation the contract was written for (caterpillar's): SQLite in WAL
mode, a table per container.

The file
    ``path`` is the database file.  A table ``appendonly_containers``
    (:data:`REGISTRY`) lists the containers; its presence is what makes the
    file a storage (``create=True`` where it exists raises
    :class:`DuplicateStorageError`).  Each container is a table
    ``appendonly_c_<sha1 of its id>`` of ``(key TEXT PRIMARY KEY, value
    TEXT)``, ``WITHOUT ROWID``: rows are kept in key order, a lookup is one
    B-tree search and a full read one ordered scan.  A file that does not
    start with SQLite's magic is refused before SQLite opens it, and an
    existing file is first examined through a read-only connection, so a
    file that is not a storage is never written to.

Isolation
    WAL mode: readers never block the writer nor the writer the readers.
    ``begin()`` is ``BEGIN`` followed by a read, which starts SQLite's read
    transaction at once: the snapshot is pinned at ``begin()``, not at the
    first read as a bare ``BEGIN`` would.  Outside ``begin()``, a write
    runs in ``BEGIN IMMEDIATE`` ... ``COMMIT``; a read of one statement
    runs on its own (SQLite's autocommit), one of several statements in
    ``BEGIN`` ... ``COMMIT``.

Concurrent writers
    SQLite has one writer at a time.  An implicit write waits for the
    write lock up to ``timeout`` seconds (:data:`TIMEOUT`), then raises
    :class:`StorageConflictError`.  An explicit transaction cannot wait:
    its snapshot is pinned, and if another instance committed since
    ``begin()``, or holds the write lock, its first write raises
    :class:`StorageConflictError` at once (SQLite's ``SQLITE_BUSY``, which
    skips the busy handler inside a read transaction); the transaction is
    rolled back and the caller begins again.  (ZODBStorage merges such
    writers when their keys differ.)

Durability
    ``PRAGMA synchronous = FULL``: in WAL mode SQLite then fsyncs the WAL
    at every commit, as FileStorage fsyncs its file (``NORMAL``, SQLite's
    usual choice with WAL, would defer the fsync to checkpoints).

Threads
    One ``sqlite3`` connection per instance, opened with
    ``check_same_thread=False`` and used under the instance's lock only
    (see :mod:`appendonly.storage._base`).  A call waits for another
    thread's transaction up to ``thread_timeout`` seconds; an implicit
    write then waits for another instance's writer up to ``timeout``
    seconds more.

Keys and values must be encodable as UTF-8 (SQLite's text).
"""
import functools
import hashlib
import os
import pathlib
import sqlite3

from appendonly.storage._base import ContainerNotFoundError
from appendonly.storage._base import DuplicateContainerError
from appendonly.storage._base import DuplicateStorageError
from appendonly.storage._base import LockedStorage
from appendonly.storage._base import NotAStorageError
from appendonly.storage._base import StorageConflictError
from appendonly.storage._base import StorageError
from appendonly.storage._base import StorageNotFoundError
from appendonly.storage._base import THREAD_TIMEOUT

#: The first 16 bytes of every SQLite 3 database file.
MAGIC = b'SQLite format 3\x00'

#: The table listing the containers: (c_id, table name).
REGISTRY = 'appendonly_containers'

#: Seconds an implicit write waits for another writer's transaction.
TIMEOUT = 30.0

#: Keys per ``IN (...)`` query of ``get_container_items``.
CHUNK = 500


@functools.lru_cache(maxsize=4096)
def table_name(c_id):
    """The table of container ``c_id`` (quoted where used)."""
    digest = hashlib.sha1(c_id.encode('utf-8', 'surrogatepass')).hexdigest()
    return f'appendonly_c_{digest}'


class SqliteStorage(LockedStorage):
    """See :class:`appendonly.storage.IStorage`; the module documentation
    says how the contract is met on SQLite.  ``timeout``: seconds an
    implicit write waits for another instance's write transaction;
    ``thread_timeout``: seconds a call waits for another thread's
    transaction on this instance (see :class:`IStorage`)."""

    def __init__(self, path, create=False, readonly=False, timeout=TIMEOUT,
                 thread_timeout=THREAD_TIMEOUT):
        if create and readonly:
            raise ValueError('create=True and readonly=True exclude each '
                             'other')
        super().__init__(readonly, thread_timeout)
        self.path = path = os.fspath(path)
        self._get_sql = {}      # c_id: the statement of get_container_item
        if _holds_storage(path, create):
            if create:
                raise DuplicateStorageError(f'{path}: a storage exists '
                                            f'already')
        elif not create:
            raise StorageNotFoundError(f'{path}: no storage there')
        try:
            self._db = _connect(path, readonly, timeout)
        except sqlite3.OperationalError as e:   # e.g. a missing folder
            raise StorageNotFoundError(f'{path}: cannot open: {e}') from e
        try:
            self._db.execute('PRAGMA synchronous = FULL')
            if create:
                self._create(path)
        except BaseException:
            self._db.close()
            raise

    def _create(self, path):
        self._db.execute('PRAGMA journal_mode = WAL')
        self._sql('BEGIN IMMEDIATE')
        try:
            # Another process may have created it since we looked.
            if self._db.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' "
                    "AND name = ?", (REGISTRY,)).fetchone():
                raise DuplicateStorageError(f'{path}: a storage exists '
                                            f'already')
            self._db.execute(
                f'CREATE TABLE {REGISTRY} (c_id TEXT PRIMARY KEY NOT NULL, '
                f'name TEXT NOT NULL) WITHOUT ROWID')
            self._db.execute('COMMIT')
        except BaseException:
            self._db.execute('ROLLBACK')
            raise

    # SQL, with SQLite's errors turned into the contract's

    def _sql(self, sql, params=(), c_id=None, many=False):
        try:
            if many:
                return self._db.executemany(sql, params)
            return self._db.execute(sql, params)
        except sqlite3.OperationalError as e:
            message = str(e)
            if c_id is not None and message.startswith('no such table'):
                raise ContainerNotFoundError(
                    f'no container {c_id!r}') from None
            if 'locked' in message or 'busy' in message:
                raise StorageConflictError(
                    f'another instance holds or has changed the database '
                    f'({message})') from e
            raise StorageError(message) from e

    def _exists(self, c_id):
        return self._db.execute(
            f'SELECT 1 FROM {REGISTRY} WHERE c_id = ?', (c_id,)
        ).fetchone() is not None

    def _require(self, c_id):
        if not self._exists(c_id):
            raise ContainerNotFoundError(f'no container {c_id!r}')

    # Transactions

    def _implicit(self, write, func, args):
        if not write and func.__func__ in _ONE_STATEMENT:
            return func(*args)
        self._sql('BEGIN IMMEDIATE' if write else 'BEGIN')
        try:
            result = func(*args)
        except BaseException:
            self._db.execute('ROLLBACK')
            raise
        self._commit()
        return result

    def _begin(self):
        self._sql('BEGIN')
        # Start the read transaction now: the snapshot is pinned here.
        self._db.execute(f'SELECT 1 FROM {REGISTRY} LIMIT 1').fetchall()

    def _commit(self):
        try:
            self._sql('COMMIT')
        except BaseException:
            if self._db.in_transaction:
                self._db.execute('ROLLBACK')
            raise

    def _rollback(self):
        if self._db.in_transaction:
            self._db.execute('ROLLBACK')

    def _close(self):
        self._db.close()

    # Operations

    def _op_add_container(self, c_id):
        if self._exists(c_id):
            raise DuplicateContainerError(f'container {c_id!r} exists')
        name = table_name(c_id)
        self._sql(f'CREATE TABLE "{name}" (key TEXT PRIMARY KEY NOT NULL, '
                  f'value TEXT NOT NULL) WITHOUT ROWID')
        self._sql(f'INSERT INTO {REGISTRY} VALUES (?, ?)', (c_id, name))

    def _op_delete_container(self, c_id):
        self._require(c_id)
        self._sql(f'DROP TABLE "{table_name(c_id)}"')
        self._sql(f'DELETE FROM {REGISTRY} WHERE c_id = ?', (c_id,))

    def _op_clear_container(self, c_id):
        self._sql(f'DELETE FROM "{table_name(c_id)}"', c_id=c_id)

    def _op_clear(self):
        names = [row[0] for row in
                 self._sql(f'SELECT name FROM {REGISTRY}').fetchall()]
        for name in names:
            self._sql(f'DROP TABLE "{name}"')
        self._sql(f'DELETE FROM {REGISTRY}')

    def _op_len(self, c_id):
        return self._sql(f'SELECT count(*) FROM "{table_name(c_id)}"',
                         c_id=c_id).fetchone()[0]

    def _op_keys(self, c_id):
        return [row[0] for row in self._sql(
            f'SELECT key FROM "{table_name(c_id)}" ORDER BY key',
            c_id=c_id).fetchall()]

    def _op_get(self, c_id, key):
        sql = self._get_sql.get(c_id)
        if sql is None:
            sql = self._get_sql[c_id] = (
                f'SELECT value FROM "{table_name(c_id)}" WHERE key = ?')
        row = self._sql(sql, (key,), c_id=c_id).fetchone()
        if row is None:
            raise KeyError(key)
        return row[0]

    def _op_items(self, c_id, keys):
        name = table_name(c_id)
        if keys is None:
            return self._sql(f'SELECT key, value FROM "{name}" ORDER BY key',
                             c_id=c_id).fetchall()
        if not keys:
            self._require(c_id)
            return []
        found = {}
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start:start + CHUNK]
            marks = ', '.join('?' * len(chunk))
            found.update(self._sql(
                f'SELECT key, value FROM "{name}" WHERE key IN ({marks})',
                chunk, c_id=c_id).fetchall())
        get = found.get
        return [(key, get(key)) for key in keys]

    def _op_set(self, c_id, pairs):
        if not pairs:
            self._require(c_id)
            return
        self._sql(f'INSERT OR REPLACE INTO "{table_name(c_id)}" '
                  f'VALUES (?, ?)', pairs, c_id=c_id, many=True)

    def _op_delete(self, c_id, keys):
        if not keys:
            self._require(c_id)
            return
        self._sql(f'DELETE FROM "{table_name(c_id)}" WHERE key = ?',
                  [(key,) for key in keys], c_id=c_id, many=True)


#: Reads that are one statement: outside begin() they need no BEGIN.
_ONE_STATEMENT = frozenset([SqliteStorage._op_len, SqliteStorage._op_keys,
                            SqliteStorage._op_get])


def _holds_storage(path, create):
    """Whether ``path`` holds a storage.  Raises NotAStorageError for a
    folder or a file that is not an SQLite database, StorageNotFoundError
    for a missing path (without ``create``); writes nothing."""
    if os.path.isdir(path):
        raise NotAStorageError(f'{path}: is a directory, not a storage')
    if not os.path.exists(path):
        return False
    with open(path, 'rb') as f:
        head = f.read(len(MAGIC))
    if not head:
        return False            # an empty file: SQLite's empty database
    if head != MAGIC:
        raise NotAStorageError(f'{path}: not an SQLite database')
    try:
        db = _connect(path, readonly=True, timeout=TIMEOUT)
    except sqlite3.Error as e:
        raise NotAStorageError(f'{path}: cannot open: {e}') from e
    try:
        return db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
            (REGISTRY,)).fetchone() is not None
    except sqlite3.DatabaseError as e:
        raise NotAStorageError(f'{path}: not an SQLite database: {e}') \
            from e
    finally:
        db.close()


def _connect(path, readonly, timeout):
    if readonly:
        target, uri = pathlib.Path(path).absolute().as_uri() + '?mode=ro', True
    else:
        target, uri = path, False
    return sqlite3.connect(target, timeout=timeout, isolation_level=None,
                           check_same_thread=False, uri=uri)
