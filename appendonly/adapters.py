"""Adapters for zope.component (registered by ``appendonly/configure.zcml``):
the persistent data objects of this package to the interfaces a Zope
developer looks up.

- ``IDictData`` -> ``IDurableDict`` and ``IQueueData`` -> ``IDurableQueue``:
  the façades, embedded: they work on the object in the caller's connection
  and join the caller's transaction (they never open a database or
  commit).
- ``(IAppendStack, IArchive)`` -> ``IActivityLog``: a stack and the archive
  it prunes into, as one log.  A stack alone is *not* adapted: without an
  archive, ``append`` would drop the layers it prunes and the feed would
  lose them.
- ``IActivityLogHolder`` -> ``IActivityLog``: the object's own
  ``activity_log``.

An ``ActivityLog`` needs no adapter: it provides ``IActivityLog`` itself.
"""
from zope.component import adapter
from zope.interface import implementer

from appendonly._activity import ActivityLog
from appendonly.facades import DurableDict
from appendonly.facades import DurableQueue
from appendonly.interfaces import IActivityLog
from appendonly.interfaces import IActivityLogHolder
from appendonly.interfaces import IAppendStack
from appendonly.interfaces import IArchive
from appendonly.interfaces import IDictData
from appendonly.interfaces import IDurableDict
from appendonly.interfaces import IDurableQueue
from appendonly.interfaces import IQueueData


def _name(data):
    # The façade's name only shows in its repr and error messages.
    return getattr(data, '__name__', None) or 'embedded'


@adapter(IDictData)
@implementer(IDurableDict)
def durable_dict(data):
    """The embedded DurableDict over ``data``."""
    return DurableDict(data, _name(data))


@adapter(IQueueData)
@implementer(IDurableQueue)
def durable_queue(data):
    """The embedded DurableQueue over ``data``."""
    return DurableQueue(data, _name(data))


@adapter(IAppendStack, IArchive)
@implementer(IActivityLog)
class StackActivityLog(ActivityLog):
    """See IActivityLog: an ``ActivityLog`` over a stack and archive that
    already exist (``getMultiAdapter((stack, archive), IActivityLog)``).

    It is never stored unless the application stores it: its appends
    change the stack and the archive, which are in the caller's
    connection already, and so commit with the caller's transaction.
    """

    def __init__(self, stack, archive):
        # Not ActivityLog.__init__, which would make a new, empty pair.
        self.stack = stack
        self.archive = archive


@adapter(IActivityLogHolder)
@implementer(IActivityLog)
def holder_activity_log(holder):
    """The holder's ``activity_log``, or None (cannot adapt) if it has
    none."""
    # Zope content is wrapped for acquisition, which would find a parent's
    # activity_log when the holder has none: look at the object itself.
    holder = getattr(holder, 'aq_base', holder)
    return getattr(holder, 'activity_log', None)
