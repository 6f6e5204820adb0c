import os

import pytest
import ZODB
import ZODB.FileStorage

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
