"""Accumulator: pending items, appended to and consumed all at once."""
from persistent import Persistent
from ZODB.POSException import ConflictError
from zope.interface import implementer

from appendonly.interfaces import IAccumulator


@implementer(IAccumulator)
class Accumulator(Persistent):
    """See IAccumulator.

    State: ``{'items': [...], 'consumed': n}`` where ``n`` counts the
    ``consume()`` calls that returned items.  Conflict resolution tells
    "was it consumed?" from that counter, never by comparing items (items
    may repeat).  appendonly 1.2 stored a bare list; it loads as
    ``consumed == 0``.
    """

    __module__ = 'appendonly'    # the class path 1.2 databases refer to

    def __init__(self, value=()):
        self._list = list(value)
        self._consumed = 0

    def __iter__(self):
        """See IAccumulator."""
        return iter(self._list)

    def __len__(self):
        """See IAccumulator."""
        return len(self._list)

    def append(self, obj):
        """See IAccumulator."""
        self._list.append(obj)
        self._p_changed = True

    def extend(self, objs):
        """See IAccumulator."""
        self._list.extend(objs)
        self._p_changed = True

    def consume(self):
        """See IAccumulator."""
        result = self._list
        if result:
            self._list = []
            self._consumed += 1
        return list(result)

    def __getstate__(self):
        return {'items': self._list, 'consumed': self._consumed}

    def __setstate__(self, state):
        items, consumed = _parse(state, 'stored', allow_12=True)
        self._list = items
        self._consumed = consumed

    def _p_resolveConflict(self, old, committed, new):
        return resolve_accumulator(old, committed, new)


#
# Conflict resolution
#
# O, C, N: the old, committed and new states.  A side that did not consume
# (its counter equals O's) only appended: its items are O's items followed
# by its additions.  A side that consumed returned every item it saw (O's,
# and its own appended before the consume) and holds only what it appended
# afterwards.
#
# - Neither consumed: C's items, then N's additions.  Serial: C, then N.
# - C consumed, N did not: C's items, then N's additions (N's additions were
#   not in what C returned).  Serial: C, then N.  Counter: C's.
# - N consumed, C did not: N's items, then C's additions (C's additions were
#   not in what N returned).  Serial: N, then C.  Counter: N's, which is
#   greater than any counter committed so far, so a later resolution against
#   C's state still sees that something was consumed.
# - Both consumed: ConflictError (the retry sees what is left).  If O held
#   items, both returned them: that is delivering twice.  Even if each
#   returned only items it appended itself, in any serial order the second
#   consume() would also have returned what the first side appended after
#   its own consume(), so the merge would not be a serial execution.
# Anything else (a counter going backwards, a side with fewer items than O
# without consuming, a state written by 1.2 code for C or N, a malformed
# state) raises ConflictError.

def resolve_accumulator(old, committed, new):
    """Merge two concurrent changes of an Accumulator state; see above."""
    o_items, o_count = _parse(old, 'old', allow_12=True)
    c_items, c_count = _parse(committed, 'committed')
    n_items, n_count = _parse(new, 'new')
    if c_count < o_count or n_count < o_count:
        raise ConflictError('Accumulator: consumed counter went backwards')
    c_consumed = c_count != o_count
    n_consumed = n_count != o_count
    for items, consumed, which in ((c_items, c_consumed, 'committed'),
                                   (n_items, n_consumed, 'new')):
        if not consumed and len(items) < len(o_items):
            raise ConflictError(
                f'Accumulator: {which} lost items without consuming')
    if c_consumed and n_consumed:
        raise ConflictError('Accumulator: both sides consumed')
    if n_consumed:
        return {'items': n_items + c_items[len(o_items):],
                'consumed': n_count}
    return {'items': c_items + n_items[len(o_items):], 'consumed': c_count}


def _parse(state, which, allow_12=False):
    if isinstance(state, list) and allow_12:
        return list(state), 0       # appendonly 1.2's bare list
    if isinstance(state, list):
        raise ConflictError(
            f'Accumulator: {which} state was written by appendonly 1.2')
    if not isinstance(state, dict) or set(state) != {'items', 'consumed'}:
        raise ConflictError(f'Accumulator: {which} state is malformed')
    items, count = state['items'], state['consumed']
    if not isinstance(items, (list, tuple)) or isinstance(count, bool) \
            or not isinstance(count, int) or count < 0:
        raise ConflictError(f'Accumulator: {which} state is malformed')
    return list(items), count
