"""DurableDict: a MutableMapping kept in ZODB."""
import itertools
import os
import pickle
import random
import struct
import threading
import time
from collections.abc import MutableMapping

from BTrees.Length import Length
from BTrees.OOBTree import OOBTree
from persistent import Persistent
from zope.interface import implementer

from appendonly.facades._session import Facade
from appendonly.interfaces import IDictData
from appendonly.interfaces import IDurableDict

# Keys are stored encoded, so that keys of different types order (a BTree
# needs that) and equal keys are equal: (type tag, value), recursively for
# tuples.  bool and float are refused: True == 1 and 1.0 == 1 would make
# two spellings of one key.
_TAGS = {int: 0, str: 1, bytes: 2, tuple: 3}


def encode_key(key):
    """The stored form of ``key``; TypeError for keys we can't order."""
    tag = _TAGS.get(type(key))
    if tag is None:
        raise TypeError(
            f'keys must be str, bytes, int or tuples of those, not '
            f'{type(key).__name__}')
    if tag == 3:
        return (3, tuple(encode_key(k) for k in key))
    return (tag, key)


def decode_key(stored):
    tag, value = stored
    if tag == 3:
        return tuple(decode_key(k) for k in value)
    return value


def dumps(value):
    """Pickle a value now, so an unpicklable one fails at the call."""
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as e:
        raise TypeError(f'cannot store {type(value).__name__!r}: {e}') \
            from e


class OrderKeys:
    """Unique, increasing position keys for this process: 24 bytes packing
    (nanoseconds, process token, counter), so BTrees compare them fast.
    Increasing per process even if the clock steps back; unique across
    processes without any shared counter (a shared counter would make
    every insert conflict)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._last = 0
        self._counter = itertools.count()
        self._token = ((os.getpid() << 24) ^ random.getrandbits(56)) \
            & 0xFFFFFFFFFFFFFFFF

    def __call__(self):
        with self._lock:
            now = max(time.time_ns(), self._last + 1)
            self._last = now
            return POSITION.pack(now, self._token,
                                 next(self._counter) & 0xFFFFFFFFFFFFFFFF)


#: Layout of a position key.
POSITION = struct.Struct('>QQQ')
next_order_key = OrderKeys()
_MISSING = object()


def entry(position, data):
    """What ``_items`` holds for a key: its position and pickled value, in
    one bytes (one object for ZODB to pickle instead of a tuple of two,
    in every bucket written)."""
    return position + data


def split_entry(stored):
    """``(position, pickled value)`` of an ``_items`` entry (databases
    written before 2.0's release hold a tuple)."""
    if isinstance(stored, tuple):
        return stored
    return stored[:POSITION.size], stored[POSITION.size:]


@implementer(IDictData)
class DictData(Persistent, MutableMapping):
    """See IDictData.

    Two OOBTrees: ``_items`` maps the encoded key to its position and
    pickled value (one bytes: :func:`entry`), ``_order`` maps the position
    to the encoded key, and a ``BTrees.Length`` counts.  Writers of
    different keys touch different BTree entries and the Length, all of
    which merge on conflict; writers of the same key conflict and retry.
    Positions come from ``OrderKeys``: overwriting keeps the position, as
    ``dict`` does.
    """

    def __init__(self):
        self._items = OOBTree()
        self._order = OOBTree()
        self._len = Length()

    def __getitem__(self, key):
        return pickle.loads(split_entry(self._items[encode_key(key)])[1])

    def __setitem__(self, key, value):
        self.set_pickled(encode_key(key), dumps(value))

    def set_pickled(self, stored, data):
        """Store the pickled ``data`` under the encoded key ``stored``."""
        old = self._items.get(stored)
        if old is None:
            position = next_order_key()
            self._order[position] = stored
            self._len.change(1)
        else:
            position = split_entry(old)[0]
        self._items[stored] = entry(position, data)

    def __delitem__(self, key):
        stored = encode_key(key)
        position, _ = split_entry(self._items.pop(stored))
        del self._order[position]
        self._len.change(-1)

    def __contains__(self, key):
        return encode_key(key) in self._items

    def __iter__(self):
        for stored in self._order.values():
            yield decode_key(stored)

    def __len__(self):
        return self._len()

    def get(self, key, default=None):
        found = self._items.get(encode_key(key))
        return default if found is None else pickle.loads(
            split_entry(found)[1])

    def pop(self, key, default=_MISSING):
        stored = encode_key(key)
        found = self._items.get(stored)
        if found is None:
            if default is _MISSING:
                raise KeyError(key)
            return default
        del self[key]
        return pickle.loads(split_entry(found)[1])

    def popitem(self):
        """Remove and return the last inserted ``(key, value)``."""
        if not self._order:
            raise KeyError('popitem(): dictionary is empty')
        key = decode_key(self._order[self._order.maxKey()])
        return key, self.pop(key)

    def setdefault(self, key, default=None):
        found = self._items.get(encode_key(key))
        if found is not None:
            return pickle.loads(split_entry(found)[1])
        self[key] = default
        return default

    def clear(self):
        if self._order:
            self._len.change(-len(self._items))
            self._items.clear()
            self._order.clear()

    def snapshot(self):
        """``[(key, value), ...]`` in order."""
        items = self._items
        return [(decode_key(stored),
                 pickle.loads(split_entry(items[stored])[1]))
                for stored in self._order.values()]


@implementer(IDurableDict)
class DurableDict(Facade, MutableMapping):
    """See IDurableDict."""

    kind, data_class = 'dict', DictData

    def __init__(self, target, name='default', *, readonly=False,
                 attempts=100):
        super().__init__(target, name, readonly, attempts)

    def __getitem__(self, key):
        return self._run(lambda data: data[key])

    def __setitem__(self, key, value):
        # Encode and pickle before touching the database (bad input fails
        # here), once: a retry reuses them.
        stored, data = encode_key(key), dumps(value)
        self._run(lambda d: d.set_pickled(stored, data), write=True)

    def __delitem__(self, key):
        self._run(lambda data: data.__delitem__(key), write=True)

    def __contains__(self, key):
        return self._run(lambda data: key in data)

    def __iter__(self):
        # A snapshot taken in one transaction: iteration is consistent
        # and holds no connection while the caller works.
        return iter(self._run(list))

    def __len__(self):
        return self._run(len)

    def get(self, key, default=None):
        return self._run(lambda data: data.get(key, default))

    def pop(self, key, *default):
        return self._run(lambda data: data.pop(key, *default), write=True)

    def popitem(self):
        return self._run(lambda data: data.popitem(), write=True)

    def setdefault(self, key, default=None):
        return self._run(lambda data: data.setdefault(key, default),
                         write=True)

    def update(self, other=(), **kw):
        pairs = list(other.items() if hasattr(other, 'items') else other)
        pairs.extend(kw.items())
        # All encoded and pickled before writing any.
        encoded = [(encode_key(key), dumps(value)) for key, value in pairs]

        def update(data):
            for stored, pickled in encoded:
                data.set_pickled(stored, pickled)
        self._run(update, write=True)

    def clear(self):
        self._run(lambda data: data.clear(), write=True)

    def keys(self):
        return self._run(list)

    def values(self):
        return [value for _, value in self._run(DictData.snapshot)]

    def items(self):
        return self._run(DictData.snapshot)

    def copy(self):
        return dict(self.items())
