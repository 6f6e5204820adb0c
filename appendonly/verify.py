"""Invariant checks for every structure of this package (``appendonly
verify``).  ``check(obj)`` returns a list of problems, empty when sound."""
import os
import struct

from ZODB.FileStorage.format import TRANS_HDR
from ZODB.FileStorage.format import TRANS_HDR_LEN
from ZODB.utils import tid_repr

from appendonly._accumulator import Accumulator
from appendonly._archive import Archive
from appendonly._stack import AppendStack


def check(obj):
    for klass, checker in CHECKERS:
        if isinstance(obj, klass):
            return checker(obj)
    return []


def _check_stack(stack):
    problems = []
    max_length = stack._max_length
    previous = None
    for layer in stack._layers:
        gen = layer.generation
        if previous is not None and gen >= previous:
            problems.append(f'generation {gen} after {previous}')
        previous = gen
        if len(layer) > max_length:
            problems.append(f'layer {gen} holds {len(layer)} items, '
                            f'more than {max_length}')
        for count, record in layer.segments:
            if len(record.items()) != count:
                problems.append(f'layer {gen}: a segment says {count} '
                                f'items, holds {len(record.items())}')
    if stack._older is not None:
        floor, newest, spine = stack._older
        if not floor <= newest < previous:
            problems.append(f'spine generations {floor}..{newest} do not '
                            f'fit below layer {previous}')
        expected = newest
        for gen, count, record in spine.entries():
            if gen < floor:
                break
            if gen != expected:
                problems.append(f'spine: generation {gen}, expected '
                                f'{expected}')
            expected = gen - 1
            if count > max_length:
                problems.append(f'layer {gen} holds {count} items, more '
                                f'than {max_length}')
            if len(record.items()) != count:
                problems.append(f'layer {gen}: the spine says {count} '
                                f'items, its record holds '
                                f'{len(record.items())}')
        if expected != floor - 1:
            problems.append(f'spine ends at {expected + 1}, floor is {floor}')
    return problems


def _check_archive(archive):
    problems = []
    seen = set()
    current, previous = archive._head, None
    if current is not None and current._generation != archive._generation:
        problems.append(f'head is generation {current._generation}, the '
                        f'archive says {archive._generation}')
    while current is not None:
        if id(current) in seen:
            problems.append('the chain of layers has a cycle')
            break
        seen.add(id(current))
        gen = current._generation
        if previous is not None and gen >= previous:
            problems.append(f'generation {gen} after {previous}')
        if not isinstance(current._stack, list):
            problems.append(f'layer {gen} has no item list')
        previous, current = gen, current._next
    return problems


def _check_accumulator(acc):
    problems = []
    if not isinstance(acc._list, list):
        problems.append('items are not a list')
    if not isinstance(acc._consumed, int) or acc._consumed < 0:
        problems.append(f'bad consumed counter {acc._consumed!r}')
    return problems


def _check_dict(data):
    from appendonly.facades._dict import split_entry
    problems = []
    items, order = len(data._items), len(data._order)
    if not items == order == data._len():
        problems.append(f'{items} items, {order} positions, length says '
                        f'{data._len()}')
    for position, stored in data._order.items():
        found = data._items.get(stored)
        if found is None or split_entry(found)[0] != position:
            problems.append(f'position {position} names a missing key')
            break
    return problems


def _check_queue(data):
    problems = []
    if len(data._items) != data.qsize():
        problems.append(f'{len(data._items)} items, length says '
                        f'{data.qsize()}')
    if data.unfinished() < 0:
        problems.append(f'{data.unfinished()} unfinished tasks')
    return problems


def _facades():
    from appendonly.facades import DictData
    from appendonly.facades import QueueData
    return [(DictData, _check_dict), (QueueData, _check_queue)]


CHECKERS = [(AppendStack, _check_stack), (Archive, _check_archive),
            (Accumulator, _check_accumulator)] + _facades()


def truncated_tail(path):
    """A problem line if the FileStorage file at ``path`` ends in the
    middle of a transaction (a copy cut short, a disk that filled up), or
    None.  FileStorage opened read-only ignores such a tail; opened
    writable, it truncates the file back to the last whole transaction,
    so say where that is and what would go.

    Walks the transaction headers (each ends with a copy of its length,
    which is how FileStorage itself tells a whole transaction)."""
    size = os.path.getsize(path)
    with open(path, 'rb') as f:
        pos = 4     # after the magic
        while pos < size:
            f.seek(pos)
            header = f.read(TRANS_HDR_LEN)
            whole = False
            if len(header) == TRANS_HDR_LEN:
                tid, length, status = struct.unpack(
                    TRANS_HDR, header)[:3]
                end = pos + length
                # 'c': a commit that never finished.
                if status in b' pu' and end + 8 <= size:
                    f.seek(end)
                    whole = struct.unpack('>Q', f.read(8))[0] == length
            if not whole:
                what = (f'transaction {tid_repr(tid)}, {length} bytes '
                        f'long, {size - pos} present'
                        if len(header) == TRANS_HDR_LEN
                        else f'{size - pos} bytes, not even a header')
                return (f'truncated: the file ends inside a transaction '
                        f'at offset {pos} ({what}); the last whole '
                        f'transaction ends there, and the next writable '
                        f'open will cut the file to {pos} bytes, moving '
                        f'the last {size - pos} to a {os.path.basename(path)}'
                        f'.trN file beside it')
            pos = end + 8
    return None
