"""Archive: behaviour and its resolver."""
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from appendonly import Archive
from appendonly import ConflictError
from appendonly._archive import _ArchiveLayer
from appendonly._archive import resolve_archive


def _copy(archive):
    other = Archive()
    other.__setstate__(dict(archive.__getstate__()))
    return other


def test_empty():
    archive = Archive()
    assert list(archive) == []
    assert archive._generation == -1


def test_addLayer_iterates_newest_first():
    archive = Archive()
    archive.addLayer(0, ['a', 'b'])
    archive.addLayer(1, ['c'])
    assert list(archive) == [(1, 0, 'c'), (0, 1, 'b'), (0, 0, 'a')]
    assert archive._generation == 1
    assert isinstance(archive._head, _ArchiveLayer)
    assert archive._head._next._stack == ['a', 'b']


def test_addLayer_w_archived_generation_is_harmless():
    archive = Archive()
    archive.addLayer(0, ['a'])
    archive.addLayer(1, ['b'])
    archive.addLayer(1, ['other'])
    archive.addLayer(0, ['other'])
    assert list(archive) == [(1, 0, 'b'), (0, 0, 'a')]


def test_archive_layer_newer():
    layer = _ArchiveLayer(generation=3)
    layer._stack[:] = 'abc'
    assert list(layer.newer(0)) == [(2, 'c'), (1, 'b')]


def _added(archive, gens):
    for gen in gens:
        archive.addLayer(gen, ['g%d' % gen])
    return archive


def test_resolve_w_same_layers_added_keeps_committed():
    old = _added(Archive(), [0, 1])
    c, n = _added(_copy(old), [2, 3]), _added(_copy(old), [2, 3])
    state = c.__getstate__()
    assert resolve_archive(old.__getstate__(), state,
                           n.__getstate__()) is state


def test_resolve_w_new_added_more_keeps_new():
    old = _added(Archive(), [0])
    c, n = _added(_copy(old), [1]), _added(_copy(old), [1, 2])
    state = n.__getstate__()
    assert resolve_archive(old.__getstate__(), c.__getstate__(),
                           state) is state


def test_resolve_w_empty_old():
    old = Archive()
    c, n = _added(_copy(old), [4, 5]), _added(_copy(old), [4])
    state = c.__getstate__()
    assert resolve_archive(old.__getstate__(), state,
                           n.__getstate__()) is state


def test_resolve_w_12_shaped_old():
    old = _added(Archive(), [0, 1])
    old_state = {'_head': old._head, '_generation': 1}
    c, n = Archive(), Archive()
    c.__setstate__(dict(old_state))
    n.__setstate__(dict(old_state))
    c, n = _added(c, [2]), _added(n, [2, 3])
    assert resolve_archive(old_state, c.__getstate__(),
                           n.__getstate__())['_generation'] == 3
    assert resolve_archive({}, _added(Archive(), [0]).__getstate__(),
                           _added(Archive(), [0]).__getstate__())


def test_resolve_w_gap_conflicts():
    old = _added(Archive(), [0])
    c, n = _added(_copy(old), [1]), _added(_copy(old), [1, 3])
    with pytest.raises(ConflictError, match='not contiguous'):
        resolve_archive(old.__getstate__(), c.__getstate__(),
                        n.__getstate__())


def test_resolve_w_disjoint_ranges_conflicts():
    old = Archive()
    c, n = _added(_copy(old), [0, 1]), _added(_copy(old), [1, 2])
    with pytest.raises(ConflictError, match='different layers'):
        resolve_archive(old.__getstate__(), c.__getstate__(),
                        n.__getstate__())


@pytest.mark.parametrize('bad', [
    None, [], {'_generation': 'x'}, {'_generation': 2},
    {'_head': None, '_generation': 0, '_count': 1.5},
])
def test_resolve_w_malformed_state_raises_conflict(bad):
    good = {}
    for args in ((bad, good, good), (good, bad, good), (good, good, bad)):
        with pytest.raises(ConflictError, match='Archive'):
            resolve_archive(*args)


@settings(max_examples=300, deadline=None)
@given(st.integers(-1, 5), st.integers(0, 4), st.integers(0, 4))
def test_resolve_property_prefixes_of_one_stack(o_gen, c_more, n_more):
    # Two transactions pruning the same stack add the same generations,
    # one possibly more than the other: always mergeable, nothing lost.
    old = _added(Archive(), range(o_gen + 1))
    c = _added(_copy(old), range(o_gen + 1, o_gen + 1 + c_more))
    n = _added(_copy(old), range(o_gen + 1, o_gen + 1 + n_more))
    merged = Archive()
    merged.__setstate__(resolve_archive(old.__getstate__(), c.__getstate__(),
                                        n.__getstate__()))
    top = o_gen + max(c_more, n_more)
    assert [g for g, _, _ in merged] == list(range(top, -1, -1))
