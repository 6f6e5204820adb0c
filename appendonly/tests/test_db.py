"""open_db / acquire_db: every kind of target, clear errors that touch
nothing, and one FileStorage path shared by several real processes (an
election, an in-process ZEO server, takeover when the host leaves or is
killed).

The processes are this module run as a script (see ``main`` at the end):
``python -m appendonly.tests.test_db count|dict|churn|pingpong ...``.  Every
wait has a timeout; every process is killed at the end of its test.
"""
import argparse
import hashlib
import json
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest
import transaction
import ZODB
import ZODB.FileStorage
from persistent.mapping import PersistentMapping
from ZODB.POSException import ReadOnlyError

from appendonly import Accumulator
from appendonly import db as dbmodule
from appendonly.db import NotADatabaseError
from appendonly.db import acquire_db
from appendonly.db import open_db
from appendonly.db import release_db
from appendonly import share
from appendonly.share import _client as share_client
from appendonly.facades import DurableDict
from appendonly.tests.zeoserver import env
from appendonly.tests.zeoserver import zeo_server  # noqa: F401  fixture

#: Seconds any process of these tests may run; they take a few.
PROCESS_TIMEOUT = 60
#: Seconds a condition (a file appearing, a thread ending) may take.
WAIT_TIMEOUT = 30

ZCONFIG = """\
<zodb>
  <filestorage>
    path {path}
  </filestorage>
</zodb>
"""


@pytest.fixture(autouse=True)
def _short_connect_timeout(monkeypatch):
    # A test that cannot connect fails in seconds, not in 30.
    monkeypatch.setattr(share_client, 'CONNECT_TIMEOUT', 10.0)


def _commit(db, func):
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    try:
        for attempt in tm.attempts(20):
            with attempt:
                result = func(conn.root())
        return result
    finally:
        conn.close()


def _read(db, func):
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    try:
        with tm:
            return func(conn.root())
    finally:
        conn.close()


def _wait_for(condition, what, timeout=WAIT_TIMEOUT):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f'{what}: not after {timeout} s')
        time.sleep(0.01)


def _snapshot(folder):
    """{name: sha256} of every file in ``folder`` (sockets by name)."""
    result = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with open(path, 'rb') as f:
                result[name] = hashlib.sha256(f.read()).hexdigest()
        else:
            result[name] = 'not a file'
    return result


#
# Every kind of target
#

def test_open_db_w_path_creates_filestorage_and_serves_it(tmp_path):
    path = tmp_path / 'Data.fs'
    db = open_db(path)
    try:
        # The first opener uses the file directly and serves it.
        assert type(db.storage).__name__ == 'HostStorage'
        assert os.path.exists(share.address(path))
        _commit(db, lambda root: root.__setitem__('x', 1))
    finally:
        db.close()
    assert not os.path.exists(share.address(path))
    db = open_db(path)
    try:
        assert _read(db, lambda root: root['x']) == 1
    finally:
        db.close()


def test_open_db_w_path_not_shared(tmp_path):
    db = open_db(tmp_path / 'Data.fs', shared=False)
    try:
        assert type(db) is ZODB.DB
        assert isinstance(db.storage, ZODB.FileStorage.FileStorage)
    finally:
        db.close()
    assert sorted(os.listdir(tmp_path)) == [
        'Data.fs', 'Data.fs.index', 'Data.fs.lock', 'Data.fs.tmp']


def test_open_db_w_file_uri(tmp_path):
    db = open_db(f'file://{tmp_path}/Data.fs')
    try:
        # zodburi's FileStorage, exclusive: a URI is not shared.
        assert type(db) is ZODB.DB
        assert isinstance(db.storage, ZODB.FileStorage.FileStorage)
        _commit(db, lambda root: root.__setitem__('x', 1))
    finally:
        db.close()
    db = open_db(tmp_path / 'Data.fs')
    try:
        assert _read(db, lambda root: root['x']) == 1
    finally:
        db.close()


def test_open_db_w_memory_uri():
    db = open_db('memory://')
    try:
        _commit(db, lambda root: root.__setitem__('x', 1))
        assert _read(db, lambda root: root['x']) == 1
    finally:
        db.close()


def test_open_db_w_zconfig_uri_and_file(tmp_path):
    conf = tmp_path / 'db.conf'
    conf.write_text(ZCONFIG.format(path=tmp_path / 'Data.fs'))
    db = open_db(f'zconfig://{conf}')
    try:
        _commit(db, lambda root: root.__setitem__('x', 1))
    finally:
        db.close()
    db = open_db(conf)
    try:
        assert _read(db, lambda root: root['x']) == 1
    finally:
        db.close()


@pytest.mark.zeo
def test_open_db_w_zeo_uri(zeo_server):  # noqa: F811  fixture
    host, port = zeo_server
    uri = f'zeo://{host}:{port}?wait_timeout=10'
    db = open_db(uri)
    try:
        _commit(db, lambda root: root.__setitem__('acc', Accumulator([1])))
    finally:
        db.close()
    db = open_db(uri)
    try:
        assert _read(db, lambda root: list(root['acc'])) == [1]
    finally:
        db.close()


def test_open_db_w_db_returns_it():
    db = ZODB.DB(None)
    try:
        assert open_db(db) is db
        assert acquire_db(db) is db
        release_db(db)              # not ours: left open
        _commit(db, lambda root: root.__setitem__('x', 1))
    finally:
        db.close()


#
# Clear errors, nothing touched
#

def _not_a_database(tmp_path):
    path = tmp_path / 'notes.txt'
    path.write_bytes(b'Dear diary,\n\x00\x01 not a database\n')
    return path


@pytest.mark.parametrize('opener', [open_db, acquire_db])
@pytest.mark.parametrize('read_only', [False, True])
def test_open_db_w_non_database_file_leaves_it_alone(tmp_path, opener,
                                                     read_only):
    path = _not_a_database(tmp_path)
    before = _snapshot(tmp_path)
    with pytest.raises(NotADatabaseError, match=str(path)):
        opener(path, read_only=read_only)
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize('opener', [open_db, acquire_db])
def test_open_db_w_directory(tmp_path, opener):
    folder = tmp_path / 'folder'
    folder.mkdir()
    before = _snapshot(tmp_path)
    with pytest.raises(NotADatabaseError, match=f'{folder}: is a directory'):
        opener(folder)
    assert _snapshot(tmp_path) == before
    assert os.listdir(folder) == []


@pytest.mark.parametrize('opener', [open_db, acquire_db])
def test_open_db_w_missing_folder(tmp_path, opener):
    path = tmp_path / 'missing' / 'Data.fs'
    with pytest.raises(FileNotFoundError, match=str(path)):
        opener(path)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('opener', [open_db, acquire_db])
def test_open_db_w_read_only_missing_file(tmp_path, opener):
    path = tmp_path / 'Data.fs'
    with pytest.raises(FileNotFoundError, match=str(path)):
        opener(path, read_only=True)
    assert os.listdir(tmp_path) == []


def test_open_db_w_path_locked_by_plain_filestorage(tmp_path):
    path = tmp_path / 'Data.fs'
    plain = ZODB.FileStorage.FileStorage(str(path))
    try:
        with pytest.raises(dbmodule.DatabaseUnavailableError,
                           match='does not share it'):
            open_db(path)
    finally:
        plain.close()


#
# Read-only opens
#

def test_read_only_without_host_reads_a_snapshot_and_writes_nothing(
        tmp_path):
    path = tmp_path / 'Data.fs'
    db = open_db(path)
    _commit(db, lambda root: root.__setitem__('x', 1))
    db.close()
    before = _snapshot(tmp_path)
    db = open_db(path, read_only=True)
    try:
        assert type(db) is ZODB.DB
        assert db.storage.isReadOnly()
        assert _read(db, lambda root: root['x']) == 1
        with pytest.raises(ReadOnlyError):
            _commit(db, lambda root: root.__setitem__('x', 2))
    finally:
        db.close()
    assert _snapshot(tmp_path) == before


def test_read_only_w_host_sees_new_commits(tmp_path):
    path = tmp_path / 'Data.fs'
    host = open_db(path)
    try:
        _commit(host, lambda root: root.__setitem__('x', 1))
        reader = open_db(path, read_only=True)
        try:
            assert type(reader.storage).__name__ == 'ClientStorage'
            assert _read(reader, lambda root: root['x']) == 1
            _commit(host, lambda root: root.__setitem__('x', 2))
            assert _read(reader, lambda root: root['x']) == 2
            with pytest.raises(ReadOnlyError):
                _commit(reader, lambda root: root.__setitem__('x', 3))
        finally:
            reader.close()
    finally:
        host.close()


#
# acquire_db within a process
#

def test_acquire_db_shares_one_db_per_path(tmp_path):
    path = tmp_path / 'Data.fs'
    first = acquire_db(path)
    second = acquire_db(str(tmp_path / '.' / 'Data.fs'))
    assert first is second
    release_db(first)
    _commit(second, lambda root: root.__setitem__('x', 1))   # still open
    release_db(second)
    # Closed: the next opener hosts the file.
    db = open_db(path)
    try:
        assert type(db.storage).__name__ == 'HostStorage'
    finally:
        db.close()


def test_lock_and_socket_live_in_a_private_folder(tmp_path):
    path = tmp_path / 'Data.fs'
    db = open_db(path)
    try:
        address = share.address(path)
        folder = os.path.dirname(address)
        assert not address.startswith(str(tmp_path))
        assert os.stat(folder).st_mode & 0o777 == 0o700
        assert os.stat(address).st_mode & 0o777 == 0o600
        lock = address[:-len('.sock')] + '.lock'
        assert os.stat(lock).st_mode & 0o777 == 0o600
        assert share.host_pid(path) == os.getpid()
        # Nothing but FileStorage's own files (and the oid mark) beside
        # the data.
        assert sorted(os.listdir(tmp_path)) == [
            'Data.fs', 'Data.fs.index', 'Data.fs.lock', 'Data.fs.oids',
            'Data.fs.tmp']
    finally:
        db.close()
    assert share.host_pid(path) is None


#
# Two DBs on one path in this process: the bridge between the host's
# direct DB and its ZEO clients, and takeover, observable from threads.
#

def test_host_and_client_see_each_others_commits(tmp_path):
    path = tmp_path / 'Data.fs'
    host = open_db(path)
    client = open_db(path)
    try:
        assert type(host.storage).__name__ == 'HostStorage'
        assert type(client.storage).__name__ == 'ClientStorage'
        _commit(host, lambda root: root.__setitem__(
            'ball', PersistentMapping(n=0)))
        # Alternate strictly: each side must see the other's last commit
        # at once (no retry: a stale read would show here).
        for n in range(1, 41):
            db = host if n % 2 else client
            tm = transaction.TransactionManager()
            conn = db.open(tm)
            with tm:
                ball = conn.root()['ball']
                assert ball['n'] == n - 1
                ball['n'] = n
            conn.close()
    finally:
        client.close()
        host.close()


def test_client_takes_over_when_host_closes(tmp_path):
    path = tmp_path / 'Data.fs'
    host = open_db(path)
    client = open_db(path)
    try:
        _commit(host, lambda root: root.__setitem__('acc', Accumulator()))
        _commit(client, lambda root: root['acc'].append('before'))
        host.close()
        _wait_for(lambda: share.host_pid(path) == os.getpid(),
                  'the client serving')
        _commit(client, lambda root: root['acc'].append('after'))
        assert _read(client, lambda root: list(root['acc'])) == [
            'before', 'after']
        # A newcomer is a client of the new host.
        newcomer = open_db(path)
        try:
            assert type(newcomer.storage).__name__ == 'ClientStorage'
            assert _read(newcomer, lambda root: len(root['acc'])) == 2
        finally:
            newcomer.close()
    finally:
        client.close()
    assert not os.path.exists(share.address(path))


#
# Real processes
#

class Workers:
    """Worker processes (this module run as a script), each with its
    stdout and stderr in files; all killed at the end of the test."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.running = {}
        self.deadline = time.monotonic() + PROCESS_TIMEOUT

    def start(self, name, *args, stdin=subprocess.DEVNULL):
        out = self.tmp_path / f'{name}.out'
        err = self.tmp_path / f'{name}.err'
        with open(out, 'wb') as o, open(err, 'wb') as e:
            process = subprocess.Popen(
                [sys.executable, '-m', 'appendonly.tests.test_db',
                 *map(str, args)],
                stdin=stdin, stdout=o, stderr=e, env=env(),
                cwd=self.tmp_path)
        self.running[name] = process, out, err
        return process

    def lines(self, name):
        return self.running[name][1].read_text().splitlines()

    def stderr(self, name):
        return self.running[name][2].read_text()

    def wait(self, *names):
        """Wait for the named workers; return their last JSON lines."""
        results = []
        for name in names:
            process, out, err = self.running[name]
            try:
                process.wait(max(0.1, self.deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.fail(f'{name} still running after {PROCESS_TIMEOUT} '
                          f's:\n{err.read_text()}')
            if process.returncode != 0:
                self.fail(f'{name} exited with {process.returncode}:\n'
                          f'{err.read_text()}')
            results.append(json.loads(out.read_text().splitlines()[-1]))
        return results

    def fail(self, message):
        self.kill()
        pytest.fail(message)

    def kill(self):
        for process, _, _ in self.running.values():
            if process.poll() is None:
                process.kill()
                process.wait(5)


@pytest.fixture
def workers(tmp_path):
    workers = Workers(tmp_path)
    yield workers
    workers.kill()


def _prepare(path, names):
    """The shared Accumulator and one counter per worker."""
    db = open_db(path)
    try:
        def setup(root):
            root['acc'] = Accumulator()
            root['counters'] = PersistentMapping(
                {name: PersistentMapping(n=0) for name in names})
        _commit(db, setup)
    finally:
        db.close()


def _check(path, expected, duplicates_allowed=0):
    """Every worker's counter and appends, nothing lost; return the
    accumulator's items."""
    db = open_db(path, read_only=True)
    try:
        counters, items = _read(db, lambda root: (
            {name: c['n'] for name, c in root['counters'].items()},
            [tuple(item) for item in root['acc']]))
    finally:
        db.close()
    for name, commits in expected.items():
        assert commits <= counters[name] <= commits + duplicates_allowed, (
            name, commits, counters[name])
        mine = [item for item in items if item[0] == name]
        assert set(mine) == {(name, i) for i in range(commits)}
        assert len(mine) - commits <= duplicates_allowed
    return items


@pytest.mark.parametrize('processes, long_path', [(2, True), (3, False)])
def test_processes_share_a_path(tmp_path, workers, processes, long_path):
    folder = tmp_path / ('long-' * 20) if long_path else tmp_path
    folder.mkdir(exist_ok=True)
    path = folder / 'Data.fs'
    names = [f'w{n}' for n in range(processes)]
    _prepare(path, names)
    barrier = tmp_path / 'barrier'
    barrier.mkdir()
    for name in names:
        workers.start(name, 'count', '--path', path, '--name', name,
                      '--commits', 200, '--barrier', barrier)
    _wait_for(lambda: len(os.listdir(barrier)) == processes,
              'every worker open')
    (barrier / 'go').touch()
    results = workers.wait(*names)
    storages = sorted(r['storage'] for r in results)
    assert storages == ['ClientStorage'] * (processes - 1) + ['HostStorage']
    _check(path, {name: 200 for name in names})


@pytest.mark.parametrize('end', ['exit', 'close'])
def test_host_leaves_mid_run_and_a_client_takes_over(tmp_path, workers,
                                                     end):
    path = tmp_path / 'Data.fs'
    _prepare(path, ['host', 'client'])
    running = tmp_path / 'client-running'
    ready = tmp_path / 'ready'
    ready.mkdir()
    # The host opens first, waits for the client to be committing, commits
    # its share alongside it, then leaves: exit (atexit hands over) or
    # close (release_db hands over) and exit.
    workers.start('host', 'count', '--path', path, '--name', 'host',
                  '--commits', 60, '--ready', ready, '--start-after',
                  running, '--end', end)
    _wait_for(lambda: os.listdir(ready), 'the host open')
    workers.start('client', 'count', '--path', path, '--name', 'client',
                  '--commits', 400, '--signal-after', 20, running,
                  '--interval', 0.002)
    host, client = workers.wait('host', 'client')
    assert host['storage'] == 'HostStorage'
    assert client['storage'] == 'ClientStorage'
    assert client['hosting'], 'the client did not take over'
    assert client['max_gap'] < 5, client
    _check(path, {'host': 60, 'client': 400})


def test_facades_go_on_through_a_takeover(tmp_path, workers):
    """DurableDict in two processes on one path: the host leaves mid-run;
    the other's writes go on (the façade retries the ClientDisconnected
    of the takeover) and none is lost."""
    path = tmp_path / 'Data.fs'
    ready = tmp_path / 'ready'
    ready.mkdir()
    running = tmp_path / 'client-running'
    workers.start('host', 'dict', '--path', path, '--name', 'host',
                  '--writes', 50, '--ready', ready, '--start-after', running,
                  '--end', 'exit')
    _wait_for(lambda: os.listdir(ready), 'the host open')
    workers.start('client', 'dict', '--path', path, '--name', 'client',
                  '--writes', 300, '--signal-after', 10, running,
                  '--interval', 0.002)
    host, client = workers.wait('host', 'client')
    assert client['hosting'], 'the client did not take over'
    # An orderly handover is no error: no "Couldn't load state" traceback
    # for a load the host's leaving cut short.  (asyncio may warn of
    # writes to the closed socket.)
    assert 'Traceback' not in workers.stderr('client')
    d = DurableDict(path, 'shared', readonly=True)
    try:
        assert dict(d.items()) == {
            **{('host', i): i for i in range(50)},
            **{('client', i): i for i in range(300)}}
    finally:
        d.close()


def test_killed_host_leaves_a_stale_socket_and_others_go_on(tmp_path,
                                                           workers):
    path = tmp_path / 'Data.fs'
    address = share.address(path)
    _prepare(path, ['host', 'survivor', 'next'])
    ready = tmp_path / 'ready'
    ready.mkdir()
    running = tmp_path / 'survivor-running'
    host = workers.start('host', 'count', '--path', path, '--name', 'host',
                         '--commits', 20, '--ready', ready,
                         '--end', 'linger')
    _wait_for(lambda: os.listdir(ready), 'the host open')
    workers.start('survivor', 'count', '--path', path, '--name',
                  'survivor', '--commits', 300, '--signal-after', 20,
                  running, '--interval', 0.002)
    _wait_for(lambda: running.exists() and workers.lines('host'),
              'the host done and the survivor committing')
    os.kill(host.pid, signal.SIGKILL)
    host.wait(WAIT_TIMEOUT)
    assert os.path.exists(address)       # stale until the next host
    survivor, = workers.wait('survivor')
    assert survivor['hosting']
    # The survivor has left too: the socket it served on is gone.  The
    # next acquirer hosts; its data is all there.
    assert not os.path.exists(address)
    workers.start('next', 'count', '--path', path, '--name', 'next',
                  '--commits', 20)
    after, = workers.wait('next')
    assert after['storage'] == 'HostStorage'
    # A commit in flight when the host died may have been committed and
    # then retried: at most one.
    _check(path, {'host': 20, 'survivor': 300, 'next': 20},
           duplicates_allowed=1)


def test_killed_host_socket_replaced_by_next_opener(tmp_path, workers):
    path = tmp_path / 'Data.fs'
    address = share.address(path)
    _prepare(path, ['host'])
    host = workers.start('host', 'count', '--path', path, '--name', 'host',
                         '--commits', 5, '--end', 'linger')
    _wait_for(lambda: workers.lines('host'), 'the host done')
    os.kill(host.pid, signal.SIGKILL)
    host.wait(WAIT_TIMEOUT)
    assert os.path.exists(address)
    db = acquire_db(path)
    try:
        assert type(db.storage).__name__ == 'HostStorage'
        _commit(db, lambda root: root['acc'].append(('test', 0)))
        # And it serves: a process connects through the replaced socket.
        workers.start('client', 'count', '--path', path, '--name', 'host',
                      '--commits', 0)
        client, = workers.wait('client')
        assert client['storage'] == 'ClientStorage'
    finally:
        release_db(db)
    _check(path, {'host': 5})


def test_processes_see_each_others_commits_at_once(tmp_path, workers):
    """Ping-pong between a host and a client process: each must see the
    other's last commit in its next transaction, without a retry."""
    path = tmp_path / 'Data.fs'
    db = open_db(path)
    _commit(db, lambda root: root.__setitem__(
        'ball', PersistentMapping(n=0)))
    db.close()
    ready = tmp_path / 'ready'
    ready.mkdir()
    players = {}
    for name in ('A', 'B'):
        players[name] = workers.start(
            name, 'pingpong', '--path', path, '--ready', ready,
            stdin=subprocess.PIPE)
        _wait_for(lambda n=len(players): len(os.listdir(ready)) == n,
                  f'{name} open')
    n = 0
    for turn in range(40):
        name = 'AB'[turn % 2]
        process = players[name]
        process.stdin.write(f'{n}\n'.encode())
        process.stdin.flush()
        _wait_for(lambda: len(workers.lines(name)) > turn // 2
                  or process.poll() is not None, f'{name} playing')
        if process.poll() is not None:
            workers.wait(name)      # fails with its stderr
        n = int(workers.lines(name)[turn // 2])
        assert n == turn + 1
    for process in players.values():
        process.stdin.close()
    workers.wait('A', 'B')


def test_processes_see_each_others_commits_under_load(tmp_path, workers):
    """A client process commits as fast as it can while the host commits
    too; every transaction of the client must see every commit the host
    had finished before it began (the host publishes its counter in a
    file after each commit)."""
    path = tmp_path / 'Data.fs'
    published = tmp_path / 'published'
    _prepare(path, ['host', 'client'])
    ready = tmp_path / 'ready'
    ready.mkdir()
    running = tmp_path / 'client-running'
    workers.start('host', 'count', '--path', path, '--name', 'host',
                  '--commits', 300, '--ready', ready, '--start-after',
                  running, '--publish', published, '--interval', 0.001,
                  '--stay-until', tmp_path / 'client-done')
    _wait_for(lambda: os.listdir(ready), 'the host open')
    workers.start('client', 'count', '--path', path, '--name', 'client',
                  '--commits', 600, '--signal-after', 1, running,
                  '--check', 'host', published,
                  '--signal-done', tmp_path / 'client-done')
    # Clients registering meanwhile (the server must not reorder the
    # invalidations the others get).
    workers.start('churn', 'churn', '--path', path, '--times', 20,
                  '--start-after', running)
    host, client, churn = workers.wait('host', 'client', 'churn')
    assert client['storage'] == 'ClientStorage'
    assert churn['storages'] == ['ClientStorage']
    assert client['stale_reads'] == 0, client
    # Nor did its ZEO client fail to process a message (an invalidation
    # older than a tid it already had, say).
    assert client['zeo_errors'] == [], client
    _check(path, {'host': 300, 'client': 600})


def test_forked_child_is_a_client_and_holds_no_lock(tmp_path, workers):
    path = tmp_path / 'Data.fs'
    address = share.address(path)
    _prepare(path, ['after'])
    done, leave = tmp_path / 'child-done', tmp_path / 'child-leave'
    db = acquire_db(path)
    try:
        child = multiprocessing.get_context('fork').Process(
            target=_forked_child, args=(str(path), done, leave))
        child.start()
        try:
            _wait_for(lambda: done.exists() or not child.is_alive(),
                      'the forked child')
            assert done.read_text() == 'ClientStorage'
            assert os.path.exists(address)
            assert _read(db, lambda root: list(root['acc'])) == ['child']
        except BaseException:
            child.kill()
            raise
    finally:
        release_db(db)
    try:
        # The child still runs, yet the election is free.
        workers.start('after', 'count', '--path', path, '--name', 'after',
                      '--commits', 1)
        after, = workers.wait('after')
        assert after['storage'] == 'HostStorage'
    finally:
        leave.touch()
        child.join(WAIT_TIMEOUT)
    assert child.exitcode == 0


def _forked_child(path, done, leave):
    db = acquire_db(path)
    _commit(db, lambda root: root['acc'].append('child'))
    (done.parent / 'child-done.tmp').write_text(type(db.storage).__name__)
    os.replace(done.parent / 'child-done.tmp', done)
    release_db(db)
    _wait_file(leave)


#
# The worker processes
#

def _count(args):
    """Open the path, commit ``--commits`` increments of our counter, each
    with an append to the shared Accumulator; print a JSON line."""
    zeo_errors = _count_errors('ZEO')
    db = acquire_db(args.path)
    storage = type(db.storage).__name__
    if args.ready:
        _ready(args.ready)
    if args.barrier:
        _ready(args.barrier)
        _wait_file(os.path.join(args.barrier, 'go'))
    if args.start_after:
        _wait_file(args.start_after)
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    max_gap, last, retries = 0.0, time.monotonic(), -args.commits
    stale_reads = 0
    for i in range(args.commits):
        for attempt in tm.attempts(100):
            retries += 1
            if args.check:
                other, published = args.check[0], _published(args.check[1])
            with attempt:
                root = conn.root()
                stale = bool(args.check) and (
                    root['counters'][other]['n'] < published)
                n = root['counters'][args.name]['n'] = (
                    root['counters'][args.name]['n'] + 1)
                root['acc'].append((args.name, i))
        stale_reads += stale        # in the transaction that committed
        if args.publish:
            with open(args.publish + '.tmp', 'w') as f:
                f.write(str(n))
            os.replace(args.publish + '.tmp', args.publish)
        now = time.monotonic()
        max_gap, last = max(max_gap, now - last), now
        if args.signal_after and i + 1 == int(args.signal_after[0]):
            open(args.signal_after[1], 'w').close()
        if args.interval:
            time.sleep(args.interval)
    conn.close()
    if args.signal_done:
        open(args.signal_done, 'w').close()
    if args.stay_until:
        _wait_file(args.stay_until)
    hosting = share.host_pid(args.path) == os.getpid()
    print(json.dumps({'storage': storage, 'hosting': hosting,
                      'max_gap': round(max_gap, 3), 'retries': retries,
                      'stale_reads': stale_reads,
                      'zeo_errors': zeo_errors[:3]}),
          flush=True)
    if args.end == 'close':
        release_db(db)
    elif args.end == 'linger':
        time.sleep(PROCESS_TIMEOUT)
    # 'exit' (and 'close', a no-op then): atexit closes what is open.


def _dict(args):
    """``--writes`` items ``(name, i): i`` into DurableDict 'shared'."""
    d = DurableDict(args.path, 'shared')
    if args.ready:
        _ready(args.ready)
    if args.start_after:
        _wait_file(args.start_after)
    for i in range(args.writes):
        d[(args.name, i)] = i
        if args.signal_after and i + 1 == int(args.signal_after[0]):
            open(args.signal_after[1], 'w').close()
        if args.interval:
            time.sleep(args.interval)
    print(json.dumps({'hosting': share.host_pid(args.path) == os.getpid()}),
          flush=True)
    if args.end == 'close':
        d.close()


def _churn(args):
    """Open and close the path ``--times`` times, reading each time."""
    _wait_file(args.start_after)
    storages = set()
    for _ in range(args.times):
        db = open_db(args.path)
        storages.add(type(db.storage).__name__)
        _read(db, lambda root: dict(root['counters']['host']))
        db.close()
    print(json.dumps({'storages': sorted(storages)}), flush=True)


def _pingpong(args):
    """For each number n read on stdin: the ball must hold n; make it
    n + 1 in one transaction, no retry; print n + 1."""
    db = acquire_db(args.path)
    _ready(args.ready)
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    for line in sys.stdin:
        n = int(line)
        with tm:
            ball = conn.root()['ball']
            if ball['n'] != n:
                sys.exit(f'stale read: {ball["n"]} instead of {n}')
            ball['n'] = n + 1
        print(n + 1, flush=True)
    conn.close()
    release_db(db)


def _count_errors(logger_name):
    """A list that gets the errors the named logger records."""
    errors = []

    class Handler(logging.Handler):
        def emit(self, record):
            errors.append(record.getMessage()[:200])

    logging.getLogger(logger_name).addHandler(Handler(logging.ERROR))
    return errors


def _published(path):
    try:
        with open(path) as f:
            return int(f.read())
    except FileNotFoundError:
        return 0


def _ready(folder):
    open(os.path.join(folder, f'ready-{os.getpid()}'), 'w').close()


def _wait_file(path):
    deadline = time.monotonic() + WAIT_TIMEOUT
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            sys.exit(f'{path} did not appear in {WAIT_TIMEOUT} s')
        time.sleep(0.005)


def main(argv=None):
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest='command', required=True)
    count = commands.add_parser('count')
    count.add_argument('--path', required=True)
    count.add_argument('--name', required=True)
    count.add_argument('--commits', type=int, required=True)
    count.add_argument('--ready', help='say so in this folder once open')
    count.add_argument('--barrier', help='--ready, then wait for go')
    count.add_argument('--start-after')
    count.add_argument('--signal-after', nargs=2)
    count.add_argument('--interval', type=float, default=0)
    count.add_argument('--publish', metavar='FILE',
                       help='write our counter there after each commit')
    count.add_argument('--check', nargs=2, metavar=('NAME', 'FILE'),
                       help="count reads of NAME's counter below FILE's")
    count.add_argument('--signal-done', metavar='FILE')
    count.add_argument('--stay-until', metavar='FILE')
    count.add_argument('--end', choices=['close', 'exit', 'linger'],
                       default='close')
    facade = commands.add_parser('dict')
    facade.add_argument('--path', required=True)
    facade.add_argument('--name', required=True)
    facade.add_argument('--writes', type=int, required=True)
    facade.add_argument('--ready')
    facade.add_argument('--start-after')
    facade.add_argument('--signal-after', nargs=2)
    facade.add_argument('--interval', type=float, default=0)
    facade.add_argument('--end', choices=['close', 'exit'], default='close')
    churn = commands.add_parser('churn')
    churn.add_argument('--path', required=True)
    churn.add_argument('--times', type=int, required=True)
    churn.add_argument('--start-after', required=True)
    pingpong = commands.add_parser('pingpong')
    pingpong.add_argument('--path', required=True)
    pingpong.add_argument('--ready', required=True)
    args = parser.parse_args(argv)
    {'churn': _churn, 'count': _count, 'dict': _dict,
     'pingpong': _pingpong}[args.command](args)


if __name__ == '__main__':
    main()
