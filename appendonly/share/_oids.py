"""Never hand out an oid twice, across restarts of a storage server.

Why: a ZEO client prefetches oids (``new_oids``, 100 at a time) and keeps
them across reconnects.  A FileStorage that is reopened (its server
killed and restarted, or another process taking over a shared path)
starts its counter at the highest *committed* oid, so it hands the
prefetched but unused oids out again, to other clients.  Two new objects
then share one oid, and ZODB's recovery from the clash leaves committed
records pointing at objects that were never stored (the full trace is in
``docs/sharing.rst``, "Why acknowledged writes were lost").

How: :class:`OidReservingStorage` wraps a storage and keeps a durable
high-water mark in ``<data file>.oids``: before it returns an oid at or
past the mark it moves the mark :data:`OID_BLOCK` further and fsyncs the
file; on open it starts the counter past the mark (``set_max_oid``,
which FileStorage has).  Every oid ever handed out is below the mark on
disk, so none is handed out again.  Deleting the file only gives back
ZODB's own behaviour.
"""
import os
import threading

import zope.interface
from ZODB.utils import p64
from ZODB.utils import u64

#: How far the mark moves at a time (one fsync per this many oids).
OID_BLOCK = 10000

#: Suffix of the high-water-mark file beside the data file.
MARK_SUFFIX = '.oids'

#: The wrapped storage's methods a commit or a load calls, bound once in
#: ``__init__`` instead of found through ``__getattr__`` at every call.
DIRECT_METHODS = (
    'load', 'loadBefore', 'loadSerial', 'lastTransaction',
    'checkCurrentSerialInTransaction', 'store', 'restore', 'deleteObject',
    'tpc_begin', 'tpc_vote', 'tpc_finish', 'tpc_abort', 'sortKey',
)


class OidReservingStorage:
    """A storage whose ``new_oid`` never repeats an oid handed out by an
    earlier process on the same file.  Everything else is the wrapped
    storage's own."""

    def __init__(self, base, mark_path):
        if not hasattr(base, 'set_max_oid'):
            raise TypeError(f'{type(base).__name__} cannot start its oid '
                            f'counter past a mark (no set_max_oid)')
        self._base = base
        for name in DIRECT_METHODS:
            if hasattr(base, name):
                setattr(self, name, getattr(base, name))
        self._mark_path = mark_path
        self._mark_lock = threading.Lock()
        self._fd = None
        if not base.isReadOnly():
            self._fd = os.open(mark_path, os.O_RDWR | os.O_CREAT
                               | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            raw = os.pread(self._fd, 8, 0)
            self._reserved = u64(raw) if len(raw) == 8 else 0
            base.set_max_oid(p64(self._reserved))
        zope.interface.directlyProvides(
            self, zope.interface.providedBy(base))

    def __getattr__(self, name):
        return getattr(self._base, name)

    def __len__(self):
        return len(self._base)

    def new_oid(self):
        with self._mark_lock:
            oid = self._base.new_oid()
            if u64(oid) >= self._reserved:
                mark = u64(oid) + OID_BLOCK
                os.pwrite(self._fd, p64(mark), 0)
                os.fsync(self._fd)
                self._reserved = mark
        return oid

    def close(self):
        try:
            self._base.close()
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def reserving_filestorage(path, **kw):
    """A FileStorage at ``path`` whose oids never repeat across opens."""
    import ZODB.FileStorage
    base = ZODB.FileStorage.FileStorage(path, **kw)
    try:
        return OidReservingStorage(base, path + MARK_SUFFIX)
    except BaseException:
        base.close()
        raise
