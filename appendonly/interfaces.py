"""Contracts for the public classes of :mod:`appendonly`.

Implementations say "See IFoo" and keep the contract here.
"""
from persistent.interfaces import IPersistent
from zope.interface import Attribute
from zope.interface import Interface


class IAppendStack(IPersistent):
    """A LIFO stack of items, kept in a bounded window of layers.

    - Items are appended to the newest layer until it holds ``max_length``
      items; the next push then starts a new layer, whose generation is one
      more than the previous newest layer's.

    - When the stack holds more than ``max_layers`` layers, ``push`` removes
      the oldest ones and hands each to its ``pruner``, oldest first, exactly
      once.

    - Every item has a position ``(generation, index)``; positions strictly
      decrease along iteration, and a later push always gets a greater
      position than every item already committed.

    - Concurrent pushes from different transactions merge during ZODB
      conflict resolution: no item is lost or duplicated, each transaction's
      items stay contiguous and in push order.  When a merge cannot be
      proven safe, the commit raises ``ConflictError`` and a retry of the
      transaction succeeds.

    - A merge may leave more than ``max_layers`` layers in the stack (the
      resolver cannot call the pruner); the next ``push`` prunes them.
    """

    _max_layers = Attribute(
        "The number of layers kept before pruning (read / write).")

    _max_length = Attribute(
        "The number of items per layer (read / write).")

    def __iter__():
        """Yield ``(generation, index, obj)``, newest first."""

    def __len__():
        """Return the number of items currently held (not pruned)."""

    def newer(latest_gen, latest_index):
        """Yield ``(generation, index, obj)`` newer than the position given.

        Newest first; stops at the first item whose position is less than or
        equal to ``(latest_gen, latest_index)``.  A reader that remembers the
        newest position it has seen and polls ``newer`` sees every committed
        item exactly once (as long as the item has not been pruned yet).
        """

    def push(obj, pruner=None):
        """Append ``obj`` to the stack.

        If layers must be pruned (including surplus layers left by an
        earlier conflict resolution), call ``pruner(generation, items)`` for
        each, oldest first; ``items`` is a list in push order.  Without a
        pruner, pruned layers are discarded.
        """


class IArchive(IPersistent):
    """Layers pruned from an :class:`IAppendStack`, as a linked list.

    Each layer is stored in its own record, so adding one writes only that
    layer and a small head record.  Concurrent transactions that archive the
    same layers (the usual ``stack.push(obj, archive.addLayer)`` pattern)
    merge without a conflict.
    """

    _generation = Attribute(
        "The generation of the newest archived layer (-1 when empty).")

    def __iter__():
        """Yield ``(generation, index, obj)``, newest first."""

    def addLayer(generation, items):
        """Archive ``items`` (a sequence in push order) as ``generation``.

        ``generation`` must be greater than every archived generation, or
        the call does nothing: re-adding an already archived generation is
        harmless.  Use it as an ``IAppendStack.push`` pruner.
        """


class IAccumulator(IPersistent):
    """A list of pending items that is appended to and consumed as a whole.

    - ``append`` / ``extend`` add items at the end.

    - ``consume`` returns every item and empties the accumulator.

    - Concurrent appends merge.  Consumption is exactly-once: two
      transactions that both consumed items conflict (the loser retries and
      sees what is left), and items appended concurrently with a
      ``consume`` are kept for the next one.
    """

    def __iter__():
        """Iterate over the pending items, oldest first."""

    def __len__():
        """Return the number of pending items."""

    def append(obj):
        """Add ``obj`` at the end."""

    def extend(objs):
        """Add every item of the iterable ``objs`` at the end."""

    def consume():
        """Return a list of all pending items, oldest first, and clear."""


class IDictData(IPersistent):
    """The persistent data behind a durable dict: a mutable mapping that
    can live anywhere in an application's tree.

    Keys are str, bytes, int or tuples of those (anything else raises
    TypeError before anything changes); values are stored pickled, so they
    come back as copies and an unpicklable value raises TypeError at
    once.  Iteration follows insertion order; overwriting keeps a key's
    place.  Concurrent writers of different keys merge; writers of the same
    key conflict (and retry).
    """

    def __getitem__(key):
        """Return a copy of the value stored for ``key``."""

    def __setitem__(key, value):
        """Store ``value`` for ``key``."""

    def __delitem__(key):
        """Remove ``key``; KeyError if absent."""

    def __iter__():
        """Iterate over the keys in insertion order."""

    def __len__():
        """Return the number of keys."""

    def snapshot():
        """Return ``[(key, value), ...]`` in insertion order."""


class IDurableDict(Interface):
    """A ``collections.abc.MutableMapping`` kept in ZODB.

    ``DurableDict(target, name='default', *, readonly=False,
    attempts=100)``: ``target``
    is anything :func:`appendonly.db.open_db` accepts (the dict is kept
    under ``name`` in the database's root, next to other dicts and queues),
    or an :class:`IDictData` in the application's own tree (then the dict
    joins the application's transaction and never commits by itself).

    Standalone, every call is durable when it returns (one commit each,
    ConflictErrors retried); ``pop``, ``popitem``, ``setdefault`` and
    ``update`` are atomic.  Safe to share between threads (one connection
    per thread).  ``keys()``, ``values()`` and ``items()`` return lists, a
    consistent snapshot.  Same rules for keys and values as
    :class:`IDictData`.  ``readonly=True`` refuses every write with
    ``ZODB.POSException.ReadOnlyError`` and opens the storage read-only.
    """

    def transaction():
        """Context manager: the calls made in the block (in this thread)
        commit together at its end, or are all rolled back if it raises."""

    def close():
        """Close the connections, and the database if this dict opened
        it."""


class IQueueData(IPersistent):
    """The persistent data behind a durable queue (FIFO)."""

    def put(item):
        """Add ``item`` (pickled now) at the tail."""

    def get():
        """Remove and return the head item; ``queue.Empty`` if none."""

    def qsize():
        """Return the number of items."""

    def task_done():
        """Count one task done; ValueError if none is unfinished."""

    def unfinished():
        """Return the number of puts not yet matched by task_done()."""


class IDurableQueue(Interface):
    """The ``queue.Queue`` API kept in ZODB, delivering every item once.

    ``DurableQueue(target, name='default', maxsize=None, *, readonly=False,
    attempts=100)``, ``target`` as for :class:`IDurableDict` (or an
    :class:`IQueueData`).  ``maxsize`` None: the ``maxsize`` of the
    ``<appendonly NAME>`` section when ``target`` is a ZConfig file that
    has one, else 0 (no limit).  ``attempts``: how many times one call is tried
    when it conflicts (with a short random back-off in between) before its
    ConflictError reaches the caller; many consumers racing for the head of
    one queue may want more.
    Besides the methods below: ``put_nowait``, ``get_nowait``, ``qsize``,
    ``empty``, ``full``, ``maxsize``, ``close()`` and use as a context
    manager.  Concurrent puts merge; two gets of the same item conflict and
    the loser retries and takes the next one.  Every item is delivered
    once; each producer's items come out in the order it put them.
    """

    def put(item, block=True, timeout=None):
        """Add ``item``; with ``maxsize``, wait for room (``queue.Full``
        after ``timeout``, or at once if not ``block``).  An unpicklable
        item raises TypeError and changes nothing."""

    def get(block=True, timeout=None):
        """Remove and return the oldest item, waiting for one if needed
        (``queue.Empty`` after ``timeout``, or at once if not ``block``).
        A put by another thread or process wakes the wait within about
        ``poll_interval`` (20 ms), without reading the disk."""

    def task_done():
        """Mark one item as processed (counted in the database, so across
        processes)."""

    def join():
        """Block until every item put has been marked done."""

    def transaction():
        """Context manager: gets and puts in the block commit together.  If
        the block raises, the items it got are back at the head of the
        queue and its puts never happened."""


class IActivityLog(IPersistent):
    """An activity feed for the Pyramid add-on: an AppendStack (``stack``)
    and the Archive it prunes into (``archive``)."""

    stack = Attribute('The IAppendStack holding the recent entries.')

    archive = Attribute('The IArchive holding the pruned ones.')

    def append(entry):
        """Add ``entry``; concurrent appends merge."""

    def __iter__():
        """Yield ``(generation, index, entry)``, newest first, stack then
        archive."""

    def newer(generation, index, limit=None):
        """Entries after the position, oldest first, at most ``limit``."""


class IStorage(Interface):
    """Named containers of string key/value pairs, with transactions and
    reader/writer isolation.

    ``Storage(path, create=False, readonly=False, thread_timeout=30.0)``:
    ``create=True`` where a storage already exists raises
    :class:`DuplicateStorageError`; opening a
    path with no storage without ``create`` raises
    :class:`StorageNotFoundError` (and creates nothing); a path holding
    something that is not a database raises :class:`NotAStorageError` and
    is left byte for byte as it was.  ``readonly=True`` refuses every write
    with :class:`ReadOnlyStorageError`.

    Container ids, keys and values are coerced with ``str()``.  Every
    container operation on an absent container raises
    :class:`ContainerNotFoundError`.  Keys come out in key order (code
    point order of the strings).

    Transactions: outside ``begin()`` / ``commit()`` each call is a
    transaction of its own, committed (durable) when it returns.  Inside,
    writes are invisible to every other instance, in this process or
    another, until ``commit()``; ``begin()`` pins the snapshot the
    transaction reads, even before its first read, so it does not see
    commits made after it began.  Instances that begin afterwards, and new
    instances, see them.  A transaction that conflicts with a concurrent
    one raises :class:`StorageConflictError` and is rolled back; one that
    loses its database (a ZEO client disconnected from its server) raises
    :class:`StorageUnavailableError`.  Either error, raised by a call
    between ``begin()`` and ``commit()``, dooms the transaction: it is
    rolled back at once, every later call raises the same class, and
    ``rollback()`` ends it, after which the instance is usable again.
    These errors are chained (``__cause__``) to the database's own
    (``ZODB.POSException.ConflictError``,
    ``ZEO.Exceptions.ClientDisconnected``...).

    Threads: an instance may be shared by threads.  ``begin()`` reserves it
    for the calling thread, the transaction's owner, until ``commit()`` or
    ``rollback()``; other threads' calls wait meanwhile, at most
    ``thread_timeout`` seconds (a constructor argument and an attribute,
    30 by default), then raise :class:`StorageThreadError` naming the
    owner thread (its name and ident).  ``commit()``, ``rollback()`` and
    ``close()`` from a thread other than the owner raise
    :class:`StorageThreadError` at once, and change nothing: the
    transaction stays open for its owner to end.  Threads that need
    transactions of their own at the same time open an instance each.
    Instances are context managers that close on exit.
    """

    readonly = Attribute('True if opened with ``readonly=True``.')

    def add_container(c_id):
        """Add an empty container ``c_id``; :class:`DuplicateContainerError`
        if it exists."""

    def delete_container(c_id):
        """Delete container ``c_id`` and its items;
        :class:`ContainerNotFoundError` if absent."""

    def clear_container(c_id):
        """Delete every item of container ``c_id`` (the container stays)."""

    def clear():
        """Delete every container."""

    def get_container_len(c_id):
        """Return the number of items in container ``c_id``."""

    def get_container_keys(c_id):
        """Return a generator of the keys of container ``c_id``, in key
        order, read in one snapshot when called."""

    def get_container_item(c_id, key):
        """Return the value stored at ``key``; ``KeyError`` if absent."""

    def get_container_items(c_id, keys=None):
        """Return a generator of ``(key, value)`` pairs, read in one
        snapshot when called.

        ``keys=None``: every item, in key order.  Otherwise one pair per
        key given, in the order given; an absent key yields
        ``(key, None)``.
        """

    def set_container_item(c_id, key, value):
        """Store ``value`` at ``key`` (adding or replacing it)."""

    def set_container_items(c_id, items):
        """Store many pairs at once: ``items`` is a dict or any iterable
        of ``(key, value)`` pairs."""

    def delete_container_item(c_id, key):
        """Delete the item at ``key``; an absent key is a silent no-op."""

    def delete_container_items(c_id, keys):
        """Delete the items at ``keys``; absent keys are silently
        skipped."""

    def begin():
        """Begin a transaction and pin its snapshot; reserve this instance
        for the calling thread until it ends.  :class:`StorageError` if a
        transaction is already open; waits for another thread's (see
        Threads above)."""

    def commit():
        """Commit the open transaction: durable when this returns.  Does
        nothing without one.  :class:`StorageConflictError` (rolled back)
        if it conflicts with a concurrent commit; the error that doomed
        the transaction, if one did (rolled back already).
        :class:`StorageThreadError` if another thread owns the
        transaction."""

    def rollback():
        """Discard the open transaction's writes, and end it (a doomed one
        too).  Does nothing without one.  :class:`StorageThreadError` if
        another thread owns the transaction."""

    def transaction():
        """Context manager: ``begin()``, then ``commit()`` at the end of the
        block, or ``rollback()`` if the block raises."""

    def close():
        """Roll back an open transaction and release every resource; the
        instance is unusable afterwards (:class:`StorageError`).  Closing
        twice does nothing.  :class:`StorageThreadError`, and nothing
        closed, if another thread owns the open transaction."""


class IGroupCommit(Interface):
    """The autocommit writes of one database (``appendonly.group_commit(db)``
    returns it): every façade call and Storage single write that is not
    inside an explicit transaction goes here.  Operations that arrive while
    a commit is under way are applied together in the next transaction;
    each caller returns once that transaction is durable."""

    linger = Attribute(
        """Seconds a commit waits, at most, for the threads that called
        in the last 10 ms to queue their next operation (default 0.0005):
        with the GIL they cannot queue while a commit computes.  A lone
        caller never waits.  0 turns the wait off: batches then form only
        while a commit is under way.""")

    def run(func, attempts=100):
        """Apply ``func(state)`` (``state.conn``: the committing
        connection) in the next transaction and return its result once
        that transaction is durable.  ``func`` raising fails this
        operation alone (the others are applied without it); conflicts
        are retried, up to ``attempts`` tries; a transaction whose commit
        failed in its second phase is looked for before it is retried, so
        nothing is applied twice."""


class IActivityLogHolder(Interface):
    """A marker for content that keeps an activity log in its
    ``activity_log`` attribute (its own, not acquired).  The Zope add-on
    (``appendonly/configure.zcml``) adapts it to :class:`IActivityLog` and
    registers the feed view ``@@appendonly-feed`` for it."""

    activity_log = Attribute('The IActivityLog of this object.')


class IActivityFeedView(Interface):
    """The Zope browser view ``@@appendonly-feed``: the entries of the
    context's activity log newer than the client's cursor, as JSON.

    ``GET .../@@appendonly-feed?gen=G&index=I`` returns ``{"entries":
    [[gen, index, entry], ...], "cursor": [gen, index]}``, oldest first,
    at most ``limit``: the oldest entries after the cursor (``-1, -1`` is
    the start of the log), or without ``gen`` and ``index`` the newest
    ones; ``cursor`` is what to send next time.  Cursors are read as the
    Pyramid add-on's feed reads them: both parameters, once each,
    integers from -1 to ``2**63 - 1``; anything else is answered with
    status 400 and ``{"error": "..."}`` naming the parameter."""

    limit = Attribute('The most entries one response carries (1000).')

    def __call__():
        """Return the JSON text of the response (and set its status and
        Content-Type)."""


class IAsyncDurableDict(Interface):
    """An :class:`IDurableDict` for asyncio: every call that touches the
    database is a coroutine run in a worker thread, so the event loop never
    waits on the database.

    ``AsyncDurableDict(target, name='default', *, readonly=False,
    attempts=100)``: ``target`` as for :class:`IDurableDict`, but not an
    :class:`IDictData` (TypeError: an embedded dict belongs to the
    application's thread and transaction).  The database is opened in a
    thread by the first call, or by ``async with AsyncDurableDict(...) as
    d:``, which also closes it at the end of the block; an opening error
    (a read-only dict that does not exist, say) is raised there.

    Each call commits as the sync dict's does: durable when it returns,
    ConflictErrors retried; same rules for keys and values.  ``d[key]``
    has no async spelling: ``await d.get(key)``, ``await d.contains(key)``.
    ``async for key in d`` iterates over the keys of one snapshot.
    """

    name = Attribute('The name the dict is kept under.')

    async def get(key, default=None):
        """Return a copy of the value for ``key``, or ``default``."""

    async def set(key, value):
        """Store ``value`` for ``key`` (``d[key] = value``)."""

    async def delete(key):
        """Remove ``key`` (``del d[key]``); KeyError if absent."""

    async def contains(key):
        """Return whether ``key`` is in the dict (``key in d``)."""

    async def len():
        """Return the number of keys (``len(d)``)."""

    async def pop(key, *default):
        """Remove ``key`` and return its value, atomically; KeyError if
        absent and no default is given."""

    async def popitem():
        """Remove and return the last inserted ``(key, value)``."""

    async def setdefault(key, default=None):
        """Return the value for ``key``, storing ``default`` first if the
        key is absent, atomically."""

    async def update(other=(), **kw):
        """Store every pair, in one commit."""

    async def clear():
        """Remove every key."""

    async def keys():
        """Return a list of the keys, in insertion order."""

    async def values():
        """Return a list of the values, in the keys' order."""

    async def items():
        """Return a list of the ``(key, value)`` pairs, in order."""

    async def copy():
        """Return a plain ``dict`` of the items."""

    def transaction():
        """Return an :class:`IAsyncDictTransaction`, to use as ``async with
        d.transaction() as tx:``."""

    async def close():
        """Close the dict, and the database if this dict opened it; later
        calls raise ValueError.  Closing twice does nothing."""

    def __aiter__():
        """``async for key in d``: the keys of one snapshot, in order."""

    async def __aenter__():
        """Open the dict (in a thread) and return it."""

    async def __aexit__(exc_type, exc, tb):
        """Close the dict."""


class IAsyncDictTransaction(Interface):
    """One transaction on an :class:`IAsyncDurableDict`:
    ``async with d.transaction() as tx:``.

    The block's operations go through ``tx`` and run, in order, on a thread
    and a connection of its own.  They commit together when the block ends
    without error; if it raises (or is cancelled) they are all rolled back.
    Reads through ``tx`` see the block's own writes; nobody else sees them
    before the commit.  A commit that conflicts with another one raises
    ``ZODB.POSException.ConflictError`` out of the ``async with``, as the
    sync ``transaction()`` does: run the block again.  Calls on the dict
    itself inside the block are not part of it, and blocks do not nest:
    each is a transaction of its own.

    ``*_nowait`` writes return at once: the key and the value are checked
    and pickled at the call (bad input raises there and changes nothing),
    the write is queued on the block's thread.  A queued write that fails
    there fails the block: the next awaited call and the end of the block
    raise its error, and the block rolls back.
    """

    async def get(key, default=None):
        """Return the value for ``key`` in this transaction (its own
        writes included), or ``default``."""

    async def pop(key, *default):
        """Remove ``key`` in this transaction and return its value;
        KeyError if absent and no default is given."""

    def set_nowait(key, value):
        """Store ``value`` for ``key`` in this transaction."""

    def delete_nowait(key):
        """Remove ``key`` in this transaction, if present."""

    async def __aenter__():
        """Begin the transaction on its thread and return this object;
        RuntimeError if it was entered before."""

    async def __aexit__(exc_type, exc, tb):
        """Commit (``ConflictError`` if another commit got in the way), or
        roll back if the block raised or a queued write failed."""


class IAsyncDurableQueue(Interface):
    """An :class:`IDurableQueue` for asyncio: every call that touches the
    database is a coroutine run in a worker thread, so the event loop never
    waits on the database.

    ``AsyncDurableQueue(target, name='default', maxsize=None, *,
    readonly=False, attempts=100)``: as for :class:`IDurableQueue`, but not
    an :class:`IQueueData` (TypeError).  Opened in a thread by the first
    call or by ``async with``, which closes it at the end, as
    :class:`IAsyncDurableDict`.  Every item is delivered once, as by the
    sync queue.
    """

    name = Attribute('The name the queue is kept under.')

    maxsize = Attribute(
        """The most items ``put`` lets in; 0: no limit.  Given as None
        (as configured, else no limit), it is None until the queue is
        opened.""")

    poll_interval = Attribute(
        """Seconds between two tries of a ``get`` or ``put`` that waits
        (and two looks of ``join``), 0.02: a waiting call holds no worker
        thread, so cancelling it is immediate.""")

    async def put(item, block=True, timeout=None):
        """Add ``item``; with ``maxsize``, wait for room (``queue.Full``
        after ``timeout``, or at once if not ``block``).  Cancelled while
        its commit is under way, the item may be stored all the same."""

    async def get(block=True, timeout=None):
        """Remove and return the oldest item, waiting for one if needed
        (``queue.Empty`` after ``timeout``, or at once if not ``block``).
        Cancelled while taking an item, it puts the item back at the
        head."""

    async def put_nowait(item):
        """``put(item, block=False)``."""

    async def get_nowait():
        """``get(block=False)``."""

    async def qsize():
        """Return the number of items."""

    async def empty():
        """Return whether the queue has no item."""

    async def full():
        """Return whether the queue holds ``maxsize`` items."""

    async def task_done():
        """Mark one item as processed; ValueError if none is unfinished."""

    async def join():
        """Wait until every item put has been marked done."""

    def transaction():
        """Return an :class:`IAsyncQueueTransaction`, to use as ``async
        with q.transaction() as tx:``."""

    async def close():
        """Close the queue, and the database if this queue opened it;
        later calls raise ValueError.  Closing twice does nothing."""

    async def __aenter__():
        """Open the queue (in a thread) and return it."""

    async def __aexit__(exc_type, exc, tb):
        """Close the queue."""


class IAsyncQueueTransaction(Interface):
    """One transaction on an :class:`IAsyncDurableQueue`:
    ``async with q.transaction() as tx:``, with the rules of
    :class:`IAsyncDictTransaction`.  If the block raises, the items it got
    are back at the head of the queue and its puts never happened; if two
    blocks got the same item, the second to commit raises
    ``ConflictError``: run it again, it gets the next item.
    """

    async def get_nowait():
        """Remove and return the head item in this transaction;
        ``queue.Empty`` at once if there is none (waiting for an item
        happens outside the block)."""

    async def qsize():
        """Return the number of items in this transaction."""

    def put_nowait(item):
        """Add ``item`` in this transaction (``queue.Full``, from the next
        awaited call or the block's end, if the queue is full)."""

    def task_done():
        """Mark one item as processed in this transaction."""

    async def __aenter__():
        """Begin the transaction on its thread and return this object;
        RuntimeError if it was entered before."""

    async def __aexit__(exc_type, exc, tb):
        """Commit (``ConflictError`` if another commit got in the way), or
        roll back if the block raised or a queued write failed."""
