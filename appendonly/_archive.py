"""Archive: the layers pruned from an AppendStack, as a linked list.

Each archived layer is an ``_ArchiveLayer`` record of its own (the class and
state 1.2 wrote: a dict with ``_stack``, ``_max_length``, ``_generation`` and
``_next``); the archive's own record holds only the head of the list and a
few counters, so adding a layer never rewrites older ones.
"""
from persistent import Persistent
from ZODB.POSException import ConflictError
from zope.interface import implementer

from appendonly.interfaces import IArchive


class _ArchiveLayer(Persistent):
    """One archived layer: its items in push order and a link to the next
    older layer.  Immutable once added."""

    # 1.2 records refer to ``appendonly._ArchiveLayer``: keep that path.
    __module__ = 'appendonly'

    _next = None

    def __init__(self, max_length=100, generation=0):
        self._stack = []
        self._max_length = max_length
        self._generation = generation

    def __iter__(self):
        """Yield ``(index, item)``, newest first."""
        stack = self._stack
        for index in range(len(stack) - 1, -1, -1):
            yield index, stack[index]

    def newer(self, latest_index):
        """Yield ``(index, item)`` after ``latest_index``, newest first."""
        for index, obj in self:
            if index <= latest_index:
                break
            yield index, obj


@implementer(IArchive)
class Archive(Persistent):
    """See IArchive."""

    __module__ = 'appendonly'    # the class path 1.2 databases refer to

    _head = None
    _generation = -1
    # Not in 1.2 states (they read as 0 / None): the number of layers added
    # since then, and the first generation ever added to an empty archive.
    # Conflict resolution uses them to tell which generations a side added.
    _count = 0
    _first = None

    def __iter__(self):
        """See IArchive."""
        current = self._head
        while current is not None:
            for index, item in current:
                yield current._generation, index, item
            current = current._next

    def addLayer(self, generation, items):
        """See IArchive."""
        if generation <= self._generation:
            return      # already archived (e.g. by a merged transaction)
        layer = _ArchiveLayer(len(items), generation)
        layer._stack[:] = items
        layer._next = self._head
        if self._head is None:
            self._first = generation
        self._head = layer
        self._generation = generation
        self._count += 1

    def _p_resolveConflict(self, old, committed, new):
        return resolve_archive(old, committed, new)


#
# Conflict resolution
#
# O, C, N: the old, committed and new states (attribute dicts).  The only
# change is addLayer, which links new layers, with strictly increasing
# generations, in front of O's head.  Each side therefore added some set of
# generations above O's newest; when that set is a contiguous range (which
# the counters prove: `count` layers spread over exactly `count`
# generations), it is (lo, generation] with lo fixed by O.
#
# The pruned layers of one AppendStack have the same items whichever
# transaction pruned them, so if one side's range contains the other's, that
# side's state already holds every layer either side archived: keep it.
# This is the normal `stack.push(obj, archive.addLayer)` case, where two
# transactions prune the same oldest layers, or one prunes one more.
#
# Cannot merge (ConflictError): a side added a non-contiguous set, the two
# ranges overlap without one containing the other, or a state is malformed.
# The archive cannot check that equal generations hold equal items: feed
# one archive from one stack.

def resolve_archive(old, committed, new):
    """Merge two concurrent changes of an Archive state; see above."""
    o_gen, o_count, o_first = _parse(old, 'old')
    c_gen, c_count, c_first = _parse(committed, 'committed')
    n_gen, n_count, n_first = _parse(new, 'new')
    c_range = _added_range(o_gen, o_count, c_gen, c_count, c_first,
                           'committed')
    n_range = _added_range(o_gen, o_count, n_gen, n_count, n_first, 'new')
    if _contains(c_range, n_range):
        return committed
    if _contains(n_range, c_range):
        return new
    raise ConflictError('Archive: both sides added different layers')


def _parse(state, which):
    if not isinstance(state, dict):
        raise ConflictError(f'Archive: {which} state is not a dict')
    gen = state.get('_generation', -1)
    count = state.get('_count', 0)
    first = state.get('_first')
    for value in (gen, count) + ((first,) if first is not None else ()):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConflictError(
                f'Archive: {which} state has a non-integer counter')
    if (gen >= 0) != ('_head' in state and state['_head'] is not None):
        raise ConflictError(
            f'Archive: {which} state has a generation without a head')
    return gen, count, first


def _added_range(o_gen, o_count, s_gen, s_count, s_first, which):
    """The (low, high) generations a side added, or None if none."""
    added = s_count - o_count
    if added < 0 or s_gen < o_gen:
        raise ConflictError(f'Archive: {which} state lost layers')
    if added == 0:
        if s_gen != o_gen:
            raise ConflictError(
                f'Archive: {which} state changed without adding layers')
        return None
    low = o_gen + 1 if o_gen >= 0 else s_first
    if low is None or s_gen - low + 1 != added:
        raise ConflictError(
            f'Archive: {which} added layers that are not contiguous')
    return low, s_gen


def _contains(outer, inner):
    if inner is None:
        return True
    if outer is None:
        return False
    return outer[0] <= inner[0] and inner[1] <= outer[1]
