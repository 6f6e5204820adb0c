"""The adapters of the Zope add-on (appendonly/adapters.py), registered by
loading ``appendonly/configure.zcml`` as Zope does, used on a real
FileStorage; and the feed view's contract.  The view at work, in a real
Zope application: test_zope_app.py."""
import queue

import pytest
import transaction
from zope.interface import alsoProvides
from zope.interface.verify import verifyClass
from zope.interface.verify import verifyObject

from appendonly import ActivityLog
from appendonly import AppendStack
from appendonly import Archive
from appendonly.facades import DictData
from appendonly.facades import QueueData
from appendonly.interfaces import IActivityFeedView
from appendonly.interfaces import IActivityLog
from appendonly.interfaces import IActivityLogHolder
from appendonly.interfaces import IDurableDict
from appendonly.interfaces import IDurableQueue

#: What a Zope instance has loaded before a product's configure.zcml: the
#: meta directives (browser:page) and Zope's permissions (zope2.View).
ZCML = """\
<configure xmlns="http://namespaces.zope.org/zope">
  <include package="Products.Five" file="meta.zcml" />
  <include package="AccessControl" file="permissions.zcml" />
  <include package="appendonly" />
</configure>
"""


@pytest.fixture
def zcml():
    from zope.configuration import xmlconfig
    from zope.testing.cleanup import cleanUp
    xmlconfig.string(ZCML)
    yield
    cleanUp()       # the global registry as it was, for the other tests


def _connection(db):
    """A connection with a TransactionManager of its own."""
    tm = transaction.TransactionManager()
    return tm, db.open(tm)


def test_durable_dict_joins_the_callers_transaction(zcml, db):
    tm, conn = _connection(db)
    conn.root.prefs = DictData()
    tm.commit()
    prefs = IDurableDict(conn.root.prefs)
    assert verifyObject(IDurableDict, prefs)
    prefs['theme'] = 'dark'
    tm.abort()                      # the caller's abort drops it
    assert 'theme' not in prefs
    prefs.update(theme='light', lang='fr')
    tm.commit()                     # the caller's commit stores it
    tm2, conn2 = _connection(db)
    assert dict(conn2.root.prefs) == {'theme': 'light', 'lang': 'fr'}
    # Embedded: no transaction of its own to group calls with.
    with pytest.raises(TypeError, match="application's transaction"):
        prefs.transaction()


def test_durable_queue_joins_the_callers_transaction(zcml, db):
    tm, conn = _connection(db)
    conn.root.jobs = QueueData()
    tm.commit()
    jobs = IDurableQueue(conn.root.jobs)
    assert verifyObject(IDurableQueue, jobs)
    jobs.put('resize')
    jobs.put('mail')
    tm.commit()
    assert jobs.get_nowait() == 'resize'
    tm.abort()                      # rolled back: back at the head
    assert jobs.get_nowait() == 'resize'
    tm.commit()
    tm2, conn2 = _connection(db)
    assert IDurableQueue(conn2.root.jobs).get_nowait() == 'mail'
    with pytest.raises(queue.Empty):
        IDurableQueue(conn2.root.jobs).get_nowait()


def test_stack_and_archive_adapt_to_one_log(zcml):
    from zope.component import getMultiAdapter
    stack, archive = AppendStack(2, 5), Archive()
    log = getMultiAdapter((stack, archive), IActivityLog)
    assert verifyObject(IActivityLog, log)
    assert log.stack is stack and log.archive is archive
    for i in range(30):
        log.append(i)
    assert len(stack) == 10         # 20 pruned into the archive...
    assert [entry for _, _, entry in log.newer(-1, -1)] == list(range(30))
    assert [entry for _, _, entry in archive] == list(range(19, -1, -1))


def test_a_stack_alone_is_not_adapted(zcml):
    # It would have nowhere to put the layers it prunes.
    with pytest.raises(TypeError, match='Could not adapt'):
        IActivityLog(AppendStack())


def test_an_activity_log_is_its_own(zcml):
    log = ActivityLog()
    assert IActivityLog(log) is log


def test_stack_adapter_appends_merge_across_transactions(zcml, db):
    from zope.component import getMultiAdapter
    tm, conn = _connection(db)
    conn.root.stack, conn.root.archive = AppendStack(3, 10), Archive()
    tm.commit()
    tm2, conn2 = _connection(db)
    for n, (tm_, conn_) in enumerate([(tm, conn), (tm2, conn2)]):
        root = conn_.root
        log = getMultiAdapter((root.stack, root.archive), IActivityLog)
        for i in range(3):
            log.append(f'{n}-{i}')
    tm.commit()
    tm2.commit()                    # resolved, not a ConflictError
    tm3, conn3 = _connection(db)
    log = getMultiAdapter((conn3.root.stack, conn3.root.archive),
                          IActivityLog)
    assert sorted(entry for _, _, entry in log.newer(-1, -1)) == sorted(
        f'{n}-{i}' for n in range(2) for i in range(3))


def test_holder_adapts_to_its_own_log_not_an_acquired_one(zcml):
    from OFS.Folder import Folder
    site = Folder('site')
    alsoProvides(site, IActivityLogHolder)
    site.activity_log = ActivityLog()
    site._setObject('news', Folder('news'))
    news = site.news                # wrapped: acquires from site
    alsoProvides(news, IActivityLogHolder)
    assert news.activity_log is site.activity_log   # acquisition...
    assert IActivityLog(news, None) is None         # ...not used here
    assert IActivityLog(site) is site.activity_log


def test_feed_view_interface():
    from appendonly.browser import FeedView
    assert verifyClass(IActivityFeedView, FeedView)
    assert verifyObject(IActivityLog, ActivityLog())
