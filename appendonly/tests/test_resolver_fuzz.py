"""Resolvers fed arbitrary states raise ConflictError, never another
exception (ZODB would log it and raise ConflictError anyway, but a resolver
that crashes on a shape it does not know is a resolver that guesses)."""
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from appendonly import ConflictError
from appendonly._accumulator import resolve_accumulator
from appendonly._archive import resolve_archive
from appendonly._stack import resolve_stack

scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 12),
                    st.text(max_size=3), st.floats(allow_nan=False))
junk = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.sampled_from(['items', 'consumed', '_head',
                                         '_generation', '_count', '_first']),
                        inner, max_size=4)),
    max_leaves=12)

# Plausible states, for mixing with junk: a side that is fine and one that
# is not is the usual bug.
stack_states = st.one_of(
    junk,
    st.tuples(st.integers(1, 3), st.integers(1, 3),
              st.lists(st.tuples(st.integers(0, 5),
                                 st.lists(scalars, max_size=3)),
                       max_size=3)),
    st.tuples(st.integers(1, 3), st.integers(1, 3),
              st.lists(st.tuples(st.integers(0, 5), st.just(()),
                                 st.lists(scalars, max_size=3)),
                       max_size=3),
              st.one_of(st.none(), st.tuples(st.integers(0, 3),
                                             st.integers(0, 3), junk))))
acc_states = st.one_of(
    junk, st.lists(scalars, max_size=3),
    st.fixed_dictionaries({'items': st.lists(scalars, max_size=3),
                           'consumed': st.integers(-1, 3)}))
archive_states = st.one_of(
    junk, st.fixed_dictionaries({'_generation': st.integers(-2, 4),
                                 '_count': st.integers(-1, 4)}))


def _only_conflict(resolve, old, committed, new):
    try:
        resolve(old, committed, new)
    except ConflictError:
        pass


@settings(max_examples=400, deadline=None)
@given(stack_states, stack_states, stack_states)
def test_stack_resolver_raises_only_conflict(old, committed, new):
    _only_conflict(resolve_stack, old, committed, new)


@settings(max_examples=300, deadline=None)
@given(acc_states, acc_states, acc_states)
def test_accumulator_resolver_raises_only_conflict(old, committed, new):
    _only_conflict(resolve_accumulator, old, committed, new)


@settings(max_examples=300, deadline=None)
@given(archive_states, archive_states, archive_states)
def test_archive_resolver_raises_only_conflict(old, committed, new):
    _only_conflict(resolve_archive, old, committed, new)
