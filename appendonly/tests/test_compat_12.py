"""Databases written by appendonly 1.2 load, keep working, and merge.

The fixture ``fixtures/appendonly12.fs`` was written by the real
appendonly 1.2 from PyPI; ``fixtures/appendonly12.json`` is what 1.2 read
back from it (see ``fixtures/README.rst``).  Every test works on a copy of
the .fs in ``tmp_path``: the committed file is never opened, and its sha256
is checked after every test.

Sections:

1. loading: our classes read every 1.2 record as 1.2 did;
2. keep working: pushes, pruning, consume/append and reopening on 1.2 data;
3. conflict resolution for real: two connections with their own
   TransactionManager on a FileStorage, both starting from the 1.2-written
   record, so ZODB hands the resolver ``old`` in 1.2's shape;
4. the resolvers called directly with a 1.2-shaped ``old`` state.
"""
import ast
import hashlib
import json
import pathlib
import shutil

import pytest
import transaction
import ZODB
import ZODB.FileStorage
import ZODB.utils
from persistent.mapping import PersistentMapping
from ZODB.ConflictResolution import PersistentReference
from ZODB.ConflictResolution import PersistentReferenceFactory
from ZODB.ConflictResolution import state as _crs_state

import appendonly
from appendonly import Accumulator
from appendonly import AppendStack
from appendonly import Archive
from appendonly import ConflictError
from appendonly import _accumulator
from appendonly import _archive
from appendonly import _stack
from appendonly._accumulator import resolve_accumulator
from appendonly._archive import resolve_archive
from appendonly._stack import resolve_stack

FIXTURES = pathlib.Path(__file__).parent / 'fixtures'
FS_12 = FIXTURES / 'appendonly12.fs'
JSON_12 = FIXTURES / 'appendonly12.json'

# The sha256 of appendonly12.fs as committed.  Change it only together with
# a rebuild by make_fixture_12.py.
FS_12_SHA256 = (
    '2c0cde153c0334789081975d821375db50d0f5886e6f4193c78174949da781df')

ITEM_ENCODING = (
    'str and int items are stored as-is; a persistent.mapping.'
    'PersistentMapping item is {"PersistentMapping": <its dict>}; any other '
    'item (tuple, dict) is {"repr": repr(item)}.')

STACKS = ('empty_stack', 'stack', 'stack_default', 'stack_persistent_items')
ARCHIVES = ('empty_archive', 'archive', 'archive_persistent_items')
ACCUMULATORS = ('empty_acc', 'acc', 'acc_consumed')


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


_SHA256_AT_IMPORT = _sha256(FS_12)

with JSON_12.open() as _f:
    EXPECTED = json.load(_f)


#
# Helpers
#

def _decode(value):
    """An item as the JSON encodes it (see ITEM_ENCODING) -> the item."""
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return value
    (kind, payload), = value.items()
    if kind == 'repr':
        return ast.literal_eval(payload)
    if kind == 'PersistentMapping':
        return PersistentMapping(payload)
    raise AssertionError(f'unknown item encoding {kind!r}')


def _typed(entries):
    """``(generation, index, item)`` entries, with each item's type made
    part of the comparison (a tuple must not load as a list, a
    PersistentMapping not as a dict)."""
    return [(gen, index, type(item).__name__, item)
            for gen, index, item in entries]


def _expected_entries(kind, name):
    """What 1.2 iterated for a stack or archive, newest first."""
    return [(gen, index, _decode(item))
            for gen, index, item in EXPECTED[kind][name]['entries']]


def _history_12():
    """The 1.2 history of ``archive`` + ``stack``, oldest first."""
    return (list(reversed(_expected_entries('archives', 'archive'))) +
            list(reversed(_expected_entries('stacks', 'stack'))))


def _history(stack, archive):
    """Everything a stack and its archive hold, oldest first."""
    return list(reversed(list(archive))) + list(reversed(list(stack)))


def _check_positions(stack, archive):
    """Positions strictly increase and no generation is in both places."""
    history = _history(stack, archive)
    positions = [(gen, index) for gen, index, _ in history]
    assert all(a < b for a, b in zip(positions, positions[1:])), positions
    archived = {gen for gen, _, _ in archive}
    stacked = {gen for gen, _, _ in stack}
    assert archived & stacked == set()


def _layer_generations(stack):
    """The generations of the layers not (yet) in the spine, newest
    first."""
    return [layer.generation for layer in stack._layers]


def _live_entries(older):
    """The live ``(generation, count, record)`` entries of a stack's
    ``older`` (None or ``(floor, newest, spine)``), newest first; checks
    that ``newest`` names the newest entry."""
    if older is None:
        return []
    floor, newest, spine = older
    entries = spine.entries()
    assert type(entries) is tuple
    assert entries[0][0] == newest, (entries[0][0], newest)
    return [entry for entry in entries if entry[0] >= floor]


def _spine_generations(stack):
    """The generations of the live layers in the stack's spine, newest
    first."""
    return [gen for gen, _, _ in _live_entries(stack._older)]


def _gens(layers):
    """The generations of a stack state's layers (1.2's ``(generation,
    items)`` or our ``(generation, segments, tail)``)."""
    return [layer[0] for layer in layers]


def _spine_items(older):
    """``(generation, count, record type, items)`` of each live spine
    entry, newest first."""
    return [(gen, count, type(record), record.items())
            for gen, count, record in _live_entries(older)]


def _references(value):
    """Every PersistentReference in an unpickled state, in order."""
    if isinstance(value, PersistentReference):
        return [value]
    if isinstance(value, (list, tuple)):
        return [ref for item in value for ref in _references(item)]
    if isinstance(value, dict):
        return [ref for item in value.items() for ref in _references(item)]
    return []


def _archive_layers(archive):
    """``(generation, items)`` of each archived layer, newest first."""
    layers = []
    current = archive._head
    while current is not None:
        layers.append((current._generation, list(current._stack)))
        current = current._next
    return layers


def _open_db(path):
    return ZODB.DB(ZODB.FileStorage.FileStorage(str(path)))


def _raw_state(db, oid):
    """The current record of ``oid``, unpickled the way ZODB's conflict
    resolution unpickles ``old``: references become PersistentReference,
    no application object is created."""
    data, serial = db.storage.load(oid)
    return _crs_state(db.storage, oid, serial, PersistentReferenceFactory(),
                      data)


def _oid(name):
    return ZODB.utils.p64(int(EXPECTED['root_oids'][name], 16))


def _open_two(db):
    """Two connections, each with its own TransactionManager."""
    tm1 = transaction.TransactionManager()
    tm2 = transaction.TransactionManager()
    conn1, conn2 = db.open(tm1), db.open(tm2)
    return (tm1, conn1.root()), (tm2, conn2.root())


def _stack_snapshot(state):
    """A copy of a stack state deep enough to detect a resolver mutating
    its inputs (inline lists and segment tuples copied, records and
    references kept by identity).  States are 1.2's 3-tuples, layers
    ``(generation, items)``, or our 4-tuples, layers ``(generation,
    segments, tail)`` and ``older`` None or ``(floor, newest, spine)``."""
    max_layers, max_length, layers = state[:3]
    snapshot = []
    for layer in layers:
        if len(layer) == 2:
            gen, items = layer
            snapshot.append((gen, list(items)))
        else:
            gen, segments, tail = layer
            snapshot.append((gen, [tuple(segment) for segment in segments],
                             list(tail)))
    if len(state) == 3:
        return (max_layers, max_length, snapshot)
    older = state[3]
    return (max_layers, max_length, snapshot,
            None if older is None else tuple(older))


@pytest.fixture
def fs_path(tmp_path):
    """A private copy of the 1.2 fixture; the committed file stays as is."""
    path = tmp_path / 'Data.fs'
    shutil.copyfile(FS_12, path)
    yield path
    assert _sha256(FS_12) == FS_12_SHA256


@pytest.fixture
def db12(fs_path):
    database = _open_db(fs_path)
    yield database
    database.close()


@pytest.fixture
def resolver_calls(monkeypatch):
    """Record the states ZODB hands to each resolver, then resolve."""
    calls = {'stack': [], 'archive': [], 'accumulator': []}

    def spy(module, name, key):
        real = getattr(module, name)

        def wrapper(old, committed, new):
            calls[key].append((old, committed, new))
            return real(old, committed, new)
        monkeypatch.setattr(module, name, wrapper)

    spy(_stack, 'resolve_stack', 'stack')
    spy(_archive, 'resolve_archive', 'archive')
    spy(_accumulator, 'resolve_accumulator', 'accumulator')
    return calls


#
# 1. Loading
#

def test_load_12_fixture_item_encoding_is_the_one_decoded_here():
    assert EXPECTED['item_encoding'] == ITEM_ENCODING
    assert EXPECTED['versions']['appendonly'] == '1.2'


def test_load_12_root_objects_open_as_our_classes(db12):
    from appendonly import _ArchiveLayer
    assert _ArchiveLayer is appendonly._archive._ArchiveLayer
    root = db12.open().root()
    assert sorted(root.keys()) == sorted(STACKS + ARCHIVES + ACCUMULATORS)
    assert sorted(root.keys()) == sorted(EXPECTED['root_oids'])
    for name in STACKS:
        assert type(root[name]) is AppendStack, name
    for name in ARCHIVES:
        assert type(root[name]) is Archive, name
    for name in ACCUMULATORS:
        assert type(root[name]) is Accumulator, name
    for name in root:
        assert root[name]._p_oid == _oid(name), name
    for name in ('archive', 'archive_persistent_items'):
        current = root[name]._head
        while current is not None:
            assert type(current) is _ArchiveLayer
            current = current._next


def test_load_12_stacks_iterate_as_12_did(db12):
    root = db12.open().root()
    for name in STACKS:
        stack = root[name]
        expected = EXPECTED['stacks'][name]
        entries = _expected_entries('stacks', name)
        assert _typed(stack) == _typed(entries), name
        assert len(stack) == len(entries), name
        assert stack._max_layers == expected['_max_layers'], name
        assert stack._max_length == expected['_max_length'], name
        assert _layer_generations(stack) == expected['layer_generations']
        # A 1.2 state loads with every layer explicit and no spine.
        assert stack._older is None, name
        # A 1.2 layer loads as a layer with no segments, its items inline.
        for layer in stack._layers:
            assert layer.segments == [], name
            assert layer.tail == [
                item for gen, _, item in reversed(entries)
                if gen == layer.generation], name
            assert layer.items() == layer.tail, name


def test_load_12_stack_history_is_the_readme_recipe(db12):
    # README: 23 pushes of items cycling through three forms, 5 per layer.
    def make_item(i):
        return ['item-%04d' % i, ('item', i),
                {'index': i, 'label': 'item-%04d' % i}][i % 3]
    root = db12.open().root()
    assert _typed(_history(root['stack'], root['archive'])) == _typed(
        [(i // 5, i % 5, make_item(i)) for i in range(23)])


def test_load_12_archives_iterate_as_12_did(db12):
    root = db12.open().root()
    for name in ARCHIVES:
        archive = root[name]
        expected = EXPECTED['archives'][name]
        assert _typed(archive) == _typed(
            _expected_entries('archives', name)), name
        assert archive._generation == expected['_generation'], name
        layers = []
        current = archive._head
        while current is not None:
            layers.append({'generation': current._generation,
                           '_max_length': current._max_length,
                           'length': len(current._stack)})
            current = current._next
        assert layers == expected['layers'], name


def test_load_12_empty_archive_generation_is_minus_one(db12):
    archive = db12.open().root()['empty_archive']
    assert archive._generation == -1
    assert archive._head is None
    assert list(archive) == []


def test_load_12_accumulators_iterate_as_12_did(db12):
    root = db12.open().root()
    for name in ACCUMULATORS:
        acc = root[name]
        expected = [_decode(x) for x in EXPECTED['accumulators'][name]]
        assert list(acc) == expected, name
        assert len(acc) == len(expected), name
        # 1.2 kept no counter: a 1.2 list reads as "never consumed".
        assert acc.__getstate__() == {'items': expected, 'consumed': 0}


def test_load_12_stack_newer_gives_items_after_cursor(db12):
    root = db12.open().root()
    stack = root['stack']
    entries = _expected_entries('stacks', 'stack')
    assert _typed(stack.newer(-1, -1)) == _typed(entries)
    assert _typed(stack.newer(3, 2)) == _typed(entries[:5])
    assert _typed(stack.newer(3, 4)) == _typed(entries[:3])
    assert _typed(stack.newer(2, 4)) == _typed(entries[:8])
    assert list(stack.newer(4, 2)) == []
    # A cursor in the archived generations: everything the stack holds.
    assert _typed(stack.newer(1, 4)) == _typed(entries)
    default = root['stack_default']
    assert list(default.newer(0, 3)) == [
        (0, 6, 'default-0006'), (0, 5, 'default-0005'),
        (0, 4, 'default-0004')]
    pstack = root['stack_persistent_items']
    assert [(g, i, dict(item)) for g, i, item in pstack.newer(1, 0)] == [
        (2, 0, {'n': 4}), (1, 1, {'n': 3})]


def test_load_12_reading_everything_writes_nothing(db12):
    tm = transaction.TransactionManager()
    root = db12.open(tm).root()
    before = db12.storage.lastTransaction()
    for name in STACKS + ARCHIVES:
        list(root[name])
    for name in ACCUMULATORS:
        list(root[name])
    for name in root:
        assert not root[name]._p_changed, name
    tm.commit()
    assert db12.storage.lastTransaction() == before
    assert _raw_state(db12, _oid('acc')) == ['a', 'b', 'c', 'd', 'e']


#
# 2. Keep working
#

def test_push_into_12_stack_w_archive_pruner_over_several_transactions(db12):
    tm = transaction.TransactionManager()
    root = db12.open(tm).root()
    new = [('new', n) for n in range(9)]
    for batch in (new[0:3], new[3:6], new[6:9]):
        for item in batch:
            root['stack'].push(item, root['archive'].addLayer)
        tm.commit()
    stack, archive = root['stack'], root['archive']
    positions = [(4, 3), (4, 4),
                 (5, 0), (5, 1), (5, 2), (5, 3), (5, 4),
                 (6, 0), (6, 1)]
    assert _typed(_history(stack, archive)) == _typed(
        _history_12() + [(g, i, item) for (g, i), item in zip(positions, new)])
    _check_positions(stack, archive)
    assert _layer_generations(stack) == [6]
    assert _spine_generations(stack) == [5, 4]
    assert stack._older[:2] == (4, 5)
    assert archive._generation == 3
    assert [gen for gen, _ in _archive_layers(archive)] == [3, 2, 1, 0]
    # The layers pruned from the 1.2 window kept their 1.2 items.
    assert _archive_layers(archive)[1] == (2, [
        ('item', 10), {'index': 11, 'label': 'item-0011'}, 'item-0012',
        ('item', 13), {'index': 14, 'label': 'item-0014'}])


def test_push_into_12_default_stack_grows_its_layer(db12):
    tm = transaction.TransactionManager()
    root = db12.open(tm).root()
    root['stack_default'].push('default-0007')
    tm.commit()
    root['stack_default'].push('default-0008')
    tm.commit()
    assert list(root['stack_default']) == [
        (0, i, 'default-%04d' % i) for i in range(8, -1, -1)]


def test_push_into_12_stack_of_persistent_items_w_archive_pruner(db12):
    tm = transaction.TransactionManager()
    root = db12.open(tm).root()
    stack = root['stack_persistent_items']
    archive = root['archive_persistent_items']
    for n in (5, 6):
        stack.push(PersistentMapping({'n': n}), archive.addLayer)
        tm.commit()
    history = _history(stack, archive)
    assert [(g, i, type(item), dict(item)) for g, i, item in history] == [
        (g, i, PersistentMapping, {'n': n}) for g, i, n in (
            (0, 0, 0), (0, 1, 1), (1, 0, 2), (1, 1, 3), (2, 0, 4),
            (2, 1, 5), (3, 0, 6))]
    _check_positions(stack, archive)
    # The items 1.2 stored are the same records, now referenced from the
    # archive layer our code wrote.
    assert [item._p_oid for _, _, item in history[2:4]] == [
        ZODB.utils.p64(0x0f), ZODB.utils.p64(0x10)]


def test_push_into_12_stack_moves_all_but_newest_layer_into_spine(db12):
    tm = transaction.TransactionManager()
    root = db12.open(tm).root()
    stack = root['stack']
    stack.push('mine-0', root['archive'].addLayer)
    tm.commit()
    max_layers, max_length, layers, older = stack.__getstate__()
    assert (max_layers, max_length) == (3, 5)
    # The newest layer: explicit, no segments, its items inline.
    assert layers == [(4, (), [{'index': 20, 'label': 'item-0020'},
                                'item-0021', ('item', 22), 'mine-0'])]
    assert type(layers[0][2]) is list
    # Each 1.2 layer below it was one inline list: sealed as exactly one
    # record (a single _Segment, nothing to gather) and moved into the
    # spine, nothing pruned.
    floor, newest, spine = older
    assert (floor, newest) == (2, 3)
    assert type(spine) is appendonly._Spine
    assert _spine_items(older) == [
        (3, 5, appendonly._Segment, [
            'item-0015', ('item', 16), {'index': 17, 'label': 'item-0017'},
            'item-0018', ('item', 19)]),
        (2, 5, appendonly._Segment, [
            ('item', 10), {'index': 11, 'label': 'item-0011'}, 'item-0012',
            ('item', 13), {'index': 14, 'label': 'item-0014'}])]
    assert len(spine.entries()) == 2
    records = [record for _, _, record in spine.entries()]
    assert records[0] is not records[1]
    # The stored record: the newest layer inline and one reference, to the
    # spine.
    raw = _raw_state(db12, stack._p_oid)
    assert raw[:3] == (3, 5, [(4, (), layers[0][2])])
    assert raw[3][:2] == (2, 3)
    [ref] = _references(raw)
    assert ref is raw[3][2]
    assert ref.klass is appendonly._Spine
    assert ref.oid == spine._p_oid
    # The stored spine: one reference per sealed 1.2 layer.
    raw_spine = _raw_state(db12, spine._p_oid)
    assert [(gen, count) for gen, count, _ in raw_spine] == [(3, 5), (2, 5)]
    for _, _, ref in raw_spine:
        assert isinstance(ref, PersistentReference)
        assert ref.klass is appendonly._Segment
    assert [ref.oid for _, _, ref in raw_spine] == [
        record._p_oid for record in records]
    # A push into the open layer rewrites neither the spine nor the layer
    # records.
    oids = [spine._p_oid] + [record._p_oid for record in records]
    serials = [db12.storage.load(oid)[1] for oid in oids]
    assert [obj._p_serial for obj in [spine] + records] == serials
    stack.push('mine-1', root['archive'].addLayer)
    tm.commit()
    layers, older = stack.__getstate__()[2:]
    assert layers == [(4, (), [{'index': 20, 'label': 'item-0020'},
                                'item-0021', ('item', 22),
                                'mine-0', 'mine-1'])]
    assert older[:2] == (2, 3)
    assert older[2] is spine
    assert [record for _, _, record in spine.entries()] == records
    assert [db12.storage.load(oid)[1] for oid in oids] == serials
    assert [obj._p_serial for obj in [spine] + records] == serials
    assert _raw_state(db12, stack._p_oid)[3][2].oid == spine._p_oid


def test_accumulators_12_append_and_consume(db12):
    tm = transaction.TransactionManager()
    root = db12.open(tm).root()
    root['acc'].append('f')
    root['acc'].extend(['g', 'h'])
    tm.commit()
    assert list(root['acc']) == ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']
    assert root['acc'].consume() == ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']
    assert root['acc_consumed'].consume() == ['after']
    root['empty_acc'].append('first')
    tm.commit()
    assert list(root['acc']) == []
    assert root['acc'].__getstate__() == {'items': [], 'consumed': 1}
    assert root['acc_consumed'].__getstate__() == {
        'items': [], 'consumed': 1}
    assert root['empty_acc'].consume() == ['first']
    tm.commit()
    assert root['empty_acc'].consume() == []


def test_set_max_layers_on_12_stack_then_push_prunes_to_new_size(db12):
    tm = transaction.TransactionManager()
    root = db12.open(tm).root()
    stack, archive = root['stack'], root['archive']
    pruned = []

    def pruner(generation, items):
        pruned.append((generation, list(items)))
        archive.addLayer(generation, items)

    stack._max_layers = 1
    stack.push('after-resize', pruner)
    tm.commit()
    assert pruned == [
        (2, [('item', 10), {'index': 11, 'label': 'item-0011'},
             'item-0012', ('item', 13),
             {'index': 14, 'label': 'item-0014'}]),
        (3, ['item-0015', ('item', 16),
             {'index': 17, 'label': 'item-0017'}, 'item-0018',
             ('item', 19)])]
    assert stack.__getstate__() == (1, 5, [(4, (), [
        {'index': 20, 'label': 'item-0020'}, 'item-0021', ('item', 22),
        'after-resize'])], None)
    assert [gen for gen, _ in _archive_layers(archive)] == [3, 2, 1, 0]
    assert _typed(_history(stack, archive)) == _typed(
        _history_12() + [(4, 3, 'after-resize')])
    _check_positions(stack, archive)


def test_12_data_and_new_pushes_survive_reopen(fs_path):
    db = _open_db(fs_path)
    try:
        with db.transaction() as conn:
            root = conn.root()
            for n in range(4):
                root['stack'].push(('new', n), root['archive'].addLayer)
            root['stack']._max_layers = 4
            root['acc'].append('f')
            root['acc_consumed'].consume()
            root['empty_acc'].append('kept')
    finally:
        db.close()
    db = _open_db(fs_path)
    try:
        root = db.open().root()
        stack, archive = root['stack'], root['archive']
        assert _typed(_history(stack, archive)) == _typed(
            _history_12() + [(4, 3, ('new', 0)), (4, 4, ('new', 1)),
                             (5, 0, ('new', 2)), (5, 1, ('new', 3))])
        assert (stack._max_layers, stack._max_length) == (4, 5)
        assert _layer_generations(stack) == [5]
        assert _spine_generations(stack) == [4, 3]
        assert archive._generation == 2
        _check_positions(stack, archive)
        assert list(root['acc']) == ['a', 'b', 'c', 'd', 'e', 'f']
        assert root['acc_consumed'].__getstate__() == {
            'items': [], 'consumed': 1}
        assert list(root['empty_acc']) == ['kept']
        # Untouched 1.2 objects read as before.
        assert _typed(root['stack_persistent_items']) == _typed(
            _expected_entries('stacks', 'stack_persistent_items'))
        assert _typed(root['archive_persistent_items']) == _typed(
            _expected_entries('archives', 'archive_persistent_items'))
        assert root['empty_archive']._generation == -1
    finally:
        db.close()


#
# 3. Conflict resolution for real, from the 1.2-written records
#

def _assert_both_read_12_record(db, name, root1, root2):
    """Both connections loaded the same, still 1.2-written, record."""
    obj1, obj2 = root1[name], root2[name]
    obj1._p_activate()
    obj2._p_activate()
    _, serial = db.storage.load(obj1._p_oid)
    assert obj1._p_serial == obj2._p_serial == serial
    return _raw_state(db, obj1._p_oid)


def test_concurrent_single_pushes_on_12_stack_merge(db12, resolver_calls):
    (tm1, root1), (tm2, root2) = _open_two(db12)
    old = _assert_both_read_12_record(db12, 'stack', root1, root2)
    assert old == (3, 5, [(gen, [
        item for g, _, item in reversed(_expected_entries('stacks', 'stack'))
        if g == gen]) for gen in (4, 3, 2)])
    root1['stack'].push('t1', root1['archive'].addLayer)
    root2['stack'].push('t2', root2['archive'].addLayer)
    spine1, spine2 = root1['stack']._older[2], root2['stack']._older[2]
    tm1.commit()
    tm2.commit()
    # ZODB resolved with old = the 1.2 record.
    assert len(resolver_calls['stack']) == 1
    assert resolver_calls['stack'][0][0] == old
    tm = transaction.TransactionManager()
    root = db12.open(tm).root()
    stack, archive = root['stack'], root['archive']
    assert _typed(_history(stack, archive)) == _typed(
        _history_12() + [(4, 3, 't1'), (4, 4, 't2')])
    _check_positions(stack, archive)
    # Both sides moved the 1.2 layers 3 and 2 into a spine: the merge keeps
    # the one t1 committed.
    assert _layer_generations(stack) == [4]
    assert _spine_generations(stack) == [3, 2]
    assert stack._older[2]._p_oid == spine1._p_oid != spine2._p_oid
    # The merged stack keeps working.
    stack.push('t3', archive.addLayer)
    tm.commit()
    assert _typed(_history(stack, archive)) == _typed(
        _history_12() + [(4, 3, 't1'), (4, 4, 't2'), (5, 0, 't3')])
    assert _layer_generations(stack) == [5]
    assert _spine_generations(stack) == [4, 3]


def test_concurrent_pushes_on_12_stack_merge_when_committed_opened_a_layer(
        db12, resolver_calls):
    (tm1, root1), (tm2, root2) = _open_two(db12)
    old = _assert_both_read_12_record(db12, 'stack', root1, root2)
    for n in range(3):
        root1['stack'].push(('t1', n), root1['archive'].addLayer)
    root2['stack'].push(('t2', 0), root2['archive'].addLayer)
    tm1.commit()
    tm2.commit()
    assert [call[0] for call in resolver_calls['stack']] == [old]
    root = db12.open().root()
    stack, archive = root['stack'], root['archive']
    assert _typed(_history(stack, archive)) == _typed(
        _history_12() + [(4, 3, ('t1', 0)), (4, 4, ('t1', 1)),
                         (5, 0, ('t1', 2)), (5, 1, ('t2', 0))])
    assert _layer_generations(stack) == [5]
    assert _spine_generations(stack) == [4, 3]
    assert archive._generation == 2
    _check_positions(stack, archive)


def test_concurrent_pushes_on_12_stack_conflict_when_new_seals_open_layer(
        db12):
    # New filled and sealed the layer committed appended to: the resolver
    # cannot place new's items, so the second commit fails; the retry
    # (from the committed state) succeeds.
    (tm1, root1), (tm2, root2) = _open_two(db12)
    _assert_both_read_12_record(db12, 'stack', root1, root2)
    root1['stack'].push(('t1', 0), root1['archive'].addLayer)
    for n in range(3):
        root2['stack'].push(('t2', n), root2['archive'].addLayer)
    tm1.commit()
    with pytest.raises(ConflictError):
        tm2.commit()
    tm2.abort()
    for n in range(3):
        root2['stack'].push(('t2', n), root2['archive'].addLayer)
    tm2.commit()
    root = db12.open().root()
    stack, archive = root['stack'], root['archive']
    assert _typed(_history(stack, archive)) == _typed(
        _history_12() + [(4, 3, ('t1', 0)), (4, 4, ('t2', 0)),
                         (5, 0, ('t2', 1)), (5, 1, ('t2', 2))])
    _check_positions(stack, archive)


def test_concurrent_pushes_of_persistent_items_on_12_stack_merge(
        db12, resolver_calls):
    (tm1, root1), (tm2, root2) = _open_two(db12)
    old = _assert_both_read_12_record(
        db12, 'stack_persistent_items', root1, root2)
    assert [[ref.oid for ref in items] for _, items in old[2]] == [
        [ZODB.utils.p64(0x11)], [ZODB.utils.p64(0x0f), ZODB.utils.p64(0x10)]]
    for root, n in ((root1, 't1'), (root2, 't2')):
        root['stack_persistent_items'].push(
            PersistentMapping({'n': n}),
            root['archive_persistent_items'].addLayer)
    tm1.commit()
    tm2.commit()
    assert [call[0] for call in resolver_calls['stack']] == [old]
    tm = transaction.TransactionManager()
    root = db12.open(tm).root()
    stack = root['stack_persistent_items']
    archive = root['archive_persistent_items']
    # t2 no longer fits in layer 2: the merge opened layer 3 and left one
    # surplus layer for the next push to prune.
    assert [(g, i, dict(item)) for g, i, item in stack] == [
        (3, 0, {'n': 't2'}), (2, 1, {'n': 't1'}), (2, 0, {'n': 4}),
        (1, 1, {'n': 3}), (1, 0, {'n': 2})]
    assert _layer_generations(stack) == [3, 2]
    assert _spine_generations(stack) == [1]
    stack.push(PersistentMapping({'n': 't3'}), archive.addLayer)
    tm.commit()
    assert _layer_generations(stack) == [3]
    assert _spine_generations(stack) == [2]
    history = _history(stack, archive)
    assert [(g, i, type(item), dict(item)) for g, i, item in history] == [
        (g, i, PersistentMapping, {'n': n}) for g, i, n in (
            (0, 0, 0), (0, 1, 1), (1, 0, 2), (1, 1, 3), (2, 0, 4),
            (2, 1, 't1'), (3, 0, 't2'), (3, 1, 't3'))]
    _check_positions(stack, archive)


def test_concurrent_add_layer_on_12_archive_merge(db12, resolver_calls):
    # What two pruning transactions do to the archive: both archive the
    # next layer, one archives one more.
    (tm1, root1), (tm2, root2) = _open_two(db12)
    old = _assert_both_read_12_record(db12, 'archive', root1, root2)
    assert set(old) == {'_head', '_generation'}
    assert old['_generation'] == 1
    assert old['_head'].oid == ZODB.utils.p64(0x07)
    layer2 = [('item', 10), {'index': 11, 'label': 'item-0011'}]
    layer3 = ['item-0015']
    root1['archive'].addLayer(2, layer2)
    root2['archive'].addLayer(2, layer2)
    root2['archive'].addLayer(3, layer3)
    tm1.commit()
    tm2.commit()
    assert [call[0] for call in resolver_calls['archive']] == [old]
    archive = db12.open().root()['archive']
    assert archive._generation == 3
    assert _archive_layers(archive) == [
        (3, layer3), (2, layer2),
        (1, [{'index': 5, 'label': 'item-0005'}, 'item-0006', ('item', 7),
             {'index': 8, 'label': 'item-0008'}, 'item-0009']),
        (0, ['item-0000', ('item', 1), {'index': 2, 'label': 'item-0002'},
             'item-0003', ('item', 4)])]


def test_concurrent_appends_on_12_accumulator_merge(db12, resolver_calls):
    (tm1, root1), (tm2, root2) = _open_two(db12)
    old = _assert_both_read_12_record(db12, 'acc', root1, root2)
    assert old == ['a', 'b', 'c', 'd', 'e']
    root1['acc'].append('f')
    root2['acc'].extend(['g', 'h'])
    tm1.commit()
    tm2.commit()
    assert [call[0] for call in resolver_calls['accumulator']] == [old]
    acc = db12.open().root()['acc']
    assert acc.__getstate__() == {
        'items': ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'], 'consumed': 0}


def test_consume_committed_while_other_appends_on_12_accumulator(
        db12, resolver_calls):
    (tm1, root1), (tm2, root2) = _open_two(db12)
    old = _assert_both_read_12_record(db12, 'acc', root1, root2)
    assert root1['acc'].consume() == ['a', 'b', 'c', 'd', 'e']
    root2['acc'].append('g')
    tm1.commit()
    tm2.commit()
    assert [call[0] for call in resolver_calls['accumulator']] == [old]
    tm = transaction.TransactionManager()
    acc = db12.open(tm).root()['acc']
    assert acc.__getstate__() == {'items': ['g'], 'consumed': 1}
    assert acc.consume() == ['g']
    tm.commit()


def test_append_committed_while_other_consumes_on_12_accumulator(
        db12, resolver_calls):
    (tm1, root1), (tm2, root2) = _open_two(db12)
    old = _assert_both_read_12_record(db12, 'acc', root1, root2)
    root1['acc'].append('f')
    assert root2['acc'].consume() == ['a', 'b', 'c', 'd', 'e']
    root2['acc'].append('after-consume')
    tm1.commit()
    tm2.commit()
    assert [call[0] for call in resolver_calls['accumulator']] == [old]
    acc = db12.open().root()['acc']
    assert acc.__getstate__() == {
        'items': ['after-consume', 'f'], 'consumed': 1}


def test_both_consume_12_accumulator_conflicts_and_retry_delivers_once(
        db12, resolver_calls):
    (tm1, root1), (tm2, root2) = _open_two(db12)
    old = _assert_both_read_12_record(db12, 'acc', root1, root2)
    first = root1['acc'].consume()
    assert root2['acc'].consume() == ['a', 'b', 'c', 'd', 'e']
    tm1.commit()
    with pytest.raises(ConflictError):
        tm2.commit()
    # The resolver ran (old = the 1.2 list) and refused.
    assert [call[0] for call in resolver_calls['accumulator']] == [old]
    tm2.abort()
    second = root2['acc'].consume()
    tm2.commit()
    assert first == ['a', 'b', 'c', 'd', 'e']
    assert second == []
    assert list(db12.open().root()['acc']) == []


def test_both_consume_own_appends_on_empty_12_accumulator_conflicts(
        db12, resolver_calls):
    # Each side consumed only what it appended itself, yet no serial order
    # of the two gives both results: the second commit must fail, and the
    # retry runs after the first.
    (tm1, root1), (tm2, root2) = _open_two(db12)
    old = _assert_both_read_12_record(db12, 'empty_acc', root1, root2)
    assert old == []
    root1['empty_acc'].append('x')
    root2['empty_acc'].append('y')
    first = root1['empty_acc'].consume()
    assert root2['empty_acc'].consume() == ['y']
    root2['empty_acc'].append('z')
    tm1.commit()
    with pytest.raises(ConflictError):
        tm2.commit()
    assert [call[0] for call in resolver_calls['accumulator']] == [old]
    tm2.abort()
    root2['empty_acc'].append('y')
    second = root2['empty_acc'].consume()
    root2['empty_acc'].append('z')
    tm2.commit()
    assert (first, second) == (['x'], ['y'])
    acc = db12.open().root()['empty_acc']
    assert acc.__getstate__() == {'items': ['z'], 'consumed': 2}


#
# 4. The resolvers, directly, with old in 1.2's shape
#

LAYER_3_12 = ['item-0015', ('item', 16), {'index': 17, 'label': 'item-0017'},
              'item-0018', ('item', 19)]
LAYER_2_12 = [('item', 10), {'index': 11, 'label': 'item-0011'}, 'item-0012',
              ('item', 13), {'index': 14, 'label': 'item-0014'}]
OPEN_LAYER_12 = [{'index': 20, 'label': 'item-0020'}, 'item-0021',
                 ('item', 22)]


def test_resolve_stack_w_12_old_and_both_pushed(db12):
    old = _raw_state(db12, _oid('stack'))
    (_, root1), (_, root2) = _open_two(db12)
    root1['stack'].push('c')
    root2['stack'].push('n')
    committed = root1['stack'].__getstate__()
    new = root2['stack'].__getstate__()
    snapshots = [_stack_snapshot(s) for s in (old, committed, new)]
    merged = resolve_stack(old, committed, new)
    assert len(merged) == 4
    assert merged[:3] == (3, 5, [(4, (), OPEN_LAYER_12 + ['c', 'n'])])
    # Both sides sealed the 1.2 layers 3 and 2, each into a spine and
    # records of its own: committed's are kept (a tie), not new's.
    spine_12 = [(3, 5, appendonly._Segment, LAYER_3_12),
                (2, 5, appendonly._Segment, LAYER_2_12)]
    for side in (committed, new):
        assert side[3][:2] == (2, 3)
        assert _spine_items(side[3]) == spine_12
        assert len(side[3][2].entries()) == 2
    assert merged[3][:2] == (2, 3)
    assert merged[3][2] is committed[3][2]
    assert merged[3][2] is not new[3][2]
    assert _spine_items(merged[3]) == spine_12
    for (_, _, m_record), (_, _, n_record) in zip(
            merged[3][2].entries(), new[3][2].entries()):
        assert m_record is not n_record
    assert [_stack_snapshot(s) for s in (old, committed, new)] == snapshots


def test_resolve_stack_w_12_old_and_committed_opened_a_layer(db12):
    old = _raw_state(db12, _oid('stack'))
    (_, root1), (_, root2) = _open_two(db12)
    for n in range(3):
        root1['stack'].push(('c', n), root1['archive'].addLayer)
    root2['stack'].push(('n', 0), root2['archive'].addLayer)
    committed = root1['stack'].__getstate__()
    new = root2['stack'].__getstate__()
    # Committed filled layer 4, opened layer 5, pruned layer 2 and moved
    # layer 4 into its spine; new moved the 1.2 layers 3 and 2 into a spine
    # of its own.
    assert committed[:3] == (3, 5, [(5, (), [('c', 2)])])
    assert committed[3][:2] == (3, 4)
    assert new[3][:2] == (2, 3)
    merged = resolve_stack(old, committed, new)
    assert merged[:3] == (3, 5, [(5, (), [('c', 2), ('n', 0)])])
    floor, newest, spine = merged[3]
    assert (floor, newest) == (3, 4)
    assert spine is committed[3][2]
    assert len(spine.entries()) == 2
    assert _spine_items(merged[3]) == [
        (4, 5, appendonly._Segment, OPEN_LAYER_12 + [('c', 0), ('c', 1)]),
        (3, 5, appendonly._Segment, LAYER_3_12)]
    # Layer 3 is committed's record, not new's.
    [(gen, _, n_record), _] = new[3][2].entries()
    assert gen == 3
    assert spine.entries()[1][2] is not n_record


def test_resolve_stack_w_12_old_and_new_opened_a_layer(db12):
    # Committed appended to the open layer, new filled it and went on: new
    # sealed the open layer, its own items in it included, into its spine,
    # so they are out of reach.
    old = _raw_state(db12, _oid('stack'))
    (_, root1), (_, root2) = _open_two(db12)
    root1['stack'].push(('c', 0))
    for n in range(3):
        root2['stack'].push(('n', n))
    new = root2['stack'].__getstate__()
    assert new[:3] == (3, 5, [(5, (), [('n', 2)])])
    assert new[3][:2] == (3, 4)
    assert _spine_items(new[3]) == [
        (4, 5, appendonly._Segment, OPEN_LAYER_12 + [('n', 0), ('n', 1)]),
        (3, 5, appendonly._Segment, LAYER_3_12)]
    with pytest.raises(ConflictError,
                       match='new sealed items it pushed into the open layer'):
        resolve_stack(old, root1['stack'].__getstate__(), new)


def test_resolve_stack_w_12_old_and_new_sealed_own_items_of_open_layer(db12):
    # The 1.2 layer holds 7 items inline; new's second push finds a full
    # tail and seals it, the 1.2 items and new's first item, into a segment
    # record: new's item is out of reach, at a position committed's item
    # now holds.
    assert _stack.SEGMENT_LENGTH == 8
    old = _raw_state(db12, _oid('stack_default'))
    assert old == (10, 100, [(0, ['default-%04d' % i for i in range(7)])])
    (_, root1), (_, root2) = _open_two(db12)
    root1['stack_default'].push('c')
    root2['stack_default'].push('n0')
    root2['stack_default'].push('n1')
    new = root2['stack_default'].__getstate__()
    [(gen, [(count, record)], tail)] = new[2]
    assert (gen, count, tail, new[3]) == (0, 8, ['n1'], None)
    assert type(record) is appendonly._Segment
    assert record.items() == ['default-%04d' % i for i in range(7)] + ['n0']
    with pytest.raises(ConflictError,
                       match='new sealed items it pushed into the open '
                             'layer committed appended to'):
        resolve_stack(old, root1['stack_default'].__getstate__(), new)


def test_resolve_stack_w_12_old_and_only_one_side_changed(db12):
    old = _raw_state(db12, _oid('stack'))
    root = db12.open().root()
    unchanged = _stack_snapshot(root['stack'].__getstate__())
    assert len(unchanged) == 4
    assert unchanged[3] is None
    root['stack'].push('x')
    changed = root['stack'].__getstate__()
    assert changed[3][:2] == (2, 3)
    assert resolve_stack(old, changed, unchanged) is changed
    assert resolve_stack(old, unchanged, changed) is changed


def test_resolve_stack_w_12_old_and_max_length_changed(db12):
    old = _raw_state(db12, _oid('stack'))
    (_, root1), (_, root2) = _open_two(db12)
    root1['stack'].push('c')
    root2['stack']._max_length = 6
    root2['stack'].push('n')
    with pytest.raises(ConflictError, match='max_length changed'):
        resolve_stack(old, root1['stack'].__getstate__(),
                      root2['stack'].__getstate__())


def test_resolve_stack_w_12_old_holding_persistent_references(db12):
    old = _raw_state(db12, _oid('stack_persistent_items'))
    assert all(isinstance(ref, PersistentReference)
               for _, items in old[2] for ref in items)
    (_, root1), (_, root2) = _open_two(db12)
    c_item, n_item = PersistentMapping({'n': 'c'}), PersistentMapping(
        {'n': 'n'})
    root1['stack_persistent_items'].push(c_item)
    root2['stack_persistent_items'].push(n_item)
    committed = root1['stack_persistent_items'].__getstate__()
    new = root2['stack_persistent_items'].__getstate__()
    merged = resolve_stack(old, committed, new)
    assert len(merged) == 4
    assert merged[:2] == (2, 2)
    assert _gens(merged[2]) == [3, 2]
    gen, segments, tail = merged[2][0]
    assert (gen, segments) == (3, ())
    assert len(tail) == 1
    assert tail[0] is n_item
    gen, segments, tail = merged[2][1]
    assert (gen, segments) == (2, ())
    assert len(tail) == 2
    assert tail[0]._p_oid == ZODB.utils.p64(0x11)
    assert tail[1] is c_item
    # The 1.2 layer 1, sealed by both sides: committed's spine is kept, its
    # record holds the items 1.2 stored.
    floor, newest, spine = merged[3]
    assert (floor, newest) == (1, 1)
    assert spine is committed[3][2]
    assert spine is not new[3][2]
    [(gen, count, record)] = spine.entries()
    assert (gen, count, type(record)) == (1, 2, appendonly._Segment)
    assert [item._p_oid for item in record.items()] == [
        ZODB.utils.p64(0x0f), ZODB.utils.p64(0x10)]


def test_resolve_stack_w_hand_built_12_empty_stack():
    old = (10, 100, [(0, [])])
    committed, new = AppendStack(), AppendStack()
    committed.push('c0')
    committed.push('c1')
    new.push('n0')
    assert resolve_stack(old, committed.__getstate__(),
                         new.__getstate__()) == (
        10, 100, [(0, (), ['c0', 'c1', 'n0'])], None)


def test_resolve_stack_w_hand_built_12_full_window():
    # 1.2 states hold tuples for layers; here the open layer is full, so
    # both sides open layer 3, prune layer 1 (which they agree on) and move
    # layer 2 into a spine of their own.
    old = (2, 2, [(2, ['a', 'b']), (1, ['y', 'z'])])
    c_stack, n_stack = AppendStack(), AppendStack()
    c_stack.__setstate__(old)
    n_stack.__setstate__(old)
    c_stack.push('c')
    n_stack.push('n0')
    n_stack.push('n1')
    committed = c_stack.__getstate__()
    new = n_stack.__getstate__()
    for side in (committed, new):
        assert side[3][:2] == (2, 2)
        assert _spine_items(side[3]) == [
            (2, 2, appendonly._Segment, ['a', 'b'])]
    merged = resolve_stack(old, committed, new)
    # The merge leaves one surplus layer for the next push to prune.
    assert merged[:3] == (2, 2, [(4, (), ['n1']), (3, (), ['c', 'n0'])])
    floor, newest, spine = merged[3]
    assert (floor, newest) == (2, 2)
    assert spine is committed[3][2]
    assert spine is not new[3][2]
    [(gen, count, record)] = spine.entries()
    assert record is committed[3][2].entries()[0][2]
    assert (gen, count, record.items()) == (2, 2, ['a', 'b'])


def test_resolve_archive_w_12_old_and_new_added_more(db12):
    old = _raw_state(db12, _oid('archive'))
    assert set(old) == {'_head', '_generation'}
    (_, root1), (_, root2) = _open_two(db12)
    root1['archive'].addLayer(2, ['x'])
    root2['archive'].addLayer(2, ['x'])
    root2['archive'].addLayer(3, ['y'])
    committed = root1['archive'].__getstate__()
    new = root2['archive'].__getstate__()
    assert committed['_generation'] == 2
    assert new['_generation'] == 3
    assert resolve_archive(old, committed, new) is new
    assert resolve_archive(old, new, committed) is new


def test_resolve_archive_w_12_old_and_both_added_same_layer(db12):
    old = _raw_state(db12, _oid('archive'))
    (_, root1), (_, root2) = _open_two(db12)
    root1['archive'].addLayer(2, ['x'])
    root2['archive'].addLayer(2, ['x'])
    committed = root1['archive'].__getstate__()
    new = root2['archive'].__getstate__()
    assert resolve_archive(old, committed, new) is committed


def test_resolve_archive_w_12_empty_old_and_both_added_from_zero(db12):
    old = _raw_state(db12, _oid('empty_archive'))
    assert old == {}
    (_, root1), (_, root2) = _open_two(db12)
    root1['empty_archive'].addLayer(0, ['x'])
    root2['empty_archive'].addLayer(0, ['x'])
    root2['empty_archive'].addLayer(1, ['y'])
    committed = root1['empty_archive'].__getstate__()
    new = root2['empty_archive'].__getstate__()
    assert resolve_archive(old, committed, new) is new


def test_resolve_archive_w_12_empty_old_and_disjoint_layers_raises(db12):
    old = _raw_state(db12, _oid('empty_archive'))
    (_, root1), (_, root2) = _open_two(db12)
    root1['empty_archive'].addLayer(0, ['x'])
    root2['empty_archive'].addLayer(1, ['y'])
    with pytest.raises(ConflictError, match='different layers'):
        resolve_archive(old, root1['empty_archive'].__getstate__(),
                        root2['empty_archive'].__getstate__())


def test_resolve_archive_w_hand_built_12_old():
    old = {'_head': object(), '_generation': 4}
    committed, new = Archive(), Archive()
    for archive in (committed, new):
        archive.__setstate__(dict(old))
    committed.addLayer(5, ['c'])
    new.addLayer(5, ['c'])
    new.addLayer(6, ['n'])
    c_state, n_state = committed.__getstate__(), new.__getstate__()
    assert resolve_archive(old, c_state, n_state) is n_state


def test_resolve_accumulator_w_12_old_and_both_appended(db12):
    old = _raw_state(db12, _oid('acc'))
    assert old == ['a', 'b', 'c', 'd', 'e']
    (_, root1), (_, root2) = _open_two(db12)
    root1['acc'].append('f')
    root2['acc'].extend(['g', 'h'])
    assert resolve_accumulator(
        old, root1['acc'].__getstate__(), root2['acc'].__getstate__()) == {
        'items': ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'], 'consumed': 0}
    assert old == ['a', 'b', 'c', 'd', 'e']


def test_resolve_accumulator_w_12_old_and_committed_consumed(db12):
    old = _raw_state(db12, _oid('acc'))
    (_, root1), (_, root2) = _open_two(db12)
    root1['acc'].consume()
    root1['acc'].append('c-after')
    root2['acc'].append('g')
    assert resolve_accumulator(
        old, root1['acc'].__getstate__(), root2['acc'].__getstate__()) == {
        'items': ['c-after', 'g'], 'consumed': 1}


def test_resolve_accumulator_w_12_old_and_new_consumed(db12):
    old = _raw_state(db12, _oid('acc'))
    (_, root1), (_, root2) = _open_two(db12)
    root1['acc'].append('f')
    root2['acc'].append('g')
    root2['acc'].consume()
    root2['acc'].append('n-after')
    assert resolve_accumulator(
        old, root1['acc'].__getstate__(), root2['acc'].__getstate__()) == {
        'items': ['n-after', 'f'], 'consumed': 1}


def test_resolve_accumulator_w_12_old_and_both_consumed_raises(db12):
    old = _raw_state(db12, _oid('acc'))
    (_, root1), (_, root2) = _open_two(db12)
    root1['acc'].consume()
    root2['acc'].consume()
    with pytest.raises(ConflictError, match='both sides consumed'):
        resolve_accumulator(
            old, root1['acc'].__getstate__(), root2['acc'].__getstate__())


def test_resolve_accumulator_w_12_empty_old_and_both_consumed_raises(db12):
    old = _raw_state(db12, _oid('empty_acc'))
    assert old == []
    (_, root1), (_, root2) = _open_two(db12)
    root1['empty_acc'].append('c')
    root1['empty_acc'].consume()
    root2['empty_acc'].append('n')
    root2['empty_acc'].consume()
    with pytest.raises(ConflictError, match='both sides consumed'):
        resolve_accumulator(old, root1['empty_acc'].__getstate__(),
                            root2['empty_acc'].__getstate__())


def test_resolve_accumulator_w_hand_built_12_old():
    old = ['p', 'q']
    committed, new = Accumulator(old), Accumulator(old)
    committed.append('c')
    new.append('n')
    assert resolve_accumulator(
        old, committed.__getstate__(), new.__getstate__()) == {
        'items': ['p', 'q', 'c', 'n'], 'consumed': 0}


@pytest.mark.parametrize('which', ['committed', 'new'])
def test_resolve_accumulator_w_12_shaped_side_raises(db12, which):
    # A side written by 1.2 code (a bare list) carries no consume counter:
    # whether it consumed cannot be told, so it cannot merge.
    old = _raw_state(db12, _oid('acc'))
    ours = Accumulator(old)
    ours.append('ours')
    states = {'committed': ours.__getstate__(), 'new': ours.__getstate__()}
    states[which] = old + ['from-1.2']
    with pytest.raises(
            ConflictError,
            match=f'{which} state was written by appendonly 1.2'):
        resolve_accumulator(old, states['committed'], states['new'])


#
# The committed fixture
#

def test_committed_fixture_is_unchanged():
    assert _SHA256_AT_IMPORT == FS_12_SHA256
    assert _sha256(FS_12) == FS_12_SHA256
    assert FS_12.stat().st_size == 17771
    for suffix in ('.index', '.lock', '.tmp'):
        assert not pathlib.Path(str(FS_12) + suffix).exists(), suffix
