"""The multi-process scenarios of ``test_zeo.py`` and
``test_facades_zeo.py`` on RelStorage over PostgreSQL, history-free and
history-preserving.

No server of ours runs here: every client process commits straight to
PostgreSQL, and RelStorage resolves conflicts *in the client*.  In
``tpc_vote`` the committing process locks the rows it writes, finds those
another process changed since it read them, loads the committed state and
calls the class's ``_p_resolveConflict`` itself.  So the worker processes,
not a server, import ``appendonly`` to merge; a resolver that cannot merge
raises ConflictError from the vote, and ``tm.attempts()`` retries.

PostgreSQL is started outside the tests by ``.ci/postgres.sh``, whose
exports say where it is::

    eval "$(.ci/postgres.sh start)"
    .venv/bin/python -m pytest -m relstorage appendonly
    .ci/postgres.sh stop

Without them (or without RelStorage and psycopg2) the tests skip, saying
why, unless ``CI`` is set: then they fail, so that a CI run never passes
without having run them.  Each test empties its database (``zap_all``)
first: point the variables at a throwaway cluster only.
"""
import contextlib
import dataclasses
import importlib.util
import os
import queue

import pytest
import zodburi

from appendonly import Accumulator
from appendonly import AppendStack
from appendonly import Archive
from appendonly.db import open_db
from appendonly.facades import DurableDict
from appendonly.facades import DurableQueue
from appendonly.tests.test_facades_zeo import _result
from appendonly.tests.test_facades_zeo import _start
from appendonly.tests.test_zeo import Workers
from appendonly.tests.test_zeo import _batches
# Under a name pytest does not collect: called with a RelStorage DB here.
from appendonly.tests.test_zeo import \
    test_unmergeable_conflict_reaches_client_as_conflict_error as \
    two_connection_conflicts
from appendonly.tests.workload import Poller
from appendonly.tests.workload import check_stack_invariants
from appendonly.tests.workload import stack_history

pytestmark = pytest.mark.relstorage

#: What ``.ci/postgres.sh start`` exports, all needed here.
ENVIRONMENT = (
    'APPENDONLY_PG_HOST', 'APPENDONLY_PG_PORT', 'APPENDONLY_PG_USER',
    'APPENDONLY_PG_PASSWORD', 'APPENDONLY_PG_DB_HF', 'APPENDONLY_PG_DB_HP',
)

START_HINT = 'start it with: eval "$(.ci/postgres.sh start)"'

PROCESSES = 4
PUSHES = 60

ZCONFIG = """\
%import relstorage
<zodb>
  <relstorage>
    keep-history {keep_history}
    <postgresql>
      dsn {dsn}
    </postgresql>
  </relstorage>
</zodb>
"""


def _in_ci():
    return os.environ.get('CI', '').lower() not in ('', '0', 'false', 'no')


def _unavailable(reason):
    """Fail under CI, skip elsewhere."""
    if _in_ci():
        pytest.fail(f'{reason}; CI must run the RelStorage tests',
                    pytrace=False)
    pytest.skip(reason)


@dataclasses.dataclass
class Postgres:
    """One database of the cluster that ``.ci/postgres.sh`` started."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    keep_history: bool

    @property
    def uri(self):
        """RelStorage's zodburi form.  Its resolver does not unquote the
        password: keep it URL-safe (the script's is hex)."""
        return (f'postgres://{self.user}:{self.password}@{self.host}:'
                f'{self.port}/{self.dbname}?keep_history='
                f'{"true" if self.keep_history else "false"}'
                f'&connect_timeout=10')

    @property
    def dsn(self):
        """The libpq DSN of a ZConfig ``<postgresql>`` section."""
        return (f"dbname='{self.dbname}' user='{self.user}' "
                f"password='{self.password}' host='{self.host}' "
                f"port='{self.port}' connect_timeout='10'")

    def zconfig(self):
        return ZCONFIG.format(
            keep_history='true' if self.keep_history else 'false',
            dsn=self.dsn)


@pytest.fixture(params=[False, True],
                ids=['history-free', 'history-preserving'])
def pg(request):
    """An emptied database: history-free or history-preserving."""
    missing = [name for name in ENVIRONMENT if not os.environ.get(name)]
    if missing:
        _unavailable(f'PostgreSQL is not running for the RelStorage tests '
                     f'({", ".join(missing)} not set); {START_HINT}')
    for module in ('relstorage', 'psycopg2'):
        if importlib.util.find_spec(module) is None:
            _unavailable(f'RelStorage with PostgreSQL support is not '
                         f'installed (no {module}); pip install -e '
                         f'".[test]"')
    get = os.environ.__getitem__
    keep_history = request.param
    target = Postgres(
        host=get('APPENDONLY_PG_HOST'), port=int(get('APPENDONLY_PG_PORT')),
        user=get('APPENDONLY_PG_USER'),
        password=get('APPENDONLY_PG_PASSWORD'),
        dbname=get('APPENDONLY_PG_DB_HP' if keep_history
                   else 'APPENDONLY_PG_DB_HF'),
        keep_history=keep_history)
    factory, _ = zodburi.resolve_uri(target.uri)
    try:
        storage = factory()
    except Exception as exc:
        error = f'{type(exc).__name__}: {str(exc).strip()}'
    else:
        error = None
    if error:
        _unavailable(f'PostgreSQL is not running at {target.host}:'
                     f'{target.port} ({error}); {START_HINT}')
    try:
        storage.zap_all()
    finally:
        storage.close()
    return target


@pytest.fixture
def pg_db(pg):
    """A ``ZODB.DB`` on ``pg``, for this process."""
    db = open_db(pg.uri)
    assert db.storage.keep_history is pg.keep_history
    yield db
    db.close()


@pytest.fixture
def workers(pg, tmp_path):
    workers = Workers(pg.uri, tmp_path)
    yield workers
    workers.kill()     # whatever a failing test left running


@pytest.fixture
def spawn():
    """``test_facades_zeo._start``, killing at teardown the processes a
    failing test left running (alive, they would keep PostgreSQL sessions
    open that the next test's ``zap_all`` waits for forever)."""
    started = []

    def start(*args):
        started.append(_start(*args))
        return started[-1]
    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=5)


def _stored_history(target):
    """What the database holds, read by a DB of its own (no cache)."""
    db = open_db(target)
    try:
        with db.transaction() as conn:
            return stack_history(conn.root.stack, conn.root.archive)
    finally:
        db.close()


def _push_from_processes(db, workers, window=(3, 5), per_txn='1-3',
                         pushes=PUSHES):
    """Four processes push; a poller here reads.  Return the committed
    batches and the items the poller saw."""
    with db.transaction() as conn:
        conn.root.stack = AppendStack(*window)
        conn.root.archive = Archive()
    names = [workers.start('stack', '--writer', n, '--pushes', pushes,
                           '--per-txn', per_txn)
             for n in range(PROCESSES)]
    poller = Poller(db, interval=0.005)
    poller.start()
    try:
        workers.go()
        results = workers.wait(names)
    finally:
        # Its last poll begins after every worker has committed.
        poller.stopping.set()
        poller.join(30)
    assert not poller.is_alive(), 'poller still running'
    batches = [batch for result in results
               for batch in _batches(result['batches'])]
    conflicts = sum(result['conflicts'] for result in results)
    print(f'window={window} per_txn={per_txn} conflicts={conflicts} '
          f'polls={poller.polls}')
    return batches, poller.seen


def test_stack_pushes_from_processes(pg, pg_db, workers):
    window = (3, 5)
    batches, seen = _push_from_processes(pg_db, workers, window)
    history = _stored_history(pg.uri)
    violations = check_stack_invariants(history, batches, window[1])
    assert violations == dict.fromkeys(violations, 0)
    assert len(history) == PROCESSES * PUSHES
    # The polling reader saw every item exactly once, in position order.
    assert seen == history


def test_accumulator_producers_and_consumers(pg_db, workers, tmp_path):
    with pg_db.transaction() as conn:
        conn.root.acc = Accumulator()
    stop_file = tmp_path / 'stop'
    producers = [workers.start('produce', '--writer', n, '--items', 60)
                 for n in range(PROCESSES // 2)]
    consumers = [workers.start('consume', '--stop-file', stop_file)
                 for n in range(PROCESSES // 2)]
    workers.go()
    produced_by = workers.wait(producers)
    stop_file.touch()
    consumed_by = workers.wait(consumers)
    with pg_db.transaction() as conn:
        left = list(conn.root.acc)

    produced = [tuple(item) for result in produced_by
                for item in result['produced']]
    consumed = [item for result in consumed_by
                for batch in _batches(result['batches']) for item in batch]
    conflicts = sum(result['conflicts']
                    for result in produced_by + consumed_by)
    print(f'accumulator: consumed={len(consumed)} left={len(left)} '
          f'conflicts={conflicts}')
    delivered = consumed + left
    assert len(delivered) == len(set(delivered)), 'delivered twice'
    assert sorted(delivered) == sorted(produced), 'lost'
    # One consumer's consumes follow each other in time, so it got each
    # producer's items in append order.
    for result in consumed_by:
        mine = [item for batch in _batches(result['batches'])
                for item in batch]
        for n in range(PROCESSES // 2):
            theirs = [item for item in mine if item[0] == n]
            assert theirs == sorted(theirs)


def test_queue_exactly_once_across_processes(pg, spawn, tmp_path):
    stop = tmp_path / 'stop'
    consumers = [spawn('consume', pg.uri, 'jobs', stop) for _ in range(2)]
    producers = [spawn('produce', pg.uri, 'jobs', 'p%d' % n, 60)
                 for n in range(2)]
    # This process produces and consumes too.  The consumers may take
    # every item before it does, once the producers are done: its gets
    # may find nothing.
    local = []
    with DurableQueue(pg.uri, 'jobs') as q:
        for i in range(30):
            q.put(['local', i])
            if i % 3 == 0:
                with contextlib.suppress(queue.Empty):
                    local.append(q.get(timeout=0.5))
        for p in producers:
            _result(p)
        stop.touch()
        per_consumer = [[tuple(item) for item in _result(c)['consumed']]
                        for c in consumers]
        consumed = [item for got in per_consumer for item in got]
        left = []
        while not q.empty():
            left.append(q.get_nowait())
    delivered = consumed + [tuple(i) for i in local + left]
    produced = [('p%d' % n, i) for n in range(2) for i in range(60)] + \
        [('local', i) for i in range(30)]
    assert len(delivered) == len(set(delivered)), 'delivered twice'
    assert sorted(delivered) == sorted(produced), 'lost'
    # FIFO: each consumer saw each producer's items in the order put.
    for got in per_consumer:
        for writer in ('p0', 'p1'):
            mine = [i for w, i in got if w == writer]
            assert mine == sorted(mine)


def test_dict_writers_in_processes(pg, spawn):
    names = ['w%d' % n for n in range(PROCESSES)] + ['local']
    writers = [spawn('set', pg.uri, 'shared', name, 50)
               for name in names[:-1]]
    with DurableDict(pg.uri, 'shared') as d:
        for i in range(50):
            d[('local', i)] = i
        for w in writers:
            _result(w)
        keys = d.keys()
    assert sorted(keys) == sorted((w, i) for w in names for i in range(50))


def test_zconfig_relstorage_section(pg, tmp_path):
    config = tmp_path / 'relstorage.conf'
    config.write_text(pg.zconfig())
    db = open_db(config)
    try:
        assert type(db.storage).__name__ == 'RelStorage'
        assert db.storage.keep_history is pg.keep_history
        # test_zeo's two-connection interleavings, deterministic: the
        # mergeable one merges in this process, without a ConflictError;
        # the unmergeable one raises ConflictError from the vote, once,
        # and the retry redoes it.
        two_connection_conflicts(db)
        # Four processes opening the same file.
        (tmp_path / 'workers').mkdir()
        workers = Workers(str(config), tmp_path / 'workers')
        try:
            window = (3, 5)
            batches, seen = _push_from_processes(db, workers, window,
                                                 pushes=20)
        finally:
            workers.kill()
    finally:
        db.close()
    # The URI names the same database.
    history = _stored_history(pg.uri)
    violations = check_stack_invariants(history, batches, window[1])
    assert violations == dict.fromkeys(violations, 0)
    assert len(history) == PROCESSES * 20
    assert seen == history
