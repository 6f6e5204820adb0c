"""The keys of the ZODB root under which this package keeps what it
creates, in one place: the CLI looks under all of them.

Each is an ``OOBTree``:

- ``FACADES_KEY``: standalone DurableDict and DurableQueue data, keyed
  ``(kind, name)``;
- ``STORAGE_KEY``: the Storage bridge's containers, keyed by name;
- ``PYRAMID_KEY``: the Pyramid add-on's logs, queues and dicts, keyed
  ``(kind, name)`` with kind ``'log'``, ``'queue'`` or ``'dict'``.
"""
FACADES_KEY = 'appendonly'
STORAGE_KEY = 'appendonly.storage'
PYRAMID_KEY = 'appendonly.pyramid'
