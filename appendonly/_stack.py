"""AppendStack: a bounded LIFO window of layers, pruned oldest first.

Record layout
-------------
The stack's own record (the "hot" record, rewritten by every push) keeps
appendonly 1.2's state shape::

    (max_layers, max_length, [(generation, items), ...])   # newest first

In 1.2 every ``items`` was an inline list, so each push rewrote the whole
window.  Here only the newest ("open") layer stays inline: a push moves every
older layer into a :class:`_SealedLayer` record of its own, written once.
``items`` is therefore either a list (inline) or a ``_SealedLayer``; a 1.2
state is simply one whose layers are all inline, and loads unchanged.

Sealed layers are immutable and never need to be seen by conflict
resolution: nothing ever appends to a layer below the newest, so the
resolver can carry them around as opaque references.
"""
from persistent import Persistent
from ZODB.ConflictResolution import PersistentReference
from ZODB.POSException import ConflictError
from zope.interface import implementer

from appendonly.interfaces import IAppendStack


class _SealedLayer(Persistent):
    """The items of one full layer, in push order, in a record of their own.

    Written once, when the layer stops being the newest; never changed.
    The generation lives in the stack's record, so a conflict resolution
    may renumber a sealed layer without touching it.
    """

    # Pickled as ``appendonly._SealedLayer``: records name the package, not
    # its private module layout.
    __module__ = 'appendonly'

    def __init__(self, items=()):
        self._items = list(items)

    def __getstate__(self):
        return self._items

    def __setstate__(self, state):
        self._items = list(state)


def _items_of(items):
    """The list of items of an inline or sealed layer."""
    if isinstance(items, _SealedLayer):
        return items._items
    return items


@implementer(IAppendStack)
class AppendStack(Persistent):
    """See IAppendStack."""

    __module__ = 'appendonly'    # the class path 1.2 databases refer to

    def __init__(self, max_layers=10, max_length=100):
        _check_size('max_layers', max_layers)
        _check_size('max_length', max_length)
        self._max_layers = max_layers
        self._max_length = max_length
        self._layers = [(0, [])]

    def __iter__(self):
        """See IAppendStack."""
        for generation, items in self._layers:
            items = _items_of(items)
            for index in range(len(items) - 1, -1, -1):
                yield generation, index, items[index]

    def __len__(self):
        """See IAppendStack."""
        return sum(len(_items_of(items)) for _, items in self._layers)

    def newer(self, latest_gen, latest_index):
        """See IAppendStack."""
        latest = (latest_gen, latest_index)
        for generation, items in self._layers:
            if generation < latest_gen:
                return      # don't load sealed layers we would skip anyway
            items = _items_of(items)
            for index in range(len(items) - 1, -1, -1):
                if (generation, index) <= latest:
                    return
                yield generation, index, items[index]

    def push(self, obj, pruner=None):
        """See IAppendStack."""
        layers = self._layers
        generation, items = layers[0]
        if isinstance(items, list) and len(items) < self._max_length:
            items.append(obj)
        else:
            layers.insert(0, (generation + 1, [obj]))
        # Prune oldest first, including surplus layers a conflict resolution
        # left behind (a resolver cannot call our pruner).
        while len(layers) > self._max_layers:
            generation, items = layers.pop()
            if pruner is not None:
                pruner(generation, list(_items_of(items)))
        # Seal the layers below the newest: they are immutable from now on,
        # so later pushes need not rewrite them.
        for i in range(1, len(layers)):
            generation, items = layers[i]
            if not isinstance(items, _SealedLayer):
                layers[i] = (generation, _SealedLayer(items))
        self._p_changed = True

    def __getstate__(self):
        return (self._max_layers, self._max_length, list(self._layers))

    def __setstate__(self, state):
        self._max_layers, self._max_length, layers = state
        self._layers = [
            (generation,
             items if isinstance(items, _SealedLayer) else list(items))
            for generation, items in layers]

    def _p_resolveConflict(self, old, committed, new):
        return resolve_stack(old, committed, new)


def _check_size(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{name} must be an integer >= 1, not {value!r}')


#
# Conflict resolution
#
# Notation: O is the state both transactions started from, C the committed
# state (another transaction's, already visible to readers), N the state of
# the transaction being committed.  Each has layers newest first; in O the
# newest layer has generation g and k items.
#
# The merge is always "C, then N's pushes": C is already visible, so every
# item of C must keep its (generation, index) for a reader polling newer().
# N's pushes are the items N holds after position (g, k-1) of O: the tail of
# its layer g (if g was open) plus every layer N created.  They are appended
# after C's newest item, filling C's newest layer and then new layers; layers
# N sealed are moved over whole (their records don't hold a generation), so
# their items stay untouched and in order.
#
# Pruned layers: each side pruned oldest-first and already handed the pruned
# layers to its own pruner (normally an Archive, which merges too).  The
# merge drops every layer that either side pruned, and keeps surplus layers
# for the next push to prune.  That is only safe for layers whose content
# both sides agree on: layers below O's open layer, and O's newest layer when
# it was already full.
#
# Cases that cannot merge (ConflictError, the retry redoes the pushes):
# - max_layers or max_length changed on a side;
# - N pruned O's open layer, or a layer it created itself: its pruner got
#   items whose positions C's items now hold;
# - N sealed O's open layer: N's items in it are behind a reference the
#   resolver cannot open, at positions C's items now hold;
# - any state that does not have the expected shape.
# If only one side changed the stack, the merge is that side's state.

def resolve_stack(old, committed, new):
    """Merge two concurrent changes of an AppendStack state; see above."""
    max_layers, max_length, o_layers = _parse(old, 'old')
    c_params = _parse(committed, 'committed')
    n_params = _parse(new, 'new')
    if c_params[:2] != (max_layers, max_length) or \
            n_params[:2] != (max_layers, max_length):
        raise ConflictError(
            'AppendStack: max_layers or max_length changed concurrently')
    c_layers, n_layers = c_params[2], n_params[2]

    if _shape(n_layers) == _shape(o_layers):
        return committed
    if _shape(c_layers) == _shape(o_layers):
        return new

    g, o_top = o_layers[0]
    k = len(o_top) if isinstance(o_top, list) else None
    is_open = k is not None and k < max_length

    n_oldest = n_layers[-1][0]
    if n_oldest < o_layers[-1][0]:
        raise ConflictError('AppendStack: new has layers older than old')
    if n_oldest > g + 1:
        raise ConflictError(
            'AppendStack: new pruned layers it pushed itself')
    if n_oldest == g + 1 and is_open:
        raise ConflictError(
            'AppendStack: new pruned the open layer committed appended to')

    # N's pushes, oldest first: lists of items, or sealed layers to move.
    runs = []
    n_by_gen = dict(n_layers)
    if is_open:
        n_top = n_by_gen[g]
        if not isinstance(n_top, list):
            raise ConflictError(
                'AppendStack: new sealed the open layer committed '
                'appended to')
        if len(n_top) < k:
            raise ConflictError(
                'AppendStack: new lost items of the open layer')
        runs.append(n_top[k:])
        c_top = dict(c_layers).get(g)
        if isinstance(c_top, list) and len(c_top) < k:
            raise ConflictError(
                'AppendStack: committed lost items of the open layer')
    _check_unchanged(o_layers, c_layers, is_open, 'committed')
    _check_unchanged(o_layers, n_layers, is_open, 'new')
    runs.extend(items for gen, items in reversed(n_layers) if gen > g)

    # Start from C, without the layers N pruned (N archived them).
    merged = [(gen, list(items) if isinstance(items, list) else items)
              for gen, items in c_layers if gen >= n_oldest]
    if not merged:
        raise ConflictError('AppendStack: nothing left after pruning')
    for run in runs:
        if not isinstance(run, list):
            merged.insert(0, (merged[0][0] + 1, run))
            continue
        for obj in run:
            gen, items = merged[0]
            if not isinstance(items, list) or len(items) >= max_length:
                items = []
                merged.insert(0, (gen + 1, items))
            items.append(obj)
    return (max_layers, max_length, merged)


def _parse(state, which):
    """Check the shape of a stack state; ConflictError names what is wrong."""
    try:
        max_layers, max_length, layers = state
    except (TypeError, ValueError):
        raise ConflictError(
            f'AppendStack: {which} state is not '
            f'(max_layers, max_length, layers)') from None
    for value in (max_layers, max_length):
        if isinstance(value, bool) or not isinstance(value, int) \
                or value < 1:
            raise ConflictError(
                f'AppendStack: {which} state has a bad size {value!r}')
    if not isinstance(layers, (list, tuple)) or not layers:
        raise ConflictError(f'AppendStack: {which} state has no layers')
    parsed = []
    previous = None
    for layer in layers:
        if not isinstance(layer, (list, tuple)) or len(layer) != 2:
            raise ConflictError(
                f'AppendStack: {which} state has a malformed layer')
        gen, items = layer
        if isinstance(gen, bool) or not isinstance(gen, int):
            raise ConflictError(
                f'AppendStack: {which} state has a non-integer generation')
        if previous is not None and gen >= previous:
            raise ConflictError(
                f'AppendStack: {which} state has generations out of order')
        previous = gen
        if isinstance(items, (list, tuple)):
            items = list(items)
        elif not isinstance(items, (PersistentReference, _SealedLayer)):
            raise ConflictError(
                f'AppendStack: {which} state has a layer that is neither '
                f'a list nor a sealed layer')
        parsed.append((gen, items))
    return max_layers, max_length, parsed


def _shape(layers):
    """What a push can change: generations and inline lengths."""
    return [(gen, len(items) if isinstance(items, list) else None)
            for gen, items in layers]


def _check_unchanged(o_layers, s_layers, is_open, which):
    """Layers of O that nobody may append to must not have grown."""
    s_by_gen = dict(s_layers)
    for i, (gen, o_items) in enumerate(o_layers):
        if i == 0 and is_open:
            continue
        s_items = s_by_gen.get(gen)
        if s_items is None or not isinstance(s_items, list):
            continue    # pruned, or sealed unchanged
        if not isinstance(o_items, list) or len(s_items) != len(o_items):
            raise ConflictError(
                f'AppendStack: {which} changed a full layer')
