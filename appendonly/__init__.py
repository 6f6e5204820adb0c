"""Persistent append-only data structures for ZODB, with conflict resolution.

Compatible with appendonly 1.2: the same public names, and databases written
by 1.2 load (their records name ``appendonly.AppendStack``,
``appendonly.Archive``, ``appendonly._ArchiveLayer`` and
``appendonly.Accumulator``).
"""
from ZODB.POSException import ConflictError

from appendonly._accumulator import Accumulator
from appendonly._activity import ActivityLog
from appendonly._archive import Archive
from appendonly._txn import group_commit
from appendonly._archive import _ArchiveLayer  # noqa: F401  1.2 records
from appendonly._stack import AppendStack
from appendonly._stack import _SealedLayer  # noqa: F401  class path
from appendonly._stack import _Segment  # noqa: F401  class path
from appendonly._stack import _Spine  # noqa: F401  class path
from appendonly.db import open_db

__all__ = [
    'Accumulator',
    'ActivityLog',
    'AppendStack',
    'Archive',
    'ConflictError',
    'group_commit',
    'open_db',
]
