"""The election: which process hosts a shared path, and takeover.

Every writable opener tries ``flock`` on the path's lock file in the
runtime folder without blocking.  The one that gets it hosts; the others
are clients and run a watcher thread that tries again every
:data:`ELECTION_POLL` seconds, so one of them takes over when the host
closes or dies (the kernel releases a dead process's lock).  A process
that took over keeps its ``DB`` on its ClientStorage, now talking to its
own server.
"""
import atexit
import contextlib
import logging
import os
import threading

import zc.lockfile

from appendonly.share import _client
from appendonly.share import _runtime
from appendonly.share import _zeo
from appendonly.share._errors import DatabaseUnavailableError
from appendonly.share._host import HostStorage
from appendonly.share._oids import reserving_filestorage

logger = logging.getLogger('appendonly.share')

#: Seconds between two tries of the election by a client's watcher.
ELECTION_POLL = 0.1

#: The elections this process takes part in, left at interpreter exit so
#: that another process takes over at once.
_live = set()


class Election:
    """One process's part in sharing the FileStorage at ``path``."""

    def __init__(self, path):
        self.path = path
        self.lock_path, self.address = _runtime.names(path)
        self._lock_fd = None
        self._server = None     # our ZEO server while this process hosts
        self._served = None     # the FileStorage it serves
        self._stop = threading.Event()
        self._watcher = None

    def open(self):
        """The storage for this process's DB: the file (we host) or a
        ZEO client of the host."""
        self._lock_fd = _runtime.open_lock(self.lock_path)
        _live.add(self)
        try:
            if _client.try_lock(self._lock_fd):
                return self._open_host()
            return self._open_client()
        except BaseException:
            self.close()
            raise

    def _open_host(self):
        # A bad socket path refused before the file is opened: nothing
        # is then created next to the data.
        _runtime.prepare_socket(self.address)
        storage = self._open_file()
        host = HostStorage(storage, self.close)
        self._serve(storage, host)
        host.server = self._server     # before the DB exists: no commit yet
        return host

    def _open_client(self):
        self._watcher = threading.Thread(
            target=self._watch, daemon=True,
            name=f'appendonly election {self.path}')
        self._watcher.start()
        storage = _client.connect(self.path, self.lock_path, self.address,
                                  read_only=False,
                                  hosting=lambda: self._server is not None)
        storage.on_close = self.close
        return storage

    def _open_file(self):
        """The file, for writing (we hold the election lock)."""
        try:
            return reserving_filestorage(self.path)
        except zc.lockfile.LockError:
            raise DatabaseUnavailableError(
                f'{self.path}: opened by a process that does not share it '
                f'(a plain FileStorage, a file:// URI, or open_db(..., '
                f'shared=False))') from None

    def _serve(self, storage, host=None):
        """Serve ``storage`` on our socket; it is ours to close from now."""
        try:
            self._server = _zeo.Server.start(self.address, storage, host)
        except BaseException:
            storage.close()
            raise
        self._served = storage
        os.ftruncate(self._lock_fd, 0)
        os.pwrite(self._lock_fd, f'{os.getpid()}\n{self.path}\n'.encode(), 0)

    def _watch(self):
        warned = False
        while not self._stop.wait(ELECTION_POLL):
            if not _client.try_lock(self._lock_fd):
                continue
            try:
                self._serve(self._open_file())
            except Exception as exc:
                _client.unlock(self._lock_fd)
                if not warned:
                    logger.warning('%s: cannot take over serving: %s',
                                   self.path, exc)
                    warned = True
                continue
            logger.info('%s: took over serving on %s', self.path,
                        self.address)
            return

    def close(self):
        """Stop serving, close the file, leave the election."""
        self._stop.set()
        watcher = self._watcher
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join()
        _live.discard(self)
        server, self._server = self._server, None
        if server is not None:
            server.stop()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.address)     # we hold the lock: it is ours
        served, self._served = self._served, None
        try:
            if served is not None:
                served.close()
        finally:
            fd, self._lock_fd = self._lock_fd, None
            if fd is not None:
                os.close(fd)                # releases the lock

    def _forget(self):
        """In a forked child: drop our copy of the parent's lock, never
        touch its server, socket or file."""
        self._stop.set()
        with contextlib.suppress(OSError, TypeError):
            os.close(self._lock_fd)
        self._lock_fd = self._server = self._served = self._watcher = None


@atexit.register
def _leave_all():
    for election in list(_live):
        try:
            election.close()
        except Exception:    # pragma: no cover
            logger.exception('leaving the election of %s at exit',
                             election.path)


def _forget_after_fork():
    for election in list(_live):
        election._forget()
    _live.clear()


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_forget_after_fork)
