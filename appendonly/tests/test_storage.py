"""The Storage contract: one conformance suite, run against ZODBStorage and
SqliteStorage alike.

Every method and error case, isolation between instances of one process
and of two processes (``other`` is either), thread safety, persistence,
read-only refusals and files that are not storages.  Where the two
implementations differ by design (ZODB merges concurrent writers of
different keys, SQLite has one writer), the test says so.
"""
import builtins
import contextlib
import json
import os
import subprocess
import sys
import threading

import pytest
import ZODB
import ZODB.FileStorage
from BTrees.OOBTree import OOBTree
from zope.interface.verify import verifyClass
from zope.interface.verify import verifyObject

import appendonly.storage
from appendonly.storage import ContainerNotFoundError
from appendonly.storage import DuplicateContainerError
from appendonly.storage import DuplicateStorageError
from appendonly.storage import IStorage
from appendonly.storage import NotAStorageError
from appendonly.storage import ReadOnlyStorageError
from appendonly.storage import Storage
from appendonly.storage import StorageConflictError
from appendonly.storage import StorageError
from appendonly.storage import StorageNotFoundError
from appendonly.storage import ZODBStorage
from appendonly.storage.sqlite import SqliteStorage
from appendonly.tests.zeoserver import env

KINDS = {'zodb': ZODBStorage, 'sqlite': SqliteStorage}
FILENAMES = {'zodb': 'Data.fs', 'sqlite': 'storage.db'}
#: Whether two explicit transactions writing different keys both commit.
MERGES_WRITERS = {'zodb': True, 'sqlite': False}


@pytest.fixture(params=sorted(KINDS))
def kind(request):
    return request.param


@pytest.fixture
def target(kind, tmp_path):
    return str(tmp_path / FILENAMES[kind])


@pytest.fixture
def make(kind, target):
    """``make(create=False, readonly=False, path=target)``: an instance,
    closed at the end of the test."""
    opened = []

    def make(create=False, readonly=False, path=target):
        storage = KINDS[kind](path, create=create, readonly=readonly)
        opened.append(storage)
        return storage

    yield make
    for storage in reversed(opened):
        storage.close()


@pytest.fixture
def storage(make):
    """A new storage with one empty container, ``'c'``."""
    storage = make(create=True)
    storage.add_container('c')
    return storage


class Remote:
    """A storage in another process (storage_worker), called like a local
    one; its errors are raised here under the same class."""

    def __init__(self, kind, target):
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'appendonly.tests.storage_worker', kind,
             target], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env(), text=True)
        self._answer()

    def send(self, method, *args):
        self.process.stdin.write(json.dumps([method, list(args)]) + '\n')
        self.process.stdin.flush()

    def receive(self):
        answer = self._answer()
        result = answer['result']
        if isinstance(result, list):      # pairs come back as lists
            result = [tuple(r) if isinstance(r, list) else r
                      for r in result]
        return result

    def _answer(self):
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(10)
            raise RuntimeError('storage worker died:\n' +
                               self.process.stderr.read())
        answer = json.loads(line)
        if 'error' in answer:
            name, message = answer['error']
            error = (getattr(appendonly.storage, name, None) or
                     getattr(builtins, name, RuntimeError))
            raise error(message)
        return answer

    @contextlib.contextmanager
    def transaction(self):
        self.begin()
        try:
            yield self
        except BaseException:
            self.rollback()
            raise
        else:
            self.commit()

    def __getattr__(self, method):
        def call(*args):
            self.send(method, *args)
            return self.receive()
        return call

    def stop(self):
        self.process.stdin.close()
        try:
            self.process.wait(30)
        finally:
            self.process.stdout.close()
            self.process.stderr.close()


@pytest.fixture(params=['instance', 'process'])
def other(request, kind, target, make):
    """``other()``: a second instance on the same storage, in this process
    or in another one (opened when called)."""
    started = []

    def other():
        if request.param == 'instance':
            return make()
        remote = Remote(kind, target)
        started.append(remote)
        return remote

    yield other
    for remote in started:
        remote.stop()


#
# Containers and items
#

def test_add_container_w_duplicate(storage):
    with pytest.raises(DuplicateContainerError):
        storage.add_container('c')
    storage.add_container('d')
    with pytest.raises(DuplicateContainerError):
        storage.add_container('d')


def test_delete_container(storage):
    storage.set_container_item('c', 'k', 'v')
    storage.delete_container('c')
    with pytest.raises(ContainerNotFoundError):
        storage.get_container_len('c')
    storage.add_container('c')          # again, empty
    assert storage.get_container_len('c') == 0


def test_delete_container_w_absent(storage):
    with pytest.raises(ContainerNotFoundError):
        storage.delete_container('nope')


def test_set_and_get_item(storage):
    storage.set_container_item('c', 'k', 'v')
    assert storage.get_container_item('c', 'k') == 'v'
    storage.set_container_item('c', 'k', 'w')       # replaces
    assert storage.get_container_item('c', 'k') == 'w'


def test_ids_keys_and_values_coerced_with_str(storage):
    storage.add_container(7)
    storage.set_container_item(7, 1, 2.5)
    storage.set_container_items('7', {3: None, (4, 5): [6]})
    assert storage.get_container_item('7', '1') == '2.5'
    assert storage.get_container_item(7, 1) == '2.5'
    assert list(storage.get_container_items(7)) == [
        ('(4, 5)', '[6]'), ('1', '2.5'), ('3', 'None')]
    with pytest.raises(DuplicateContainerError):
        storage.add_container('7')


def test_get_container_item_w_absent_key(storage):
    with pytest.raises(KeyError):
        storage.get_container_item('c', 'nope')


def test_get_container_items_all_in_key_order(storage):
    pairs = {'b': '2', 'a': '1', 'é': '4', 'B': '0', 'aa': '3'}
    storage.set_container_items('c', pairs)
    assert list(storage.get_container_items('c')) == sorted(pairs.items())
    assert list(storage.get_container_keys('c')) == sorted(pairs)


def test_get_container_items_w_keys_and_missing(storage):
    storage.set_container_items('c', {'a': '1', 'b': '2'})
    assert list(storage.get_container_items('c', ['b', 'x', 'a', 'b'])) == [
        ('b', '2'), ('x', None), ('a', '1'), ('b', '2')]
    assert list(storage.get_container_items('c', iter([1]))) == [
        ('1', None)]
    assert list(storage.get_container_items('c', [])) == []


def test_get_container_items_w_many_keys(storage):
    # More keys than one SQL query takes.
    storage.set_container_items('c', ((i, i * 2) for i in range(1200)))
    keys = list(range(1300))
    got = list(storage.get_container_items('c', keys))
    assert got[:2] == [('0', '0'), ('1', '2')]
    assert got[1250] == ('1250', None)
    assert len(got) == 1300


def test_generators_are_generators_read_when_called(storage):
    storage.set_container_items('c', {'a': '1', 'b': '2'})
    keys = storage.get_container_keys('c')
    items = storage.get_container_items('c')
    assert iter(keys) is keys and iter(items) is items
    storage.set_container_item('c', 'c', '3')       # after the call
    assert list(keys) == ['a', 'b']
    assert list(items) == [('a', '1'), ('b', '2')]


def test_set_container_items_w_dict_pairs_and_generator(storage):
    storage.set_container_items('c', {'a': 1})
    storage.set_container_items('c', [('b', 2), ('c', 3)])
    storage.set_container_items('c', ((k, v) for k, v in [('d', 4)]))
    storage.set_container_items('c', {})
    assert dict(storage.get_container_items('c')) == {
        'a': '1', 'b': '2', 'c': '3', 'd': '4'}


def test_get_container_len(storage):
    assert storage.get_container_len('c') == 0
    storage.set_container_items('c', {i: i for i in range(50)})
    storage.set_container_item('c', 3, 'again')
    assert storage.get_container_len('c') == 50


def test_delete_container_item_w_absent_is_noop(storage):
    storage.set_container_items('c', {'a': 1, 'b': 2})
    storage.delete_container_item('c', 'a')
    storage.delete_container_item('c', 'a')
    storage.delete_container_item('c', 'never')
    assert list(storage.get_container_keys('c')) == ['b']


def test_delete_container_items_w_absent_is_noop(storage):
    storage.set_container_items('c', {i: i for i in range(10)})
    storage.delete_container_items('c', [1, 2, 'x', 2])
    storage.delete_container_items('c', (k for k in ['3']))
    storage.delete_container_items('c', [])
    assert storage.get_container_len('c') == 7


def test_clear_container(storage):
    storage.add_container('d')
    storage.set_container_items('c', {'a': 1})
    storage.set_container_items('d', {'b': 2})
    storage.clear_container('c')
    storage.clear_container('c')
    assert storage.get_container_len('c') == 0
    assert storage.get_container_item('d', 'b') == '2'


def test_clear_deletes_every_container(storage):
    storage.add_container('d')
    storage.set_container_items('d', {'b': 2})
    storage.clear()
    for c_id in ('c', 'd'):
        with pytest.raises(ContainerNotFoundError):
            storage.get_container_len(c_id)
    storage.clear()
    storage.add_container('d')
    assert storage.get_container_len('d') == 0


#: Every container operation, called on the absent container 'nope'.
ON_ABSENT = {
    'delete_container': lambda s: s.delete_container('nope'),
    'clear_container': lambda s: s.clear_container('nope'),
    'get_container_len': lambda s: s.get_container_len('nope'),
    'get_container_keys': lambda s: s.get_container_keys('nope'),
    'get_container_item': lambda s: s.get_container_item('nope', 'k'),
    'get_container_items': lambda s: s.get_container_items('nope'),
    'get_container_items-keys': lambda s: s.get_container_items('nope',
                                                                ['k']),
    'get_container_items-no-keys': lambda s: s.get_container_items('nope',
                                                                   []),
    'set_container_item': lambda s: s.set_container_item('nope', 'k', 'v'),
    'set_container_items': lambda s: s.set_container_items('nope',
                                                           {'k': 'v'}),
    'set_container_items-empty': lambda s: s.set_container_items('nope',
                                                                 {}),
    'delete_container_item': lambda s: s.delete_container_item('nope', 'k'),
    'delete_container_items': lambda s: s.delete_container_items('nope',
                                                                 ['k']),
    'delete_container_items-empty': lambda s: s.delete_container_items(
        'nope', []),
}


@pytest.mark.parametrize('in_transaction', [False, True],
                         ids=['implicit', 'in-transaction'])
@pytest.mark.parametrize('call', sorted(ON_ABSENT))
def test_every_container_operation_w_absent_container(storage, call,
                                                      in_transaction):
    if in_transaction:
        storage.begin()
    with pytest.raises(ContainerNotFoundError):
        ON_ABSENT[call](storage)
    storage.commit()        # the failed call left the transaction usable
    assert list(storage.get_container_keys('c')) == []


def test_errors_are_storage_errors():
    for name in appendonly.storage.__all__:
        if name.endswith('Error'):
            assert issubclass(getattr(appendonly.storage, name),
                              StorageError)


#
# Transactions
#

def test_commit_keeps_and_rollback_discards(storage):
    storage.begin()
    storage.set_container_item('c', 'kept', 1)
    storage.commit()
    storage.begin()
    storage.set_container_item('c', 'dropped', 2)
    storage.add_container('d')
    storage.delete_container_item('c', 'kept')
    assert list(storage.get_container_keys('c')) == ['dropped']  # own
    storage.rollback()
    assert list(storage.get_container_items('c')) == [('kept', '1')]
    with pytest.raises(ContainerNotFoundError):
        storage.get_container_len('d')


def test_rollback_of_delete_and_clear(storage):
    storage.set_container_items('c', {'a': 1})
    storage.add_container('d')
    storage.begin()
    storage.delete_container('c')
    storage.clear_container('d')
    storage.clear()
    storage.rollback()
    assert list(storage.get_container_items('c')) == [('a', '1')]
    assert storage.get_container_len('d') == 0


def test_transaction_context_manager(storage):
    with storage.transaction() as same:
        assert same is storage
        storage.set_container_item('c', 'a', 1)
    with pytest.raises(RuntimeError):
        with storage.transaction():
            storage.set_container_item('c', 'b', 2)
            raise RuntimeError('changed my mind')
    assert list(storage.get_container_keys('c')) == ['a']


def test_begin_twice(storage):
    storage.begin()
    storage.set_container_item('c', 'a', 1)
    with pytest.raises(StorageError, match='already open'):
        storage.begin()
    storage.commit()            # the transaction is still there
    assert storage.get_container_item('c', 'a') == '1'


def test_commit_and_rollback_without_begin_do_nothing(storage):
    storage.commit()
    storage.rollback()
    storage.set_container_item('c', 'a', 1)
    storage.rollback()          # the write was its own transaction
    assert storage.get_container_item('c', 'a') == '1'


def test_implicit_writes_commit_at_once(storage, make):
    storage.set_container_item('c', 'a', 1)
    storage.set_container_items('c', {'b': 2, 'c': 3})
    assert make().get_container_len('c') == 3


def test_writes_invisible_to_other_until_commit(storage, other):
    storage.set_container_item('c', 'old', 0)
    reader = other()
    storage.begin()
    storage.set_container_item('c', 'k', 'v')
    storage.delete_container_item('c', 'old')
    storage.add_container('d')
    assert list(reader.get_container_items('c')) == [('old', '0')]
    with pytest.raises(ContainerNotFoundError):
        reader.get_container_len('d')
    assert list(other().get_container_keys('c')) == ['old']  # a new one
    storage.commit()
    assert list(reader.get_container_items('c')) == [('k', 'v')]
    assert reader.get_container_len('d') == 0
    assert other().get_container_item('c', 'k') == 'v'


def test_begin_pins_snapshot_before_first_read(storage, other):
    reader = other()
    reader.begin()              # nothing read yet
    storage.set_container_item('c', 'k', 'v')
    storage.add_container('d')
    assert list(reader.get_container_items('c', ['k'])) == [('k', None)]
    with pytest.raises(ContainerNotFoundError):
        reader.get_container_len('d')
    storage.set_container_item('c', 'k2', 'v2')
    assert reader.get_container_len('c') == 0       # still
    reader.commit()
    reader.begin()              # a new snapshot
    assert list(reader.get_container_keys('c')) == ['k', 'k2']
    reader.rollback()


def test_writers_of_different_keys(storage, other, kind):
    writer = other()
    storage.set_container_items('c', {i: i for i in range(40)})
    storage.begin()
    writer.begin()
    storage.set_container_item('c', 'mine', 1)
    if MERGES_WRITERS[kind]:
        # Both insert into the same bucket; BTrees merge the inserts.
        writer.set_container_item('c', 'yours', 2)
        storage.commit()
        writer.commit()
    else:
        # SQLite: one writer at a time, and no upgrade of a snapshot.
        with pytest.raises(StorageConflictError):
            writer.set_container_item('c', 'yours', 2)
        with pytest.raises(StorageConflictError):
            writer.get_container_len('c')       # until it ends
        storage.commit()
        writer.rollback()
        with writer.transaction():
            writer.set_container_item('c', 'yours', 2)
    assert storage.get_container_item('c', 'mine') == '1'
    assert storage.get_container_item('c', 'yours') == '2'
    assert writer.get_container_len('c') == 42


def test_writers_of_one_key_conflict(storage, other, kind):
    writer = other()
    storage.begin()
    writer.begin()
    storage.set_container_item('c', 'k', 'first')
    if MERGES_WRITERS[kind]:
        writer.set_container_item('c', 'k', 'second')
        storage.commit()
        with pytest.raises(StorageConflictError):
            writer.commit()
    else:
        with pytest.raises(StorageConflictError):
            writer.set_container_item('c', 'k', 'second')
        storage.commit()
        with pytest.raises(StorageConflictError):
            writer.commit()         # it was rolled back
    assert writer.get_container_item('c', 'k') == 'first'
    with writer.transaction():      # begin again: it works
        assert writer.get_container_item('c', 'k') == 'first'
        writer.set_container_item('c', 'k', 'second')
    assert storage.get_container_item('c', 'k') == 'second'


def test_implicit_writers_in_processes(storage, kind, target):
    # Two processes make single-item commits into one container while this
    # one does too: every item arrives (ZODB merges or retries, SQLite
    # waits for the write lock).
    writers = [Remote(kind, target) for _ in range(2)]
    try:
        for n, writer in enumerate(writers):
            writer.send('fill', 'c', f'w{n}', 30)
        for i in range(30):
            storage.set_container_item('c', f'here.{i}', i)
        assert [w.receive() for w in writers] == [30, 30]
    finally:
        for writer in writers:
            writer.stop()
    assert storage.get_container_len('c') == 90
    assert storage.get_container_item('c', 'w1.29') == '29'


def test_threads_sharing_one_instance(storage):
    # Writers commit two keys at once, explicitly and implicitly; readers
    # must never see them differ, nor anything raise.
    errors = []

    def writer(n):
        for i in range(15):
            with storage.transaction():
                storage.set_container_item('c', 'a', f'{n}.{i}')
                storage.set_container_item('c', 'b', f'{n}.{i}')
            storage.set_container_items('c', {'x': f'{n}.{i}',
                                              'y': f'{n}.{i}'})

    def reader():
        for i in range(40):
            got = dict(storage.get_container_items('c', 'abxy'))
            if got['a'] != got['b'] or got['x'] != got['y']:
                errors.append(got)

    def guarded(func, *args):
        try:
            func(*args)
        except Exception as e:      # pragma: no cover  (reported below)
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(writer, n))
               for n in range(4)]
    threads += [threading.Thread(target=guarded, args=(reader,))
                for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    got = dict(storage.get_container_items('c'))
    assert got['a'] == got['b'] and got['x'] == got['y']
    assert storage.get_container_len('c') == 4


def test_other_threads_wait_for_an_open_transaction(storage):
    seen = []
    storage.begin()
    storage.set_container_item('c', 'a', 1)
    reader = threading.Thread(
        target=lambda: seen.append(storage.get_container_len('c')))
    reader.start()
    reader.join(0.2)
    assert reader.is_alive() and seen == []     # waiting for commit()
    storage.set_container_item('c', 'b', 2)
    storage.commit()
    reader.join(10)
    assert seen == [2]


#
# Opening, closing, persistence
#

def test_persists_across_close_and_reopen(storage, make):
    storage.set_container_items('c', {'a': 1})
    storage.add_container('d')
    storage.close()
    again = make()
    assert list(again.get_container_items('c')) == [('a', '1')]
    assert again.get_container_len('d') == 0


def test_create_where_a_storage_exists(storage, make):
    storage.close()
    with pytest.raises(DuplicateStorageError):
        make(create=True)


def test_open_missing_without_create(make, tmp_path):
    with pytest.raises(StorageNotFoundError):
        make()
    with pytest.raises(StorageNotFoundError):
        make(readonly=True)
    assert os.listdir(tmp_path) == []


def test_create_in_missing_folder(make, tmp_path):
    with pytest.raises(StorageNotFoundError):
        make(create=True, path=str(tmp_path / 'no' / 'such'))


def test_empty_file(make, target):
    open(target, 'wb').close()
    with pytest.raises(StorageNotFoundError):
        make()
    assert os.path.getsize(target) == 0
    storage = make(create=True)
    storage.add_container('c')
    assert storage.get_container_len('c') == 0


def test_create_w_readonly(make):
    with pytest.raises(ValueError):
        make(create=True, readonly=True)


def test_closed(storage):
    storage.begin()
    storage.set_container_item('c', 'a', 1)
    storage.close()             # rolls back
    storage.close()
    with pytest.raises(StorageError, match='closed'):
        storage.get_container_len('c')
    with pytest.raises(StorageError, match='closed'):
        storage.begin()


def test_context_manager_closes(storage, make):
    with make() as again:
        again.set_container_item('c', 'a', 1)
    with pytest.raises(StorageError):
        again.get_container_len('c')
    assert storage.get_container_item('c', 'a') == '1'


def _sqlite_file(path):
    import sqlite3
    db = sqlite3.connect(path)
    db.execute('CREATE TABLE t (x)')
    db.commit()
    db.close()


def _filestorage_file(path):
    db = ZODB.DB(ZODB.FileStorage.FileStorage(path))
    db.close()
    for suffix in ('.index', '.lock', '.tmp'):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


GARBAGE = {
    'text': b'hello, this is not a database\n',
    'binary': bytes(range(256)) * 8,
    'markup': b'<html><body>not a ZConfig file either</body></html>\n',
    'sqlite-magic': b'SQLite format 3\x00' + b'\xff' * 200,
    'filestorage-magic': b'FS30' + b'garbage after the magic' * 10,
    'other-kind': None,
}


@pytest.mark.parametrize('garbage', sorted(GARBAGE))
def test_not_a_storage_left_unchanged(kind, make, target, tmp_path,
                                      garbage):
    if garbage == 'other-kind':
        (_sqlite_file if kind == 'zodb' else _filestorage_file)(target)
    else:
        with open(target, 'wb') as f:
            f.write(GARBAGE[garbage])
    with open(target, 'rb') as f:
        before = f.read()
    for create, readonly in ((False, False), (True, False), (False, True)):
        with pytest.raises(NotAStorageError):
            make(create=create, readonly=readonly)
    with open(target, 'rb') as f:
        assert f.read() == before
    assert os.listdir(tmp_path) == [os.path.basename(target)]


def test_directory_is_not_a_storage(make, tmp_path):
    with pytest.raises(NotAStorageError):
        make(path=str(tmp_path))


#
# Read-only
#

#: Every write, on a storage holding container 'c' with item 'k'.
WRITES = {
    'add_container': lambda s: s.add_container('d'),
    'delete_container': lambda s: s.delete_container('c'),
    'clear_container': lambda s: s.clear_container('c'),
    'clear': lambda s: s.clear(),
    'set_container_item': lambda s: s.set_container_item('c', 'k', 'x'),
    'set_container_items': lambda s: s.set_container_items('c', {'k': 'x'}),
    'delete_container_item': lambda s: s.delete_container_item('c', 'k'),
    'delete_container_items': lambda s: s.delete_container_items('c',
                                                                 ['k']),
}


def test_readonly_refuses_every_write(storage, make, target):
    storage.set_container_item('c', 'k', 'v')
    storage.close()
    with open(target, 'rb') as f:
        before = f.read()
    reader = make(readonly=True)
    assert reader.readonly
    for name, write in sorted(WRITES.items()):
        with pytest.raises(ReadOnlyStorageError):
            write(reader)
        with pytest.raises(ReadOnlyStorageError):
            with reader.transaction():
                write(reader)
    assert list(reader.get_container_items('c')) == [('k', 'v')]
    with reader.transaction():
        assert reader.get_container_item('c', 'k') == 'v'
    reader.close()
    with open(target, 'rb') as f:
        assert f.read() == before
    assert make().get_container_item('c', 'k') == 'v'


def test_readonly_sees_commits_of_a_writer(storage, make):
    reader = make(readonly=True)
    storage.set_container_item('c', 'k', 'v')
    assert reader.get_container_item('c', 'k') == 'v'


#
# The contract itself
#

@pytest.mark.parametrize('klass', [ZODBStorage, SqliteStorage])
def test_class_conforms(klass):
    assert verifyClass(IStorage, klass)
    assert issubclass(klass, Storage)


def test_instance_conforms(storage):
    assert verifyObject(IStorage, storage)


def test_abc_carries_the_contract():
    with pytest.raises(TypeError):
        Storage()
    methods = set(IStorage.names()) - {'readonly', 'transaction'}
    assert Storage.__abstractmethods__ == methods
    for name in methods:
        assert getattr(Storage, name).__doc__ == IStorage[name].__doc__


def test_public_names():
    assert appendonly.storage.__all__ == sorted(appendonly.storage.__all__)
    assert set(appendonly.storage.__all__) == {
        'ContainerNotFoundError', 'DuplicateContainerError',
        'DuplicateStorageError', 'IStorage', 'NotAStorageError',
        'ReadOnlyStorageError', 'SqliteStorage', 'Storage',
        'StorageConflictError', 'StorageError', 'StorageNotFoundError',
        'StorageThreadError', 'StorageUnavailableError', 'ZODBStorage'}


#
# ZODBStorage: its place in a ZODB database
#

@pytest.fixture
def app_db(tmp_path):
    db = ZODB.DB(ZODB.FileStorage.FileStorage(str(tmp_path / 'app.fs')))
    yield db
    db.close()


def test_zodb_containers_under_one_root_key(app_db):
    from appendonly.facades import DurableDict
    with app_db.transaction() as conn:
        conn.root()['app'] = OOBTree({'own': 'data'})
    with ZODBStorage(app_db, create=True) as storage:
        storage.add_container('c')
        storage.set_container_item('c', 'k', 'v')
        with DurableDict(app_db, 'settings') as d:
            d['theme'] = 'dark'
    # The database stays open: the application passed it.
    with app_db.transaction() as conn:
        root = conn.root()
        assert sorted(root) == ['app', 'appendonly', 'appendonly.storage']
        assert dict(root['app']) == {'own': 'data'}
        containers = root['appendonly.storage']
        assert isinstance(containers, OOBTree)
        assert dict(containers['c']) == {'k': 'v'}
    with pytest.raises(DuplicateStorageError):
        ZODBStorage(app_db, create=True)


def test_zodb_database_without_a_storage(app_db, tmp_path):
    with app_db.transaction() as conn:
        conn.root()['app'] = 1
    with pytest.raises(StorageNotFoundError):
        ZODBStorage(app_db)
    app_db.close()
    path = str(tmp_path / 'app.fs')
    with open(path, 'rb') as f:
        before = f.read()
    with pytest.raises(StorageNotFoundError):
        ZODBStorage(path)
    with open(path, 'rb') as f:
        assert f.read() == before


def test_zodb_root_key_of_another_type(app_db):
    with app_db.transaction() as conn:
        conn.root()['appendonly.storage'] = 'something else'
    with pytest.raises(NotAStorageError):
        ZODBStorage(app_db)


@pytest.mark.zeo
def test_zodb_on_zeo_across_processes(zeo_server):
    uri = 'zeo://%s:%d?wait_timeout=30' % zeo_server
    with ZODBStorage(uri, create=True) as storage:
        storage.add_container('c')
        remote = Remote('zodb', uri)
        try:
            remote.begin()
            storage.set_container_item('c', 'a', 1)
            assert remote.get_container_len('c') == 0       # pinned
            remote.commit()
            assert remote.get_container_item('c', 'a') == '1'
            remote.begin()
            remote.set_container_item('c', 'b', 2)
            storage.set_container_item('c', 'c', 3)         # merges
            remote.commit()
            assert dict(storage.get_container_items('c')) == {
                'a': '1', 'b': '2', 'c': '3'}
        finally:
            remote.stop()
