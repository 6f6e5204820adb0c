"""Hostile input: files that are not databases, damaged databases, places
a database cannot be created, and items the structures cannot store.

Each case expects a clear error naming the problem (never a traceback from
deep inside ZODB), files left as they were (sha256 before and after), and
the data already stored intact.
"""
import hashlib
import os
import pickle
import sqlite3
import subprocess
import sys
import threading

import pytest
import transaction
import ZODB
import ZODB.FileStorage
from ZODB.FileStorage.FileStorage import CorruptedTransactionError
from ZODB.FileStorage.format import DATA_HDR_LEN

from appendonly import AppendStack
from appendonly import Archive
from appendonly import cli
from appendonly.db import DatabaseUnavailableError
from appendonly.db import NotADatabaseError
from appendonly.db import open_db
from appendonly.facades import DurableDict
from appendonly.facades import DurableQueue
from appendonly.storage import SqliteStorage
from appendonly.storage import ZODBStorage
from appendonly.tests.zeoserver import env

MB = 1024 * 1024


def sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def listing(folder):
    return sorted(os.listdir(folder))


def run(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def nested(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.fixture
def fs(tmp_path):
    """A FileStorage with a stack (2 layers of 3) and its archive, ten
    items pushed one per transaction; no index or lock file left."""
    path = str(tmp_path / 'Data.fs')
    db = ZODB.DB(path)
    with db.transaction() as conn:
        conn.root.stack = AppendStack(2, 3)
        conn.root.archive = Archive()
    for n in range(10):
        with db.transaction() as conn:
            conn.root.stack.push(f'item {n}', conn.root.archive.addLayer)
    db.close()
    for suffix in ('.index', '.lock', '.tmp'):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    return path


def history(path):
    db = ZODB.DB(ZODB.FileStorage.FileStorage(path, read_only=True))
    try:
        with db.transaction() as conn:
            archived = [item for _, _, item in conn.root.archive]
            window = [item for _, _, item in conn.root.stack]
            return archived[::-1] + window[::-1]
    finally:
        db.close()


#
# Files that are not databases
#

def _text(path):
    with open(path, 'w') as f:
        f.write('hello\nthis is not a database\n')


def _random(path):
    with open(path, 'wb') as f:
        f.write(os.urandom(4096))


def _sqlite(path):
    conn = sqlite3.connect(path)
    conn.execute('create table t (x)')
    conn.commit()
    conn.close()


@pytest.mark.parametrize('make', [_text, _random, _sqlite],
                         ids=['text', 'random', 'sqlite'])
def test_not_a_database_file_w_open_db_and_verify(capsys, tmp_path, make):
    path = str(tmp_path / 'Data.fs')
    make(path)
    before, files = sha(path), listing(tmp_path)
    with pytest.raises(NotADatabaseError, match='not a ZODB FileStorage'):
        open_db(path)
    with pytest.raises(NotADatabaseError):
        DurableDict(path)
    status, out, err = run(capsys, 'verify', path)
    assert status == 2
    assert err == (f'appendonly: error: {path}: not a ZODB FileStorage or '
                   f'ZConfig file\n')
    assert sha(path) == before
    assert listing(tmp_path) == files       # no lock, index or socket


def test_empty_dir_w_open_db_and_verify(capsys, tmp_path):
    folder = tmp_path / 'db'
    folder.mkdir()
    with pytest.raises(NotADatabaseError, match='is a directory'):
        open_db(str(folder))
    status, out, err = run(capsys, 'verify', folder)
    assert status == 2 and 'is a directory, not a database' in err
    assert listing(folder) == []
    assert listing(tmp_path) == ['db']


def test_dir_where_file_expected_w_storage(tmp_path):
    folder = tmp_path / 'Data.fs'
    folder.mkdir()
    with pytest.raises(Exception, match='is a directory') as info:
        ZODBStorage(str(folder), create=True)
    assert not isinstance(info.value, (AttributeError, UnboundLocalError))
    assert listing(folder) == [] and listing(tmp_path) == ['Data.fs']


def test_sqlite_storage_w_zodb_file(fs):
    before = sha(fs)
    with pytest.raises(Exception) as info:
        SqliteStorage(fs)
    assert not isinstance(info.value, (AttributeError, UnboundLocalError))
    assert sha(fs) == before


#
# Damaged databases
#

def test_truncated_tail_w_verify_read_only(capsys, fs):
    """Cut in the middle of the last transaction.  Opened read-only (what
    verify does) the file is left as it is, the items before the torn
    transaction are all there, and verify reports the cut."""
    with open(fs, 'rb') as f:
        data = f.read()
    with open(fs, 'wb') as f:
        f.write(data[:-50])
    before = sha(fs)
    status, out, err = run(capsys, 'verify', fs)
    assert status == 1
    assert 'truncated: the file ends inside a transaction at offset' in out
    assert out.endswith('structures checked, 1 problems\n')
    assert sha(fs) == before
    assert history(fs) == [f'item {n}' for n in range(9)]


def test_truncated_tail_w_open_db_writable(fs):
    """Opened for writing, FileStorage truncates the torn tail (its crash
    recovery): the file ends at the last whole transaction, and the
    database takes new commits after it."""
    with open(fs, 'rb') as f:
        data = f.read()
    with open(fs, 'wb') as f:
        f.write(data[:-50])
    db = open_db(fs, shared=False)
    try:
        with db.transaction() as conn:
            conn.root.stack.push('after', conn.root.archive.addLayer)
    finally:
        db.close()
    assert history(fs) == [f'item {n}' for n in range(9)] + ['after']


def _oldest_archived_record(path):
    """The position of the data record of the oldest archived layer: an
    early record, still current (archived layers never change)."""
    db = ZODB.DB(ZODB.FileStorage.FileStorage(path, read_only=True))
    try:
        with db.transaction() as conn:
            layer = conn.root.archive._head
            while layer._next is not None:
                layer = layer._next
            return db.storage._lookup_pos(layer._p_oid)
    finally:
        db.close()


def _damage(path, offset, data):
    with open(path, 'r+b') as f:
        f.seek(offset)
        f.write(data)


def test_corrupt_pickle_w_verify(capsys, fs):
    """Bytes flipped inside an early record's pickle: verify reports it
    (exit 1), without a traceback, and leaves the file alone."""
    pos = _oldest_archived_record(fs)
    _damage(fs, pos + DATA_HDR_LEN + 10, b'\xff\xfe\xfd')
    before = sha(fs)
    status, out, err = run(capsys, 'verify', fs)
    assert status == 1
    assert "'archive': cannot read a record: a record does not load: " \
        "UnicodeDecodeError" in out
    assert out.endswith('1 problems\n')
    assert sha(fs) == before


def test_corrupt_pickle_w_verify_no_traceback(fs):
    """As above, in a real process: nothing but the report."""
    pos = _oldest_archived_record(fs)
    _damage(fs, pos + DATA_HDR_LEN + 10, b'\xff\xfe\xfd')
    result = subprocess.run(
        [sys.executable, '-m', 'appendonly', 'verify', fs],
        capture_output=True, text=True, env=env(), timeout=60)
    assert result.returncode == 1
    # Names the structure whose record is damaged; no traceback.
    assert "'archive': cannot read a record" in result.stdout
    assert 'Traceback' not in result.stderr


def test_corrupt_record_header_w_verify(capsys, fs):
    """A damaged record length: FileStorage refuses to open the file.
    verify should report that (exit 1), not crash."""
    pos = _oldest_archived_record(fs)
    _damage(fs, pos + DATA_HDR_LEN - 8, b'\xff' * 8)    # the pickle length
    before = sha(fs)
    status, out, err = run(capsys, 'verify', fs)
    assert status == 1
    assert 'exceeds transaction record' in out + err
    assert sha(fs) == before


def test_corrupt_record_header_w_open_db(fs):
    """open_db itself: FileStorage's own error, naming the file and the
    offset; the file is not changed (not even when opened for writing)."""
    pos = _oldest_archived_record(fs)
    _damage(fs, pos + DATA_HDR_LEN - 8, b'\xff' * 8)
    before = sha(fs)
    for read_only in (True, False):
        with pytest.raises(CorruptedTransactionError,
                           match='data record exceeds'):
            open_db(fs, read_only=read_only, shared=False)
    assert sha(fs) == before


#
# Places a database cannot be created
#

def test_parent_is_a_file(tmp_path):
    parent = tmp_path / 'afile'
    parent.write_text('x')
    target = str(parent / 'Data.fs')
    with pytest.raises(FileNotFoundError, match='afile'):
        open_db(target)
    with pytest.raises(FileNotFoundError):
        DurableDict(target)
    assert parent.read_text() == 'x'
    assert listing(tmp_path) == ['afile']


def test_read_only_directory(tmp_path):
    folder = tmp_path / 'ro'
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(str(folder), os.W_OK):
            pytest.skip('running as root: chmod does not stop writes '
                        '(test_parent_is_a_file covers a place where '
                        'nothing can be created)')
        with pytest.raises(PermissionError, match='ro'):
            open_db(str(folder / 'Data.fs'))
        assert listing(folder) == []
    finally:
        folder.chmod(0o755)


def test_lock_file_cannot_be_created(fs):
    """The sharing lock's place (in the runtime folder) is taken by a
    directory: the error names it, and nothing is written next to the
    database."""
    from appendonly import share
    lock = share.address(fs)[:-len('.sock')] + '.lock'
    os.mkdir(lock)
    try:
        before = sha(fs)
        with pytest.raises(DatabaseUnavailableError) as info:
            open_db(fs)
        assert lock in str(info.value)
        assert sha(fs) == before
        assert listing(os.path.dirname(fs)) == ['Data.fs']
    finally:
        os.rmdir(lock)


def test_filestorage_lock_file_cannot_be_created(fs):
    """shared=False: FileStorage's own Data.fs.lock is a directory."""
    os.mkdir(fs + '.lock')
    before = sha(fs)
    with pytest.raises(OSError) as info:
        open_db(fs, shared=False)
    assert '.lock' in str(info.value)
    assert sha(fs) == before


#
# Items
#

@pytest.fixture
def zdb(tmp_path):
    db = ZODB.DB(ZODB.FileStorage.FileStorage(str(tmp_path / 'Data.fs')))
    yield db
    db.close()


UNPICKLABLE = [threading.Lock(), (lambda: None), (x for x in ())]


@pytest.mark.parametrize('value', UNPICKLABLE, ids=['lock', 'lambda', 'gen'])
def test_unpicklable_w_dict(zdb, value):
    d = DurableDict(zdb, 'd')
    d['keep'] = 'kept'
    last = zdb.lastTransaction()
    with pytest.raises(TypeError, match='cannot store'):
        d['bad'] = value
    with pytest.raises(TypeError, match='cannot store'):
        d.update({'other': 1, 'bad': value})
    assert zdb.lastTransaction() == last
    assert d.items() == [('keep', 'kept')]


@pytest.mark.parametrize('value', UNPICKLABLE, ids=['lock', 'lambda', 'gen'])
def test_unpicklable_w_queue(zdb, value):
    q = DurableQueue(zdb, 'q')
    q.put('first')
    last = zdb.lastTransaction()
    with pytest.raises(TypeError, match='cannot store'):
        q.put(value)
    assert zdb.lastTransaction() == last
    assert q.qsize() == 1 and q.get_nowait() == 'first'


def test_unpicklable_w_transaction_block(zdb):
    """An unpicklable value in a block: the block raises, nothing of it
    is committed."""
    d = DurableDict(zdb, 'd')
    with pytest.raises(TypeError):
        with d.transaction():
            d['a'] = 1
            d['bad'] = threading.Lock()
    assert d.items() == []


@pytest.mark.parametrize('value', UNPICKLABLE, ids=['lock', 'lambda', 'gen'])
def test_unpicklable_w_stack_push(zdb, value):
    """push() keeps the object; the commit fails pickling it, the caller
    aborts, and what was committed before is intact."""
    tm = transaction.TransactionManager()
    conn = zdb.open(tm)
    conn.root()['stack'] = stack = AppendStack(2, 3)
    conn.root()['archive'] = archive = Archive()
    for n in range(5):
        stack.push(n, archive.addLayer)
        tm.commit()
    last = zdb.lastTransaction()
    stack.push(value, archive.addLayer)
    with pytest.raises((TypeError, AttributeError, pickle.PicklingError)):
        tm.commit()
    tm.abort()
    assert zdb.lastTransaction() == last
    assert [item for _, _, item in stack][::-1] == [0, 1, 2, 3, 4]
    stack.push(5, archive.addLayer)
    tm.commit()
    conn.close()


def test_storage_value_whose_str_raises(tmp_path):
    """The Storage contract coerces with str(): a value whose str() fails
    fails the call, and the other items of the call are not written."""

    class Bad:
        def __str__(self):
            raise TypeError('no str for you')

    storage = ZODBStorage(str(tmp_path / 'Data.fs'), create=True)
    try:
        storage.add_container('c')
        storage.set_container_item('c', 'keep', 'kept')
        with pytest.raises(TypeError, match='no str for you'):
            storage.set_container_items('c', [('a', '1'), ('b', Bad())])
        assert list(storage.get_container_items('c')) == [('keep', 'kept')]
    finally:
        storage.close()


def test_huge_value_w_dict_and_queue(zdb):
    value = os.urandom(10 * MB)
    d = DurableDict(zdb, 'd')
    d['big'] = value
    q = DurableQueue(zdb, 'q')
    q.put(value)
    assert d['big'] == value
    assert q.get_nowait() == value


def test_huge_item_w_stack(tmp_path):
    path = str(tmp_path / 'Data.fs')
    value = os.urandom(10 * MB)
    db = ZODB.DB(path)
    with db.transaction() as conn:
        conn.root.stack = AppendStack(2, 3)
        conn.root.stack.push(value)
    db.close()
    db = ZODB.DB(path)      # read back from the file, not the cache
    with db.transaction() as conn:
        [(_, _, got)] = list(conn.root.stack)
    db.close()
    assert got == value


def test_deeply_nested_w_dict_and_queue(zdb):
    """Nested 500 deep: stored, or refused with TypeError at the call
    (pickle's recursion limit); the database carries on either way."""
    d = DurableDict(zdb, 'd')
    q = DurableQueue(zdb, 'q')
    value = nested(500)
    for store, load in ((lambda: d.__setitem__('deep', value),
                         lambda: d['deep']),
                        (lambda: q.put(value), q.get_nowait)):
        try:
            store()
        except TypeError as e:
            assert 'recursion' in str(e)
        else:
            assert load() == value
    d['after'] = 1
    q.put('after')
    assert d['after'] == 1


def test_deeply_nested_w_stack(zdb):
    tm = transaction.TransactionManager()
    conn = zdb.open(tm)
    conn.root()['stack'] = stack = AppendStack()
    stack.push('before')
    tm.commit()
    stack.push(nested(500))
    try:
        tm.commit()
    except RecursionError:
        tm.abort()
        assert [item for _, _, item in stack] == ['before']
    else:
        assert len(stack) == 2
    stack.push('after')
    tm.commit()
    assert [item for _, _, item in stack][0] == 'after'
    conn.close()


@pytest.mark.parametrize('key', [1.5, True, None, [1], {'a': 1}, ('t', 1.0)],
                         ids=['float', 'bool', 'none', 'list', 'dict',
                              'tuple-w-float'])
def test_wrong_key_type_w_dict(zdb, key):
    d = DurableDict(zdb, 'd')
    last = zdb.lastTransaction()
    with pytest.raises(TypeError, match='keys must be'):
        d[key] = 'v'
    with pytest.raises(TypeError, match='keys must be'):
        d.update([('ok', 1), (key, 'v')])
    assert zdb.lastTransaction() == last
    assert d.items() == []
