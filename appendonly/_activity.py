"""ActivityLog: an AppendStack and the Archive it prunes into, as one
persistent object (the activity feeds of the Pyramid and Zope add-ons).

Pickled as ``appendonly.ActivityLog``; records written before it moved
here name ``appendonly.pyramid.ActivityLog``, which still loads where
Pyramid is installed (that module re-exports the class).
"""
from persistent import Persistent
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
        oldest ones), reaching into the archive for those pruned since."""
        cursor = (generation, index)
        fresh = list(self.stack.newer(generation, index))
        if self.archive._generation >= generation:
            # Entries pruned since the client looked are in the archive
            # (never in both: pruning moves them in one transaction).
            for entry in self.archive:
                if entry[:2] <= cursor:
                    break
                fresh.append(entry)
        fresh.sort(key=lambda entry: entry[:2])
        return fresh[:limit] if limit else fresh


ActivityLog.__module__ = 'appendonly'
