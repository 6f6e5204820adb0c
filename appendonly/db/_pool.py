"""One ``DB`` per target within a process, shared by the façades and the
Storage bridge: :func:`acquire_db` / :func:`release_db`."""
import os
import threading

import ZODB

from appendonly.db._open import open_db

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


def _forget_after_fork():
    """A forked child opens afresh (as a client of its parent's host)."""
    global _shared_lock
    _shared.clear()
    _shared_lock = threading.Lock()


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_forget_after_fork)
