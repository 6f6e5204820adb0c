"""The Pyramid add-on in a real Pyramid app (pyramid_tm, pyramid_zodbconn,
FileStorage), driven by WebTest, and behind a real waitress server taking
concurrent requests."""
import json
import threading
import urllib.request

import pytest
import webtest
from pyramid.config import Configurator


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


def make_app(path, **settings):
    settings = dict({'zodbconn.uri': 'file://%s' % path,
                     'appendonly.max_layers': '2',
                     'appendonly.max_length': '3',
                     'retry.attempts': '3'}, **settings)
    with Configurator(settings=settings) as config:
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


def test_activity_log_interface():
    from zope.interface.verify import verifyObject

    from appendonly.interfaces import IActivityLog
    from appendonly.pyramid import ActivityLog
    assert verifyObject(IActivityLog, ActivityLog())


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


def test_feed_errors(app):
    app.get('/appendonly/feed/none', status=404)
    app.post('/log/news', {'entry': 'x'})
    app.get('/appendonly/feed/news', {'gen': 'x'}, status=400)


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
        server.close()
        wsgi.registry._zodb_databases[''].close()
    entries = [e for _, _, e in feed['entries']]
    expected = ['start'] + ['c%d-%d' % (n, i) for n in range(8)
                            for i in range(25)]
    assert sorted(entries) == sorted(expected)
    assert len(entries) == len(set(entries)) == 201
    for n in range(8):          # each client's entries in its order
        mine = [e for e in entries if e.startswith('c%d-' % n)]
        assert mine == ['c%d-%d' % (n, i) for i in range(25)]
