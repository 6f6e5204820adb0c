"""The transaction runner's group commit, on a real FileStorage with real
threads: many operations per transaction, each applied once, each
failing alone."""
import threading

import pytest
import ZODB
import ZODB.FileStorage
from BTrees.OOBTree import OOBTree

from appendonly import _txn


@pytest.fixture
def db(tmp_path):
    db = ZODB.DB(str(tmp_path / 'Data.fs'))
    with db.transaction() as conn:
        conn.root()['tree'] = OOBTree()
    yield db
    db.close()


def _tree(state):
    return state.conn.root()['tree']


def _transactions(db):
    return sum(1 for _ in db.storage.iterator())


def _in_threads(n, func):
    errors = []

    def run(i):
        try:
            func(i)
        except BaseException as exc:    # pragma: no cover  (reported)
            errors.append(exc)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def _set(key, value):
    def op(state):
        _tree(state)[key] = value
        return key
    return op


def test_eight_threads_share_commits_and_lose_nothing(db):
    committer = _txn.group_commit(db)
    before = _transactions(db)
    results = {}

    def writer(i):
        for n in range(100):
            results[(i, n)] = committer.run(_set((i, n), n))

    _in_threads(8, writer)
    assert results == {(i, n): (i, n) for i in range(8) for n in range(100)}
    with db.transaction() as conn:
        assert dict(conn.root()['tree']) == {
            (i, n): n for i in range(8) for n in range(100)}
    # Fewer transactions than operations: commits were shared.
    assert _transactions(db) - before < 800


def test_lone_caller_commits_at_once(db):
    committer = _txn.group_commit(db)
    before = _transactions(db)
    for n in range(5):
        committer.run(_set(n, n))
    assert _transactions(db) - before == 5


def test_failing_operation_fails_alone_and_leaves_no_change(db):
    committer = _txn.group_commit(db)
    barrier = threading.Barrier(8)

    def half_then_fail(state):
        _tree(state)['half'] = 'written before the error'
        raise KeyError('mine')

    outcomes = {}

    def caller(i):
        barrier.wait()
        try:
            outcomes[i] = committer.run(
                half_then_fail if i % 2 else _set(str(i), i))
        except KeyError as exc:
            outcomes[i] = exc

    _in_threads(8, caller)
    assert {i for i, o in outcomes.items() if isinstance(o, KeyError)} == {
        1, 3, 5, 7}
    with db.transaction() as conn:
        assert dict(conn.root()['tree']) == {'0': 0, '2': 2, '4': 4, '6': 6}


def test_unpicklable_value_fails_only_its_operation(db):
    committer = _txn.group_commit(db)
    barrier = threading.Barrier(6)
    outcomes = {}

    def caller(i):
        barrier.wait()
        value = threading.Lock() if i == 3 else i
        try:
            outcomes[i] = committer.run(_set(i, value))
        except Exception as exc:
            outcomes[i] = exc

    _in_threads(6, caller)
    assert isinstance(outcomes.pop(3), TypeError)
    assert outcomes == {i: i for i in (0, 1, 2, 4, 5)}
    with db.transaction() as conn:
        assert dict(conn.root()['tree']) == {i: i for i in (0, 1, 2, 4, 5)}


class _DiesAfterCommit:
    """A real FileStorage whose tpc_finish, once, writes the transaction
    and then fails, as a ZEO server killed before answering would."""

    def __init__(self, path):
        self._base = ZODB.FileStorage.FileStorage(path)
        self.fail_next = False

    def __getattr__(self, name):
        return getattr(self._base, name)

    def __len__(self):
        return len(self._base)

    def tpc_finish(self, transaction, func=lambda tid: None):
        tid = self._base.tpc_finish(transaction, func)
        if self.fail_next:
            self.fail_next = False
            from ZEO.Exceptions import ClientDisconnected
            raise ClientDisconnected('died before answering')
        return tid


def test_commit_that_failed_after_writing_is_not_applied_twice(tmp_path):
    storage = _DiesAfterCommit(str(tmp_path / 'Data.fs'))
    db = ZODB.DB(storage)
    try:
        with db.transaction() as conn:
            conn.root()['tree'] = OOBTree()
            conn.root()['tree']['n'] = 0

        def increment(state):
            tree = _tree(state)
            tree['n'] += 1
            return tree['n']

        committer = _txn.GroupCommit(db)
        storage.fail_next = True
        assert committer.run(increment) == 1     # answered, once
        assert committer.run(increment) == 2
        with db.transaction() as conn:
            assert conn.root()['tree']['n'] == 2
    finally:
        db.close()


def test_conflicts_between_two_databases_are_retried(tmp_path):
    # Two processes' worth of databases on one ZEO-less file is not
    # possible; two DBs on one storage conflict the same way.
    path = str(tmp_path / 'Data.fs')
    db = ZODB.DB(path)
    try:
        with db.transaction() as conn:
            conn.root()['tree'] = OOBTree()
            conn.root()['tree']['n'] = 0
        a, b = _txn.GroupCommit(db), _txn.GroupCommit(db)

        def increment(state):
            _tree(state)['n'] += 1

        def caller(i):
            committer = a if i % 2 else b
            for _ in range(50):
                committer.run(increment)

        _in_threads(4, caller)
        with db.transaction() as conn:
            assert conn.root()['tree']['n'] == 200
    finally:
        db.close()


def test_operation_gives_up_after_its_attempts(db):
    from ZODB.POSException import ConflictError
    committer = _txn.group_commit(db)
    calls = []

    def always_conflicts(state):
        calls.append(1)
        raise ConflictError('forever')

    with pytest.raises(ConflictError):
        committer.run(always_conflicts, attempts=3)
    assert len(calls) == 3


@pytest.mark.zeo
def test_autocommit_gives_up_on_a_server_that_stays_down(
        tmp_path, monkeypatch):
    """A write outside a transaction on a ZEO client whose server is gone
    raises ClientDisconnected after DISCONNECTED_TIMEOUT (and the
    LOOK_TIMEOUT spent looking for a commit it cannot see), not after
    ATTEMPTS times the client's wait_timeout."""
    import time
    import ZEO.ClientStorage
    from ZEO.Exceptions import ClientDisconnected

    from appendonly.facades import DurableDict
    from appendonly.tests.zeoserver import _start_server
    from appendonly.tests.zeoserver import _stop
    monkeypatch.setattr(_txn, 'DISCONNECTED_TIMEOUT', 2)
    monkeypatch.setattr(_txn, 'LOOK_TIMEOUT', 2)
    server, addr, _ = _start_server(tmp_path)
    db = ZODB.DB(ZEO.ClientStorage.ClientStorage(addr, wait_timeout=1))
    try:
        with DurableDict(db, 'd') as d:
            d['k'] = 'before'
            _stop(server)
            start = time.monotonic()
            with pytest.raises(ClientDisconnected):
                d['k'] = 'after'
            # Generous: ATTEMPTS x wait_timeout would be 100 s.
            assert time.monotonic() - start < 30
    finally:
        _stop(server)
        db.close()
