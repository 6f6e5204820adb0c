"""ActivityLog: an AppendStack and the Archive it prunes into, as one
persistent object (the activity feeds of the Pyramid and Zope add-ons).

Pickled as ``appendonly.ActivityLog``; records written before it moved
here name ``appendonly.pyramid.ActivityLog``, which still loads where
Pyramid is installed (that module re-exports the class).

Reading after a cursor
----------------------
``newer(generation, index, limit)`` returns the *oldest* ``limit`` entries
after the cursor, so that a client polling with the cursor it got back
pages forward without gaps.  The stack's layers are read oldest first,
loading only those after the cursor, and stop at the limit.  The
archive is a linked list of layers, newest first: finding the layer of an
old generation means walking from the head, one record per layer.

So each connection's copy of a log remembers the archive layers it has
walked, generation -> layer (:class:`_ArchiveMap`, a volatile ``_v_``
attribute, never stored).  Archived layers never change and the list only
grows at the head, so the map stays true; a later read walks only the
layers archived since, and down to an older cursor than any before.  A
read from a cursor deep in the archive then loads the ``limit`` entries it
returns and little else.  The first such read on a connection still walks
from the head down to its cursor, once.
"""
from persistent import Persistent
from ZODB.utils import z64
from zope.interface import implementer

from appendonly._archive import Archive
from appendonly._stack import AppendStack
from appendonly.interfaces import IActivityLog


@implementer(IActivityLog)
class ActivityLog(Persistent):
    """See IActivityLog."""

    def __init__(self, max_layers=10, max_length=100):
        self.stack = AppendStack(max_layers, max_length)
        self.archive = Archive()

    def append(self, entry):
        self.stack.push(entry, self.archive.addLayer)

    def __iter__(self):
        """``(generation, index, entry)``, newest first."""
        yield from self.stack
        yield from self.archive

    def newer(self, generation, index, limit=None):
        """Entries after the position, oldest first (at most ``limit``, the
        oldest ones), reaching into the archive for those pruned since.

        The work is bounded by ``limit`` (and a layer's length), not by the
        size of the log (see the module's docstring)."""
        found = []
        if generation <= self.archive._generation:
            # Entries pruned since the client looked are in the archive
            # (never in both: pruning moves them in one transaction).
            for layer in self._archived_from(generation):
                after = index if layer._generation == generation else -1
                newest_first = list(layer.newer(after))
                found.extend((layer._generation, i, entry)
                             for i, entry in reversed(newest_first))
                if limit and len(found) >= limit:
                    return found[:limit]
        for layer in reversed(list(self.stack._all_layers())):
            # The stack's layers, oldest first (its newer() goes newest
            # first, through the whole window): stop at the limit.
            if layer.generation < generation:
                continue
            after = index if layer.generation == generation else -1
            newest_first = list(layer.reversed_entries(after))
            found.extend((layer.generation, i, entry)
                         for i, entry in reversed(newest_first))
            if limit and len(found) >= limit:
                break
        return found[:limit] if limit else found

    def _archived_from(self, generation):
        """The archive's layers of ``generation`` and newer, oldest first."""
        archive = self.archive
        head = archive._head
        # A transaction that archived layers itself walks without
        # remembering: they are not committed, and a conflict resolution
        # may keep another transaction's copies instead.
        remember = head is None or _committed(head)
        walked = getattr(self, '_v_archived', None) if remember else None
        walked = walked or _ArchiveMap()
        walked.update(archive, generation)
        if remember:
            # Set after the walk: that makes this object the most recently
            # used of the connection's cache, which ghosts (and so forgets
            # the map of) the least recently used ones first.
            self._v_archived = walked
        return walked.layers_from(generation)


ActivityLog.__module__ = 'appendonly'


def _committed(layer):
    """Whether an archive layer was committed (a layer made in the current
    transaction has no serial yet, savepoint or not)."""
    layer._p_activate()         # a ghost's serial is unknown until loaded
    return layer._p_serial != z64


class _ArchiveMap:
    """Generation -> layer for a run of consecutive layers of one archive's
    list, from the head down to ``oldest``, as one connection has walked
    them."""

    def __init__(self):
        self.layers = {}
        self.newest = -1        # the newest generation mapped
        self.oldest = None      # the oldest layer mapped; its _next goes on

    def update(self, archive, generation):
        """Map the layers archived since the last update, and the older
        ones down to ``generation``."""
        head = archive._head
        if head is None:
            return
        if self.oldest is None:
            self.layers[head._generation] = self.oldest = head
        else:
            layer = head
            while layer is not None and layer._generation > self.newest:
                self.layers[layer._generation] = layer
                layer = layer._next
        self.newest = head._generation
        while self.oldest._generation > generation and \
                self.oldest._next is not None:
            self.oldest = self.oldest._next
            self.layers[self.oldest._generation] = self.oldest

    def layers_from(self, generation):
        """The mapped layers of ``generation`` and newer, oldest first
        (generations with no layer, if any, are skipped)."""
        if self.oldest is None:
            return
        for gen in range(max(generation, self.oldest._generation),
                         self.newest + 1):
            layer = self.layers.get(gen)
            if layer is not None:
                yield layer
