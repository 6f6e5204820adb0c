"""The other processes: ZEO clients of the host, and read-only opens."""
import fcntl
import os
import time

import ZODB.FileStorage

from appendonly.share import _runtime
from appendonly.share import _zeo
from appendonly.share._errors import DatabaseUnavailableError

#: Seconds between two connection attempts of a disconnected client
#: (ZEO adds up to one second at random).
RECONNECT_POLL = 0.1

#: Seconds a call on a disconnected ClientStorage waits for the
#: connection before raising ``ClientDisconnected`` (ZEO's wait_timeout;
#: a takeover takes well under that).
RECONNECT_WAIT = 5.0

#: Seconds an open waits for the host to answer.
CONNECT_TIMEOUT = 30.0


def try_lock(fd):
    """Take the election lock if nobody holds it; return whether we did."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def unlock(fd):
    fcntl.flock(fd, fcntl.LOCK_UN)


def not_served(path, lock_path, address):
    return DatabaseUnavailableError(
        f'{path}: process {_runtime.host_pid(lock_path)} holds the election '
        f'lock {lock_path} but does not serve {address} (waited '
        f'{CONNECT_TIMEOUT:g} s)')


def connect(path, lock_path, address, read_only, hosting=lambda: False):
    """A ClientStorage connected to the host at ``address``, once the host
    is known to be this user's.  ``hosting()`` true means this process
    took over meanwhile (its own server will answer)."""
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while not (_runtime.check_host(address) or hosting()):
        if time.monotonic() > deadline:
            raise not_served(path, lock_path, address)
        time.sleep(0.01)
    storage = _zeo.client_storage(path, address, read_only,
                                  RECONNECT_WAIT, RECONNECT_POLL)
    try:
        while not storage.is_connected():
            if time.monotonic() > deadline:
                raise not_served(path, lock_path, address)
            time.sleep(0.01)
    except BaseException:
        storage.close()
        raise
    return storage


def open_read_only(path):
    """A read-only client of the host if there is one (it sees new
    commits), else a read-only FileStorage (as the file was when opened).
    Creates nothing next to the file."""
    lock_path, address = _runtime.names(path)
    try:
        fd = _runtime.open_lock(lock_path, create=False)
    except FileNotFoundError:
        fd = None
    try:
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while fd is not None and not try_lock(fd):
            if _runtime.check_host(address):
                return connect(path, lock_path, address, read_only=True)
            if time.monotonic() > deadline:
                raise not_served(path, lock_path, address)
            time.sleep(0.01)
    finally:
        if fd is not None:
            os.close(fd)        # releases the lock if we took it
    return ZODB.FileStorage.FileStorage(path, read_only=True)
