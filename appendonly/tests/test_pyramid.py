"""The Pyramid add-on in a real Pyramid app (pyramid_tm, pyramid_zodbconn,
FileStorage), driven by WebTest, and behind a real waitress server taking
concurrent requests; ActivityLog.newer() on a FileStorage, checked against
a plain reading of the whole log."""
import json
import os
import tempfile
import threading
import urllib.request

import pytest
import transaction
import webtest
import ZODB
from BTrees.OOBTree import OOBTree
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from pyramid.config import Configurator
from pyramid.security import Allowed
from pyramid.security import Denied
from ZODB.FileStorage import FileStorage
from ZODB.POSException import ConflictError

from appendonly import ActivityLog

FEED = '/appendonly/feed/'


def _append_view(request):
    log = request.activity_log(request.matchdict['name'])
    log.append(request.params['entry'])
    return {'ok': True}


def _queue_view(request):
    q = request.durable_queue('jobs')
    if request.method == 'POST':
        q.put(request.params['job'])
        return {'size': q.qsize()}
    return {'job': q.get_nowait()}


def _dict_view(request):
    d = request.durable_dict('prefs')
    d[request.params['key']] = request.params['value']
    return dict(d.items())


class Policy:
    """A Pyramid security policy granting only the permissions it is
    given; it notes each permission asked for."""

    def __init__(self, *granted):
        self.granted = granted
        self.asked = []

    def identity(self, request):
        return None

    def authenticated_userid(self, request):
        return None

    def permits(self, request, context, permission):
        self.asked.append(permission)
        if permission in self.granted:
            return Allowed('granted')
        return Denied('not granted')

    def remember(self, request, userid, **kw):
        return []

    def forget(self, request, **kw):
        return []


def make_app(path, policy=None, **settings):
    settings = dict({'zodbconn.uri': 'file://%s' % path,
                     'appendonly.max_layers': '2',
                     'appendonly.max_length': '3',
                     'retry.attempts': '3'}, **settings)
    with Configurator(settings=settings) as config:
        if policy is not None:
            config.set_security_policy(policy)
        config.include('pyramid_retry')
        config.include('appendonly.pyramid')
        config.add_route('append', '/log/{name}')
        config.add_view(_append_view, route_name='append', renderer='json',
                        request_method='POST')
        config.add_route('queue', '/queue')
        config.add_view(_queue_view, route_name='queue', renderer='json')
        config.add_route('dict', '/dict')
        config.add_view(_dict_view, route_name='dict', renderer='json')
        return config.make_wsgi_app()


@pytest.fixture
def app(tmp_path):
    wsgi = make_app(tmp_path / 'Data.fs')
    yield webtest.TestApp(wsgi)
    wsgi.registry._zodb_databases[''].close()


def close(wsgi):
    wsgi.registry._zodb_databases[''].close()


def names(feed):
    return [entry for _, _, entry in feed['entries']]


def test_activity_log_interface():
    from zope.interface.verify import verifyObject

    from appendonly.interfaces import IActivityLog
    from appendonly.pyramid import ActivityLog
    assert verifyObject(IActivityLog, ActivityLog())


def test_activity_log_written_before_the_move_loads(tmp_path, monkeypatch):
    # A record written when the class lived in appendonly.pyramid names
    # that path; it must still load, as the class of appendonly.
    path = str(tmp_path / 'Data.fs')
    monkeypatch.setattr(ActivityLog, '__module__', 'appendonly.pyramid')
    db = ZODB.DB(path)
    with db.transaction() as conn:
        log = conn.root()['log'] = ActivityLog(2, 3)
        for n in range(8):
            log.append(n)
    oid = log._p_oid
    db.close()
    monkeypatch.undo()
    storage = FileStorage(path, read_only=True)
    record = storage.load(oid)[0]
    storage.close()
    assert b'appendonly.pyramid' in record and b'ActivityLog' in record
    db = ZODB.DB(path)
    with db.transaction() as conn:
        log = conn.root()['log']
        assert type(log) is ActivityLog
        assert [e for _, _, e in log.newer(-1, -1)] == list(range(8))
        log.append(8)
    with db.transaction() as conn:
        assert [e for _, _, e in conn.root()['log']][0] == 8
    db.close()


def test_feed_polls_with_a_cursor(app):
    for n in range(10):
        app.post('/log/news', {'entry': 'e%d' % n})
    first = app.get('/appendonly/feed/news').json
    # The window holds 2 layers of 3: the rest comes from the archive.
    assert [e for _, _, e in first['entries']] == ['e%d' % n
                                                   for n in range(10)]
    assert first['cursor'] == first['entries'][-1][:2]
    assert app.get('/appendonly/feed/news', {
        'gen': first['cursor'][0], 'index': first['cursor'][1]}
    ).json == {'entries': [], 'cursor': first['cursor']}
    app.post('/log/news', {'entry': 'later'})
    later = app.get('/appendonly/feed/news', {
        'gen': first['cursor'][0], 'index': first['cursor'][1]}).json
    assert [e for _, _, e in later['entries']] == ['later']


def test_feed_reaches_into_archive_for_a_slow_client(app):
    app.post('/log/news', {'entry': 'first'})
    cursor = app.get('/appendonly/feed/news').json['cursor']
    for n in range(12):         # several layers pruned meanwhile
        app.post('/log/news', {'entry': 'e%d' % n})
    got = app.get('/appendonly/feed/news', {'gen': cursor[0],
                                            'index': cursor[1]}).json
    assert [e for _, _, e in got['entries']] == ['e%d' % n for n in range(12)]


def test_feed_without_cursor_gives_the_newest_then_pages_forward(tmp_path):
    wsgi = make_app(tmp_path / 'Data.fs', **{'appendonly.feed_limit': '4'})
    app = webtest.TestApp(wsgi)
    for n in range(10):
        app.post('/log/news', {'entry': 'e%d' % n})
    first = app.get(FEED + 'news').json
    # The newest four, oldest first, and the cursor of the newest.
    assert names(first) == ['e6', 'e7', 'e8', 'e9']
    assert first['cursor'] == first['entries'][-1][:2]
    for n in range(10, 19):
        app.post('/log/news', {'entry': 'e%d' % n})
    seen, cursor = [], first['cursor']
    while True:
        got = app.get(FEED + 'news', {'gen': cursor[0],
                                      'index': cursor[1]}).json
        if not got['entries']:
            break
        assert len(got['entries']) <= 4
        seen += names(got)
        cursor = got['cursor']
    assert seen == ['e%d' % n for n in range(10, 19)]
    close(wsgi)


def test_feed_from_the_start_pages_without_gaps(tmp_path):
    wsgi = make_app(tmp_path / 'Data.fs', **{'appendonly.feed_limit': '4'})
    app = webtest.TestApp(wsgi)
    for n in range(15):          # 2 layers of 3 in the stack, 3 archived
        app.post('/log/news', {'entry': 'e%d' % n})
    seen, cursor = [], [-1, -1]
    for _ in range(5):
        got = app.get(FEED + 'news', {'gen': cursor[0],
                                      'index': cursor[1]}).json
        seen += names(got)
        cursor = got['cursor']
    assert seen == ['e%d' % n for n in range(15)]
    close(wsgi)


@pytest.mark.parametrize('query, parameter', [
    ({'gen': 'x', 'index': '0'}, 'gen'),
    ({'gen': '1.5', 'index': '0'}, 'gen'),
    ({'gen': ' 1', 'index': '0'}, 'gen'),
    ({'gen': '1_0', 'index': '0'}, 'gen'),
    ({'gen': '', 'index': '0'}, 'gen'),
    ({'gen': '-2', 'index': '0'}, 'gen'),
    ({'gen': '0', 'index': '-5'}, 'index'),
    ({'gen': str(2 ** 63), 'index': '0'}, 'gen'),
    ({'gen': '0', 'index': '9' * 5000}, 'index'),
    ({'gen': '0'}, 'gen'),
    ({'index': '0'}, 'index'),
    ([('gen', '0'), ('gen', '1'), ('index', '0')], 'gen'),
])
def test_feed_refuses_a_bad_cursor_with_json(app, query, parameter):
    app.post('/log/news', {'entry': 'x'})
    response = app.get(FEED + 'news', query, status=400)
    assert response.content_type == 'application/json'
    assert list(response.json) == ['error']
    message = response.json['error']
    assert parameter in message
    assert '9999' not in message and str(2 ** 63) not in message


def test_feed_accepts_the_largest_cursor(app):
    app.post('/log/news', {'entry': 'x'})
    big = str(2 ** 63 - 1)
    assert app.get(FEED + 'news', {'gen': big, 'index': big}).json == {
        'entries': [], 'cursor': [2 ** 63 - 1, 2 ** 63 - 1]}


def test_feed_other_errors_are_json(app):
    # POST matches the route but not the view: Pyramid's 404, as JSON.
    response = app.post(FEED + 'news', status=404)
    assert list(response.json) == ['error']


def test_feed_of_an_empty_or_unknown_log(tmp_path):
    wsgi = make_app(tmp_path / 'Data.fs')
    app = webtest.TestApp(wsgi)
    db = wsgi.registry._zodb_databases['']
    with db.transaction() as conn:
        conn.root()['appendonly.pyramid'] = container = OOBTree()
        container[('log', 'empty')] = ActivityLog()
    empty = {'entries': [], 'cursor': [-1, -1]}
    assert app.get(FEED + 'empty').json == empty
    assert app.get(FEED + 'unknown').json == empty
    assert app.get(FEED + 'unknown', {'gen': 3, 'index': 1}).json == {
        'entries': [], 'cursor': [3, 1]}
    # A GET creates nothing; a client polling from [-1, -1] gets the first
    # entries once they are there.
    with db.transaction() as conn:
        assert list(conn.root()['appendonly.pyramid']) == [('log', 'empty')]
    app.post('/log/unknown', {'entry': 'first'})
    assert names(app.get(FEED + 'unknown', {'gen': -1, 'index': -1}).json
                 ) == ['first']
    close(wsgi)


def test_feed_under_a_denying_policy_is_403_json(tmp_path):
    policy = Policy()
    wsgi = make_app(tmp_path / 'Data.fs', policy)
    app = webtest.TestApp(wsgi)
    response = app.get(FEED + 'news', status=403)
    assert response.json == {'error': 'not allowed to read this feed'}
    assert policy.asked == ['view']
    close(wsgi)


def test_feed_under_an_allowing_policy(tmp_path):
    wsgi = make_app(tmp_path / 'Data.fs', Policy('view'))
    app = webtest.TestApp(wsgi)
    app.post('/log/news', {'entry': 'x'})
    assert names(app.get(FEED + 'news').json) == ['x']
    close(wsgi)


def test_feed_permission_setting(tmp_path):
    policy = Policy('view')
    wsgi = make_app(tmp_path / 'Data.fs', policy,
                    **{'appendonly.feed_permission': 'read-feed'})
    app = webtest.TestApp(wsgi)
    app.get(FEED + 'news', status=403)
    assert policy.asked == ['read-feed']
    policy.granted = ('read-feed',)
    assert app.get(FEED + 'news').json['entries'] == []
    close(wsgi)


@pytest.mark.parametrize('name, value', [
    ('appendonly.feed_limit', '0'), ('appendonly.feed_limit', 'many'),
    ('appendonly.feed_permission', ' ')])
def test_bad_feed_settings_are_refused(tmp_path, name, value):
    from pyramid.exceptions import ConfigurationError
    with pytest.raises(ConfigurationError, match=name):
        make_app(tmp_path / 'Data.fs', **{name: value})


def test_queue_and_dict_in_request_transaction(app):
    assert app.post('/queue', {'job': 'a'}).json == {'size': 1}
    app.post('/queue', {'job': 'b'})
    assert app.get('/queue').json == {'job': 'a'}
    assert app.post('/dict', {'key': 'k', 'value': 'v'}).json == {'k': 'v'}


def test_settings_size_new_logs(tmp_path):
    wsgi = make_app(tmp_path / 'Data.fs', **{'appendonly.max_layers': '7',
                                             'appendonly.max_length': '9'})
    app = webtest.TestApp(wsgi)
    app.post('/log/sized', {'entry': 'x'})
    db = wsgi.registry._zodb_databases['']
    with db.transaction() as conn:
        stack = conn.root()['appendonly.pyramid'][('log', 'sized')].stack
        assert (stack._max_layers, stack._max_length) == (7, 9)
    db.close()


def test_waitress_8_threads_appending_to_one_log(tmp_path):
    from waitress.server import create_server
    wsgi = make_app(tmp_path / 'Data.fs', **{'appendonly.max_layers': '3',
                                             'appendonly.max_length': '5'})
    server = create_server(wsgi, host='127.0.0.1', port=0, threads=8)
    port = server.effective_port
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = 'http://127.0.0.1:%s' % port
    # Create the log first: creation changes the root container.
    urllib.request.urlopen(urllib.request.Request(
        base + '/log/busy', data=b'entry=start'), timeout=10).read()
    failures, lock = [], threading.Lock()

    def client(n):
        for i in range(25):
            data = ('entry=c%d-%d' % (n, i)).encode()
            try:
                with urllib.request.urlopen(urllib.request.Request(
                        base + '/log/busy', data=data), timeout=30) as r:
                    assert json.load(r) == {'ok': True}
            except Exception as e:
                with lock:
                    failures.append(repr(e))

    clients = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    try:
        assert failures == []
        with urllib.request.urlopen(base + '/appendonly/feed/busy',
                                    timeout=30) as r:
            feed = json.load(r)
    finally:
        # Stop waitress's worker threads and its loop, not just the socket.
        server.task_dispatcher.shutdown()
        server.close()
        thread.join(10)
        wsgi.registry._zodb_databases[''].close()
    assert not thread.is_alive()
    entries = [e for _, _, e in feed['entries']]
    expected = ['start'] + ['c%d-%d' % (n, i) for n in range(8)
                            for i in range(25)]
    assert sorted(entries) == sorted(expected)
    assert len(entries) == len(set(entries)) == 201
    for n in range(8):          # each client's entries in its order
        mine = [e for e in entries if e.startswith('c%d-' % n)]
        assert mine == ['c%d-%d' % (n, i) for i in range(25)]


#
# ActivityLog.newer(): bounded, and still every entry once, in order
#

def _expected(log, cursor, limit):
    """What newer() must return, by reading the whole log."""
    after = sorted(e for e in log if e[:2] > tuple(cursor))
    return after[:limit] if limit else after


# Steps: ('append', n): one transaction appending n entries;
# ('both', n): two concurrent transactions appending n each (their
# conflict merges); ('poll', limit): the reader polls with its cursor.
_steps = st.lists(st.one_of(
    st.tuples(st.just('append'), st.integers(1, 12)),
    st.tuples(st.just('both'), st.integers(1, 4)),
    st.tuples(st.just('poll'), st.integers(1, 7))), max_size=25)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(max_layers=st.integers(1, 3), max_length=st.integers(1, 4),
       steps=_steps, probe=st.integers(0, 10 ** 6))
def test_newer_pages_every_entry_once_across_pruning(max_layers, max_length,
                                                     steps, probe):
    folder = tempfile.mkdtemp()
    db = ZODB.DB(os.path.join(folder, 'Data.fs'))
    try:
        with db.transaction() as conn:
            conn.root()['log'] = ActivityLog(max_layers, max_length)
        # The reader keeps one connection, so its map of the archive lives
        # on from poll to poll while writers archive more.
        reader = db.open(transaction.TransactionManager())
        written, seen, cursor, count = [], [], (-1, -1), 0

        def write(conn, n):
            """Append n entries; return them (written once committed)."""
            nonlocal count
            entries = list(range(count, count + n))
            count += n
            for entry in entries:
                conn.root()['log'].append(entry)
            return entries

        def poll(limit):
            nonlocal cursor
            reader.transaction_manager.begin()
            log = reader.root()['log']
            got = log.newer(*cursor, limit)
            assert got == _expected(log, cursor, limit)
            # And from another position, to try the map both ways.
            everything = sorted(e[:2] for e in log)
            if everything:
                other = everything[probe % len(everything)]
                assert log.newer(*other, limit) == _expected(
                    log, other, limit)
            reader.transaction_manager.abort()
            seen.extend(entry for _, _, entry in got)
            if got:
                cursor = got[-1][:2]
            return got

        for step, n in steps:
            if step == 'append':
                with db.transaction() as conn:
                    written.extend(write(conn, n))
            elif step == 'both':
                tm1, tm2 = (transaction.TransactionManager()
                            for _ in range(2))
                c1, c2 = db.open(tm1), db.open(tm2)
                tm1.begin()
                tm2.begin()
                first, second = write(c1, n), write(c2, n)
                tm1.commit()
                written.extend(first)
                try:
                    tm2.commit()
                except ConflictError:
                    # Some concurrent prunes cannot merge: do it again.
                    tm2.abort()
                    for attempt in tm2.attempts():
                        with attempt:
                            for entry in second:
                                c2.root()['log'].append(entry)
                written.extend(second)
                c1.close()
                c2.close()
            else:
                poll(n)
        while poll(3):
            pass
        # Concurrent appends may interleave, but each entry once, in the
        # log's order, which keeps each writer's own order.
        assert sorted(seen) == written
        reader.transaction_manager.begin()
        in_log = [e for _, _, e in sorted(reader.root()['log'])]
        assert seen == in_log
        reader.close()
    finally:
        db.close()


def test_newer_from_deep_in_the_archive_loads_what_it_returns(tmp_path):
    # 2,000 entries, 200 layers of 10 in the archive; a connection cache
    # far smaller than that, so walked layers are ghosts again.
    db = ZODB.DB(str(tmp_path / 'Data.fs'), cache_size=30)
    with db.transaction() as conn:
        conn.root()['log'] = ActivityLog(2, 10)
    for batch in range(20):
        with db.transaction() as conn:
            for n in range(100):
                conn.root()['log'].append(batch * 100 + n)
    tm = transaction.TransactionManager()
    reader = db.open(tm)
    log = reader.root()['log']
    assert [e for _, _, e in log.newer(5, 3, 10)] == list(range(54, 64))
    tm.abort()
    with db.transaction() as conn:      # two more layers archived
        for n in range(2000, 2020):
            conn.root()['log'].append(n)
    tm.begin()
    reader.getTransferCounts(clear=True)
    got = log.newer(7, 9, 25)
    loads, _ = reader.getTransferCounts()
    assert [e for _, _, e in got] == list(range(80, 105))
    # The stack, the archive, the new layers, and the 3 layers it reads:
    # not the 190-odd layers between the head and the cursor.
    assert loads <= 12, loads
    assert [e for _, _, e in log.newer(-1, -1, 5)] == list(range(5))
    tm.abort()
    reader.close()
    db.close()
