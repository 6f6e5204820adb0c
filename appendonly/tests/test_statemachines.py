"""Stateful tests: random interleavings of operations, compared with a model.

One hypothesis ``RuleBasedStateMachine`` per structure.  The structures run
on a real FileStorage in a temporary directory (never MappingStorage, whose
``store()`` raises without calling resolvers), with several connections,
each with its own ``TransactionManager``, so that concurrent commits go
through conflict resolution.  The model is a plain list, dict or deque;
any divergence fails, and hypothesis shrinks it to a short program.
"""
import collections
import os
import pickle
import queue
import shutil
import tempfile

import pytest
import transaction
import ZODB
import ZODB.FileStorage
from hypothesis import HealthCheck
from hypothesis import event
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine
from hypothesis.stateful import initialize
from hypothesis.stateful import invariant
from hypothesis.stateful import rule

from appendonly import Accumulator
from appendonly import AppendStack
from appendonly import Archive
from appendonly import ConflictError
from appendonly.facades import DictData
from appendonly.facades import DurableDict
from appendonly.facades import DurableQueue
from appendonly.facades import QueueData
from appendonly.verify import check

SETTINGS = settings(max_examples=50, stateful_step_count=50, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

CONNECTIONS = st.integers(0, 2)


class _FileStorageMachine(RuleBasedStateMachine):
    """A FileStorage in a temporary directory, three connections each with
    its own transaction manager, and a reader connection."""

    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix='appendonly-sm-')
        self.path = os.path.join(self.dir, 'Data.fs')
        self.db = None
        self.commits = 0            # commits that changed something
        self.seen = [0, 0, 0]       # self.commits when each began

    def open(self):
        self.db = ZODB.DB(ZODB.FileStorage.FileStorage(self.path))
        self.tms = [transaction.TransactionManager() for _ in range(3)]
        self.conns = [self.db.open(tm) for tm in self.tms]
        for i in range(3):
            self.begin(i)
        self.reader_tm = transaction.TransactionManager()
        self.reader = self.db.open(self.reader_tm)

    def begin(self, i):
        """Start connection i's next transaction: its snapshot is now."""
        self.tms[i].begin()
        self.seen[i] = self.commits

    def read(self, func):
        """``func(root)`` in a fresh read transaction."""
        self.reader_tm.begin()
        try:
            return func(self.reader.root())
        finally:
            self.reader_tm.abort()

    def close(self):
        if self.db is not None:
            for tm in self.tms:
                tm.abort()
            self.reader_tm.abort()
            self.db.close()
            self.db = None

    def teardown(self):
        self.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class StackMachine(_FileStorageMachine):
    """AppendStack + Archive: every committed item, in commit order, is in
    the archive or the stack, once."""

    @initialize(sizes=st.sampled_from([(2, 3), (3, 2), (2, 12), (4, 5)]))
    def setup(self, sizes):
        self.max_layers, self.max_length = sizes
        db = ZODB.DB(ZODB.FileStorage.FileStorage(self.path))
        with db.transaction() as conn:
            conn.root()['stack'] = AppendStack(*sizes)
            conn.root()['archive'] = Archive()
        db.close()
        self.open()
        self.model = []                 # committed items, in order
        self.pending = [[], [], []]     # pushed, not yet committed
        self.next_item = 0

    @rule(i=CONNECTIONS)
    def push(self, i):
        root = self.conns[i].root()
        item = self.next_item
        self.next_item += 1
        root['stack'].push(item, pruner=root['archive'].addLayer)
        self.pending[i].append(item)

    @rule(i=CONNECTIONS, retry=st.booleans())
    def commit(self, i, retry):
        """Commit connection i; on ConflictError abort, and if ``retry``
        push the same items again in a new transaction (what
        ``tm.attempts()`` does), which sees every commit and must go
        through."""
        pending = self.pending[i]
        self.pending[i] = []
        try:
            self.tms[i].commit()
        except ConflictError:
            self.tms[i].abort()
            # One push per transaction always merges.
            assert len(pending) > 1, f'single push {pending} conflicted'
            event('stack: several pushes conflicted')
            self.begin(i)
            if not retry:
                return
            root = self.conns[i].root()
            for item in pending:
                root['stack'].push(item, pruner=root['archive'].addLayer)
            self.tms[i].commit()
            event('stack: retried after a conflict')
        if pending:
            if self.commits != self.seen[i]:
                event('stack: committed over a concurrent commit')
            self.model.extend(pending)
            self.commits += 1
        self.begin(i)

    @rule(i=CONNECTIONS)
    def push_and_commit(self, i):
        """The common case: one push per transaction."""
        self.push(i)
        self.commit(i, retry=False)

    @rule(i=CONNECTIONS)
    def abort(self, i):
        self.tms[i].abort()
        self.pending[i] = []
        self.begin(i)

    @rule()
    def reopen(self):
        self.close()
        self.pending = [[], [], []]
        self.open()

    @invariant()
    def history_matches_model(self):
        if self.db is None:
            return

        def history(root):
            archived = [item for _, _, item in root['archive']]
            window = [item for _, _, item in root['stack']]
            problems = check(root['stack']) + check(root['archive'])
            return archived[::-1] + window[::-1], archived, problems

        items, archived, problems = self.read(history)
        assert items == self.model
        assert problems == []
        if archived:
            event('stack: layers archived')
        # No bound on the number of layers here: a merge may leave more
        # than max_layers, for the next push to prune (a resolver cannot
        # call the pruner); see the comments above resolve_stack.


class AccumulatorMachine(_FileStorageMachine):
    """Accumulator: appended items are consumed exactly once; a consume
    returns what its connection saw; two concurrent consumes conflict."""

    @initialize()
    def setup(self):
        db = ZODB.DB(ZODB.FileStorage.FileStorage(self.path))
        with db.transaction() as conn:
            conn.root()['acc'] = Accumulator()
        db.close()
        self.model = []             # committed, not yet consumed
        self.consumes = 0           # committed consumes that returned items
        self.delivered = []         # items returned by committed consumes
        self.appended = []          # items of committed appends
        self.next_item = 0
        self.open()

    def begin(self, i):
        super().begin(i)
        # What connection i sees, and what it did in this transaction.
        self.sides[i] = {'snapshot': list(self.model),
                         'consumes': self.consumes,
                         'view': list(self.model), 'appended': [],
                         'consumed': False, 'returned': []}

    def open(self):
        self.sides = [None, None, None]
        super().open()

    def _new_items(self, n):
        items = list(range(self.next_item, self.next_item + n))
        self.next_item += n
        return items

    @rule(i=CONNECTIONS)
    def append(self, i):
        [item] = self._new_items(1)
        self.conns[i].root()['acc'].append(item)
        side = self.sides[i]
        side['view'].append(item)
        side['appended'].append(item)

    @rule(i=CONNECTIONS, n=st.integers(0, 3))
    def extend(self, i, n):
        items = self._new_items(n)
        self.conns[i].root()['acc'].extend(items)
        side = self.sides[i]
        side['view'].extend(items)
        side['appended'].extend(items)

    @rule(i=CONNECTIONS)
    def consume(self, i):
        side = self.sides[i]
        got = self.conns[i].root()['acc'].consume()
        assert got == side['view']
        if got:
            side['consumed'] = True
            side['returned'].extend(got)
        side['view'] = []

    @rule(i=CONNECTIONS)
    def commit(self, i):
        side = self.sides[i]
        others_consumed = self.consumes != side['consumes']
        others_added = self.model[len(side['snapshot']):] \
            if not others_consumed else None
        try:
            self.tms[i].commit()
        except ConflictError:
            self.tms[i].abort()
            assert side['consumed'] and others_consumed, \
                'only two consumes may conflict'
            event('accumulator: both consumed, the second aborted')
        else:
            assert not (side['consumed'] and others_consumed), \
                'both sides consumed, and the second commit went through'
            if side['consumed'] and others_added:
                event('accumulator: consume merged with concurrent appends')
            if side['consumed']:
                # Serial order: this transaction, then what others
                # appended since its snapshot.
                self.model = side['view'] + others_added
                self.consumes += 1
                self.delivered.extend(side['returned'])
            else:
                self.model.extend(side['appended'])
            self.appended.extend(side['appended'])
        self.begin(i)

    @rule(i=CONNECTIONS)
    def append_and_commit(self, i):
        self.append(i)
        self.commit(i)

    @rule(i=CONNECTIONS)
    def abort(self, i):
        self.tms[i].abort()
        self.begin(i)

    @rule()
    def reopen(self):
        self.close()
        self.open()

    @invariant()
    def items_match_model(self):
        if self.db is None:
            return
        assert self.read(lambda root: list(root['acc'])) == self.model
        # Every committed item is delivered once or still waiting.
        assert sorted(self.delivered + self.model) == sorted(self.appended)


KEYS = st.sampled_from(['a', 'b', 'c', 1, 2, b'x', ('t', 1)])
VALUES = st.one_of(st.integers(), st.text(max_size=5),
                   st.lists(st.integers(), max_size=3))


class _FacadeMachine(RuleBasedStateMachine):
    """A façade on a ``ZODB.DB`` over a FileStorage we own (reopen closes
    both)."""

    facade_class = None

    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix='appendonly-sm-')
        self.path = os.path.join(self.dir, 'Data.fs')
        self.facade = self.db = None
        self.open()

    def open(self):
        self.db = ZODB.DB(ZODB.FileStorage.FileStorage(self.path))
        self.facade = self.facade_class(self.db, 'm')

    def close(self):
        if self.facade is not None:
            self.facade.close()
            self.db.close()
            self.facade = self.db = None

    @rule()
    def reopen(self):
        self.close()
        self.open()

    def teardown(self):
        self.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Boom(Exception):
    pass


class DictMachine(_FacadeMachine):
    facade_class = DurableDict

    def __init__(self):
        super().__init__()
        self.model = {}

    @rule(key=KEYS, value=VALUES)
    def set(self, key, value):
        self.facade[key] = value
        self.model[key] = value

    @rule(key=KEYS)
    def delete(self, key):
        if key in self.model:
            del self.facade[key]
            del self.model[key]
        else:
            with pytest.raises(KeyError):
                del self.facade[key]

    @rule(key=KEYS)
    def pop(self, key):
        assert self.facade.pop(key, 'missing') == \
            self.model.pop(key, 'missing')

    @rule()
    def popitem(self):
        if self.model:
            assert self.facade.popitem() == self.model.popitem()
        else:
            with pytest.raises(KeyError):
                self.facade.popitem()

    @rule(pairs=st.lists(st.tuples(KEYS, VALUES), max_size=3),
          fail=st.booleans())
    def transaction_block(self, pairs, fail):
        """Several changes in one block; if it raises, none happened."""
        victim = next(iter(self.model), None)   # the oldest key, if any
        try:
            with self.facade.transaction():
                for key, value in pairs:
                    self.facade[key] = value
                if victim is not None:
                    self.facade.pop(victim)
                if fail:
                    raise Boom
        except Boom:
            return
        for key, value in pairs:
            self.model[key] = value
        if victim is not None:
            del self.model[victim]

    @invariant()
    def matches_model(self):
        assert self.facade.items() == list(self.model.items())
        assert len(self.facade) == len(self.model)


class QueueMachine(_FacadeMachine):
    facade_class = DurableQueue

    def __init__(self):
        super().__init__()
        self.model = collections.deque()

    @rule(item=VALUES)
    def put(self, item):
        self.facade.put(item)
        self.model.append(item)

    @rule()
    def get(self):
        if self.model:
            assert self.facade.get_nowait() == self.model.popleft()
        else:
            with pytest.raises(queue.Empty):
                self.facade.get_nowait()

    @rule(put=st.lists(VALUES, max_size=2))
    def get_rolled_back(self, put):
        """A get (and puts) in a block that raises: the item stays first."""
        try:
            with self.facade.transaction():
                for item in put:
                    self.facade.put(item)
                if self.model:
                    assert self.facade.get_nowait() == self.model[0]
                raise Boom
        except Boom:
            pass

    @invariant()
    def matches_model(self):
        assert self.facade.qsize() == len(self.model)
        assert self.facade.empty() == (not self.model)


class SharedDictMachine(_FileStorageMachine):
    """``DictData`` used by three connections at once (a ``DurableDict``
    embedded in each connection's transaction).  Writes of different keys
    merge; writes that cannot merge raise ConflictError and are dropped.
    BTrees merge *net* changes: a commit that goes through applies, on top
    of what was committed before it, each key whose value differs between
    its snapshot and its end (a key set and then popped in the same
    transaction is no change at all, whatever others did to it).  The
    order of keys is that of the positions the sets took, not of the
    commits, so the model is compared as a mapping."""

    @initialize()
    def setup(self):
        db = ZODB.DB(ZODB.FileStorage.FileStorage(self.path))
        with db.transaction() as conn:
            conn.root()['d'] = DictData()
        db.close()
        self.model = {}
        self.open()

    def begin(self, i):
        super().begin(i)
        self.views[i] = (dict(self.model), dict(self.model))

    def open(self):
        self.views = [None, None, None]     # (snapshot, view) of each
        super().open()

    def facade(self, i):
        return DurableDict(self.conns[i].root()['d'])

    @rule(i=CONNECTIONS, key=KEYS, value=VALUES)
    def set(self, i, key, value):
        self.facade(i)[key] = value
        self.views[i][1][key] = value

    @rule(i=CONNECTIONS, key=KEYS)
    def pop(self, i, key):
        assert self.facade(i).pop(key, _MISSING) == \
            self.views[i][1].pop(key, _MISSING)

    @rule(i=CONNECTIONS)
    def commit(self, i):
        try:
            self.tms[i].commit()
        except ConflictError:
            self.tms[i].abort()
            event('shared dict: a commit conflicted')
        else:
            snapshot, view = self.views[i]
            for key in set(snapshot) | set(view):
                value = view.get(key, _MISSING)
                if value == snapshot.get(key, _MISSING):
                    continue
                if value is _MISSING:
                    del self.model[key]
                else:
                    self.model[key] = value
        self.begin(i)

    @rule(i=CONNECTIONS, key=KEYS, value=VALUES)
    def set_and_commit(self, i, key, value):
        self.set(i, key, value)
        self.commit(i)

    @rule(i=CONNECTIONS)
    def abort(self, i):
        self.tms[i].abort()
        self.begin(i)

    @rule()
    def reopen(self):
        self.close()
        self.open()

    @invariant()
    def matches_model(self):
        items, problems = self.read(
            lambda root: (root['d'].snapshot(), check(root['d'])))
        assert dict(items) == self.model
        assert len(items) == len(self.model)
        assert problems == []


class SharedQueueMachine(_FileStorageMachine):
    """``QueueData`` used by three connections at once: every item of a
    committed put is delivered by exactly one committed get, or is still
    in the queue; two gets of the same item cannot both commit."""

    @initialize()
    def setup(self):
        db = ZODB.DB(ZODB.FileStorage.FileStorage(self.path))
        with db.transaction() as conn:
            conn.root()['q'] = QueueData()
        db.close()
        self.put_items, self.delivered = [], []
        self.next_item = 0
        self.open()

    def begin(self, i):
        super().begin(i)
        self.sides[i] = ([], [])     # items put, items got

    def open(self):
        self.sides = [None, None, None]
        super().open()

    @rule(i=CONNECTIONS)
    def put(self, i):
        item = self.next_item
        self.next_item += 1
        DurableQueue(self.conns[i].root()['q']).put(item)
        self.sides[i][0].append(item)

    @rule(i=CONNECTIONS)
    def get(self, i):
        try:
            item = DurableQueue(self.conns[i].root()['q']).get_nowait()
        except queue.Empty:
            return
        self.sides[i][1].append(item)

    @rule(i=CONNECTIONS)
    def commit(self, i):
        put, got = self.sides[i]
        try:
            self.tms[i].commit()
        except ConflictError:
            self.tms[i].abort()
            event('shared queue: a commit conflicted')
        else:
            self.put_items.extend(put)
            self.delivered.extend(got)
        self.begin(i)

    @rule(i=CONNECTIONS)
    def abort(self, i):
        self.tms[i].abort()
        self.begin(i)

    @rule()
    def reopen(self):
        self.close()
        self.open()

    @invariant()
    def delivered_once(self):
        def state(root):
            data = root['q']
            return ([pickle.loads(v) for v in data._items.values()],
                    data.qsize(), check(data))

        waiting, size, problems = self.read(state)
        assert len(set(self.delivered)) == len(self.delivered), \
            'an item was delivered twice'
        assert sorted(self.delivered + waiting) == sorted(self.put_items)
        assert size == len(waiting)
        assert problems == []


_MISSING = object()


for _machine in (StackMachine, AccumulatorMachine, DictMachine,
                 QueueMachine, SharedDictMachine, SharedQueueMachine):
    _machine.TestCase.settings = SETTINGS

TestStack = StackMachine.TestCase
TestAccumulator = AccumulatorMachine.TestCase
TestDict = DictMachine.TestCase
TestQueue = QueueMachine.TestCase
TestSharedDict = SharedDictMachine.TestCase
TestSharedQueue = SharedQueueMachine.TestCase
