"""open_db(): one front door to a ZODB database.

Accepts what ZODB users already have: a ``ZODB.DB`` (returned as is), a
file path (an embedded FileStorage, created if missing), a zodburi URI
(``file://``, ``zeo://``, ``zconfig://``, ``memory://`` and any scheme a
package registers, such as RelStorage's ``postgres://``) or a ZConfig file.
URIs go through zodburi and ZConfig files through ``ZODB.config``: nothing
here parses them by hand.

Sharing a path between processes
--------------------------------

A FileStorage can be opened by one process only, yet several processes on
one machine opening the same path must all work, as they do with SQLite.
So a *path* (not a ``file://`` URI, which zodburi opens as a plain,
exclusive FileStorage) is shared:

- **Election.**  Every writable opener tries ``fcntl.flock`` on
  ``<path>.zeo.lock`` without blocking.  The one that gets it (the *host*)
  opens the FileStorage and serves it with an in-process ZEO server on the
  Unix socket ``<path>.zeo.sock`` (if that name is longer than AF_UNIX
  allows, ``<tmp>/appendonly-<uid>/<hash of the path>.sock``).  The others
  open a ``ZEO.ClientStorage`` on that socket.  The server runs in this
  package's process, so conflict resolution on the server can import
  ``appendonly``.
- **The host uses the file directly.**  The host's own ``DB`` sits on the
  FileStorage, not on a client of its own server.  1000 single-item
  commits take 0.4-0.6 ms each on a plain FileStorage, the same on a host
  alone (its server thread sleeps), 1.4-2.5 ms each through ZEO on a Unix
  socket; a process alone on its database is the common case.  This is
  correct only because the two sides are bridged (see ``Server`` in
  :func:`_zeo`): commits made through ZEO invalidate the host's ``DB``
  inside FileStorage's ``tpc_finish``, as ZODB requires, and the host's
  own commits reach the ZEO clients once they are on disk, in tid order
  with ZEO's own commits, and never between a client's registration and
  the tid it is told.
- **Takeover.**  Every writable client process runs a watcher thread that
  retries the election every :data:`ELECTION_POLL` seconds.  When the
  host closes its ``DB`` (``db.close()``, :func:`release_db`, or at
  interpreter exit), it stops serving (a transaction holding the commit
  lock may finish; others in flight are aborted and their clients get
  ``ClientDisconnected``, a ``TransientError`` that
  ``TransactionManager.attempts()`` and the façades retry), closes the
  file and releases the lock.  A watcher takes over within a fraction of a
  second and ClientStorage reconnects to the same socket by itself, within
  a second or so; calls made meanwhile wait up to :data:`RECONNECT_WAIT`
  seconds, then raise ``ClientDisconnected``.  A process that took over
  keeps its ``DB`` on its ClientStorage, now talking to its own server.
- **Crashes.**  The kernel releases the lock of a killed host (SIGKILL,
  or SIGTERM without a handler: no atexit then); the next host replaces
  the stale socket file.  FileStorage drops a transaction the killed host
  had not finished, and ZEO clients only ever hear of transactions that
  are on disk.  A client's commit whose tpc_finish was under way when
  the host died may have been committed and still be retried (once per
  thread committing at that moment), as with any ZEO server that dies.
- **Read-only opens never serve and never write** (no lock, socket or
  index file is created next to the file): with a host running they are
  read-only ZEO clients and see new commits; otherwise they open the
  FileStorage read-only and see it as it was when opened.  A read-only
  client whose host closes with no writer left to take over raises
  ``ClientDisconnected`` on reads that miss its cache until a writer opens
  the path again.
- **Forks.**  A forked child closes its copy of the parent's lock, leaves
  the parent's server and socket alone, and opens afresh with
  :func:`acquire_db` (as a client of its parent).

``open_db(path)`` itself shares the path (``shared=False`` gives the former
exclusive FileStorage): processes that open one path with ``open_db`` must
all work, and an exclusive opener would lock the façades of every other
process out.  :func:`acquire_db` shares one ``DB`` per path (and read-only
flag) within a process, on top of that.  Without ``fcntl``, Unix sockets
or ZEO installed, a path opens as an exclusive FileStorage.
"""
import asyncio
import atexit
import collections
import contextlib
import functools
import hashlib
import logging
import os
import queue
import socket
import tempfile
import threading
import time
import types
import weakref

import ZODB
import ZODB.config
import ZODB.FileStorage

try:
    import fcntl
except ImportError:     # pragma: no cover  (Windows: no sharing)
    fcntl = None

logger = logging.getLogger(__name__)

#: The first bytes of a FileStorage file (FS30 since Python 3, FS21
#: before).
FILESTORAGE_MAGICS = (b'FS30', b'FS21')

#: Next to the data file: the election lock (it holds the host's pid) and
#: the socket the host serves on.
LOCK_SUFFIX = '.zeo.lock'
SOCKET_SUFFIX = '.zeo.sock'

#: The longest AF_UNIX path, in bytes, without its terminating NUL.
AF_UNIX_MAX = 107

#: Seconds between two tries of the election by a client's watcher.
ELECTION_POLL = 0.1

#: Seconds between two connection attempts of a disconnected client
#: (ZEO adds up to one second at random).
RECONNECT_POLL = 0.1

#: Seconds a call on a disconnected ClientStorage waits for the
#: connection before raising ``ClientDisconnected`` (ZEO's wait_timeout;
#: a takeover takes well under that).
RECONNECT_WAIT = 5.0

#: Seconds open_db waits for the first connection to the host.
CONNECT_TIMEOUT = 30.0

#: A reconnecting client whose cache is this many seconds old or less
#: is told what changed since (ZEO's invalidation-age).
INVALIDATION_AGE = 300

#: Seconds a host waits for its ZEO server to start or stop.
SERVER_TIMEOUT = 10.0


class NotADatabaseError(ValueError):
    """The target exists but is not a database this package can open."""


class DatabaseUnavailableError(RuntimeError):
    """A shared path cannot be opened: another process holds it without
    sharing it, or its host does not answer."""


def open_db(target, read_only=False, create=True, shared=True, **kw):
    """Return a ``ZODB.DB`` for ``target``.

    ``target``: a ``ZODB.DB`` (returned unchanged, other arguments
    ignored), a zodburi URI (``scheme://...``), the path of a ZConfig file
    (its first statement is a ``<section>`` or ``%import``/``%define``), or
    the path of a FileStorage file.  A FileStorage is created if missing
    unless ``create`` is false or ``read_only`` is true.  Other keyword
    arguments go to ``ZODB.DB`` (``pool_size``, ``cache_size``, ...).

    A FileStorage path is shared with the other processes that open it
    (see the module documentation): opened for writing, the ``DB``
    returned is a :class:`SharedDB`, whose ``close()`` hands serving
    over.  With ``shared=False`` it is a plain, exclusive FileStorage.

    A path that holds something other than a FileStorage raises
    :class:`NotADatabaseError` naming it, and is left untouched (nothing is
    written next to it either).
    """
    if isinstance(target, ZODB.DB):
        return target
    target = os.fspath(target)
    if '://' in target:
        return _open_uri(target, read_only, kw)
    if os.path.isdir(target):
        raise NotADatabaseError(f'{target}: is a directory, not a database')
    if os.path.exists(target):
        kind = _sniff(target)
        if kind == 'zconfig':
            return _open_zconfig(target, read_only, kw)
        if kind != 'filestorage':
            raise NotADatabaseError(
                f'{target}: not a ZODB FileStorage or ZConfig file')
    elif read_only or not create:
        raise FileNotFoundError(f'{target}: no such database')
    else:
        parent = os.path.dirname(os.path.abspath(target))
        if not os.path.isdir(parent):
            raise FileNotFoundError(f'{target}: folder {parent} is missing')
    if shared and _can_share():
        if read_only:
            return _open_shared_read_only(target, kw)
        return _Share(target).open(kw)
    storage = ZODB.FileStorage.FileStorage(target, read_only=read_only)
    return ZODB.DB(storage, **kw)


def _sniff(path):
    """'filestorage', 'zconfig', or None; an empty file is a new
    FileStorage (as SQLite treats an empty file as a new database)."""
    with open(path, 'rb') as f:
        head = f.read(4096)
    if not head:
        return 'filestorage'
    if head.startswith(FILESTORAGE_MAGICS):
        # FileStorage truncates what it cannot read (its crash recovery):
        # make sure it is a FileStorage before handing it the file.
        if len(head) == 4 or _plausible_transaction(head[4:27]):
            return 'filestorage'
        return None
    try:
        text = head.decode('utf-8')
    except UnicodeDecodeError:
        return None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        if line.startswith(('<', '%import', '%define')):
            return 'zconfig'
        return None
    return None


def _plausible_transaction(header):
    """Does ``header`` look like FileStorage's first transaction header
    (tid, length, status)?  Garbage after the magic does not."""
    import struct

    from persistent.TimeStamp import TimeStamp
    if len(header) < 23:
        return False
    tid, length, status = struct.unpack('>8sQc', header[:17])
    if status not in b' cpu' or length < 23:
        return False
    try:
        year = TimeStamp(tid).year()
    except (ValueError, OverflowError):
        return False
    return 1990 <= year <= 2200


def _open_uri(uri, read_only, kw):
    import zodburi
    storage_factory, dbkw = zodburi.resolve_uri(uri)
    storage = storage_factory()
    if read_only and not storage.isReadOnly():
        storage.close()
        raise ValueError(f'{uri}: read_only requested; say so in the URI '
                         f'(e.g. ?read_only=1 or read-only in its config)')
    dbkw.update(kw)
    return ZODB.DB(storage, **dbkw)


def _open_zconfig(path, read_only, kw):
    # appendonly's schema: ZODB's <zodb> sections, plus <appendonly>
    # sections after %import appendonly (see appendonly.config).
    from appendonly.config import load
    db, _ = load(path)
    if read_only and not db.storage.isReadOnly():
        db.close()
        raise ValueError(f'{path}: read_only requested; set read-only in '
                         f'the storage section of the config')
    if 'pool_size' in kw:
        db.setPoolSize(kw.pop('pool_size'))
    if kw:
        db.close()
        raise TypeError(f'{path}: set {", ".join(sorted(kw))} in the '
                        f'config file')
    return db


#
# Sharing a path between processes
#

def socket_path(path):
    """The Unix socket a FileStorage at ``path`` is served on: next to the
    file, or in a private folder of the temporary directory if that name
    is too long for AF_UNIX (processes sharing such a path must then agree
    on ``TMPDIR``).  Every process computes the same name."""
    path = os.path.realpath(path)
    beside = path + SOCKET_SUFFIX
    if len(os.fsencode(beside)) <= AF_UNIX_MAX:
        return beside
    folder = os.path.join(tempfile.gettempdir(), f'appendonly-{os.getuid()}')
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        info = os.lstat(folder)
        if not os.path.isdir(folder) or os.path.islink(folder) or (
                info.st_uid != os.getuid()):
            raise DatabaseUnavailableError(
                f'{path}: {folder} (for its socket) is not a folder of '
                f'this user') from None
    digest = hashlib.sha256(os.fsencode(path)).hexdigest()[:32]
    return os.path.join(folder, digest + '.sock')


def _can_share():
    """Whether this platform and installation can share a path: flock,
    Unix sockets and ZEO."""
    import importlib.util
    return (fcntl is not None and hasattr(socket, 'AF_UNIX')
            and importlib.util.find_spec('ZEO') is not None)


def _try_lock(fd):
    """Take the election lock if nobody holds it; return whether we did."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _host_pid(lock_path):
    """The pid the host wrote in the lock file, for error messages."""
    try:
        with open(lock_path) as f:
            return f.read().strip() or '?'
    except OSError:
        return '?'


def _client_storage(path, address, read_only):
    return _zeo().ClientStorage(
        address, name=path, read_only=read_only, wait=False,
        wait_timeout=RECONNECT_WAIT,
        client_label=f'appendonly pid {os.getpid()}',
        # ClientStorage's own default retries a lost connection every 1-2
        # s; a takeover is faster than that.
        _client_factory=functools.partial(
            _zeo().ClientThread, disconnect_poll=RECONNECT_POLL))


def _open_shared_read_only(path, kw):
    """A read-only client of the host if there is one, else a read-only
    FileStorage.  Creates nothing: the lock file is only read."""
    path = os.path.realpath(path)
    lock_path = path + LOCK_SUFFIX
    address = socket_path(path)
    storage = None
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        fd = None
    try:
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while fd is not None:
            if _try_lock(fd):        # nobody serves: read the file
                fcntl.flock(fd, fcntl.LOCK_UN)
                if storage is not None:
                    storage.close()
                    storage = None
                break
            if storage is None:
                storage = _client_storage(path, address, read_only=True)
            if storage.is_connected():
                return ZODB.DB(storage, **kw)
            if time.monotonic() > deadline:
                raise DatabaseUnavailableError(
                    f'{path}: process {_host_pid(lock_path)} holds '
                    f'{lock_path} but does not serve {address}')
            time.sleep(0.02)
    except BaseException:
        if storage is not None:
            storage.close()
        raise
    finally:
        if fd is not None:
            os.close(fd)
    return ZODB.DB(ZODB.FileStorage.FileStorage(path, read_only=True), **kw)


class SharedDB(ZODB.DB):
    """A ``ZODB.DB`` on a FileStorage path shared between processes.

    Its storage is the FileStorage itself in the process that serves the
    file, and a ``ZEO.ClientStorage`` elsewhere.  ``close()`` also stops
    serving (another process takes over) and leaves the election.
    """

    _share = None

    def close(self):
        share, self._share = self._share, None
        if share is None:
            return super().close()
        _live.discard(share)
        share.close(super().close)


#: The shares this process has open, closed at interpreter exit so that
#: another process takes over at once.
_live = set()


@atexit.register
def _close_live_shares():
    for share in list(_live):
        db = share.db
        try:
            if db is not None:
                db.close()
        except Exception:    # pragma: no cover
            logger.exception('closing %s at exit', share.path)


def _forget_shares_after_fork():
    """In a forked child, the parent's shares are the parent's: close our
    copies of their lock files (else the lock outlives the parent's
    release), never stop their servers or remove their sockets at exit,
    and let acquire_db open afresh (as a client of the parent)."""
    global _shared_lock
    for share in list(_live):
        share._forget()
    _live.clear()
    _shared.clear()
    _shared_lock = threading.Lock()


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_forget_shares_after_fork)


class _Share:
    """One process's part in sharing the FileStorage at ``path``."""

    def __init__(self, path):
        self.path = os.path.realpath(path)
        self.lock_path = self.path + LOCK_SUFFIX
        self.address = socket_path(self.path)
        self.db = None
        self._lock_fd = None
        self._server = None     # our ZEO server while this process hosts
        self._served = None     # the FileStorage a takeover host serves
        self._stop = threading.Event()
        self._watcher = None

    def open(self, kw):
        self._lock_fd = os.open(self.lock_path,
                                os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            if _try_lock(self._lock_fd):
                db = self._open_host(kw)
            else:
                db = self._open_client(kw)
        except BaseException:
            self.close(lambda: None)
            raise
        db._share = self
        self.db = db
        _live.add(self)
        return db

    def _open_host(self, kw):
        """Open the file and serve it; our DB uses it directly."""
        storage = self._open_filestorage()
        try:
            db = SharedDB(storage, **kw)
        except BaseException:
            storage.close()
            raise
        try:
            self._server = _zeo().Server.start(self.address, storage, db)
            _bridge_local_commits(db, self._server)
            self._write_pid()
        except BaseException:
            self._stop_serving()
            db.close()
            raise
        return db

    def _open_client(self, kw):
        """Connect to the host; watch for the chance to take over."""
        storage = _client_storage(self.path, self.address, read_only=False)
        try:
            self._watcher = threading.Thread(
                target=self._watch, daemon=True,
                name=f'appendonly election {self.path}')
            self._watcher.start()
            deadline = time.monotonic() + CONNECT_TIMEOUT
            while not storage.is_connected():
                if time.monotonic() > deadline:
                    raise DatabaseUnavailableError(
                        f'{self.path}: process {_host_pid(self.lock_path)} '
                        f'holds {self.lock_path} but does not serve '
                        f'{self.address}')
                time.sleep(0.01)
            return SharedDB(storage, **kw)
        except BaseException:
            storage.close()
            raise

    def _open_filestorage(self):
        import zc.lockfile
        try:
            return ZODB.FileStorage.FileStorage(self.path)
        except zc.lockfile.LockError:
            raise DatabaseUnavailableError(
                f'{self.path}: opened by a process that does not share it '
                f'(a plain FileStorage, or open_db(..., shared=False))'
            ) from None

    def _write_pid(self):
        os.ftruncate(self._lock_fd, 0)
        os.pwrite(self._lock_fd, f'{os.getpid()}\n'.encode(), 0)

    def _watch(self):
        warned = False
        while not self._stop.wait(ELECTION_POLL):
            if not _try_lock(self._lock_fd):
                continue
            try:
                storage = self._open_filestorage()
            except Exception as exc:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                if not warned:
                    logger.warning('cannot take over serving: %s', exc)
                    warned = True
                continue
            try:
                self._server = _zeo().Server.start(
                    self.address, storage, None)
            except Exception:
                storage.close()
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                logger.exception('%s: cannot serve on %s', self.path,
                                 self.address)
                continue
            self._served = storage
            self._write_pid()
            logger.info('%s: took over serving on %s', self.path,
                        self.address)
            return

    def _stop_serving(self):
        server, self._server = self._server, None
        if server is not None:
            server.stop()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.address)     # we hold the lock: it is ours

    def _forget(self):
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)
        self._lock_fd = self._server = self._served = self._watcher = None
        self._stop.set()
        if self.db is not None:
            self.db._share = None

    def close(self, close_db):
        """Stop serving, close the DB (and the file), leave the
        election."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()
        try:
            self._stop_serving()
            close_db()
        finally:
            served, self._served = self._served, None
            if served is not None:
                served.close()
            os.close(self._lock_fd)     # releases the lock
            self.db = None


def _bridge_local_commits(db, server):
    """Broadcast the host DB's own commits to the ZEO clients.

    ``MVCCAdapter._invalidate_finish`` is what ZODB calls, in FileStorage's
    ``tpc_finish`` (storage lock held), to invalidate the DB's other
    connections after a commit; it hands the commit to the server too.
    """
    mvcc = db._mvcc_storage
    invalidate_finish = mvcc._invalidate_finish

    def _invalidate_finish(tid, oids, committing_instance):
        invalidate_finish(tid, oids, committing_instance)
        try:
            server.local_commit(tid, oids)
        except Exception:   # pragma: no cover  (never fail the commit)
            logger.exception('telling ZEO clients of commit %r', tid)

    mvcc._invalidate_finish = _invalidate_finish


@functools.lru_cache(maxsize=None)
def _zeo():
    """The ZEO classes sharing uses, defined on first use: ZEO is imported
    only by processes that share a path."""
    import ZEO.asyncio.client
    import ZEO.asyncio.server
    import ZEO.ClientStorage
    import ZEO.Exceptions
    import ZEO.StorageServer

    class ClientStorage(ZEO.ClientStorage.ClientStorage):
        """A ClientStorage whose transactions begin after every commit
        another process has reported finished, as with SQLite."""

        def sync(self):
            # server_sync=True's ping, except that a lost connection is no
            # error here: transaction.begin() is outside the retries of
            # TransactionManager.attempts(), and the transaction's loads
            # and commit wait for the connection, or raise, inside them.
            # A ping the server's leaving cut short is tried again (it
            # waits for the next host, up to RECONNECT_WAIT): if that one
            # fails too, the transaction may read what the cache holds.
            for _ in range(2):
                try:
                    return self._call('ping')
                except ZEO.Exceptions.ClientDisconnected:
                    pass

    class Acceptor(ZEO.asyncio.server.Acceptor):
        """Keeps its connections, so that stopping closes them all."""

        def __init__(self, *args, **kw):
            self.protocols = weakref.WeakSet()
            super().__init__(*args, **kw)

        def factory(self):
            protocol = super().factory()
            self.protocols.add(protocol)
            return protocol

    class ZEOStorage(ZEO.StorageServer.ZEOStorage):
        """A client's view of a storage the host's DB also commits to."""

        def register(self, storage_id, read_only):
            # The tid returned and the invalidations sent to this client
            # from now on must agree: no commit between them.
            with self.server.unsent_sent():
                return super().register(storage_id, read_only)

        def getInvalidations(self, tid):
            with self.server.unsent_sent():
                return super().getInvalidations(tid)

        def tpc_finish(self, id):
            # ZEOStorage.tpc_finish, except the tid returned (see Server).
            if not self._check_tid(id):
                return None
            assert self.locked, 'finished called wo lock'
            self.stats.commits += 1
            tid = self.storage.tpc_finish(self.transaction, self._invalidate)
            self.async_('info', self.get_size_info())
            return ZEO.asyncio.server.Result(tid, self._clear_transaction)

    class Server(ZEO.StorageServer.StorageServer):
        """A ZEO server over a FileStorage the host's DB also uses.

        Two writers share the storage: ZEO clients (through this server's
        event loop) and the host's DB (in its own threads).  FileStorage
        serializes their commits; what it does not do, and this class
        does, is tell each side about the other's commits:

        - A ZEO client's commit invalidates the host's DB in the
          ``tpc_finish`` callback, storage lock held, before
          ``lastTransaction()`` moves (what ZODB requires of storages).
        - Every commit, local or not, reaches the ZEO clients through one
          queue, in tid order, sent by the event loop once it holds the
          storage lock, that is once the commit is on disk: a client told
          of a transaction that a crash then drops would refuse every
          later server ("server behind client").  A local commit is
          queued in that same callback (:meth:`local_commit`).  The queue
          is also sent when a ZEO client's commit finishes (before its
          reply, which names a later tid than the queued ones), when a
          client registers (the tid it gets and the invalidations it gets
          from then on must agree) and when it verifies its cache.
        - ZEO's own ``tpc_finish`` returns ``lastTransaction()`` read
          after the storage lock is released, when it can already be a
          local commit's; ours returns the tid FileStorage committed.
        """

        def __init__(self, address, storage, local_db):
            self._storage = storage
            self._local_db = local_db
            self._unsent = collections.deque()     # (tid, oids, origin)
            self._thread = None
            super().__init__(
                address, {'1': storage}, Acceptor=Acceptor,
                # A client that reconnects after more than 100 commits
                # (a takeover under load) verifies its cache from the
                # file rather than dropping it.
                invalidation_age=INVALIDATION_AGE)

        @classmethod
        def start(cls, address, storage, local_db):
            """Create the server in a thread of its own (its event loop
            must not meet the caller's) and run it there."""
            made = queue.Queue()

            def run():
                try:
                    server = cls(address, storage, local_db)
                except BaseException as exc:
                    made.put(exc)
                    return
                made.put(server)
                server.loop()

            thread = threading.Thread(
                target=run, daemon=True,
                name=f'appendonly ZEO server {address}')
            thread.start()
            server = made.get(timeout=SERVER_TIMEOUT)
            if isinstance(server, BaseException):
                thread.join(SERVER_TIMEOUT)
                raise server
            server._thread = thread
            return server

        def create_client_handler(self):
            return ZEOStorage(self, self.read_only)

        def local_commit(self, tid, oids):
            """A commit of the host's DB; called in its tpc_finish, storage
            lock held."""
            if not (self._unsent or self.zeo_storages_by_storage_id['1']):
                # Nobody to tell (a client registers under the storage
                # lock): only remember it for a client that verifies its
                # cache later, without waking the event loop.  A host
                # alone commits as fast as a plain FileStorage.
                self._remember(tid, list(oids))
                return
            self._unsent.append((tid, list(oids), None))
            with contextlib.suppress(RuntimeError):    # loop closed
                self.acceptor.event_loop.call_soon_threadsafe(self._send)

        def invalidate(self, zeo_storage, storage_id, tid, invalidated):
            # In FileStorage.tpc_finish of a ZEO client's commit: event
            # loop, storage lock held, this commit not yet on disk (the
            # earlier ones are: they go before its tpc_finish reply).
            self._send_unsent()
            self._unsent.append((tid, invalidated, zeo_storage))
            self.acceptor.event_loop.call_soon_threadsafe(self._send)
            if self._local_db is not None:
                self._local_db._mvcc_storage.invalidate(tid, invalidated)

        def _send(self):
            with self._storage._lock:
                self._send_unsent()

        @contextlib.contextmanager
        def unsent_sent(self):
            with self._storage._lock:
                self._send_unsent()
                yield

        def _send_unsent(self):
            # In the event loop, storage lock held, so every unsent commit
            # is on disk.  Sent at once, in tid order, to every client but
            # the one that made it.
            while self._unsent:
                tid, oids, origin = self._unsent.popleft()
                self._remember(tid, oids)
                for zs in list(self.zeo_storages_by_storage_id['1']):
                    if zs is not origin:
                        zs.async_('invalidateTransaction', tid, oids)

        def _remember(self, tid, oids):
            # StorageServer.invalidate's queue, for clients that verify
            # their cache; storage lock held, as for every use of it.
            invq = self.invq['1']
            if len(invq) >= self.invq_bound:
                invq.pop()
            invq.insert(0, (tid, oids))

        def stop(self):
            """Stop serving: abort the clients' transactions, close their
            connections, stop the event loop.  The storage stays open."""
            loop = self.acceptor.event_loop
            try:
                asyncio.run_coroutine_threadsafe(
                    self._disconnect_all(), loop).result(SERVER_TIMEOUT)
            except Exception:
                logger.exception('stopping the ZEO server on %s', self.addr)
            with contextlib.suppress(RuntimeError):     # already closed
                loop.call_soon_threadsafe(loop.stop)
            self._thread.join(SERVER_TIMEOUT)

        async def _disconnect_all(self):
            self.acceptor.server.close()
            # Let a transaction that holds the commit lock finish (its
            # tpc_finish is on its way): failing it in the second phase
            # would worry its client more than failing the others' votes.
            lock_manager = self.lock_managers['1']
            deadline = time.monotonic() + 1
            while (lock_manager.locked is not None
                   and time.monotonic() < deadline):
                await asyncio.sleep(0.002)
            closing = []
            for protocol in list(self.acceptor.protocols):
                zs = protocol.zeo_storage
                protocol.close()
                if protocol.closing is not None:
                    closing.append(protocol.closing)
                # close() keeps connection_lost from telling the
                # ZEOStorage, which would abort its transaction: do it.
                if zs is not None and zs.connected:
                    zs.notify_disconnected()
            if closing:
                await asyncio.wait(closing, timeout=2)

    return types.SimpleNamespace(
        ClientStorage=ClientStorage,
        ClientThread=ZEO.asyncio.client.ClientThread,
        Server=Server)


_shared = {}
_shared_lock = threading.Lock()


def acquire_db(target, read_only=False):
    """``open_db(target)``, shared by every caller in this process that
    names the same target (and read-only flag); pair each call with
    :func:`release_db`.  A ``ZODB.DB`` is returned as is and never closed
    here."""
    if isinstance(target, ZODB.DB):
        return target
    target = os.fspath(target)
    key = (target if '://' in target else os.path.realpath(target),
           read_only)
    with _shared_lock:
        entry = _shared.get(key)
        if entry is None:
            entry = _shared[key] = [open_db(target, read_only=read_only), 0]
        entry[1] += 1
        return entry[0]


def release_db(db):
    """Give back a database from :func:`acquire_db`; the last one closes
    it."""
    with _shared_lock:
        for key, entry in list(_shared.items()):
            if entry[0] is db:
                entry[1] -= 1
                if entry[1] == 0:
                    del _shared[key]
                    db.close()
                return
