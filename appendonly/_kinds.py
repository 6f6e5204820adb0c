"""What each kind of structure named in a configuration is made of.

Kept out of :mod:`appendonly.config` so that the configuration (which
:mod:`appendonly.db` reads) never imports the façades (which use
:mod:`appendonly.db`): imports run one way.
"""
from appendonly._accumulator import Accumulator
from appendonly._archive import Archive
from appendonly._stack import AppendStack
from appendonly.facades import DictData
from appendonly.facades import QueueData


def create(settings):
    """A new, empty structure as a ``<appendonly>`` section configures it
    (for a stack, the ``(stack, archive)`` pair)."""
    if settings.kind == 'stack':
        return (AppendStack(settings.max_layers, settings.max_length),
                Archive())
    return {'queue': QueueData, 'dict': DictData,
            'accumulator': Accumulator}[settings.kind]()
