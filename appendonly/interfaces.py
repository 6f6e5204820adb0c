"""Contracts for the public classes of :mod:`appendonly`.

Implementations say "See IFoo" and keep the contract here.
"""
from persistent.interfaces import IPersistent
from zope.interface import Attribute
from zope.interface import Interface


class IAppendStack(IPersistent):
    """A LIFO stack of items, kept in a bounded window of layers.

    - Items are appended to the newest layer until it holds ``max_length``
      items; the next push then starts a new layer, whose generation is one
      more than the previous newest layer's.

    - When the stack holds more than ``max_layers`` layers, ``push`` removes
      the oldest ones and hands each to its ``pruner``, oldest first, exactly
      once.

    - Every item has a position ``(generation, index)``; positions strictly
      decrease along iteration, and a later push always gets a greater
      position than every item already committed.

    - Concurrent pushes from different transactions merge during ZODB
      conflict resolution: no item is lost or duplicated, each transaction's
      items stay contiguous and in push order.  When a merge cannot be
      proven safe, the commit raises ``ConflictError`` and a retry of the
      transaction succeeds.

    - A merge may leave more than ``max_layers`` layers in the stack (the
      resolver cannot call the pruner); the next ``push`` prunes them.
    """

    _max_layers = Attribute(
        "The number of layers kept before pruning (read / write).")

    _max_length = Attribute(
        "The number of items per layer (read / write).")

    def __iter__():
        """Yield ``(generation, index, obj)``, newest first."""

    def __len__():
        """Return the number of items currently held (not pruned)."""

    def newer(latest_gen, latest_index):
        """Yield ``(generation, index, obj)`` newer than the position given.

        Newest first; stops at the first item whose position is less than or
        equal to ``(latest_gen, latest_index)``.  A reader that remembers the
        newest position it has seen and polls ``newer`` sees every committed
        item exactly once (as long as the item has not been pruned yet).
        """

    def push(obj, pruner=None):
        """Append ``obj`` to the stack.

        If layers must be pruned (including surplus layers left by an
        earlier conflict resolution), call ``pruner(generation, items)`` for
        each, oldest first; ``items`` is a list in push order.  Without a
        pruner, pruned layers are discarded.
        """


class IArchive(IPersistent):
    """Layers pruned from an :class:`IAppendStack`, as a linked list.

    Each layer is stored in its own record, so adding one writes only that
    layer and a small head record.  Concurrent transactions that archive the
    same layers (the usual ``stack.push(obj, archive.addLayer)`` pattern)
    merge without a conflict.
    """

    _generation = Attribute(
        "The generation of the newest archived layer (-1 when empty).")

    def __iter__():
        """Yield ``(generation, index, obj)``, newest first."""

    def addLayer(generation, items):
        """Archive ``items`` (a sequence in push order) as ``generation``.

        ``generation`` must be greater than every archived generation, or
        the call does nothing: re-adding an already archived generation is
        harmless.  Use it as an ``IAppendStack.push`` pruner.
        """


class IAccumulator(IPersistent):
    """A list of pending items that is appended to and consumed as a whole.

    - ``append`` / ``extend`` add items at the end.

    - ``consume`` returns every item and empties the accumulator.

    - Concurrent appends merge.  Consumption is exactly-once: two
      transactions that both consumed items conflict (the loser retries and
      sees what is left), and items appended concurrently with a
      ``consume`` are kept for the next one.
    """

    def __iter__():
        """Iterate over the pending items, oldest first."""

    def __len__():
        """Return the number of pending items."""

    def append(obj):
        """Add ``obj`` at the end."""

    def extend(objs):
        """Add every item of the iterable ``objs`` at the end."""

    def consume():
        """Return a list of all pending items, oldest first, and clear."""
