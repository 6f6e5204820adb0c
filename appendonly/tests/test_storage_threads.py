"""The Storage bridge's thread model and its error mapping.

Threads: a call waits for another thread's transaction at most
``thread_timeout`` seconds, then raises StorageThreadError naming the owner;
``commit()``, ``rollback()`` and ``close()`` from another thread than the
owner raise at once; a waiting thread proceeds when the owner commits.  Run
against ZODBStorage (a FileStorage in tmp_path) and SqliteStorage, with real
threads.

Errors: ZODB's ReadConflictError and ConflictError, and ZEO's
ClientDisconnected (a real ZEO server, stopped mid-transaction), reach the
caller as StorageErrors chained to them, and doom the explicit transaction.
"""
import subprocess
import sys
import threading
import time

import pytest
import ZEO.ClientStorage
import ZODB
import ZODB.FileStorage
from ZEO.Exceptions import ClientDisconnected
from ZODB.POSException import ConflictError
from ZODB.POSException import ReadConflictError

from appendonly.storage import IStorage
from appendonly.storage import StorageConflictError
from appendonly.storage import StorageError
from appendonly.storage import StorageThreadError
from appendonly.storage import StorageUnavailableError
from appendonly.storage import ZODBStorage
from appendonly.storage.sqlite import SqliteStorage
from appendonly.tests.zeoserver import _accepts
from appendonly.tests.zeoserver import _start_server
from appendonly.tests.zeoserver import _stop
from appendonly.tests.zeoserver import env

KINDS = {'zodb': ZODBStorage, 'sqlite': SqliteStorage}
FILENAMES = {'zodb': 'Data.fs', 'sqlite': 'storage.db'}

#: thread_timeout of the tests that wait for it to pass.
SHORT = 0.5
#: thread_timeout of the tests that must not reach it, and the seconds
#: they give a thread to finish (a hang fails the test, not the run).
LONG = 120


@pytest.fixture(params=sorted(KINDS))
def make(request, tmp_path):
    """``make(thread_timeout)``: an instance on a new storage holding
    container 'c' (the first call creates it), closed after the test."""
    path = str(tmp_path / FILENAMES[request.param])
    opened = []

    def make(thread_timeout=LONG):
        storage = KINDS[request.param](path, create=not opened,
                                       thread_timeout=thread_timeout)
        if not opened:
            storage.add_container('c')
        opened.append(storage)
        return storage

    yield make
    for storage in reversed(opened):
        storage.close()


def in_thread(func, *args):
    """Run ``func(*args)`` in a new thread; return the thread and a list
    that gets ``('ok', result)`` or ``('error', exception)``."""
    outcome = []

    def run():
        try:
            outcome.append(('ok', func(*args)))
        except Exception as e:
            outcome.append(('error', e))

    thread = threading.Thread(target=run, name='worker')
    thread.start()
    return thread, outcome


def finish(thread):
    thread.join(LONG)
    assert not thread.is_alive(), f'{thread.name} still waits'


def wait_until_waiting(thread):
    """Return once ``thread`` waits for the instance's lock (in
    ``_acquire``), so that what follows happens while it waits."""
    deadline = time.monotonic() + LONG
    while True:
        frame = sys._current_frames().get(thread.ident)
        while frame is not None and frame.f_code.co_name != '_acquire':
            frame = frame.f_back
        if frame is not None:
            return
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.001)


def named(message, thread):
    return repr(thread.name) in message and str(thread.ident) in message


#
# Threads
#

def test_thread_timeout_is_a_constructor_argument(make):
    assert make().thread_timeout == LONG
    assert make(SHORT).thread_timeout == SHORT
    for klass in KINDS.values():
        assert klass.thread_timeout == 30.0         # the default


@pytest.mark.parametrize('bad', [0, -1, float('nan'), float('inf'), None,
                                 'soon', True])
def test_thread_timeout_w_bad_value(make, bad):
    make()
    with pytest.raises(ValueError, match='thread_timeout must be a '
                                         'positive number of seconds'):
        make(bad)


def test_join_of_a_worker_ends_w_error_naming_the_owner(make):
    # The deadlock: the main thread begins, then join()s a worker
    # that calls the instance.
    storage = make(SHORT)
    storage.begin()
    storage.set_container_item('c', 'a', 1)
    worker, outcome = in_thread(storage.get_container_len, 'c')
    finish(worker)
    [(how, error)] = outcome
    assert how == 'error' and isinstance(error, StorageThreadError)
    assert isinstance(error, StorageError)
    message = str(error)
    assert named(message, threading.main_thread())      # the owner
    assert named(message, worker)                       # the waiter
    assert 'thread_timeout' in message
    # The owner's transaction is untouched, and commits.
    assert storage.get_container_item('c', 'a') == '1'
    storage.commit()
    assert make().get_container_item('c', 'a') == '1'


@pytest.mark.parametrize('method', ['commit', 'rollback', 'close'])
def test_ending_another_threads_transaction_raises_at_once(make, method):
    storage = make(LONG)        # a wait would fail the test: see finish()
    storage.begin()
    storage.set_container_item('c', 'a', 1)
    worker, outcome = in_thread(getattr(storage, method))
    finish(worker)
    [(how, error)] = outcome
    assert how == 'error' and isinstance(error, StorageThreadError)
    message = str(error)
    assert message.startswith(f'{method}() from thread')
    assert named(message, threading.main_thread())
    assert named(message, worker)
    # Nothing changed: the transaction is still open, the instance too.
    assert make().get_container_len('c') == 0
    storage.set_container_item('c', 'b', 2)
    storage.commit()
    assert dict(make().get_container_items('c')) == {'a': '1', 'b': '2'}


def test_close_by_another_thread_without_a_transaction(make):
    storage = make()
    worker, outcome = in_thread(storage.close)
    finish(worker)
    assert outcome == [('ok', None)]
    with pytest.raises(StorageError, match='closed'):
        storage.get_container_len('c')


def test_waiting_thread_proceeds_when_the_owner_commits(make):
    storage = make(LONG)
    storage.begin()
    storage.set_container_item('c', 'a', 1)

    def work():
        value = storage.get_container_item('c', 'a')     # waits
        with storage.transaction():
            storage.set_container_item('c', 'b', value + '+')
        return value

    worker, outcome = in_thread(work)
    wait_until_waiting(worker)
    assert outcome == []
    storage.set_container_item('c', 'a', 2)
    storage.commit()
    finish(worker)
    assert outcome == [('ok', '2')]         # the committed value
    assert dict(make().get_container_items('c')) == {'a': '2', 'b': '2+'}


def test_begin_waits_for_another_threads_transaction(make):
    storage = make(LONG)
    storage.begin()

    def work():
        storage.begin()             # waits for ours to end
        storage.set_container_item('c', 'theirs', 1)
        storage.commit()

    worker, outcome = in_thread(work)
    wait_until_waiting(worker)
    storage.set_container_item('c', 'ours', 1)
    storage.rollback()
    finish(worker)
    assert outcome == [('ok', None)]
    assert list(make().get_container_keys('c')) == ['theirs']


#
# ZODB's and ZEO's errors in an explicit transaction
#

@pytest.fixture
def db(tmp_path):
    database = ZODB.DB(ZODB.FileStorage.FileStorage(str(tmp_path / 'Data.fs')))
    yield database
    database.close()


def assert_doomed(storage, error_class):
    """Every call raises ``error_class``, commit() too; then the instance
    works again."""
    with pytest.raises(error_class, match='rolled back'):
        storage.get_container_len('c')
    with pytest.raises(error_class, match='rolled back'):
        storage.set_container_item('c', 'k', 'again')
    with pytest.raises(error_class, match='commit\\(\\): .*rolled back'):
        storage.commit()
    storage.rollback()                  # ended by commit(): nothing to do


@pytest.mark.parametrize('operation', ['read', 'write'])
def test_read_conflict_in_an_operation_dooms_the_transaction(db, operation):
    writer = ZODBStorage(db, create=True)
    writer.add_container('c')
    writer.set_container_item('c', 'k', 'old')
    storage = ZODBStorage(db)
    storage.begin()                     # its snapshot has 'old'
    writer.set_container_item('c', 'k', 'new')
    # The pack removes the state 'old' was in (a second ahead: the tid of
    # the last commit may be ahead of the clock).  Our snapshot needs it:
    # with MVCC, that is ZODB's ReadConflictError.
    db.pack(time.time() + 1)
    with pytest.raises(StorageConflictError) as raised:
        if operation == 'read':
            storage.get_container_item('c', 'k')
        else:
            storage.set_container_item('c', 'k', 'mine')
    assert isinstance(raised.value.__cause__, ReadConflictError)
    assert_doomed(storage, StorageConflictError)
    with storage.transaction():         # begins again, on fresh data
        assert storage.get_container_item('c', 'k') == 'new'
        storage.set_container_item('c', 'k', 'mine')
    assert writer.get_container_item('c', 'k') == 'mine'
    storage.close()
    writer.close()


def test_conflict_at_commit_ends_the_transaction(db):
    first = ZODBStorage(db, create=True)
    first.add_container('c')
    second = ZODBStorage(db)
    first.begin()
    second.begin()
    first.set_container_item('c', 'k', 'first')
    second.set_container_item('c', 'k', 'second')
    first.commit()
    with pytest.raises(StorageConflictError) as raised:
        second.commit()
    assert isinstance(raised.value.__cause__, ConflictError)
    second.rollback()                   # nothing left to roll back
    with second.transaction():
        assert second.get_container_item('c', 'k') == 'first'
        second.set_container_item('c', 'k', 'second')
    assert first.get_container_item('c', 'k') == 'second'
    first.close()
    second.close()


#: Seconds a ZEO client waits for its server before ClientDisconnected.
ZEO_WAIT = 2


def restart(tmp_path, addr):
    """runzeo again, on the address and file of _start_server's conf."""
    server = subprocess.Popen(
        [sys.executable, '-m', 'ZEO.runzeo', '-C',
         str(tmp_path / 'zeo.conf')],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, env=env(), cwd=tmp_path)
    deadline = time.monotonic() + 30
    while not _accepts(addr):
        assert server.poll() is None, 'the ZEO server did not restart'
        assert time.monotonic() < deadline, 'the ZEO server did not restart'
        time.sleep(0.05)
    return server


def zeo_db(addr):
    # Reconnects within a second of the server's return.
    return ZODB.DB(ZEO.ClientStorage.ClientStorage(
        addr, wait_timeout=ZEO_WAIT, max_disconnect_poll=1))


@pytest.mark.zeo
@pytest.mark.parametrize('where', ['read', 'write', 'commit'])
def test_zeo_server_lost_mid_transaction(tmp_path, where):
    server, addr, _ = _start_server(tmp_path)
    writer_db = zeo_db(addr)
    client_db = zeo_db(addr)
    try:
        # Written by another client: not in our client's cache, so our
        # first read of 'd' asks the server.
        with ZODBStorage(writer_db, create=True) as writer:
            for c_id in 'cd':
                writer.add_container(c_id)
                writer.set_container_item(c_id, 'k', 'old')
        storage = ZODBStorage(client_db)
        storage.begin()
        assert storage.get_container_item('c', 'k') == 'old'
        if where == 'commit':
            storage.set_container_item('c', 'k', 'lost')
        _stop(server)
        with pytest.raises(StorageUnavailableError) as raised:
            if where == 'read':
                storage.get_container_item('d', 'k')
            elif where == 'write':
                storage.set_container_item('d', 'k', 'lost')
            else:
                storage.commit()
        assert isinstance(raised.value.__cause__, ClientDisconnected)
        if where != 'commit':
            assert_doomed(storage, StorageUnavailableError)
        storage.rollback()
        with pytest.raises(StorageUnavailableError, match='begin'):
            storage.begin()             # still no server
        storage.rollback()              # no transaction: nothing to do
        server = restart(tmp_path, addr)
        with storage.transaction():     # the instance works again
            assert storage.get_container_item('d', 'k') == 'old'
            storage.set_container_item('d', 'k', 'new')
        storage.close()
        with ZODBStorage(writer_db) as writer:
            assert dict(writer.get_container_items('c')) == {'k': 'old'}
            assert dict(writer.get_container_items('d')) == {'k': 'new'}
    finally:
        client_db.close()
        writer_db.close()
        _stop(server)


def test_new_errors_are_part_of_the_contract():
    for error in (StorageThreadError, StorageUnavailableError):
        assert issubclass(error, StorageError)
        assert error.__module__ == 'appendonly.storage'
        assert error.__name__ in IStorage.__doc__
