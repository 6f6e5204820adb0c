"""Every public class provides its interface, as class and as instance."""
import pytest
from zope.interface.verify import verifyClass
from zope.interface.verify import verifyObject

from appendonly import Accumulator
from appendonly import AppendStack
from appendonly import Archive
from appendonly.interfaces import IAccumulator
from appendonly.interfaces import IAppendStack
from appendonly.interfaces import IArchive

CASES = [(AppendStack, IAppendStack), (Archive, IArchive),
         (Accumulator, IAccumulator)]


@pytest.mark.parametrize('klass, iface', CASES)
def test_class_conforms(klass, iface):
    assert verifyClass(iface, klass)


@pytest.mark.parametrize('klass, iface', CASES)
def test_instance_conforms(klass, iface):
    assert verifyObject(iface, klass())


def test_public_names():
    import appendonly
    assert sorted(appendonly.__all__) == [
        'Accumulator', 'ActivityLog', 'AppendStack', 'Archive',
        'ConflictError', 'group_commit', 'open_db']
    from ZODB.POSException import ConflictError
    assert appendonly.ConflictError is ConflictError


@pytest.mark.parametrize('name', ['AppendStack', 'Archive', 'Accumulator',
                                  'ActivityLog', '_ArchiveLayer',
                                  '_SealedLayer'])
def test_records_name_the_package(name):
    # Pickles refer to appendonly.<name>, whatever the module layout.
    import appendonly
    assert getattr(appendonly, name).__module__ == 'appendonly'


def test_group_commit_conforms(tmp_path):
    import ZODB

    from appendonly import group_commit
    from appendonly._txn import GroupCommit
    from appendonly.interfaces import IGroupCommit
    assert verifyClass(IGroupCommit, GroupCommit)
    db = ZODB.DB(str(tmp_path / 'Data.fs'))
    try:
        assert verifyObject(IGroupCommit, group_commit(db))
        assert group_commit(db) is group_commit(db)
    finally:
        db.close()
