"""DurableDict on a real FileStorage: the MutableMapping API, durability,
transactions, threads, bad input, read-only, embedded use."""
import hashlib
import os
import threading

import pytest
import transaction
import ZODB
from ZODB.POSException import ReadOnlyError
from zope.interface.verify import verifyObject

from appendonly.facades import DictData
from appendonly.facades import DurableDict
from appendonly.facades import DurableQueue
from appendonly.interfaces import IDictData
from appendonly.interfaces import IDurableDict


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / 'Data.fs')


@pytest.fixture
def d(path):
    with DurableDict(path) as durable:
        yield durable


def _digest(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_interfaces(d):
    assert verifyObject(IDurableDict, d)
    assert verifyObject(IDictData, DictData())


def test_mapping_api(d):
    d['a'] = 1
    d[b'b'] = [2]
    d[3] = 'three'
    d[('t', 4)] = {'four': 4}
    assert len(d) == 4
    assert d['a'] == 1 and d[b'b'] == [2] and d[('t', 4)] == {'four': 4}
    assert 'a' in d and 'zz' not in d
    assert d.get('zz') is None and d.get('zz', 5) == 5
    assert d.keys() == ['a', b'b', 3, ('t', 4)]
    assert d.values() == [1, [2], 'three', {'four': 4}]
    assert d.items() == list(zip(d.keys(), d.values()))
    assert dict(d) == {'a': 1, b'b': [2], 3: 'three', ('t', 4): {'four': 4}}
    del d[3]
    with pytest.raises(KeyError):
        del d[3]
    with pytest.raises(KeyError):
        d[3]
    assert d.pop('a') == 1
    assert d.pop('a', 'gone') == 'gone'
    with pytest.raises(KeyError):
        d.pop('a')
    assert d.popitem() == (('t', 4), {'four': 4})
    assert d.setdefault('s', 1) == 1
    assert d.setdefault('s', 2) == 1
    d.update({'u': 1}, v=2)
    d.update([('w', 3)])
    assert d.keys() == [b'b', 's', 'u', 'v', 'w']
    d.clear()
    assert len(d) == 0 and d.keys() == []
    with pytest.raises(KeyError):
        d.popitem()


def test_insertion_order_and_overwrite_keeps_place(d):
    for key in ['x', 'a', 'm']:
        d[key] = key
    d['a'] = 'again'
    assert list(d) == ['x', 'a', 'm']
    assert d['a'] == 'again'


def test_values_come_back_as_copies(d):
    d['list'] = [1, 2]
    got = d['list']
    got.append(3)
    assert d['list'] == [1, 2]
    d['list'] = got
    assert d['list'] == [1, 2, 3]


def test_durable_across_reopen(path):
    with DurableDict(path) as d:
        d['k'] = 'v'
    with DurableDict(path) as d:
        assert d['k'] == 'v'


def test_several_dicts_and_a_queue_share_one_database(path):
    with DurableDict(path, 'one') as one, DurableDict(path, 'two') as two, \
            DurableQueue(path, 'q') as q:
        one['k'] = 1
        two['k'] = 2
        q.put('item')
        assert (one['k'], two['k'], q.get()) == (1, 2, 'item')


def test_transaction_groups_and_rolls_back(d, path):
    with d.transaction():
        d['a'] = 1
        d['b'] = 2
        assert d['a'] == 1      # visible inside the block
    assert d.keys() == ['a', 'b']
    with pytest.raises(RuntimeError):
        with d.transaction():
            d['c'] = 3
            del d['a']
            raise RuntimeError
    assert d.keys() == ['a', 'b']


@pytest.mark.parametrize('key', [1.5, True, None, [1], {'a'}, ('ok', 1.0)])
def test_bad_keys_raise_typeerror_before_writing(d, path, key):
    d['keep'] = 1
    before = _digest(path)
    with pytest.raises(TypeError, match='keys must be'):
        d[key] = 1
    with pytest.raises(TypeError):
        d.update([('fine', 1), (key, 2)])
    assert d.keys() == ['keep']
    assert _digest(path) == before


def test_unpicklable_value_changes_nothing(d, path):
    d['keep'] = 1
    before = _digest(path)
    with pytest.raises(TypeError, match='cannot store'):
        d['bad'] = lambda: None
    with pytest.raises(TypeError):
        d.update({'fine': 1, 'bad': threading.Lock()})
    assert d.items() == [('keep', 1)]
    assert _digest(path) == before


def test_readonly_refuses_writes_and_keeps_file(path):
    with DurableDict(path) as d:
        d['k'] = 'v'
    before = _digest(path)
    with DurableDict(path, readonly=True) as ro:
        assert ro['k'] == 'v'
        for write in (lambda: ro.__setitem__('x', 1),
                      lambda: ro.__delitem__('k'), lambda: ro.pop('k'),
                      ro.popitem, ro.clear, lambda: ro.update(x=1),
                      lambda: ro.setdefault('y', 1)):
            with pytest.raises(ReadOnlyError):
                write()
        assert ro.items() == [('k', 'v')]
    assert _digest(path) == before


def test_not_a_database_is_refused_and_untouched(tmp_path):
    junk = tmp_path / 'notes.txt'
    junk.write_bytes(b'not a database\n' * 10)
    with pytest.raises(ValueError, match='notes.txt'):
        DurableDict(str(junk))
    assert junk.read_bytes() == b'not a database\n' * 10
    assert sorted(os.listdir(tmp_path)) == ['notes.txt']


def test_embedded_joins_application_transaction(tmp_path):
    db = ZODB.DB(str(tmp_path / 'app.fs'))
    with db.transaction() as conn:
        conn.root.settings = DictData()
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    settings = DurableDict(conn.root.settings)
    settings['theme'] = 'dark'
    tm.abort()                      # the application's decision
    assert 'theme' not in settings
    settings['theme'] = 'light'
    tm.commit()
    with db.transaction() as other:
        assert DurableDict(other.root.settings)['theme'] == 'light'
    with pytest.raises(TypeError, match="application's transaction"):
        settings.transaction()
    conn.close()
    db.close()


def test_threads_writing_different_keys_never_surface_conflicts(d):
    errors = []

    def writer(n):
        try:
            for i in range(40):
                d[(n, i)] = i
        except Exception as e:      # pragma: no cover - the failure
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(d) == 320
    assert sorted(d.keys()) == sorted((n, i) for n in range(8)
                                      for i in range(40))
    # Each writer's keys keep its insertion order.
    keys = d.keys()
    for n in range(8):
        mine = [k for k in keys if k[0] == n]
        assert mine == [(n, i) for i in range(40)]


def test_popitem_and_pop_atomic_under_threads(d):
    d.update(((i, i) for i in range(200)))
    got, lock = [], threading.Lock()

    def popper():
        while True:
            try:
                item = d.popitem()
            except KeyError:
                return
            with lock:
                got.append(item)

    threads = [threading.Thread(target=popper) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == [(i, i) for i in range(200)]
    assert len(d) == 0


def test_same_key_writers_are_serialized(d):
    d['counter'] = 0

    # Inside transaction(), a ConflictError reaches the caller: retry it.
    def retrying_bump():
        import transaction as txn
        for _ in range(25):
            for attempt in range(200):
                try:
                    with d.transaction():
                        d['counter'] = d['counter'] + 1
                    break
                except txn.interfaces.TransientError:
                    continue

    threads = [threading.Thread(target=retrying_bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert d['counter'] == 100


def test_entries_written_as_tuples_before_2_0_still_read(tmp_path):
    # 2.0's development versions kept (position, pickled value) tuples in
    # DictData._items; entries are now one bytes.  Both read, and an
    # overwrite keeps the old position.
    import pickle

    import ZODB

    from appendonly.facades import DictData
    from appendonly.facades._dict import encode_key
    from appendonly.facades._dict import next_order_key
    from appendonly.verify import check
    db = ZODB.DB(str(tmp_path / 'Data.fs'))
    try:
        with db.transaction() as conn:
            data = conn.root()['d'] = DictData()
            for key in ('a', 'b'):
                position = next_order_key()
                stored = encode_key(key)
                data._items[stored] = (position, pickle.dumps(key.upper()))
                data._order[position] = stored
                data._len.change(1)
        with db.transaction() as conn:
            data = conn.root()['d']
            assert check(data) == []
            assert data['a'] == 'A' and data.get('b') == 'B'
            data['a'] = 'new'
            data['c'] = 'C'
            assert list(data) == ['a', 'b', 'c']
            assert data.pop('b') == 'B'
            assert data.snapshot() == [('a', 'new'), ('c', 'C')]
            assert check(data) == []
    finally:
        db.close()
