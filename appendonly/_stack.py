"""AppendStack: a bounded LIFO window of layers, pruned oldest first.

Record layout
-------------
appendonly 1.2 kept every item of the window in the stack's own record, so
each push rewrote the whole window.  Here the stack's record (the "hot"
record, rewritten by every push) holds only a few recent items and
references::

    (max_layers, max_length, layers)        # layers newest first
    layer   = (generation, segments, tail)
    segment = (count, record)               # oldest first

A layer's items are those of its segments, in order, followed by its
``tail`` (an inline list).  A push appends to the newest layer's tail; once
the tail holds ``SEGMENT_LENGTH`` items, the next push first moves them into
a :class:`_Segment` record of their own, written once.  When a layer stops
being the newest, a push seals it: its tail becomes a segment and its
segments are gathered into one :class:`_SealedLayer` record, so the hot
record holds a single ``(count, record)`` pair for it; the newest layer's
segments are gathered the same way when there are more than
``SEGMENT_LENGTH`` of them.  The hot record thus holds at most
``SEGMENT_LENGTH`` items and ``SEGMENT_LENGTH + 1`` references for the
newest layer and one reference per older layer: the bytes written per push
do not grow with ``max_length``, and grow with ``max_layers`` only by one
reference per layer.

The count stored next to each record lets conflict resolution compute
positions without opening records it cannot open.  1.2's layers,
``(generation, [items])``, load as layers with no segments.
"""
from persistent import Persistent
from ZODB.ConflictResolution import PersistentReference
from ZODB.POSException import ConflictError
from zope.interface import implementer

from appendonly.interfaces import IAppendStack

#: Tail items a push moves into a segment record before appending.
SEGMENT_LENGTH = 8


class _Segment(Persistent):
    """Consecutive items of one layer, in push order.  Never changed."""

    # Pickled as ``appendonly._Segment``: records name the package, not its
    # private module layout.
    __module__ = 'appendonly'

    def __init__(self, items=()):
        self._items = list(items)

    def items(self):
        return self._items

    def __getstate__(self):
        return self._items

    def __setstate__(self, state):
        self._items = list(state)


class _SealedLayer(Persistent):
    """The segments of a layer that is no longer the newest.  Never changed.

    Its generation lives in the stack's record, so a conflict resolution
    may renumber it without touching it.
    """

    __module__ = 'appendonly'

    def __init__(self, segments=()):
        self._segments = tuple(segments)

    def items(self):
        return [obj for _, segment in self._segments
                for obj in segment.items()]

    def __getstate__(self):
        return self._segments

    def __setstate__(self, state):
        self._segments = tuple(state)


class _Layer:
    """A layer as the stack works on it (not persisted by itself)."""

    __slots__ = ('generation', 'segments', 'tail')

    def __init__(self, generation, segments=(), tail=()):
        self.generation = generation
        self.segments = list(segments)
        self.tail = list(tail)

    def sealed_length(self):
        return sum(count for count, _ in self.segments)

    def __len__(self):
        return self.sealed_length() + len(self.tail)

    def items(self):
        return [obj for _, record in self.segments
                for obj in record.items()] + self.tail

    def reversed_entries(self, after=-1):
        """Yield ``(index, obj)`` newest first, down to ``after`` + 1,
        loading only the segment records that are needed."""
        end = len(self)
        start = end - len(self.tail)
        for offset in range(len(self.tail) - 1, -1, -1):
            if start + offset <= after:
                return
            yield start + offset, self.tail[offset]
        for count, record in reversed(self.segments):
            if start <= after + 1:
                return
            start -= count
            items = record.items()
            for offset in range(count - 1, -1, -1):
                if start + offset <= after:
                    return
                yield start + offset, items[offset]

    def seal_tail(self):
        if self.tail:
            self.segments.append((len(self.tail), _Segment(self.tail)))
            self.tail = []

    def gather(self):
        """Replace the segments by one record holding them."""
        self.segments = [(self.sealed_length(),
                          _SealedLayer(self.segments))]

    def state(self):
        return (self.generation, tuple(self.segments), self.tail)


@implementer(IAppendStack)
class AppendStack(Persistent):
    """See IAppendStack."""

    __module__ = 'appendonly'    # the class path 1.2 databases refer to

    def __init__(self, max_layers=10, max_length=100):
        _check_size('max_layers', max_layers)
        _check_size('max_length', max_length)
        self._max_layers = max_layers
        self._max_length = max_length
        self._layers = [_Layer(0)]

    def __iter__(self):
        """See IAppendStack."""
        for layer in self._layers:
            for index, obj in layer.reversed_entries():
                yield layer.generation, index, obj

    def __len__(self):
        """See IAppendStack."""
        return sum(len(layer) for layer in self._layers)

    def newer(self, latest_gen, latest_index):
        """See IAppendStack."""
        for layer in self._layers:
            if layer.generation < latest_gen:
                return
            after = latest_index if layer.generation == latest_gen else -1
            for index, obj in layer.reversed_entries(after):
                yield layer.generation, index, obj
            if after >= 0:
                return

    def push(self, obj, pruner=None):
        """See IAppendStack."""
        layers = self._layers
        newest = layers[0]
        if len(newest) >= self._max_length:
            newest = _Layer(newest.generation + 1)
            layers.insert(0, newest)
        elif len(newest.tail) >= SEGMENT_LENGTH:
            # Only items committed before this push move: concurrent pushes
            # seal the same items, and the resolver can keep either copy.
            newest.seal_tail()
            if len(newest.segments) > SEGMENT_LENGTH:
                newest.gather()
        newest.tail.append(obj)
        # Prune oldest first, including surplus layers a conflict resolution
        # left behind (a resolver cannot call our pruner).
        while len(layers) > self._max_layers:
            layer = layers.pop()
            if pruner is not None:
                pruner(layer.generation, layer.items())
        # Seal the layers below the newest: one reference each in our record.
        for layer in layers[1:]:
            layer.seal_tail()
            if len(layer.segments) > 1:
                layer.gather()
        self._p_changed = True

    def __getstate__(self):
        return (self._max_layers, self._max_length,
                [layer.state() for layer in self._layers])

    def __setstate__(self, state):
        self._max_layers, self._max_length, layers = state
        self._layers = [_Layer(*_layer_args(layer)) for layer in layers]

    def _p_resolveConflict(self, old, committed, new):
        return resolve_stack(old, committed, new)


def _layer_args(layer):
    if len(layer) == 2:         # appendonly 1.2: (generation, [items])
        return layer[0], (), layer[1]
    return layer


def _check_size(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{name} must be an integer >= 1, not {value!r}')


#
# Conflict resolution
#
# Notation: O is the state both transactions started from, C the committed
# state (another transaction's, already visible to readers), N the state of
# the transaction being committed.  In O the newest layer has generation g
# and k items; it is "open" if k < max_length.  Positions are
# (generation, index); a layer's segments are opaque records with known
# counts, its tail is visible.
#
# The merge is always "C, then N's pushes": C is already visible, so every
# item of C keeps its position, for a reader polling newer().  N's pushes
# are its items after position (g, k-1): the tail of its layer g beyond k
# (if g was open) and every layer N created.  They are appended after C's
# newest item, filling C's newest layer and then new layers; segments N
# sealed of its own items move over whole, to a fresh layer when they don't
# fit behind C's items.
#
# Items that were in O never change, so both sides may have sealed the same
# ones into segments of their own.  For each layer the merge keeps the
# version with more of them sealed (C's on a tie), so that the next push
# does not seal them a third time; N's other copies become garbage that
# packing removes.
#
# Pruned layers: each side pruned oldest-first and already handed the pruned
# layers to its own pruner (normally an Archive, which merges too).  The
# merge drops every layer that either side pruned, and keeps surplus layers
# for the next push to prune.  That is only safe for layers whose content
# both sides agree on: O's layers, except O's open one.
#
# Cases that cannot merge (ConflictError, the retry redoes the pushes):
# - max_layers or max_length changed on a side;
# - N pruned O's open layer, or a layer it created itself: its pruner got
#   items whose positions C's items now hold;
# - N sealed some of its own items in O's open layer: they are behind a
#   reference the resolver cannot open, at positions C's items now hold;
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

    g, k = o_layers[0].generation, len(o_layers[0])
    is_open = k < max_length
    n_oldest = n_layers[-1].generation
    if n_oldest < o_layers[-1].generation:
        raise ConflictError('AppendStack: new has layers older than old')
    if n_oldest > g + 1:
        raise ConflictError(
            'AppendStack: new pruned layers it pushed itself')
    if n_oldest == g + 1 and is_open:
        raise ConflictError(
            'AppendStack: new pruned the open layer committed appended to')
    _check_unchanged(o_layers, c_layers, is_open, 'committed')
    _check_unchanged(o_layers, n_layers, is_open, 'new')

    # N's pushes, oldest first: segments (count, record) or single items.
    n_by_gen = {layer.generation: layer for layer in n_layers}
    pushes = []
    if is_open:
        n_top = n_by_gen[g]
        sealed = n_top.sealed_length()
        if sealed > k:
            raise ConflictError(
                'AppendStack: new sealed items it pushed into the open '
                'layer committed appended to')
        pushes.extend(('item', obj) for obj in n_top.tail[k - sealed:])
    for layer in reversed(n_layers):
        if layer.generation > g:
            pushes.extend(('segment', segment) for segment in layer.segments)
            pushes.extend(('item', obj) for obj in layer.tail)

    # Start from C, without the layers N pruned (N archived them), using
    # N's sealed copies of O's items where N sealed more.
    merged = []
    for layer in c_layers:
        if layer.generation < n_oldest:
            continue
        n_layer = n_by_gen.get(layer.generation)
        if n_layer is not None and layer.generation <= g:
            # Only O's items are the same on both sides.
            layer = _more_sealed(layer, n_layer, k if layer.generation == g
                                 else len(layer))
        merged.append(layer)
    if not merged:
        raise ConflictError('AppendStack: nothing left after pruning')
    for kind, value in pushes:
        newest = merged[0]
        if kind == 'item':
            if len(newest) >= max_length:
                newest = _Layer(newest.generation + 1)
                merged.insert(0, newest)
            newest.tail.append(value)
        else:
            if newest.tail or len(newest) + value[0] > max_length:
                newest = _Layer(newest.generation + 1)
                merged.insert(0, newest)
            newest.segments.append(value)
    return (max_layers, max_length, [layer.state() for layer in merged])


def _more_sealed(c_layer, n_layer, limit):
    """C's layer, or the same items with N's seals where N sealed more of
    the first ``limit`` items (items O already had, identical on both
    sides)."""
    c_sealed, n_sealed = c_layer.sealed_length(), n_layer.sealed_length()
    if n_sealed <= c_sealed or n_sealed > limit:
        return c_layer
    return _Layer(c_layer.generation, n_layer.segments,
                  c_layer.tail[n_sealed - c_sealed:])


def _parse(state, which):
    """Check the shape of a stack state and return it as _Layers;
    ConflictError names what is wrong."""
    try:
        max_layers, max_length, layers = state
    except (TypeError, ValueError):
        raise ConflictError(
            f'AppendStack: {which} state is not '
            f'(max_layers, max_length, layers)') from None
    for value in (max_layers, max_length):
        if not _is_count(value) or value < 1:
            raise ConflictError(
                f'AppendStack: {which} state has a bad size {value!r}')
    if not isinstance(layers, (list, tuple)) or not layers:
        raise ConflictError(f'AppendStack: {which} state has no layers')
    parsed = []
    for layer in layers:
        if not isinstance(layer, (list, tuple)) or len(layer) not in (2, 3):
            raise ConflictError(
                f'AppendStack: {which} state has a malformed layer')
        gen, segments, tail = _layer_args(layer)
        if not _is_count(gen):
            raise ConflictError(
                f'AppendStack: {which} state has a non-integer generation')
        if parsed and gen >= parsed[-1].generation:
            raise ConflictError(
                f'AppendStack: {which} state has generations out of order')
        if not isinstance(tail, (list, tuple)) or \
                not isinstance(segments, (list, tuple)):
            raise ConflictError(
                f'AppendStack: {which} state has a malformed layer')
        for segment in segments:
            if not isinstance(segment, (list, tuple)) or len(segment) != 2 \
                    or not _is_count(segment[0]) or segment[0] < 1 or \
                    not isinstance(segment[1], (PersistentReference,
                                                _Segment, _SealedLayer)):
                raise ConflictError(
                    f'AppendStack: {which} state has a malformed segment')
        parsed.append(_Layer(gen, [tuple(s) for s in segments], tail))
    return max_layers, max_length, parsed


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _shape(layers):
    """What a push can change: generations, lengths, how much is sealed."""
    return [(layer.generation, len(layer), layer.sealed_length())
            for layer in layers]


def _check_unchanged(o_layers, s_layers, is_open, which):
    """Layers of O that nobody may append to must keep their length, and
    the open layer may only grow."""
    s_by_gen = {layer.generation: layer for layer in s_layers}
    for i, o_layer in enumerate(o_layers):
        s_layer = s_by_gen.get(o_layer.generation)
        if s_layer is None:
            continue    # pruned
        if i == 0 and is_open:
            if len(s_layer) < len(o_layer):
                raise ConflictError(
                    f'AppendStack: {which} lost items of the open layer')
        elif len(s_layer) != len(o_layer):
            raise ConflictError(f'AppendStack: {which} changed a full layer')
