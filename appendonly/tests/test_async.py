"""AsyncDurableDict and AsyncDurableQueue on a real FileStorage: the sync
API's surface as coroutines, transaction() blocks (commit, rollback,
isolation, two consumers), ``async with``, and the event loop's lag under
load."""
import asyncio
import queue
import threading
import time

import pytest
import ZODB.FileStorage
from ZODB.POSException import ConflictError
from ZODB.POSException import ReadOnlyError
from zope.interface.verify import verifyClass
from zope.interface.verify import verifyObject

from appendonly.facades import AsyncDictTransaction
from appendonly.facades import AsyncDurableDict
from appendonly.facades import AsyncDurableQueue
from appendonly.facades import AsyncQueueTransaction
from appendonly.facades import DictData
from appendonly.facades import DurableDict
from appendonly.facades import DurableQueue
from appendonly.facades import QueueData
from appendonly.interfaces import IAsyncDictTransaction
from appendonly.interfaces import IAsyncDurableDict
from appendonly.interfaces import IAsyncDurableQueue
from appendonly.interfaces import IAsyncQueueTransaction


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / 'Data.fs')


def run(coroutine):
    return asyncio.run(coroutine)


# Interfaces and surface

@pytest.mark.parametrize('klass, iface', [
    (AsyncDurableDict, IAsyncDurableDict),
    (AsyncDurableQueue, IAsyncDurableQueue),
    (AsyncDictTransaction, IAsyncDictTransaction),
    (AsyncQueueTransaction, IAsyncQueueTransaction)])
def test_class_conforms(klass, iface):
    assert verifyClass(iface, klass)


def test_instances_conform(path):
    async def main():
        async with AsyncDurableDict(path) as d, \
                AsyncDurableQueue(path) as q:
            assert verifyObject(IAsyncDurableDict, d)
            assert verifyObject(IAsyncDurableQueue, q)
            async with d.transaction() as dtx, q.transaction() as qtx:
                assert verifyObject(IAsyncDictTransaction, dtx)
                assert verifyObject(IAsyncQueueTransaction, qtx)
    run(main())


@pytest.mark.parametrize('klass, iface', [
    (AsyncDurableDict, IAsyncDurableDict),
    (AsyncDurableQueue, IAsyncDurableQueue),
    (AsyncDictTransaction, IAsyncDictTransaction),
    (AsyncQueueTransaction, IAsyncQueueTransaction)])
def test_public_names_are_the_interface(klass, iface, path):
    # Nothing public beyond the contract (``sync_loads`` was, and a
    # ``sync`` façade whose calls block the loop).
    async def main():
        async with AsyncDurableDict(path) as d, \
                AsyncDurableQueue(path) as q:
            facade = d if iface in (IAsyncDurableDict,
                                    IAsyncDictTransaction) else q
            obj = facade.transaction() if 'Transaction' in iface.__name__ \
                else facade
            return {n for n in dir(obj) if not n.startswith('_')}
    assert run(main()) == {n for n in iface.names() if n[0] != '_'}


@pytest.mark.parametrize('klass, data', [(AsyncDurableDict, DictData),
                                         (AsyncDurableQueue, QueueData)])
def test_embedded_data_refused(klass, data):
    with pytest.raises(TypeError, match='needs a database'):
        klass(data())


# AsyncDurableDict, outside transactions

def test_dict_every_method(path):
    async def main():
        d = AsyncDurableDict(path, 'd')
        await d.set('a', 1)
        await d.update({'b': 2}, c=3)
        assert await d.get('a') == 1
        assert await d.get('zz', 'none') == 'none'
        assert await d.contains('b') and not await d.contains('zz')
        assert await d.len() == 3
        assert await d.keys() == ['a', 'b', 'c']
        assert await d.values() == [1, 2, 3]
        assert await d.items() == [('a', 1), ('b', 2), ('c', 3)]
        assert await d.copy() == {'a': 1, 'b': 2, 'c': 3}
        assert [k async for k in d] == ['a', 'b', 'c']
        assert await d.setdefault('a', 9) == 1
        assert await d.setdefault('e', 5) == 5
        assert await d.pop('e') == 5
        assert await d.pop('e', 'gone') == 'gone'
        with pytest.raises(KeyError):
            await d.pop('e')
        assert await d.popitem() == ('c', 3)
        await d.delete('b')
        with pytest.raises(KeyError):
            await d.delete('b')
        assert await d.items() == [('a', 1)]
        await d.clear()
        assert await d.len() == 0
        await d.set(('k', 1), {'x': [1]})
        await d.close()
        await d.close()             # twice: nothing
    run(main())
    with DurableDict(path, 'd') as sync:    # durable, for everyone
        assert dict(sync.items()) == {('k', 1): {'x': [1]}}


def test_dict_bad_input_changes_nothing(path):
    async def main():
        async with AsyncDurableDict(path, 'd') as d:
            await d.set('a', 1)
            with pytest.raises(TypeError, match='keys must be'):
                await d.set(1.5, 'x')
            with pytest.raises(TypeError, match='cannot store'):
                await d.set('b', threading.Lock())
            with pytest.raises(TypeError, match='cannot store'):
                await d.update({'c': 3, 'd': threading.Lock()})
            assert await d.items() == [('a', 1)]
    run(main())


def test_readonly_dict_refuses_writes(path):
    with DurableDict(path, 'd') as sync:
        sync['a'] = 1

    async def main():
        async with AsyncDurableDict(path, 'd', readonly=True) as d:
            assert await d.get('a') == 1
            with pytest.raises(ReadOnlyError):
                await d.set('b', 2)
            async with d.transaction() as tx:
                with pytest.raises(ReadOnlyError):
                    tx.set_nowait('b', 2)
    run(main())


def test_open_errors_raise_at_first_use_and_retry(path):
    async def main():
        d = AsyncDurableDict(path, 'missing', readonly=True)  # no blocking
        with pytest.raises(KeyError, match="no dict named 'missing'"):
            await d.get('a')
        with pytest.raises(KeyError, match="no dict named 'missing'"):
            async with d:
                pass
        with DurableDict(path, 'missing') as sync:
            sync['a'] = 1
        assert await d.get('a') == 1    # a later call opens it
        await d.close()
    with DurableDict(path, 'other'):
        pass                            # creates the file
    run(main())


# ``async with`` closes

def test_async_with_closes_and_releases_the_file(path):
    async def main():
        async with AsyncDurableDict(path, 'd') as d, \
                AsyncDurableQueue(path, 'q') as q:
            await d.set('a', 1)
            await q.put('x')
        return d, q
    d, q = run(main())

    async def after():
        with pytest.raises(ValueError, match="dict 'd' is closed"):
            await d.get('a')
        with pytest.raises(ValueError, match="queue 'q' is closed"):
            await q.qsize()
    run(after())
    # The database was closed, so its lock is free (flock: held per open
    # file, a second open in this process would fail while it is held).
    storage = ZODB.FileStorage.FileStorage(path)
    storage.close()


# Dict transactions

def test_dict_transaction_commits(path):
    async def main():
        async with AsyncDurableDict(path, 'd') as d:
            await d.set('gone', 0)
            async with d.transaction() as tx:
                tx.set_nowait('a', 1)
                tx.set_nowait('b', [2])
                tx.delete_nowait('gone')
                tx.delete_nowait('never there')     # no error
                assert await tx.pop('a') == 1
                assert await tx.pop('a', 'x') == 'x'
                tx.set_nowait('a', 10)
            return await d.items()
    assert run(main()) == [('b', [2]), ('a', 10)]
    with DurableDict(path, 'd') as sync:
        assert sync.items() == [('b', [2]), ('a', 10)]


def test_dict_transaction_rolls_back_on_exception(path):
    async def main():
        async with AsyncDurableDict(path, 'd') as d:
            await d.update(a=1, b=2)
            before = await d.items()
            with pytest.raises(RuntimeError):
                async with d.transaction() as tx:
                    tx.set_nowait('a', 100)
                    tx.set_nowait('new', 3)
                    tx.delete_nowait('b')
                    assert await tx.pop('a') == 100
                    raise RuntimeError('changed my mind')
            assert await d.items() == before
    run(main())


def test_dict_transaction_rolls_back_when_cancelled(path):
    async def main():
        async with AsyncDurableDict(path, 'd') as d:
            await d.set('a', 1)
            inside = asyncio.Event()

            async def block():
                async with d.transaction() as tx:
                    tx.set_nowait('a', 2)
                    await tx.get('a')
                    inside.set()
                    await asyncio.sleep(30)
            task = asyncio.ensure_future(block())
            await inside.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await d.items() == [('a', 1)]
    run(main())


def test_tx_get_sees_own_writes_others_do_not(path):
    async def main():
        async with AsyncDurableDict(path, 'd') as d:
            await d.set('k', 'old')
            sync = DurableDict(path, 'd')
            async with d.transaction() as tx:
                tx.set_nowait('k', 'new')
                tx.set_nowait('added', 1)
                assert await tx.get('k') == 'new'
                assert await tx.get('added') == 1
                # Not the block's: the dict outside it, and a sync reader
                # in another thread.
                assert await d.get('k') == 'old'
                assert await d.get('added') is None
                assert await asyncio.to_thread(sync.get, 'k') == 'old'
            assert await d.get('k') == 'new'
            assert await asyncio.to_thread(sync.get, 'added') == 1
            await asyncio.to_thread(sync.close)
    run(main())


def test_tx_bad_input_raises_at_the_call_and_block_goes_on(path):
    async def main():
        async with AsyncDurableDict(path, 'd') as d:
            async with d.transaction() as tx:
                tx.set_nowait('a', 1)
                with pytest.raises(TypeError, match='keys must be'):
                    tx.set_nowait(1.5, 'x')
                with pytest.raises(TypeError, match='cannot store'):
                    tx.set_nowait('b', threading.Lock())
                with pytest.raises(TypeError, match='keys must be'):
                    tx.delete_nowait(None)
                with pytest.raises(KeyError):
                    await tx.pop('absent')
            assert await d.items() == [('a', 1)]
    run(main())


def test_tx_used_outside_its_block_refused(path):
    async def main():
        async with AsyncDurableDict(path, 'd') as d:
            block = d.transaction()
            with pytest.raises(RuntimeError, match='inside its async with'):
                block.set_nowait('a', 1)
            async with block as tx:
                pass
            with pytest.raises(RuntimeError, match='inside its async with'):
                await tx.get('a')
            with pytest.raises(RuntimeError, match='entered once'):
                async with block:
                    pass
            assert await d.len() == 0
    run(main())


def test_concurrent_blocks_on_one_key_conflict(path):
    # Two blocks that write the same key: the second commit raises
    # ConflictError, as the sync transaction() does, and changes nothing.
    async def main():
        async with AsyncDurableDict(path, 'd') as d:
            await d.set('k', 0)
            first, second = d.transaction(), d.transaction()
            tx1 = await first.__aenter__()
            tx2 = await second.__aenter__()
            assert await tx1.get('k') == await tx2.get('k') == 0
            tx1.set_nowait('k', 1)
            tx2.set_nowait('k', 2)
            await first.__aexit__(None, None, None)
            with pytest.raises(ConflictError):
                await second.__aexit__(None, None, None)
            assert await d.get('k') == 1
    run(main())


# AsyncDurableQueue, outside transactions

def test_queue_every_method(path):
    async def main():
        q = AsyncDurableQueue(path, 'q', maxsize=2)
        assert (q.name, q.maxsize) == ('q', 2)
        assert await q.empty() and not await q.full()
        await q.put('a')
        await q.put_nowait('b')
        assert await q.full() and await q.qsize() == 2
        with pytest.raises(queue.Full):
            await q.put_nowait('c')
        with pytest.raises(queue.Full):
            await q.put('c', timeout=0.05)
        with pytest.raises(queue.Full):
            await q.put('c', block=False)
        assert await q.get() == 'a'
        assert await q.get_nowait() == 'b'
        with pytest.raises(queue.Empty):
            await q.get_nowait()
        with pytest.raises(queue.Empty):
            await q.get(timeout=0.05)
        with pytest.raises(queue.Empty):
            await q.get(block=False)
        with pytest.raises(ValueError, match='non-negative'):
            await q.get(timeout=-1)
        await q.task_done()
        joining = asyncio.ensure_future(q.join())
        await asyncio.sleep(0.1)
        assert not joining.done()       # one task still unfinished
        await q.task_done()
        await asyncio.wait_for(joining, 5)
        with pytest.raises(ValueError, match='too many'):
            await q.task_done()
        with pytest.raises(TypeError, match='cannot store'):
            await q.put(threading.Lock())
        assert await q.empty()
        await q.close()
    run(main())


def test_queue_maxsize_as_the_sync_queue_resolves_it(path):
    async def main():
        q = AsyncDurableQueue(path, 'q')
        assert q.maxsize is None        # as configured: not opened yet
        async with q:
            assert q.maxsize == 0       # nothing configured: no limit
            for n in range(3):
                await q.put_nowait(n)
            assert not await q.full()
    run(main())


def test_queue_waits_without_blocking_the_loop(path):
    async def main():
        async with AsyncDurableQueue(path, 'q', maxsize=1) as q:
            getter = asyncio.ensure_future(q.get(timeout=5))
            await asyncio.sleep(0.05)
            assert not getter.done()        # the loop runs meanwhile
            await q.put('item')
            assert await getter == 'item'
            await q.put('fill')
            putter = asyncio.ensure_future(q.put('next', timeout=5))
            await asyncio.sleep(0.05)
            assert not putter.done()
            assert await q.get() == 'fill'
            await putter
            assert await q.get() == 'next'
    run(main())


def test_cancelled_get_loses_nothing(path):
    async def main():
        async with AsyncDurableQueue(path, 'q') as q:
            waiting = asyncio.ensure_future(q.get())
            await asyncio.sleep(0.05)
            waiting.cancel()
            await q.put('kept')
            with pytest.raises(asyncio.CancelledError):
                await waiting
            assert await q.get(timeout=1) == 'kept'
            # Cancelled while the thread takes an item: it goes back.
            for item in range(20):
                await q.put(item)
            for _ in range(20):
                getting = asyncio.ensure_future(q.get())
                await asyncio.sleep(0)
                getting.cancel()
                try:
                    await getting
                except asyncio.CancelledError:
                    pass
                else:
                    await q.put_nowait(getting.result())
            assert sorted([await q.get_nowait() for _ in range(20)]) == \
                list(range(20))
    run(main())


# Queue transactions

def test_queue_transaction_commits_and_rolls_back(path):
    async def main():
        async with AsyncDurableQueue(path, 'q') as q:
            for job in ['a', 'b']:
                await q.put(job)
            before = await q.qsize()
            with pytest.raises(RuntimeError):
                async with q.transaction() as tx:
                    assert await tx.get_nowait() == 'a'
                    tx.put_nowait('c')
                    tx.task_done()
                    assert await tx.qsize() == 2
                    raise RuntimeError('worker crashed')
            assert await q.qsize() == before
            async with q.transaction() as tx:
                assert await tx.get_nowait() == 'a'
                assert await tx.get_nowait() == 'b'
                with pytest.raises(queue.Empty):
                    await tx.get_nowait()
                tx.put_nowait('c')
                tx.task_done()
                tx.task_done()
                assert await q.qsize() == 2     # not seen outside yet
            assert await q.get_nowait() == 'c'
            await q.task_done()
            await asyncio.wait_for(q.join(), 5)
    run(main())


def test_queued_write_failure_fails_the_block(path):
    async def main():
        async with AsyncDurableQueue(path, 'q', maxsize=1) as q:
            await q.put('only')
            with pytest.raises(queue.Full):
                async with q.transaction() as tx:
                    tx.put_nowait('x')      # full: known on the thread
            with pytest.raises(queue.Full):
                async with q.transaction() as tx:
                    tx.put_nowait('x')
                    await tx.qsize()        # raised by the next await
            with pytest.raises(ValueError, match='too many'):
                async with q.transaction() as tx:
                    assert await tx.get_nowait() == 'only'
                    tx.task_done()
                    tx.task_done()          # one more than was put
            # Each block rolled back whole.
            assert await q.qsize() == 1
            assert await q.get_nowait() == 'only'
    run(main())


def test_two_consumers_in_transactions_deliver_exactly_once(path):
    items = list(range(60))

    async def consumer(q, got, conflicts):
        while True:
            try:
                async with q.transaction() as tx:
                    item = await tx.get_nowait()
                    await asyncio.sleep(0.002)  # the other one runs
                    tx.task_done()
            except ConflictError:
                conflicts.append(1)     # the other took it: next one
                continue
            except queue.Empty:
                return
            got.append(item)

    async def main():
        async with AsyncDurableQueue(path, 'jobs') as q:
            for item in items:
                await q.put(item)
            got, conflicts = [], []
            await asyncio.gather(consumer(q, got, conflicts),
                                 consumer(q, got, conflicts))
            await asyncio.wait_for(q.join(), 5)    # each task done once
            return got, conflicts
    got, conflicts = run(main())
    assert sorted(got) == items         # every item, none twice
    assert conflicts                    # they did race for the head
    with DurableQueue(path, 'jobs') as sync:
        assert sync.qsize() == 0


# The event loop under load

def test_event_loop_lag_under_load(path):
    """The loop keeps its 1 ms ticks (p99 lag < 50 ms) while tasks put,
    get, set and run transactions for about 2.5 s."""
    duration = 2.5
    lags = []

    async def ticker(stop):
        while not stop.is_set():
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - start - 0.001)

    async def producer(q, stop):
        n = 0
        while not stop.is_set():
            await q.put({'n': n, 'payload': 'x' * 500})
            n += 1

    async def consumer(q, stop):
        while not stop.is_set():
            try:
                await q.get(timeout=0.1)
            except queue.Empty:
                pass

    async def setter(d, stop):
        n = 0
        while not stop.is_set():
            await d.set(n % 200, list(range(50)))
            n += 1

    async def transactions(d, stop):
        n = 0
        while not stop.is_set():
            try:
                async with d.transaction() as tx:
                    for i in range(5):
                        tx.set_nowait(('tx', n, i), 'v' * 200)
                    await tx.get(('tx', n, 0))
            except ConflictError:
                continue        # the setter split a bucket: again
            n += 1

    async def main():
        async with AsyncDurableDict(path, 'd') as d, \
                AsyncDurableQueue(path, 'q') as q:
            stop = asyncio.Event()
            tasks = [asyncio.ensure_future(f) for f in [
                ticker(stop), producer(q, stop), producer(q, stop),
                consumer(q, stop), setter(d, stop), transactions(d, stop)]]
            await asyncio.sleep(duration)
            stop.set()
            await asyncio.gather(*tasks)
            return await d.len()
    written = run(main())
    assert written > 0
    lags.sort()
    p99 = lags[int(len(lags) * 0.99)]
    p50, worst = lags[len(lags) // 2], lags[-1]
    print(f'\nloop lag over {len(lags)} ticks: p50 {p50 * 1e3:.2f} ms, '
          f'p99 {p99 * 1e3:.2f} ms, max {worst * 1e3:.2f} ms')
    assert p99 < 0.050
