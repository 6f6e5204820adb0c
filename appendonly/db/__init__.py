"""The front door: :func:`open_db` (a path, a zodburi URI, a ZConfig file
or a ``ZODB.DB``) and, within a process, :func:`acquire_db` /
:func:`release_db`.  A path is shared between processes by
:mod:`appendonly.share`."""
from appendonly.db._open import EmptyDatabaseError
from appendonly.db._open import NotADatabaseError
from appendonly.db._open import check_path
from appendonly.db._open import open_db
from appendonly.db._pool import acquire_db
from appendonly.db._pool import release_db
from appendonly.share import DatabaseUnavailableError
from appendonly.share import UntrustedPeerError

__all__ = ['open_db', 'acquire_db', 'release_db', 'check_path',
           'NotADatabaseError', 'EmptyDatabaseError',
           'DatabaseUnavailableError', 'UntrustedPeerError']
