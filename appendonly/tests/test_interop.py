"""One sharing protocol everywhere: ``appendonly serve``, the CLI, a
pyramid_zodbconn app on an ``appendonly://`` URI, ZConfig targets and
``tail --follow``, each working on a path another process uses."""
import os
import select
import signal
import subprocess
import sys

import pytest
import webtest

from appendonly import share
from appendonly.db import open_db
from appendonly.facades import DurableDict
from appendonly.tests.test_pyramid import make_app
from appendonly.tests.zeoserver import env

#: Seconds a subprocess may take to say something.
TIMEOUT = 30


@pytest.fixture
def procs():
    """Start subprocesses of the CLI; every one is killed at the end."""
    started = []

    def start(*argv, **kw):
        process = subprocess.Popen(
            [sys.executable, '-m', 'appendonly', *map(str, argv)],
            env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, **kw)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(TIMEOUT)
        for stream in (process.stdout, process.stderr):
            stream.close()


def cli(*argv):
    """Run the CLI to the end; (status, stdout, stderr)."""
    done = subprocess.run(
        [sys.executable, '-m', 'appendonly', *map(str, argv)], env=env(),
        capture_output=True, text=True, timeout=TIMEOUT)
    return done.returncode, done.stdout, done.stderr


def readline(process):
    """The next line the process prints; fails instead of hanging."""
    ready, _, _ = select.select([process.stdout], [], [], TIMEOUT)
    assert ready, f'nothing printed in {TIMEOUT} s'
    line = process.stdout.readline()
    assert line, f'exited: {process.wait(TIMEOUT)} {process.stderr.read()}'
    return line


def push(path, item):
    """Push ``item`` in a process of its own (this one stays out)."""
    code = ('import sys; from appendonly.db import open_db\n'
            'db = open_db(sys.argv[1])\n'
            'with db.transaction() as c:\n'
            '    c.root.stack.push(sys.argv[2], c.root.archive.addLayer)\n'
            'db.close()\n')
    subprocess.run([sys.executable, '-c', code, path, item], env=env(),
                   check=True, timeout=TIMEOUT)


def test_serve_hosts_while_the_cli_and_facades_work(fs, procs):
    server = procs('serve', fs)
    assert 'hosting' in readline(server)
    assert share.host_pid(fs) == server.pid
    assert cli('set', fs, 'cfg', 'colour', 'green', '--create')[0] == 0
    status, out, err = cli('get', fs, 'cfg', 'colour')
    assert (status, out, err) == (0, 'green\n', '')
    status, out, _ = cli('info', fs)
    assert status == 0 and "dict 'cfg': DictData, 1 items" in out, out
    with DurableDict(fs, 'cfg') as d:          # a client of the server
        assert d['colour'] == 'green'
        d['size'] = 'L'
    server.send_signal(signal.SIGTERM)
    assert server.wait(TIMEOUT) == 0
    assert share.host_pid(fs) is None
    with DurableDict(fs, 'cfg', readonly=True) as d:
        assert dict(d.items()) == {'colour': 'green', 'size': 'L'}


def test_serve_takes_over_when_the_host_leaves(fs, procs):
    db = open_db(fs)
    try:
        server = procs('serve', fs)
        assert 'taking over' in readline(server)
    finally:
        db.close()
    assert 'hosting' in readline(server)
    assert share.host_pid(fs) == server.pid


def test_pyramid_zodbconn_app_and_cli_share_a_path(tmp_path):
    path = str(tmp_path / 'Data.fs')
    wsgi = make_app(path, **{'zodbconn.uri': f'appendonly://{path}'})
    app = webtest.TestApp(wsgi)
    try:
        app.post('/queue', {'job': 'from the app'})
        assert share.host_pid(path) == os.getpid()
        # The CLI, in another process, while the app holds the path,
        # reaches the add-on's queue.
        status, out, err = cli('queue', 'put', path, 'jobs', 'from the cli')
        assert (status, err) == (0, ''), err
        status, out, err = cli('queue', 'size', path, 'jobs')
        assert (status, out) == (0, '2\n'), err
        # The app's database sees the CLI's commit, and goes on working.
        assert app.get('/queue').json == {'job': 'from the app'}
        assert app.get('/queue').json == {'job': 'from the cli'}
        app.post('/queue', {'job': 'after'})
        status, out, err = cli('queue', 'get', path, 'jobs')
        assert (status, out) == (0, 'after\n'), err
    finally:
        wsgi.registry._zodb_databases[''].close()
    assert share.host_pid(path) is None


def test_read_only_info_on_a_zconfig_target_in_use(fs, tmp_path):
    config = tmp_path / 'db.conf'
    config.write_text(f'<zodb>\n  <filestorage>\n    path {fs}\n'
                      f'  </filestorage>\n</zodb>\n')
    for exclusive in (False, True):
        # Held by a host of the shared path, then by a plain FileStorage.
        db = open_db(fs, shared=not exclusive)
        try:
            status, out, err = cli('info', config)
            assert status == 0, err
            assert "'stack': AppendStack" in out, out
            assert 'Traceback' not in err
        finally:
            db.close()


def test_appendonlyfile_zconfig_section_shares_the_path(fs, tmp_path):
    config = tmp_path / 'db.conf'
    config.write_text(f'%import appendonly\n<zodb>\n  <appendonlyfile>\n'
                      f'    path {fs}\n  </appendonlyfile>\n</zodb>\n')
    db = open_db(config)
    try:
        assert share.host_pid(fs) == os.getpid()
        status, out, err = cli('set', config, 'cfg', 'k', 'v', '--create')
        assert status == 0, err
        assert cli('get', fs, 'cfg', 'k')[1] == 'v\n'
    finally:
        db.close()


@pytest.mark.parametrize('served', [False, True], ids=['alone', 'served'])
def test_tail_follow_sees_new_commits(fs, procs, served):
    if served:
        server = procs('serve', fs)
        assert 'hosting' in readline(server)
    tail = procs('tail', fs, 'stack', '-n', '1', '--follow',
                 '--interval', '0.05')
    assert readline(tail).split(' ', 2)[2] == 'item 9\n'
    if not served:
        assert share.host_pid(fs) is None      # tail alone: nobody hosts
    for item in ('fresh', 'fresher'):
        push(fs, item)
        assert readline(tail).split(' ', 2)[2] == item + '\n'
    tail.send_signal(signal.SIGINT)
    assert tail.wait(TIMEOUT) == 0
    assert 'Traceback' not in tail.stderr.read()
