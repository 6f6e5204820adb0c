"""Sharing one FileStorage path between the processes of one user.

A FileStorage can be opened by one process only, yet several processes on
one machine opening the same path must all work, as they do with SQLite.
:func:`open_storage` makes that so; ``open_db(path)``, the façades, the
Storage bridge, the ``appendonly://`` zodburi scheme and the
``<appendonlyfile>`` ZConfig section all use it.

The protocol (one file per role):

- **Runtime folder** (``_runtime.py``).  The election lock and the host's
  Unix socket live in a folder only this user can enter, never next to
  the data; a host's peers are checked (``SO_PEERCRED``) on both ends.
- **Election** (``_election.py``).  Every writable opener tries ``flock``
  on the lock without blocking; the winner hosts, the others are clients
  whose watcher threads retry, so one takes over within
  ``ELECTION_POLL`` seconds when the host closes or dies.
- **Host** (``_host.py``).  Opens the file for writing, through
  :class:`~appendonly.share._oids.OidReservingStorage` (``_oids.py``:
  no oid is ever handed out twice across hosts), serves it with an
  in-process ZEO server, and lets its own DB use the file directly.
- **Clients** (``_client.py``).  ``ZEO.ClientStorage``s of the host that
  drop prefetched oids on every (re)connection.  Read-only opens never
  serve and create nothing next to the file: they are read-only clients
  when a host runs (and see new commits), else read-only FileStorages.
- **ZEO internals** (``_zeo.py``): every private ZEO/ZODB name used, in
  one module, with the versions it is tested with.

Crashes: the kernel releases a killed host's lock; FileStorage drops a
transaction the host had not finished, and clients only ever hear of
transactions that are on disk.  A client's commit whose ``tpc_finish``
was under way when the host died may have been committed and still be
reported as failed (``ClientDisconnected``, a ``TransientError``), as with
any ZEO server that dies.  The transaction runner's autocommit writes
(façades, Storage bridge) look for their transaction's token before they
retry, so none is applied twice (see :mod:`appendonly._txn`).
"""
import importlib.util
import os
import socket

from appendonly.share._errors import DatabaseUnavailableError
from appendonly.share._errors import UntrustedPeerError

__all__ = ['open_storage', 'can_share', 'DatabaseUnavailableError',
           'UntrustedPeerError']


def can_share():
    """Whether this platform and installation can share a path: flock,
    Unix sockets and ZEO."""
    try:
        import fcntl    # noqa: F401
    except ImportError:     # pragma: no cover  (Windows: no sharing)
        return False
    return (hasattr(socket, 'AF_UNIX')
            and importlib.util.find_spec('ZEO') is not None)


def open_storage(path, read_only=False):
    """The storage through which this process uses the shared FileStorage
    at ``path`` (which must exist, or be creatable).  Closing it (or the
    ``DB`` on it) hands serving over to another process."""
    path = os.path.realpath(path)
    from appendonly.share import _client
    from appendonly.share import _election
    if read_only:
        return _client.open_read_only(path)
    return _election.Election(path).open()


def address(path):
    """The Unix socket the host of ``path`` serves on (in the runtime
    folder: see ``_runtime.py``)."""
    from appendonly.share import _runtime
    return _runtime.names(os.path.realpath(path))[1]


def host_pid(path):
    """The pid of the process hosting ``path``, or None if none does."""
    from appendonly.share import _client
    from appendonly.share import _runtime
    lock_path = _runtime.names(os.path.realpath(path))[0]
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        if _client.try_lock(fd):
            return None     # nobody holds it (closing fd releases ours)
        pid = _runtime.host_pid(lock_path)
        return int(pid) if pid.isdigit() else None
    finally:
        os.close(fd)


def sees_every_commit(storage):
    """Whether ``storage.lastTransaction()`` moves with every commit to
    the file as soon as it is made, whoever makes it: a FileStorage, alone
    or hosting a shared path (a ZEO client hears of others' commits a
    little later)."""
    import ZODB.FileStorage
    from appendonly.share._host import HostStorage
    return isinstance(storage, (ZODB.FileStorage.FileStorage, HostStorage))
