"""The Zope add-on in a real Zope application (the current Zope release,
started from a generated zope.conf by ``Zope2.Startup.run.make_wsgi_app``
over a FileStorage, served by waitress with 8 threads on 127.0.0.1; see
zope_worker.py), driven over HTTP by WebTest and by 8 client threads."""
import base64
import threading
import urllib.error
import urllib.request

import pytest
import webtest

from appendonly.tests._procs import Procs
from appendonly.tests._procs import wait_until

#: Seconds Zope may take to start (it loads its ZCML, opens the database).
START_TIMEOUT = 60

EDITOR = ('editor', 'secret')


@pytest.fixture(scope='module')
def zope_url(tmp_path_factory):
    directory = tmp_path_factory.mktemp('zope')
    with Procs(directory) as procs:
        proc = procs.python('zope', 'appendonly.tests.zope_worker',
                            directory / 'instance')

        def port():
            if not proc.alive():
                pytest.fail(f'Zope did not start:\n{proc.stderr()}')
            words = proc.out.read_text().split()
            return words[1] if words[:1] == ['PORT'] else None

        yield 'http://127.0.0.1:%s' % wait_until(
            port, START_TIMEOUT, 'Zope did not start',
            poll=0.1)
        procs.stop(proc)


@pytest.fixture
def anonymous(zope_url):
    return webtest.TestApp(zope_url)


@pytest.fixture
def editor(zope_url):
    app = webtest.TestApp(zope_url)
    app.authorization = ('Basic', EDITOR)
    return app


def read_feed(app, folder, cursor=(-1, -1)):
    """Every entry of the folder's feed after ``cursor``, polling as a
    browser does until nothing is new; and the last cursor."""
    entries = []
    while True:
        feed = app.get(f'/{folder}/@@appendonly-feed',
                       {'gen': cursor[0], 'index': cursor[1]}).json
        if not feed['entries']:
            return entries, cursor
        entries.extend(feed['entries'])
        cursor = feed['cursor']


def test_feed_polls_with_a_cursor(anonymous, editor):
    _, cursor = read_feed(anonymous, 'public')
    editor.post('/public/@@append', {'entry': 'alice commented'})
    editor.post('/public/@@append', {'entry': 'bob liked'})
    entries, cursor = read_feed(anonymous, 'public', cursor)
    assert [entry for _, _, entry in entries] == ['alice commented',
                                                  'bob liked']
    assert list(cursor) == entries[-1][:2]
    response = anonymous.get('/public/@@appendonly-feed',
                             {'gen': cursor[0], 'index': cursor[1]})
    assert response.content_type == 'application/json'
    assert response.json == {'entries': [], 'cursor': list(cursor)}


def test_feed_reaches_into_the_archive(anonymous, editor):
    # The logs keep 3 layers of 5 entries: a client that last looked 20
    # entries ago gets the pruned ones from the archive.
    _, cursor = read_feed(anonymous, 'public')
    for i in range(20):
        editor.post('/public/@@append', {'entry': f'slow-{i}'})
    entries, _ = read_feed(anonymous, 'public', cursor)
    assert [entry for _, _, entry in entries] == [
        f'slow-{i}' for i in range(20)]


def test_feed_refuses_anonymous_without_view(anonymous, editor):
    editor.post('/private/@@append', {'entry': 'secret plan'})
    response = anonymous.get('/private/@@appendonly-feed', status=401)
    assert b'secret plan' not in response.body
    entries, _ = read_feed(editor, 'private')
    assert 'secret plan' in [entry for _, _, entry in entries]


GEN = 'gen must be an integer from -1 to 9223372036854775807'
INDEX = 'index must be an integer from -1 to 9223372036854775807'


@pytest.mark.parametrize('query, error', [
    ('gen=abc&index=0', GEN),
    ('gen=1.5&index=0', GEN),
    ('gen=-2&index=0', GEN),
    ('gen=%2B1&index=0', GEN),
    ('gen=0&index=9223372036854775808', INDEX),
    ('gen=0&index=' + '9' * 40, INDEX),
    ('gen=0', 'gen given without index'),
    ('gen=0&gen=1&index=0', 'gen given more than once'),
])
def test_feed_bad_cursor_is_400_with_json(anonymous, query, error):
    response = anonymous.get('/public/@@appendonly-feed?' + query,
                             status=400)
    assert response.content_type == 'application/json'
    assert response.json == {'error': error}


def test_feed_without_cursor_gives_the_newest(anonymous, editor):
    for i in range(3):
        editor.post('/public/@@append', {'entry': f'newest-{i}'})
    feed = anonymous.get('/public/@@appendonly-feed').json
    assert [entry for _, _, entry in feed['entries']][-3:] == [
        f'newest-{i}' for i in range(3)]
    assert feed['cursor'] == feed['entries'][-1][:2]


def test_durable_dict_adapter_in_a_request(editor):
    assert editor.post('/public/@@prefs',
                       {'key': 'theme', 'value': 'dark'}).json == {
                           'theme': 'dark'}
    assert editor.post('/public/@@prefs',
                       {'key': 'lang', 'value': 'fr'}).json == {
                           'theme': 'dark', 'lang': 'fr'}
    # Committed by Zope's transaction: a later request reads it.
    assert editor.get('/public/@@prefs').json == {'theme': 'dark',
                                                  'lang': 'fr'}


def test_8_concurrent_requests_lose_nothing(zope_url, anonymous):
    _, cursor = read_feed(anonymous, 'public')
    auth = 'Basic ' + base64.b64encode(':'.join(EDITOR).encode()).decode()
    failures, lock = [], threading.Lock()

    def client(n):
        for i in range(25):
            request = urllib.request.Request(
                zope_url + '/public/@@append',
                data=f'entry=c{n}-{i}'.encode(),
                headers={'Authorization': auth})
            try:
                with urllib.request.urlopen(request, timeout=60) as r:
                    body = r.read()
                if body != b'ok':
                    raise AssertionError(body[:500])
            except urllib.error.HTTPError as e:
                with lock:
                    failures.append((e.code, e.read()[:500]))
            except Exception as e:
                with lock:
                    failures.append(repr(e))

    clients = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    assert failures == []       # no 409/500: no ConflictError got out
    entries, _ = read_feed(anonymous, 'public', cursor)
    texts = [entry for _, _, entry in entries]
    assert sorted(texts) == sorted(f'c{n}-{i}' for n in range(8)
                                   for i in range(25))
    assert len(set(texts)) == 200       # each exactly once
    for n in range(8):                  # each client's in its order
        assert [t for t in texts if t.startswith(f'c{n}-')] == [
            f'c{n}-{i}' for i in range(25)]
