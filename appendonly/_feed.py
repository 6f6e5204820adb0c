"""An activity feed's answer to a poll, without a web framework: the cursor
from the query string, and the entries to send.  The Zope view
(:mod:`appendonly.browser`) uses it; it reads cursors as the Pyramid view
(:mod:`appendonly.pyramid`) does, so one client works with both.

A poll without ``gen`` and ``index`` gets the newest entries; with both, the
oldest entries after that position (``-1, -1``: the start of the log), so
a client sending back the cursor it got sees every entry once, in order.
"""
import re
from itertools import islice

#: The largest ``gen`` or ``index`` a client may send: the largest signed
#: 64-bit integer.  Larger values are refused, not echoed back.
CURSOR_MAX = 2 ** 63 - 1

# Digits only (int() would also take spaces, "_" and "+"), and few enough
# of them that int() stays cheap.
_INTEGER = re.compile(r'-?[0-9]{1,19}')


class CursorError(ValueError):
    """A bad cursor in a query string (HTTP 400); the message names the
    parameter, never repeats its value."""


def parse_cursor(getall):
    """``(gen, index)``, or None if the query has neither.  ``getall(name)``
    returns the list of the values given for ``name``."""
    given = {name: getall(name) for name in ('gen', 'index')}
    if not any(given.values()):
        return None
    for name, values in given.items():
        if not values:
            other, = set(given) - {name}
            raise CursorError(f'{other} given without {name}')
        if len(values) > 1:
            raise CursorError(f'{name} given more than once')
        if not isinstance(values[0], str) or \
                not _INTEGER.fullmatch(values[0]) or \
                not -1 <= int(values[0]) <= CURSOR_MAX:
            raise CursorError(
                f'{name} must be an integer from -1 to {CURSOR_MAX}')
    return int(given['gen'][0]), int(given['index'][0])


def answer(log, cursor, limit):
    """The JSON-ready answer: ``{"entries": [[gen, index, entry], ...],
    "cursor": [gen, index]}``, oldest first, at most ``limit`` entries:
    the newest ones without a cursor, else the oldest after it."""
    if cursor is None:
        # The log's own order is newest first: stop at the limit.
        entries = list(islice(log, limit))
        entries.reverse()
        cursor = (-1, -1)           # a client starting before the first
    else:
        entries = log.newer(*cursor, limit)
    if entries:
        cursor = entries[-1][:2]
    return {'entries': [list(entry) for entry in entries],
            'cursor': list(cursor)}
