"""open_db(): one front door to a ZODB database.

Accepts what ZODB users already have: a ``ZODB.DB`` (returned as is), a
file path (an embedded FileStorage, created if missing), a zodburi URI
(``file://``, ``zeo://``, ``zconfig://``, ``memory://`` and any scheme a
package registers, such as RelStorage's ``postgres://``) or a ZConfig file.
URIs go through zodburi and ZConfig files through ``ZODB.config``: nothing
here parses them by hand.

A FileStorage *path* is shared with the other processes of this user that
open it (see :mod:`appendonly.share`); ``shared=False`` gives an
exclusive FileStorage, as ``file://`` URIs do.
"""
import os

import ZODB
import ZODB.config
import ZODB.FileStorage
from ZODB.POSException import ReadOnlyError

from appendonly import share
from appendonly.config import looks_like_config
from appendonly.config import read as read_config

#: The first bytes of a FileStorage file (FS30 since Python 3, FS21
#: before).
FILESTORAGE_MAGICS = (b'FS30', b'FS21')


class NotADatabaseError(ValueError):
    """The target exists but is not a database this package can open."""


class EmptyDatabaseError(NotADatabaseError):
    """Opened read-only, the database has nothing in it yet (a 0-byte or
    header-only FileStorage, or a storage nobody has written to): there
    is no root object to read, and a read-only open cannot make one."""


def open_db(target, read_only=False, create=True, shared=True, **kw):
    """Return a ``ZODB.DB`` for ``target``.

    ``target``: a ``ZODB.DB`` (returned unchanged, other arguments
    ignored), a zodburi URI (``scheme://...``), the path of a ZConfig file
    (its first statement is a ``<section>`` or ``%import``/``%define``), or
    the path of a FileStorage file.  A FileStorage is created if missing
    unless ``create`` is false or ``read_only`` is true.  Other keyword
    arguments go to ``ZODB.DB`` (``pool_size``, ``cache_size``, ...).

    A FileStorage path is shared with the other processes of this user
    that open it (see :mod:`appendonly.share`): closing the ``DB`` hands
    serving over.  With ``shared=False`` it is a plain, exclusive
    FileStorage.

    A path that holds something other than a FileStorage raises
    :class:`NotADatabaseError` naming it, and is left untouched (nothing is
    written next to it either).  Read-only, a database with nothing
    committed yet raises :class:`EmptyDatabaseError`.
    """
    if isinstance(target, ZODB.DB):
        return target
    target = os.fspath(target)
    if '://' in target:
        return _open_uri(target, read_only, kw)
    if check_path(target, create=create and not read_only) == 'zconfig':
        return _open_zconfig(target, read_only, kw)
    if shared and share.can_share():
        storage = share.open_storage(target, read_only=read_only)
    else:
        storage = ZODB.FileStorage.FileStorage(target, read_only=read_only)
    return _db(target, storage, kw)


def check_path(path, create=False):
    """What the file at ``path`` is, checked before anything opens it:
    ``'filestorage'`` (also for a missing file when ``create`` is true),
    or ``'zconfig'``.  Otherwise raise :class:`NotADatabaseError` or
    ``FileNotFoundError`` naming the problem, having written nothing
    (FileStorage would truncate a file it cannot read, and leave its
    .lock and .tmp beside it)."""
    if os.path.isdir(path):
        raise NotADatabaseError(f'{path}: is a directory, not a database')
    if os.path.exists(path):
        kind = _sniff(path)
        if kind is None:
            raise NotADatabaseError(
                f'{path}: not a ZODB FileStorage or ZConfig file')
        return kind
    if not create:
        raise FileNotFoundError(f'{path}: no such database')
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f'{path}: folder {parent} is missing')
    return 'filestorage'


def _db(target, storage, kw):
    """``ZODB.DB(storage)``, closing the storage if that fails.  ZODB.DB
    writes the root object into an empty database; read-only, it cannot,
    and raises a bare ReadOnlyError: name the problem instead."""
    try:
        return ZODB.DB(storage, **kw)
    except ReadOnlyError:
        storage.close()
        raise _empty(target) from None
    except BaseException:
        storage.close()
        raise


def _empty(target):
    return EmptyDatabaseError(f'{target}: the database is empty (nothing '
                              f'committed yet), so there is nothing to read')


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
    return 'zconfig' if looks_like_config(head) else None


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
    return _db(uri, storage, dbkw)


def _open_zconfig(path, read_only, kw):
    # appendonly's schema: ZODB's <zodb> sections, plus <appendonly>
    # sections after %import appendonly (see appendonly.config).
    config = read_config(path)
    section = config.database[0]
    storage = section.config.storage
    if read_only and storage.config.getSectionType() == 'filestorage':
        # A read-only look at a <filestorage> another process may hold
        # (exclusively, or as the host of a shared path): open it the way
        # open_db(path, read_only=True) does, which locks nothing.
        section.config.storage = _ReadOnlyPath(storage.config.path)
    elif read_only and hasattr(storage.config, 'read_only'):
        storage.config.read_only = True     # <zeoclient>, <relstorage>...
    try:
        db = section.open()
    except ReadOnlyError:       # ZODB.DB, as in _db()
        raise _empty(path) from None
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


class _ReadOnlyPath:
    """Stands in for a ``<filestorage>`` section's factory."""

    def __init__(self, path):
        self.path = path

    def open(self):
        if share.can_share():
            return share.open_storage(self.path, read_only=True)
        return ZODB.FileStorage.FileStorage(self.path, read_only=True)
