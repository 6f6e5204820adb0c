"""asyncio variants: the blocking work runs in worker threads (each with
its own connection), so the event loop never waits on the database."""
import asyncio
import queue
import time

from appendonly.facades._dict import DurableDict
from appendonly.facades._queue import DurableQueue
from appendonly.facades._queue import QueueData


class AsyncDurableDict:
    """``await d.get(key)``, ``await d.set(key, value)``, ... over a
    DurableDict (same arguments)."""

    def __init__(self, *args, **kw):
        self.sync = DurableDict(*args, **kw)

    async def get(self, key, default=None):
        return await asyncio.to_thread(self.sync.get, key, default)

    async def set(self, key, value):
        await asyncio.to_thread(self.sync.__setitem__, key, value)

    async def delete(self, key):
        await asyncio.to_thread(self.sync.__delitem__, key)

    async def pop(self, key, *default):
        return await asyncio.to_thread(self.sync.pop, key, *default)

    async def keys(self):
        return await asyncio.to_thread(self.sync.keys)

    async def items(self):
        return await asyncio.to_thread(self.sync.items)

    async def len(self):
        return await asyncio.to_thread(len, self.sync)

    async def close(self):
        await asyncio.to_thread(self.sync.close)


class AsyncDurableQueue:
    """``await q.put(item)``, ``await q.get()`` over a DurableQueue (same
    arguments).

    ``get`` polls with non-blocking gets, so cancelling it never leaves a
    worker thread blocked; an item taken by a get that was cancelled
    meanwhile goes back to the head of the queue.
    """

    def __init__(self, *args, **kw):
        self.sync = DurableQueue(*args, **kw)

    async def put(self, item, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                return await asyncio.to_thread(self.sync.put_nowait, item)
            except queue.Full:
                await self._pause(deadline, queue.Full)

    async def get(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            task = asyncio.ensure_future(
                asyncio.to_thread(self.sync._run, QueueData.get_pickled,
                                  True))
            try:
                data = await asyncio.shield(task)
            except queue.Empty:
                await self._pause(deadline, queue.Empty)
                continue
            except asyncio.CancelledError:
                try:
                    data = await task
                except queue.Empty:
                    raise asyncio.CancelledError from None
                await asyncio.to_thread(
                    self.sync._run,
                    lambda q: q.unget_pickled(data), True)
                raise
            return self.sync_loads(data)

    @staticmethod
    def sync_loads(data):
        import pickle
        return pickle.loads(data)

    async def _pause(self, deadline, empty_or_full):
        if deadline is not None and time.monotonic() >= deadline:
            raise empty_or_full
        await asyncio.sleep(self.sync.poll_interval)

    async def qsize(self):
        return await asyncio.to_thread(self.sync.qsize)

    async def task_done(self):
        await asyncio.to_thread(self.sync.task_done)

    async def join(self):
        await asyncio.to_thread(self.sync.join)

    async def close(self):
        await asyncio.to_thread(self.sync.close)
