"""The key/value Storage contract, on ZODB and on SQLite.

Named containers of string key/value pairs, with transactions and
reader/writer isolation, as documented for ``caterpillar.storage``:
:class:`IStorage` (and the abstract base :class:`Storage`) is the contract,
:class:`ZODBStorage` keeps the containers under one key of a ZODB root (an
embedded FileStorage, ZEO, RelStorage...), and
:class:`~appendonly.storage.sqlite.SqliteStorage` is the SQLite
implementation the contract was written for.
"""
from appendonly.storage._base import ContainerNotFoundError
from appendonly.storage._base import DuplicateContainerError
from appendonly.storage._base import DuplicateStorageError
from appendonly.storage._base import IStorage
from appendonly.storage._base import NotAStorageError
from appendonly.storage._base import ReadOnlyStorageError
from appendonly.storage._base import Storage
from appendonly.storage._base import StorageConflictError
from appendonly.storage._base import StorageError
from appendonly.storage._base import StorageNotFoundError
from appendonly.storage._base import StorageThreadError
from appendonly.storage._base import StorageUnavailableError
from appendonly.storage._zodb import ZODBStorage
from appendonly.storage.sqlite import SqliteStorage

__all__ = [
    'ContainerNotFoundError',
    'DuplicateContainerError',
    'DuplicateStorageError',
    'IStorage',
    'NotAStorageError',
    'ReadOnlyStorageError',
    'SqliteStorage',
    'Storage',
    'StorageConflictError',
    'StorageError',
    'StorageNotFoundError',
    'StorageThreadError',
    'StorageUnavailableError',
    'ZODBStorage',
]
