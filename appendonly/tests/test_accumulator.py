"""Accumulator: behaviour and its resolver (directly, with hypothesis)."""
import pytest
from hypothesis import event
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from appendonly import Accumulator
from appendonly import ConflictError
from appendonly._accumulator import resolve_accumulator


def _copy(acc):
    other = Accumulator.__new__(Accumulator)
    other.__setstate__(acc.__getstate__())
    return other


def test_ctor_w_value():
    acc = Accumulator(('a', 'b'))
    assert list(acc) == ['a', 'b']
    assert len(acc) == 2


def test_append_extend_consume():
    acc = Accumulator()
    acc.append('a')
    acc.extend(['b', 'c'])
    assert acc.consume() == ['a', 'b', 'c']
    assert list(acc) == []
    assert acc.consume() == []
    assert acc.__getstate__() == {'items': [], 'consumed': 1}


def test_setstate_accepts_12_bare_list():
    acc = Accumulator.__new__(Accumulator)
    acc.__setstate__(['x', 'y'])
    assert list(acc) == ['x', 'y']
    assert acc.__getstate__() == {'items': ['x', 'y'], 'consumed': 0}


def _resolve(old, committed, new):
    return resolve_accumulator(old.__getstate__(), committed.__getstate__(),
                               new.__getstate__())


def test_resolve_w_both_appending():
    old = Accumulator(['o'])
    c, n = _copy(old), _copy(old)
    c.append('c')
    n.extend(['n', 'm'])
    assert _resolve(old, c, n) == {'items': ['o', 'c', 'n', 'm'],
                                   'consumed': 0}


def test_resolve_w_committed_consumed_keeps_new_appends():
    old = Accumulator(['o'])
    c, n = _copy(old), _copy(old)
    assert c.consume() == ['o']
    c.append('c')
    n.append('n')
    assert _resolve(old, c, n) == {'items': ['c', 'n'], 'consumed': 1}


def test_resolve_w_new_consumed_keeps_committed_appends():
    old = Accumulator(['o'])
    c, n = _copy(old), _copy(old)
    c.append('c')
    assert n.consume() == ['o']
    assert _resolve(old, c, n) == {'items': ['c'], 'consumed': 1}


def test_resolve_w_both_consumed_nonempty_conflicts():
    old = Accumulator(['o'])
    c, n = _copy(old), _copy(old)
    c.consume()
    n.consume()
    with pytest.raises(ConflictError, match='both sides consumed'):
        _resolve(old, c, n)


def test_resolve_w_both_consumed_own_items_from_empty_conflicts():
    # Serially, the second consume() would also have returned 'c2'.
    old = Accumulator()
    c, n = _copy(old), _copy(old)
    c.append('c1')
    assert c.consume() == ['c1']
    c.append('c2')
    n.append('n1')
    assert n.consume() == ['n1']
    with pytest.raises(ConflictError, match='both sides consumed'):
        _resolve(old, c, n)


def test_resolve_w_repeated_items_is_not_fooled():
    # 1.2 compared prefixes: a consume followed by re-appending the same
    # values looked like "nothing consumed" and items were delivered twice.
    old = Accumulator(['a'])
    c, n = _copy(old), _copy(old)
    assert c.consume() == ['a']
    c.append('a')
    assert n.consume() == ['a']
    n.append('a')
    with pytest.raises(ConflictError):
        _resolve(old, c, n)


def test_resolve_w_12_shaped_old():
    c = Accumulator(['o', 'c'])
    n = Accumulator(['o', 'n'])
    assert resolve_accumulator(['o'], c.__getstate__(), n.__getstate__()) \
        == {'items': ['o', 'c', 'n'], 'consumed': 0}


@pytest.mark.parametrize('which', [1, 2])
def test_resolve_w_12_shaped_committed_or_new_conflicts(which):
    states = [['o'], {'items': ['o'], 'consumed': 0},
              {'items': ['o'], 'consumed': 0}]
    states[which] = ['o', 'x']
    with pytest.raises(ConflictError, match='1.2'):
        resolve_accumulator(*states)


@pytest.mark.parametrize('bad', [
    None, 'abc', (), {'items': []}, {'items': 'ab', 'consumed': 0},
    {'items': [], 'consumed': -1}, {'items': [], 'consumed': True},
    {'items': [], 'consumed': 0, 'x': 1},
])
def test_resolve_w_malformed_state_raises_conflict(bad):
    good = {'items': [], 'consumed': 0}
    for args in ((bad, good, good), (good, bad, good), (good, good, bad)):
        with pytest.raises(ConflictError, match='Accumulator'):
            resolve_accumulator(*args)


def test_resolve_w_counter_going_backwards():
    with pytest.raises(ConflictError, match='backwards'):
        resolve_accumulator({'items': [], 'consumed': 2},
                            {'items': [], 'consumed': 1},
                            {'items': ['x'], 'consumed': 2})


# Property: merged state plus what each side's consume() returned is a
# serial execution of both transactions, or ConflictError.  Items repeat on
# purpose (values from a small alphabet), so only the counter can tell.

ops = st.lists(st.one_of(st.just(('consume',)),
                         st.tuples(st.just('append'), st.integers(0, 2)),
                         st.tuples(st.just('extend'),
                                   st.lists(st.integers(0, 2), max_size=3))),
               max_size=6)


def _apply(acc, operations):
    delivered = []
    for op in operations:
        if op[0] == 'consume':
            delivered.append(acc.consume())
        else:
            getattr(acc, op[0])(op[1])
    return delivered


def _effective(operations, delivered):
    """``operations`` without the consume() calls that returned nothing:
    such a call read an empty snapshot and changed nothing, so it may
    serialize anywhere (snapshot isolation)."""
    got = iter(delivered)
    return [op for op in operations if op[0] != 'consume' or next(got)]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.integers(0, 2), max_size=4), ops, ops, ops)
def test_resolve_property_serial_or_conflict(start, before, c_ops, n_ops):
    old = Accumulator(start)
    _apply(old, before)
    c, n = _copy(old), _copy(old)
    c_got, n_got = _apply(c, c_ops), _apply(n, n_ops)
    try:
        merged = _resolve(old, c, n)
    except ConflictError:
        event('conflict')
        # Only when both consume() calls really returned items.
        assert any(c_got) and any(n_got)
        return
    event('merged')
    # Replay serially in either order; the merge must equal one of them,
    # including what each side's consume() calls returned.
    c_eff = _effective(c_ops, c_got)
    n_eff = _effective(n_ops, n_got)
    outcomes = []
    for first, second, flip in ((c_eff, n_eff, False), (n_eff, c_eff, True)):
        replay = _copy(old)
        got = [_apply(replay, first), _apply(replay, second)]
        if flip:
            got.reverse()
        outcomes.append((list(replay), got))
    assert (merged['items'], [[d for d in c_got if d],
                              [d for d in n_got if d]]) in outcomes
