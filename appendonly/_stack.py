"""AppendStack: a bounded LIFO window of layers, pruned oldest first.

Record layout
-------------
appendonly 1.2 kept every item of the window in the stack's own record, so
each push rewrote the whole window.  Here the stack's record (the "hot"
record, rewritten by every push, and the one ZODB hands to conflict
resolution three times over) holds only a few recent items and
references::

    (max_layers, max_length, layers, older)
    layers  = [(generation, segments, tail), ...]   # newest first
    segment = (count, record)                       # oldest first
    older   = None, or (floor, newest, spine)

A layer's items are those of its segments, in order, followed by its
``tail`` (an inline list).  A push appends to the newest layer's tail; once
the tail holds ``SEGMENT_LENGTH`` items, the next push first moves them into
a :class:`_Segment` record of their own, written once; when the newest layer
has more than two segments they are gathered into one :class:`_SealedLayer`
record.

When a layer stops being the newest, a push seals it (one record for the
whole layer) and moves it into the *spine*: a :class:`_Spine` record listing
``(generation, count, record)`` of every older layer, newest first.  The
spine is rebuilt, once per layer, when layers are sealed or pruned; ``older``
names it with the generation of its newest layer and the ``floor`` below
which its layers are already pruned.  So the hot record holds at most
``SEGMENT_LENGTH`` items and four references whatever the window: the bytes
written by a push, and the cost of resolving a conflict, do not grow with
``max_layers`` or ``max_length``.

The counts stored next to the records let conflict resolution compute
positions without opening records it cannot open.  1.2's states,
``(max_layers, max_length, [(generation, [items]), ...])``, load as layers
with no segments and no spine.
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


class _Spine(Persistent):
    """``(generation, count, record)`` of the sealed layers below the
    newest ones, newest first.  Never changed: a push that seals or prunes
    a layer writes a new spine."""

    __module__ = 'appendonly'

    def __init__(self, entries=()):
        self._entries = tuple(entries)

    def entries(self):
        return self._entries

    def __getstate__(self):
        return self._entries

    def __setstate__(self, state):
        self._entries = tuple(state)


class _Layer:
    """A layer as the stack works on it (not persisted by itself)."""

    __slots__ = ('generation', 'segments', 'sealed', 'tail')

    def __init__(self, generation, segments=(), tail=(), sealed=None):
        self.generation = generation
        self.segments = list(segments)
        if sealed is None:
            sealed = sum(count for count, _ in self.segments)
        self.sealed = sealed        # how many items the segments hold
        self.tail = list(tail)

    def __len__(self):
        return self.sealed + len(self.tail)

    def items(self):
        return [obj for _, record in self.segments
                for obj in record.items()] + self.tail

    def reversed_entries(self, after=-1):
        """Yield ``(index, obj)`` newest first, down to ``after`` + 1,
        loading only the segment records that are needed."""
        start = self.sealed
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

    def add_segment(self, segment):
        self.segments.append(segment)
        self.sealed += segment[0]

    def seal_tail(self):
        if self.tail:
            self.add_segment((len(self.tail), _Segment(self.tail)))
            self.tail = []

    def gather(self):
        """Replace the segments by one record listing their _Segments."""
        leaves = []
        for count, record in self.segments:
            if isinstance(record, _SealedLayer):
                leaves.extend(record._segments)
            else:
                leaves.append((count, record))
        self.segments = [(self.sealed, _SealedLayer(leaves))]

    def seal(self):
        """Return ``(generation, count, record)``: the whole layer in one
        record."""
        self.seal_tail()
        if len(self.segments) > 1:
            self.gather()
        [(count, record)] = self.segments
        return self.generation, count, record

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
        self._layers = [_Layer(0)]      # not yet in the spine, newest first
        self._older = None              # None or (floor, newest, _Spine)

    def _all_layers(self):
        """Every live layer, newest first, as _Layers (the spine's are
        made on the fly)."""
        yield from self._layers
        if self._older is not None:
            floor, _, spine = self._older
            for gen, count, record in spine.entries():
                if gen < floor:
                    return
                yield _Layer(gen, [(count, record)], (), count)

    def __iter__(self):
        """See IAppendStack."""
        for layer in self._all_layers():
            for index, obj in layer.reversed_entries():
                yield layer.generation, index, obj

    def __len__(self):
        """See IAppendStack."""
        return sum(len(layer) for layer in self._all_layers())

    def newer(self, latest_gen, latest_index):
        """See IAppendStack."""
        for layer in self._all_layers():
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
            if len(newest.segments) > 2:
                newest.gather()
        newest.tail.append(obj)
        self._p_changed = True
        live_older = 0
        if self._older is not None:
            floor, spine_newest, spine = self._older
            live_older = spine_newest - floor + 1
        excess = len(layers) + live_older - self._max_layers
        if len(layers) == 1 and excess <= 0:
            return
        # Prune oldest first, including surplus layers a conflict resolution
        # left behind (a resolver cannot call our pruner); then move the
        # layers below the newest into a new spine.
        older = []
        if self._older is not None:
            older = [entry for entry in spine.entries() if entry[0] >= floor]
        for _ in range(max(excess, 0)):
            if older:
                gen, _, record = older.pop()
                items = record.items()
            else:
                layer = layers.pop()
                gen, items = layer.generation, layer.items()
            if pruner is not None:
                pruner(gen, list(items))
        entries = [layer.seal() for layer in layers[1:]] + older
        del layers[1:]
        self._older = (entries[-1][0], entries[0][0],
                       _Spine(entries)) if entries else None

    def __getstate__(self):
        return (self._max_layers, self._max_length,
                [layer.state() for layer in self._layers], self._older)

    def __setstate__(self, state):
        if len(state) == 3:     # appendonly 1.2
            state = tuple(state) + (None,)
        self._max_layers, self._max_length, layers, self._older = state
        self._layers = [_Layer(*_layer_args(layer)) for layer in layers]

    def _p_resolveConflict(self, old, committed, new):
        return resolve_stack(old, committed, new)


def _layer_args(layer):
    if len(layer) == 2:         # appendonly 1.2: (generation, [items])
        return layer[0], (), layer[1]
    return layer


def _check_size(name, value):
    if type(value) is not int or value < 1:
        raise ValueError(f'{name} must be an integer >= 1, not {value!r}')


#
# Conflict resolution
#
# Notation: O is the state both transactions started from, C the committed
# state (another transaction's, already visible to readers), N the state of
# the transaction being committed.  In O the newest layer has generation g
# and k items; it is "open" if k < max_length.  Positions are
# (generation, index).  Records (segments, sealed layers, the spine) are
# opaque to the resolver; the counts and generations beside them are not.
#
# The merge is always "C, then N's pushes": C is already visible, so every
# item of C keeps its position, for a reader polling newer().  N's pushes
# are its items after position (g, k-1): the tail of its layer g beyond k
# (if g was open) and every layer N created.  They are appended after C's
# newest item, filling C's newest layer and then new layers; segments N
# sealed of its own items move over whole, to a fresh layer when they don't
# fit behind C's items.  The merged spine is C's.
#
# Items that were in O never change, so both sides may have sealed the same
# ones into records of their own.  For each layer the merge keeps the
# version with more of them sealed (C's on a tie), so that the next push
# does not seal them a third time; N's other copies become garbage that
# packing removes.
#
# Pruned layers: each side pruned oldest-first and already handed the pruned
# layers to its own pruner (normally an Archive, which merges too).  The
# merge drops every layer that either side pruned (for C's spine, by raising
# its floor), and keeps surplus layers for the next push to prune.  That is
# only safe for layers whose content both sides agree on: O's layers, except
# O's open one.
#
# Cases that cannot merge (ConflictError, the retry redoes the pushes):
# - max_layers or max_length changed on a side;
# - N pruned O's open layer, or a layer it created itself: its pruner got
#   items whose positions C's items now hold;
# - N sealed some of its own items in O's open layer, or sealed layers it
#   created into its spine: they are behind references the resolver cannot
#   open, at positions C's items now hold;
# - any state that does not have the expected shape.
# If only one side changed the stack, the merge is that side's state.

def resolve_stack(old, committed, new):
    """Merge two concurrent changes of an AppendStack state; see above."""
    max_layers, max_length, o_layers, o_older = _parse(old, 'old')
    c_params = _parse(committed, 'committed')
    n_params = _parse(new, 'new')
    if c_params[:2] != (max_layers, max_length) or \
            n_params[:2] != (max_layers, max_length):
        raise ConflictError(
            'AppendStack: max_layers or max_length changed concurrently')
    _, _, c_layers, c_older = c_params
    _, _, n_layers, n_older = n_params

    o_shape = _shape(o_layers, o_older)
    if _shape(n_layers, n_older) == o_shape:
        return committed
    if _shape(c_layers, c_older) == o_shape:
        return new

    g, k = o_layers[0].generation, len(o_layers[0])
    is_open = k < max_length
    n_oldest = _oldest(n_layers, n_older)
    if n_oldest < _oldest(o_layers, o_older):
        raise ConflictError('AppendStack: new has layers older than old')
    if n_oldest > g + 1:
        raise ConflictError(
            'AppendStack: new pruned layers it pushed itself')
    if n_oldest == g + 1 and is_open:
        raise ConflictError(
            'AppendStack: new pruned the open layer committed appended to')
    if n_older is not None and n_older[1] > g:
        raise ConflictError(
            'AppendStack: new sealed layers it pushed into its spine')
    if n_older is not None and n_older[1] == g and is_open:
        raise ConflictError(
            'AppendStack: new sealed items it pushed into the open layer '
            'committed appended to')
    c_by_gen = {layer.generation: layer for layer in c_layers}
    n_by_gen = {layer.generation: layer for layer in n_layers}
    _check_unchanged(o_layers, c_by_gen, is_open, 'committed')
    _check_unchanged(o_layers, n_by_gen, is_open, 'new')

    # N's pushes, oldest first: segments (count, record) or single items.
    pushes = []
    if is_open:
        n_top = n_by_gen[g]
        if n_top.sealed > k:
            raise ConflictError(
                'AppendStack: new sealed items it pushed into the open '
                'layer committed appended to')
        pushes.extend((None, obj) for obj in n_top.tail[k - n_top.sealed:])
    for layer in reversed(n_layers):
        if layer.generation > g:
            pushes.extend(layer.segments)
            pushes.extend((None, obj) for obj in layer.tail)

    # Start from C, without the layers N pruned (N archived them), using
    # N's sealed copies of O's items where N sealed more.
    merged = []
    for layer in c_layers:
        gen = layer.generation
        if gen < n_oldest:
            continue
        n_layer = n_by_gen.get(gen)
        if n_layer is not None and gen <= g:
            # Only O's items are the same on both sides.
            layer = _more_sealed(layer, n_layer, k if gen == g else len(layer))
        merged.append(layer)
    if c_older is not None:
        floor, newest, spine = c_older
        floor = max(floor, n_oldest)
        c_older = (floor, newest, spine) if floor <= newest else None
    if not merged:
        raise ConflictError('AppendStack: nothing left after pruning')
    newest = merged[0]
    for count, value in pushes:
        if count is None:       # an item
            if len(newest) >= max_length:
                newest = _Layer(newest.generation + 1)
                merged.insert(0, newest)
            newest.tail.append(value)
        else:                   # a segment N sealed of its own items
            if newest.tail or len(newest) + count > max_length:
                newest = _Layer(newest.generation + 1)
                merged.insert(0, newest)
            newest.add_segment((count, value))
    return (max_layers, max_length, [layer.state() for layer in merged],
            c_older)


def _more_sealed(c_layer, n_layer, limit):
    """C's layer, or the same items with N's seals where N sealed more of
    the first ``limit`` items (items O already had, identical on both
    sides)."""
    if n_layer.sealed <= c_layer.sealed or n_layer.sealed > limit:
        return c_layer
    return _Layer(c_layer.generation, n_layer.segments,
                  c_layer.tail[n_layer.sealed - c_layer.sealed:],
                  n_layer.sealed)


_RECORDS = (PersistentReference, _Segment, _SealedLayer)


def _parse(state, which):
    """Check the shape of a stack state; return its sizes, its layers as
    _Layers and its ``older`` triple.  ConflictError names what is wrong."""
    if type(state) not in (list, tuple) or len(state) not in (3, 4):
        raise ConflictError(
            f'AppendStack: {which} state is not '
            f'(max_layers, max_length, layers, older)')
    max_layers, max_length, layers = state[:3]
    older = state[3] if len(state) == 4 else None
    for value in (max_layers, max_length):
        if type(value) is not int or value < 1:
            raise ConflictError(
                f'AppendStack: {which} state has a bad size {value!r}')
    if type(layers) not in (list, tuple) or not layers:
        raise ConflictError(f'AppendStack: {which} state has no layers')
    parsed = []
    previous = None
    for layer in layers:
        if type(layer) not in (list, tuple) or len(layer) not in (2, 3):
            raise ConflictError(
                f'AppendStack: {which} state has a malformed layer')
        gen, segments, tail = _layer_args(layer)
        if type(gen) is not int:
            raise ConflictError(
                f'AppendStack: {which} state has a non-integer generation')
        if previous is not None and gen >= previous:
            raise ConflictError(
                f'AppendStack: {which} state has generations out of order')
        previous = gen
        if type(tail) not in (list, tuple) or \
                type(segments) not in (list, tuple):
            raise ConflictError(
                f'AppendStack: {which} state has a malformed layer')
        sealed = 0
        for segment in segments:
            if type(segment) not in (list, tuple) or len(segment) != 2 or \
                    type(segment[0]) is not int or segment[0] < 1 or \
                    not isinstance(segment[1], _RECORDS):
                raise ConflictError(
                    f'AppendStack: {which} state has a malformed segment')
            sealed += segment[0]
        parsed.append(_Layer(gen, segments, tail, sealed))
    if older is not None:
        if type(older) not in (list, tuple) or len(older) != 3 or \
                type(older[0]) is not int or type(older[1]) is not int or \
                not older[0] <= older[1] < previous or \
                not isinstance(older[2], (PersistentReference, _Spine)):
            raise ConflictError(
                f'AppendStack: {which} state has a malformed spine')
        older = tuple(older)
    return max_layers, max_length, parsed, older


def _oldest(layers, older):
    return older[0] if older is not None else layers[-1].generation


def _shape(layers, older):
    """What a push can change: generations, lengths, how much is sealed."""
    return ([(layer.generation, len(layer), layer.sealed) for layer in layers],
            older[:2] if older is not None else None)


def _check_unchanged(o_layers, s_by_gen, is_open, which):
    """Layers of O that nobody may append to must keep their length, and
    the open layer may only grow (a layer a side moved into its spine or
    pruned cannot be checked, and is not needed)."""
    for i, o_layer in enumerate(o_layers):
        s_layer = s_by_gen.get(o_layer.generation)
        if s_layer is None:
            continue
        if i == 0 and is_open:
            if len(s_layer) < len(o_layer):
                raise ConflictError(
                    f'AppendStack: {which} lost items of the open layer')
        elif len(s_layer) != len(o_layer):
            raise ConflictError(f'AppendStack: {which} changed a full layer')
