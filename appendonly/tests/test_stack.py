"""AppendStack: behaviour, record layout, and its resolver, tested directly
(hypothesis generates concurrent histories) with plain states."""
import pytest
from hypothesis import HealthCheck
from hypothesis import event
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from appendonly import AppendStack
from appendonly import Archive
from appendonly import ConflictError
from appendonly._archive import resolve_archive
from appendonly._stack import SEGMENT_LENGTH
from appendonly._stack import _Segment
from appendonly._stack import _Layer
from appendonly._stack import _SealedLayer
from appendonly._stack import _Spine
from appendonly._stack import resolve_stack


def _makeOne(max_layers=10, max_length=100):
    return AppendStack(max_layers, max_length)


def _copy(stack):
    """Another transaction's view of ``stack``: same state, own object."""
    other = AppendStack.__new__(AppendStack)
    other.__setstate__(stack.__getstate__())
    return other


def _from_state(state):
    stack = AppendStack.__new__(AppendStack)
    stack.__setstate__(state)
    return stack


def test_ctor_defaults():
    stack = _makeOne()
    assert (stack._max_layers, stack._max_length) == (10, 100)
    assert list(stack) == []
    assert len(stack) == 0


@pytest.mark.parametrize('bad', [0, -1, 1.5, None, True])
def test_ctor_w_bad_sizes(bad):
    with pytest.raises(ValueError, match='max_layers'):
        AppendStack(bad, 5)
    with pytest.raises(ValueError, match='max_length'):
        AppendStack(5, bad)


def test_push_iterates_newest_first():
    stack = _makeOne(3, 2)
    for obj in 'abcde':
        stack.push(obj)
    assert list(stack) == [(2, 0, 'e'), (1, 1, 'd'), (1, 0, 'c'),
                           (0, 1, 'b'), (0, 0, 'a')]
    assert len(stack) == 5


def test_push_w_pruner_oldest_first_exactly_once():
    stack = _makeOne(2, 2)
    pruned = []
    for obj in range(9):
        stack.push(obj, lambda gen, items: pruned.append((gen, items)))
    assert pruned == [(0, [0, 1]), (1, [2, 3]), (2, [4, 5])]
    assert [obj for _, _, obj in stack] == [8, 7, 6]


def test_push_wo_pruner_discards():
    stack = _makeOne(1, 1)
    for obj in range(3):
        stack.push(obj)
    assert list(stack) == [(2, 0, 2)]


def test_push_moves_layers_below_newest_into_spine():
    stack = _makeOne(3, 2)
    for obj in 'abcde':
        stack.push(obj)
    max_layers, max_length, layers, older = stack.__getstate__()
    assert (max_layers, max_length) == (3, 2)
    assert layers == [(2, (), ['e'])]
    floor, newest, spine = older
    assert (floor, newest, type(spine)) == (0, 1, _Spine)
    assert [(gen, count, type(record), record.items())
            for gen, count, record in spine.entries()] == [
        (1, 2, _Segment, ['c', 'd']), (0, 2, _Segment, ['a', 'b'])]


def test_push_rebuilds_spine_without_pruned_layers():
    stack = _makeOne(2, 1)
    for obj in 'abcd':
        stack.push(obj, lambda gen, items: None)
    _, _, layers, (floor, newest, spine) = stack.__getstate__()
    assert layers == [(3, (), ['d'])]
    assert (floor, newest) == (2, 2)
    assert [gen for gen, _, _ in spine.entries()] == [2]


def test_push_into_open_layer_keeps_spine():
    stack = _makeOne(3, 4)
    for obj in range(5):
        stack.push(obj)
    spine = stack.__getstate__()[3][2]
    stack.push(5)
    assert stack.__getstate__()[3][2] is spine


def test_push_moves_full_tail_into_segment():
    stack = _makeOne(2, 100)
    for obj in range(SEGMENT_LENGTH * 2 + 3):
        stack.push(obj)
    _, _, [(gen, segments, tail)], older = stack.__getstate__()
    assert older is None
    assert [type(record) for _, record in segments] == [_Segment] * 2
    assert [count for count, _ in segments] == [SEGMENT_LENGTH] * 2
    assert segments[1][1].items() == list(range(SEGMENT_LENGTH,
                                                2 * SEGMENT_LENGTH))
    assert tail == list(range(2 * SEGMENT_LENGTH, 2 * SEGMENT_LENGTH + 3))
    assert [obj for _, _, obj in stack] == list(
        range(SEGMENT_LENGTH * 2 + 3))[::-1]
    assert len(stack) == SEGMENT_LENGTH * 2 + 3


def test_push_gathers_segments_of_older_layer():
    stack = _makeOne(3, 3 * SEGMENT_LENGTH)
    for obj in range(3 * SEGMENT_LENGTH + 1):
        stack.push(obj)
    _, _, layers, (floor, newest, spine) = stack.__getstate__()
    assert layers == [(1, (), [3 * SEGMENT_LENGTH])]
    [(gen, count, record)] = spine.entries()
    assert type(record) is _SealedLayer
    assert (gen, count, record.items()) == (
        0, 3 * SEGMENT_LENGTH, list(range(3 * SEGMENT_LENGTH)))


def test_push_gathers_segments_of_newest_layer():
    stack = _makeOne(2, 1000)
    total = SEGMENT_LENGTH * (SEGMENT_LENGTH + 2) + 1
    for obj in range(total):
        stack.push(obj)
    _, _, [(gen, segments, tail)], _ = stack.__getstate__()
    assert len(segments) <= 3
    assert type(segments[0][1]) is _SealedLayer
    # Gathering lists the _Segments themselves, never nests records.
    assert {type(record) for _, record in segments[0][1]._segments} == {
        _Segment}
    assert [obj for _, _, obj in stack] == list(range(total))[::-1]


def test_push_prunes_surplus_after_shrinking_max_layers():
    stack = _makeOne(5, 1)
    for obj in range(5):
        stack.push(obj)
    stack._max_layers = 2
    pruned = []
    stack.push(5, lambda gen, items: pruned.append(gen))
    assert pruned == [0, 1, 2, 3]
    assert [obj for _, _, obj in stack] == [5, 4]


def test_newer():
    stack = _makeOne(3, 2)
    for obj in 'abcde':
        stack.push(obj)
    assert list(stack.newer(1, 0)) == [(2, 0, 'e'), (1, 1, 'd')]
    assert list(stack.newer(2, 0)) == []
    assert list(stack.newer(-1, -1)) == list(stack)


def test_setstate_accepts_12_shape():
    stack = _from_state((3, 2, [(4, ['i', 'j']), (3, ['g', 'h'])]))
    assert [obj for _, _, obj in stack] == ['j', 'i', 'h', 'g']
    stack.push('k')
    assert list(stack)[0] == (5, 0, 'k')
    assert stack.__getstate__()[2] == [(5, (), ['k'])]
    assert [obj for _, _, obj in stack] == ['k', 'j', 'i', 'h', 'g']


def test_newer_across_segments():
    stack = _makeOne(3, 2 * SEGMENT_LENGTH)
    total = 5 * SEGMENT_LENGTH + 3
    for obj in range(total):
        stack.push(obj)
    everything = list(stack)
    for n in range(len(everything)):
        gen, index, _ = everything[n]
        assert list(stack.newer(gen, index)) == everything[:n]


# Conflict resolution, by case


def test_resolve_w_both_appending_to_open_layer():
    old = _makeOne(3, 5)
    old.push('o')
    committed, new = _copy(old), _copy(old)
    committed.push('c')
    new.push('n')
    merged = _from_state(resolve_stack(old.__getstate__(),
                                       committed.__getstate__(),
                                       new.__getstate__()))
    assert list(merged) == [(0, 2, 'n'), (0, 1, 'c'), (0, 0, 'o')]


def test_resolve_w_room_for_one_starts_new_layer():
    old = _makeOne(3, 2)
    old.push('o')
    committed, new = _copy(old), _copy(old)
    committed.push('c')
    new.push('n')
    merged = _from_state(resolve_stack(old.__getstate__(),
                                       committed.__getstate__(),
                                       new.__getstate__()))
    assert list(merged) == [(1, 0, 'n'), (0, 1, 'c'), (0, 0, 'o')]


def test_resolve_w_both_pruned_same_layer_keeps_surplus_off():
    old = _makeOne(1, 1)
    old.push('o')
    committed, new = _copy(old), _copy(old)
    c_pruned, n_pruned = [], []
    committed.push('c', lambda g, i: c_pruned.append((g, i)))
    new.push('n', lambda g, i: n_pruned.append((g, i)))
    assert c_pruned == n_pruned == [(0, ['o'])]
    merged = _from_state(resolve_stack(old.__getstate__(),
                                       committed.__getstate__(),
                                       new.__getstate__()))
    # Surplus layer kept for the next push to prune; 'o' is not in it.
    assert list(merged) == [(2, 0, 'n'), (1, 0, 'c')]
    pruned = []
    merged.push('x', lambda g, i: pruned.append((g, i)))
    assert pruned == [(1, ['c']), (2, ['n'])]


def test_resolve_w_new_pruned_open_layer():
    old = _makeOne(1, 2)
    old.push('o')
    committed, new = _copy(old), _copy(old)
    committed.push('c')
    for obj in 'nm':
        new.push(obj)        # fills layer 0, then prunes it
    with pytest.raises(ConflictError, match='pruned the open layer'):
        resolve_stack(old.__getstate__(), committed.__getstate__(),
                      new.__getstate__())


def test_resolve_w_new_sealed_open_layer():
    old = _makeOne(3, 2)
    old.push('o')
    committed, new = _copy(old), _copy(old)
    committed.push('c')
    for obj in 'nm':
        new.push(obj)           # layer 0 = [o, n] moved into the spine
    with pytest.raises(ConflictError, match='sealed items it pushed'):
        resolve_stack(old.__getstate__(), committed.__getstate__(),
                      new.__getstate__())


def test_resolve_w_new_sealed_own_items_of_open_layer():
    old = _makeOne(3, 100)
    old.push('o')
    committed, new = _copy(old), _copy(old)
    committed.push('c')
    for n in range(SEGMENT_LENGTH + 1):
        new.push(n)              # the 9th push seals 'o' and new's items
    with pytest.raises(ConflictError, match='sealed items it pushed'):
        resolve_stack(old.__getstate__(), committed.__getstate__(),
                      new.__getstate__())


def test_resolve_w_both_sealing_old_items_keeps_more_sealed():
    old = _makeOne(3, 100)
    for n in range(SEGMENT_LENGTH):
        old.push(n)              # tail full: the next push seals it
    committed, new = _copy(old), _copy(old)
    committed.push('c')
    new.push('n')
    merged = resolve_stack(old.__getstate__(), committed.__getstate__(),
                           new.__getstate__())
    [(gen, segments, tail)] = merged[2]
    assert tail == ['c', 'n']
    # Both sealed the same items; committed's record is kept.
    assert segments == committed.__getstate__()[2][0][1]
    assert [obj for _, _, obj in _from_state(merged)] == \
        ['n', 'c'] + list(range(SEGMENT_LENGTH))[::-1]


def test_resolve_w_only_new_sealed_old_items_takes_its_record():
    old = _makeOne(3, 100)
    for n in range(SEGMENT_LENGTH):
        old.push(n)
    committed, new = _copy(old), _copy(old)
    committed._p_changed = True       # a state as committed, no push
    committed._layers[0].tail.append('c')   # appended without sealing
    new.push('n')                     # sealed old's 8 items
    merged = resolve_stack(old.__getstate__(), committed.__getstate__(),
                           new.__getstate__())
    [(gen, segments, tail)] = merged[2]
    assert segments == new.__getstate__()[2][0][1]
    assert tail == ['c', 'n']


def test_resolve_w_committed_sealed_open_layer_merges_after_it():
    old = _makeOne(3, 2)
    old.push('o')
    committed, new = _copy(old), _copy(old)
    for obj in 'cd':
        committed.push(obj)
    new.push('n')
    merged = _from_state(resolve_stack(old.__getstate__(),
                                       committed.__getstate__(),
                                       new.__getstate__()))
    assert [obj for _, _, obj in merged] == ['n', 'd', 'c', 'o']
    assert list(merged)[0] == (1, 1, 'n')


def test_resolve_w_new_sealed_own_layers_conflicts():
    old = _makeOne(5, 2)
    for obj in 'ab':
        old.push(obj)           # layer 0 full
    committed, new = _copy(old), _copy(old)
    committed.push('c')          # layer 1 = [c]
    for obj in 'nmp':
        new.push(obj)            # layer 1 = [n, m] into the spine, 2 = [p]
    with pytest.raises(ConflictError, match='sealed layers it pushed'):
        resolve_stack(old.__getstate__(), committed.__getstate__(),
                      new.__getstate__())


def test_resolve_w_new_own_segments_move_whole():
    old = _makeOne(5, 100)
    old.push('o')
    committed, new = _copy(old), _copy(old)
    committed.push('c')
    new._layers[0].tail.append('n')
    new._layers.insert(0, _Layer(1, [(2, _Segment(['s1', 's2']))], ['t']))
    merged = _from_state(resolve_stack(old.__getstate__(),
                                       committed.__getstate__(),
                                       new.__getstate__()))
    assert list(merged) == [(1, 2, 't'), (1, 1, 's2'), (1, 0, 's1'),
                            (0, 2, 'n'), (0, 1, 'c'), (0, 0, 'o')]


def test_resolve_w_changed_sizes():
    old = _makeOne(3, 5)
    committed, new = _copy(old), _copy(old)
    committed._max_layers = 4
    new.push('n')
    with pytest.raises(ConflictError, match='max_layers or max_length'):
        resolve_stack(old.__getstate__(), committed.__getstate__(),
                      new.__getstate__())


def test_resolve_w_one_side_unchanged_returns_other():
    old = _makeOne(3, 5)
    changed = _copy(old)
    changed.push('x')
    state = changed.__getstate__()
    assert resolve_stack(old.__getstate__(), old.__getstate__(),
                         state) is state
    assert resolve_stack(old.__getstate__(), state,
                         old.__getstate__()) is state


@pytest.mark.parametrize('bad', [
    None, (), (3, 5), (3, 5, []), ('3', 5, [(0, [])]), (3, 0, [(0, [])]),
    (3, 5, [(0, [], 1)]), (3, 5, [('0', [])]), (3, 5, [(0, 'abc')]),
    (3, 5, [(0, []), (1, [])]), [3, 5, [(0, [])], 'x'], {'a': 1},
])
def test_resolve_w_malformed_state_raises_conflict(bad):
    good = (3, 5, [(0, ['a'])])
    for args in ((bad, good, good), (good, bad, good), (good, good, bad)):
        with pytest.raises(ConflictError, match='AppendStack'):
            resolve_stack(*args)


# Property: any two concurrent histories merge into a serial execution
# ("committed, then new"), or raise ConflictError.

# (max_layers, max_length, segment length): small, so that segments,
# sealing, gathering and pruning all happen within a few pushes.
windows = st.tuples(st.integers(1, 4), st.integers(1, 7), st.integers(1, 3))


@pytest.fixture
def segment_length():
    """Set appendonly._stack.SEGMENT_LENGTH for one example."""
    import appendonly._stack as module
    saved = module.SEGMENT_LENGTH

    def set_length(n):
        module.SEGMENT_LENGTH = n
    yield set_length
    module.SEGMENT_LENGTH = saved
# A history is a list of transactions; a transaction is a number of pushes.
pushes = st.lists(st.integers(1, 6), min_size=0, max_size=4)


class Side:
    """One transaction's copy of stack + archive, recording what it pruned."""

    def __init__(self, stack, archive, name):
        self.stack = _copy(stack)
        self.archive = Archive()
        self.archive.__setstate__(dict(archive.__getstate__()))
        self.name = name
        self.pushed = []

    def push(self, n):
        for i in range(n):
            item = (self.name, len(self.pushed))
            self.stack.push(item, self.archive.addLayer)
            self.pushed.append(item)


def _history(stack, archive):
    return list(reversed(list(archive))) + list(reversed(list(stack)))


def _evolve(window, rounds):
    window = window[:2]
    """Stack + archive after ``rounds`` of two concurrent transactions
    (merged when the resolvers allow it, else only the committed one), so
    that "old" states include surplus layers and sealed newest layers."""
    side = Side(AppendStack(*window), Archive(), 'r0')
    pushed = []
    for r, (c_n, n_n) in enumerate(rounds):
        c = Side(side.stack, side.archive, 'c%d' % r)
        c.push(c_n)
        n = Side(side.stack, side.archive, 'n%d' % r)
        n.push(n_n)
        try:
            stack = _from_state(resolve_stack(side.stack.__getstate__(),
                                              c.stack.__getstate__(),
                                              n.stack.__getstate__()))
            archive = Archive()
            archive.__setstate__(resolve_archive(
                side.archive.__getstate__(), c.archive.__getstate__(),
                n.archive.__getstate__()))
            pushed += c.pushed + n.pushed
        except ConflictError:
            stack, archive = c.stack, c.archive
            pushed += c.pushed
        side = Side(stack, archive, 'o%d' % r)
    return side, pushed


rounds = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)),
                  max_size=5)


@settings(max_examples=1000, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(windows, rounds, st.integers(1, 12), st.integers(0, 12))
def test_resolve_property_serial_or_conflict(segment_length, window, before,
                                             c_n, n_n):
    segment_length(window[2])
    base, before_items = _evolve(window, before)
    stack, archive = base.stack, base.archive
    assert [item for _, _, item in _history(stack, archive)] == before_items
    committed = Side(stack, archive, 'c')
    committed.push(c_n)
    new = Side(stack, archive, 'n')
    new.push(n_n)
    c_history = _history(committed.stack, committed.archive)
    try:
        m_stack = resolve_stack(stack.__getstate__(),
                                committed.stack.__getstate__(),
                                new.stack.__getstate__())
        m_archive = resolve_archive(archive.__getstate__(),
                                    committed.archive.__getstate__(),
                                    new.archive.__getstate__())
    except ConflictError as e:
        event('conflict: %s' % e)
        return
    event('merged')
    merged_stack = _from_state(m_stack)
    merged_archive = Archive()
    merged_archive.__setstate__(m_archive)
    history = _history(merged_stack, merged_archive)
    # Serial execution: everything before, then committed's, then new's.
    assert [item for _, _, item in history] == \
        before_items + committed.pushed + new.pushed
    positions = [entry[:2] for entry in history]
    assert positions == sorted(set(positions))
    assert all(index < window[1] for _, index in positions)
    # Every item committed already showed keeps its position.
    assert history[:len(c_history)] == c_history
    # The next push prunes any surplus and keeps the invariants.
    merged_stack.push(('x', 0), merged_archive.addLayer)
    assert len(merged_stack._layers) <= window[0]
    after = _history(merged_stack, merged_archive)
    assert [item for _, _, item in after] == \
        [item for _, _, item in history] + [('x', 0)]


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(windows, rounds)
def test_resolve_property_single_pushes_always_merge(segment_length, window,
                                                     before):
    segment_length(window[2])
    base, _ = _evolve(window, before)
    committed = Side(base.stack, base.archive, 'c')
    committed.push(1)
    new = Side(base.stack, base.archive, 'n')
    new.push(1)
    resolve_stack(base.stack.__getstate__(), committed.stack.__getstate__(),
                  new.stack.__getstate__())
    resolve_archive(base.archive.__getstate__(),
                    committed.archive.__getstate__(),
                    new.archive.__getstate__())


# Bytes written per push, on a real FileStorage.

def _bytes_per_push(tmp_path, max_layers, max_length, pushes=400):
    import os

    import ZODB
    path = os.path.join(str(tmp_path), '%dx%d.fs' % (max_layers, max_length))
    db = ZODB.DB(path)
    with db.transaction() as conn:
        conn.root.stack = AppendStack(max_layers, max_length)
        conn.root.archive = Archive()
    # Warm up past a full window, so pruning and archiving are included.
    for n in range(max_layers * max_length + 10):
        with db.transaction() as conn:
            conn.root.stack.push('w' * 100, conn.root.archive.addLayer)
    before = os.path.getsize(path)
    for n in range(pushes):
        with db.transaction() as conn:
            conn.root.stack.push('%0100d' % n, conn.root.archive.addLayer)
    db.close()
    return (os.path.getsize(path) - before) / pushes


def test_bytes_per_push_do_not_grow_with_window(tmp_path):
    small = _bytes_per_push(tmp_path, 10, 100)
    long_layers = _bytes_per_push(tmp_path, 10, 1000)
    many_layers = _bytes_per_push(tmp_path, 50, 100)
    # A 100-byte item plus the transaction record is about 250 bytes; 1.2
    # rewrote the whole window (about 100 KB at 10x100).
    assert small < 1500
    assert long_layers < small * 1.25
    # One (generation, ((count, reference),), []) entry per extra layer,
    # about 40 bytes, nothing more.
    assert many_layers < small + 40 * 50
