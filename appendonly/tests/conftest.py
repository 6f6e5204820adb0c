import os

import pytest
import ZODB
import ZODB.FileStorage

from appendonly import AppendStack
from appendonly import Archive
from appendonly.facades import DurableDict
from appendonly.tests.zeoserver import zeo_server  # noqa: F401  fixture


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
