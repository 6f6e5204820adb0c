"""The ZEO and ZODB internals path sharing relies on: all here, nowhere
else.

ZEO has no public hook for a server whose storage a second writer (the
host's own ``DB``) also commits to, nor for a client dropping prefetched
oids when it reconnects.  The subclasses below reach for the private names
listed in :data:`PRIVATE_NAMES`; they are tested with the ZEO and ZODB
versions in :data:`TESTED_WITH` (``setup.cfg`` pins the same ranges), and
``appendonly/tests/test_share_internals.py`` fails when any of them
changes upstream (a name missing, or the code we copied from changed).
"""
import asyncio
import collections
import contextlib
import logging
import os
import queue
import threading
import time
import weakref

import ZEO.asyncio.client
import ZEO.asyncio.server
import ZEO.ClientStorage
import ZEO.Exceptions
import ZEO.StorageServer

from appendonly.share import _runtime

logger = logging.getLogger('appendonly.share')

#: The (lowest, highest) versions the names below are tested with.
TESTED_WITH = {'ZEO': ('6.0.0', '6.2'), 'ZODB': ('6.0', '6.4')}

#: Every private name used, as ``(owner, name)``: the test checks each.
PRIVATE_NAMES = (
    ('ZODB.BaseStorage.BaseStorage', '_lock'),      # FileStorage's commit lock
    ('ZEO.ClientStorage.ClientStorage', '_oids'),   # prefetched oids
    ('ZEO.ClientStorage.ClientStorage', '_call'),
    ('ZEO.ClientStorage.ClientStorage.__init__', '_client_factory'),
    ('ZEO.asyncio.client.ClientThread.__init__', 'disconnect_poll'),
    ('ZEO.StorageServer.StorageServer', 'invq'),
    ('ZEO.StorageServer.StorageServer', 'invq_bound'),
    ('ZEO.StorageServer.StorageServer', 'lock_managers'),
    ('ZEO.StorageServer.StorageServer', 'zeo_storages_by_storage_id'),
    ('ZEO.StorageServer.ZEOStorage', '_check_tid'),
    ('ZEO.StorageServer.ZEOStorage', '_invalidate'),
    ('ZEO.StorageServer.ZEOStorage', '_clear_transaction'),
    ('ZEO.asyncio.server.Acceptor', 'factory'),
)

#: Seconds a host waits for its ZEO server to start or stop.
SERVER_TIMEOUT = 10.0

#: A reconnecting client whose cache is this many seconds old or less
#: is told what changed since (ZEO's invalidation-age).
INVALIDATION_AGE = 300


class ClientStorage(ZEO.ClientStorage.ClientStorage):
    """A ClientStorage for shared paths: transactions begin after every
    commit another process has reported finished (as with SQLite), and
    prefetched oids are dropped on every (re)connection.  ``on_close``,
    if set, is called once the storage is closed (the election's part)."""

    on_close = None

    def notify_connected(self, conn, info):
        # Oids prefetched from a server that has since died may be handed
        # out again by the next one (ZODB's FileStorage restarts its
        # counter at the highest committed oid): never use them.
        # (list operations are atomic: new_oid takes no lock either.)
        del self._oids[:]
        super().notify_connected(conn, info)

    def close(self):
        try:
            super().close()
        finally:
            on_close, self.on_close = self.on_close, None
            if on_close is not None:
                on_close()

    def loadBefore(self, oid, tid):
        # A load cut short by the host leaving is asked again of the next
        # host (it waits for the connection, up to wait_timeout): a read
        # changes nothing, and ZODB would log the failure as an error
        # ("Couldn't load state") before the caller's retry.
        try:
            return super().loadBefore(oid, tid)
        except ZEO.Exceptions.ClientDisconnected:
            return super().loadBefore(oid, tid)

    def sync(self):
        # server_sync=True's ping, except that a lost connection is no
        # error here: transaction.begin() is outside the retries of
        # TransactionManager.attempts(), and the transaction's loads and
        # commit wait for the connection, or raise, inside them.  A ping
        # the server's leaving cut short is tried again (it waits for the
        # next host): if that one fails too, the transaction may read what
        # the cache holds.
        for _ in range(2):
            try:
                return self._call('ping')
            except ZEO.Exceptions.ClientDisconnected:
                pass


def client_storage(name, address, read_only, wait_timeout, poll):
    """A :class:`ClientStorage` that retries a lost connection every
    ``poll`` seconds (ZEO's default, 1-2 s, is slower than a takeover)."""
    return ClientStorage(
        address, name=name, read_only=read_only, wait=False,
        wait_timeout=wait_timeout,
        client_label=f'appendonly pid {os.getpid()}',
        _client_factory=lambda *a, **kw: ZEO.asyncio.client.ClientThread(
            *a, disconnect_poll=poll, **kw))


def storage_lock(storage):
    """FileStorage's lock, held through each commit's tpc_finish (through
    a wrapper that passes attributes on, such as OidReservingStorage)."""
    return storage._lock


class _ServerProtocol(ZEO.asyncio.server.ServerProtocol):
    """Serves only processes of this user (or of the opted-in group):
    a ZEO client can make the server unpickle, so run code."""

    def connection_made(self, transport):
        super().connection_made(transport)
        creds = _runtime.peer_credentials(transport.get_extra_info('socket'))
        if creds is not None and not _runtime.trusted(creds[1], creds[2]):
            logger.warning('refused a connection from process %s of uid %s',
                           creds[0], creds[1])
            zs = self.zeo_storage
            self.close()
            zs.notify_disconnected()


class _Acceptor(ZEO.asyncio.server.Acceptor):
    """Checks its peers, and keeps its connections so that stopping closes
    them all."""

    def __init__(self, *args, **kw):
        self.protocols = weakref.WeakSet()
        super().__init__(*args, **kw)
        _runtime.secure_socket(self.addr)

    def factory(self):
        zs = self.storage_server.create_client_handler()
        protocol = _ServerProtocol(self.event_loop, self.addr, zs,
                                   self.msgpack)
        self.protocols.add(protocol)
        return protocol


class _ZEOStorage(ZEO.StorageServer.ZEOStorage):
    """A client's view of a storage the host's DB also commits to."""

    def register(self, storage_id, read_only):
        # The tid returned and the invalidations sent to this client from
        # now on must agree: no commit between them.
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
    """A ZEO server over a FileStorage the host's DB may also commit to.

    Two writers can share the storage: ZEO clients (through this server's
    event loop) and the host's DB (in its own threads, through
    :class:`appendonly.share._host.HostStorage`).  FileStorage serializes
    their commits; what it does not do, and this class does, is tell each
    side about the other's commits:

    - A ZEO client's commit invalidates the host's DB in the
      ``tpc_finish`` callback, storage lock held, before
      ``lastTransaction()`` moves (what ZODB requires of storages), by
      ``host.invalidate``.
    - Every commit, local or not, reaches the ZEO clients through one
      queue, in tid order, sent by the event loop once it holds the
      storage lock, that is once the commit is on disk: a client told of
      a transaction that a crash then drops would refuse every later
      server ("server behind client").  A local commit is queued in that
      same callback (:meth:`local_commit`).  The queue is also sent when a
      ZEO client's commit finishes (before its reply, which names a later
      tid than the queued ones), when a client registers (the tid it gets
      and the invalidations it gets from then on must agree) and when it
      verifies its cache.
    - ZEO's own ``tpc_finish`` returns ``lastTransaction()`` read after
      the storage lock is released, when it can already be a local
      commit's; ours returns the tid FileStorage committed.
    """

    def __init__(self, address, storage, host):
        self._lock = storage_lock(storage)
        self._host = host           # None, or has .invalidate(tid, oids)
        self._unsent = collections.deque()     # (tid, oids, origin)
        self._thread = None
        _runtime.prepare_socket(address)
        super().__init__(
            address, {'1': storage}, Acceptor=_Acceptor,
            # A client that reconnects after more than 100 commits (a
            # takeover under load) verifies its cache from the file rather
            # than dropping it.
            invalidation_age=INVALIDATION_AGE)

    @classmethod
    def start(cls, address, storage, host=None):
        """Create the server in a thread of its own (its event loop must
        not meet the caller's) and run it there."""
        made = queue.Queue()

        def run():
            try:
                server = cls(address, storage, host)
            except BaseException as exc:
                made.put(exc)
                return
            made.put(server)
            server.loop()

        thread = threading.Thread(target=run, daemon=True,
                                  name=f'appendonly ZEO server {address}')
        thread.start()
        server = made.get(timeout=SERVER_TIMEOUT)
        if isinstance(server, BaseException):
            thread.join(SERVER_TIMEOUT)
            raise server
        server._thread = thread
        return server

    def create_client_handler(self):
        return _ZEOStorage(self, self.read_only)

    def local_commit(self, tid, oids):
        """A commit of the host's DB; called in its tpc_finish, storage
        lock held."""
        if not (self._unsent or self.zeo_storages_by_storage_id['1']):
            # Nobody to tell (a client registers under the storage lock):
            # only remember it for a client that verifies its cache later,
            # without waking the event loop.  A host alone commits as fast
            # as a plain FileStorage.
            self._remember(tid, list(oids))
            return
        self._unsent.append((tid, list(oids), None))
        with contextlib.suppress(RuntimeError):    # loop closed
            self.acceptor.event_loop.call_soon_threadsafe(self._send)

    def invalidate(self, zeo_storage, storage_id, tid, invalidated):
        # In FileStorage.tpc_finish of a ZEO client's commit: event loop,
        # storage lock held, this commit not yet on disk (the earlier ones
        # are: they go before its tpc_finish reply).
        self._send_unsent()
        self._unsent.append((tid, invalidated, zeo_storage))
        self.acceptor.event_loop.call_soon_threadsafe(self._send)
        if self._host is not None:
            self._host.invalidate(tid, invalidated)

    def _send(self):
        with self._lock:
            self._send_unsent()

    @contextlib.contextmanager
    def unsent_sent(self):
        with self._lock:
            self._send_unsent()
            yield

    def _send_unsent(self):
        # In the event loop, storage lock held, so every unsent commit is
        # on disk.  Sent at once, in tid order, to every client but the
        # one that made it.
        while self._unsent:
            tid, oids, origin = self._unsent.popleft()
            self._remember(tid, oids)
            for zs in list(self.zeo_storages_by_storage_id['1']):
                if zs is not origin:
                    zs.async_('invalidateTransaction', tid, oids)

    def _remember(self, tid, oids):
        # StorageServer.invalidate's queue, for clients that verify their
        # cache; storage lock held, as for every use of it.
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
        # tpc_finish is on its way): failing it in the second phase would
        # worry its client more than failing the others' votes.
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
            # close() keeps connection_lost from telling the ZEOStorage,
            # which would abort its transaction: do it.
            if zs is not None and zs.connected:
                zs.notify_disconnected()
        if closing:
            await asyncio.wait(closing, timeout=2)
