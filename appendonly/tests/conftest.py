import os
import signal
import time

import pytest
import ZODB
import ZODB.FileStorage

from appendonly import AppendStack
from appendonly import Archive
from appendonly.facades import DurableDict
from appendonly.tests.zeoserver import zeo_server  # noqa: F401  fixture


def _descendants():
    """{pid: command line} of the live (not zombie) processes below this
    one, read from /proc."""
    children = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses.
        state, ppid = stat[stat.rindex(')') + 2:].split()[:2]
        if state not in 'ZX':
            children.setdefault(int(ppid), []).append(int(entry))
    found, todo = {}, [os.getpid()]
    while todo:
        for pid in children.get(todo.pop(), ()):
            try:
                with open(f'/proc/{pid}/cmdline', 'rb') as f:
                    found[pid] = f.read().replace(b'\0', b' ').decode(
                        errors='replace').strip()
            except OSError:
                continue
            todo.append(pid)
    return found


@pytest.fixture(autouse=True)
def no_process_left_behind():
    """Every process a test starts is gone when it ends: one still running
    a few seconds after the test's own cleanup is killed, and the test
    fails naming it."""
    before = set(_descendants())
    yield
    deadline = time.monotonic() + 5
    while True:
        left = {pid: cmd for pid, cmd in _descendants().items()
                if pid not in before}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not left, f'processes left behind: {left}'


@pytest.fixture
def db(tmp_path):
    """A ZODB.DB on a real FileStorage in a temporary directory.

    Never MappingStorage for conflict tests: its store() raises
    ConflictError without calling resolvers.
    """
    database = ZODB.DB(ZODB.FileStorage.FileStorage(
        os.path.join(str(tmp_path), 'Data.fs')))
    yield database
    database.close()


@pytest.fixture
def fs(tmp_path):
    """A database with a stack, an archive, a dict and a queue."""
    path = str(tmp_path / 'Data.fs')
    db = ZODB.DB(path)
    with db.transaction() as conn:
        conn.root.stack = AppendStack(2, 3)
        conn.root.archive = Archive()
    for n in range(10):
        with db.transaction() as conn:
            conn.root.stack.push('item %d' % n, conn.root.archive.addLayer)
    with DurableDict(db, 'cfg') as d:
        d['colour'] = 'blue'
    db.close()
    return path
