"""Façades: a durable dict and a durable queue on ZODB.

Standalone on a path, URI, ZConfig file or ``ZODB.DB`` (each call commits,
``transaction()`` groups calls), or embedded in an application's own tree
(``DictData`` / ``QueueData`` objects, in the application's transaction).
"""
from appendonly.facades._async import AsyncDictTransaction
from appendonly.facades._async import AsyncDurableDict
from appendonly.facades._async import AsyncDurableQueue
from appendonly.facades._async import AsyncQueueTransaction
from appendonly.facades._dict import DictData
from appendonly.facades._dict import DurableDict
from appendonly.facades._queue import DurableQueue
from appendonly.facades._queue import FlushQueue
from appendonly.facades._queue import QueueData

__all__ = [
    'AsyncDictTransaction',
    'AsyncDurableDict',
    'AsyncDurableQueue',
    'AsyncQueueTransaction',
    'DictData',
    'DurableDict',
    'DurableQueue',
    'FlushQueue',
    'QueueData',
]
