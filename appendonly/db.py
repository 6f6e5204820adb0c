"""open_db(): one front door to a ZODB database.

Accepts what ZODB users already have: a ``ZODB.DB`` (returned as is), a
file path (an embedded FileStorage, created if missing), a zodburi URI
(``file://``, ``zeo://``, ``zconfig://``, ``memory://`` and any scheme a
package registers, such as RelStorage's ``postgres://``) or a ZConfig file.
URIs go through zodburi and ZConfig files through ``ZODB.config``: nothing
here parses them by hand.
"""
import os
import threading

import ZODB
import ZODB.config
import ZODB.FileStorage

#: The first bytes of a FileStorage file (FS30 since Python 3, FS21
#: before).
FILESTORAGE_MAGICS = (b'FS30', b'FS21')


class NotADatabaseError(ValueError):
    """The target exists but is not a database this package can open."""


def open_db(target, read_only=False, create=True, **kw):
    """Return a ``ZODB.DB`` for ``target``.

    ``target``: a ``ZODB.DB`` (returned unchanged, other arguments
    ignored), a zodburi URI (``scheme://...``), the path of a ZConfig file
    (its first statement is a ``<section>`` or ``%import``/``%define``), or
    the path of a FileStorage file.  A FileStorage is created if missing
    unless ``create`` is false or ``read_only`` is true.  Other keyword
    arguments go to ``ZODB.DB`` (``pool_size``, ``cache_size``, ...).

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
    storage = ZODB.FileStorage.FileStorage(target, read_only=read_only)
    return ZODB.DB(storage, **kw)


def _sniff(path):
    """'filestorage', 'zconfig', or None; an empty file is a new
    FileStorage (as SQLite treats an empty file as a new database)."""
    with open(path, 'rb') as f:
        head = f.read(4096)
    if not head or head.startswith(FILESTORAGE_MAGICS):
        return 'filestorage'
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
    db = ZODB.config.databaseFromURL(path)
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


_shared = {}
_shared_lock = threading.Lock()


def acquire_db(target, read_only=False):
    """``open_db(target)``, shared by every caller in this process that
    names the same target (a FileStorage can be opened only once); pair
    each call with :func:`release_db`.  A ``ZODB.DB`` is returned as is and
    never closed here."""
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
