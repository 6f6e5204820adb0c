"""The host: the one process that has the FileStorage open for writing.

Its own ``DB`` uses the file directly, through :class:`HostStorage` (a
storage wrapper: ZODB's public storage protocol), while its ZEO server
(:class:`appendonly.share._zeo.Server`) serves the other processes.  A
durable single-item commit takes about 0.35 ms on a plain FileStorage and
the same on a host alone (its server thread sleeps), against 1.4-1.8 ms
through ZEO on a Unix socket; a process alone on its database is the
common case, and ``benchmarks/bench_sharing.py`` measures it.

The two writers are bridged through public protocols on the host's side:
``HostStorage.registerDB`` is given the DB's storage adapter, whose
``invalidate(tid, oids)`` (``IStorageDB``) the server calls for each ZEO
client's commit, inside FileStorage's ``tpc_finish``; and the host's own
commits reach the server from the ``tpc_finish`` callback, storage lock
held, with the oids this wrapper saw stored.
"""
import zope.interface

#: The wrapped storage's methods that need nothing from the host, bound
#: once in ``__init__`` instead of found through ``__getattr__`` at every
#: call (ZODB asks ``lastTransaction()`` twice per commit).
DIRECT_METHODS = (
    'load', 'loadBefore', 'loadSerial', 'lastTransaction', 'new_oid',
    'checkCurrentSerialInTransaction', 'tpc_vote', 'tpc_abort', 'sortKey',
)


class HostStorage:
    """The host DB's storage: the shared FileStorage (oid-reserving), with
    each local commit told to the ZEO server.  Everything not defined
    here is the wrapped storage's."""

    def __init__(self, storage, on_close):
        self._base = storage
        for name in DIRECT_METHODS:
            if hasattr(storage, name):
                setattr(self, name, getattr(storage, name))
        self._on_close = on_close   # stops serving, releases the election
        self._db = None
        self._stored = []
        self.server = None
        zope.interface.directlyProvides(
            self, zope.interface.providedBy(storage))

    def __getattr__(self, name):
        return getattr(self._base, name)

    def __len__(self):
        return len(self._base)

    def registerDB(self, db):
        self._db = db
        self._base.registerDB(db)

    def invalidate(self, tid, oids):
        """A ZEO client committed (called by the server in tpc_finish)."""
        if self._db is not None:
            self._db.invalidate(tid, oids)

    # A FileStorage runs one transaction at a time (tpc_begin takes its
    # commit lock), so one list of stored oids serves: reset once the
    # lock is ours, read in tpc_finish.

    def tpc_begin(self, transaction, tid=None, status=' '):
        self._base.tpc_begin(transaction, tid, status)
        self._stored = []

    def store(self, oid, serial, data, version, transaction):
        result = self._base.store(oid, serial, data, version, transaction)
        self._stored.append(oid)
        return result

    def restore(self, oid, serial, data, version, prev_txn, transaction):
        result = self._base.restore(oid, serial, data, version, prev_txn,
                                    transaction)
        self._stored.append(oid)
        return result

    def deleteObject(self, oid, oldserial, transaction):
        self._base.deleteObject(oid, oldserial, transaction)
        self._stored.append(oid)

    def undo(self, transaction_id, transaction):
        result = self._base.undo(transaction_id, transaction)
        self._stored.extend(result[1])
        return result

    def tpc_finish(self, transaction, f=None):
        stored = self._stored

        def finished(tid):
            # Storage lock held, commit not yet marked complete on disk:
            # the server sends it only once it holds that lock itself.
            if f is not None:
                f(tid)
            if self.server is not None:
                self.server.local_commit(tid, stored)

        return self._base.tpc_finish(transaction, finished)

    def close(self):
        self._on_close()
