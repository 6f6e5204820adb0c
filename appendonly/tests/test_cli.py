"""The ``appendonly`` command, run in-process (main()) and as a real
subprocess where it matters (serve, tail --follow)."""
import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest
import ZEO
import ZODB

from appendonly import cli
from appendonly.facades import DictData
from appendonly.tests.zeoserver import env


def run(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_every_subcommand_is_documented():
    parser = cli.parser()
    names = set(cli.COMMANDS)
    assert names >= {'info', 'get', 'set', 'delete', 'keys', 'tail', 'queue',
                     'pack', 'verify', 'serve', 'demo', 'bench'}
    for name, (func, _) in cli.COMMANDS.items():
        assert func.__doc__ and len(func.__doc__.split()) > 5, name
        help_text = parser._subparsers._group_actions[0].choices[name] \
            .format_help()
        assert func.__doc__.split()[0] in help_text, name


def test_help_exits_0(capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(['info', '--help'])
    assert exit.value.code == 0
    assert 'structures and containers' in capsys.readouterr().out


@pytest.mark.parametrize('argv', [[], ['bogus'], ['info'],
                                  ['get', 'x.fs'], ['tail', 'x.fs', 's',
                                                    '-n', 'many'],
                                  ['info', 'x.fs', '--nope']])
def test_bad_arguments_one_line_exit_2(capsys, tmp_path, argv):
    os.chdir(tmp_path)
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert err.startswith('appendonly: error: ')
    assert err.count('\n') == 1
    assert os.listdir(tmp_path) == []


def test_missing_database_creates_nothing(capsys, tmp_path):
    missing = tmp_path / 'missing.fs'
    for argv in (['info', missing], ['get', missing, 'd', 'k'],
                 ['set', missing, 'd', 'k', 'v'], ['keys', missing, 'd'],
                 ['queue', 'put', missing, 'q', 'x'], ['verify', missing],
                 ['pack', missing], ['tail', missing, 'stack']):
        status, out, err = run(capsys, *argv)
        assert status == 2 and 'no such database' in err, argv
    assert os.listdir(tmp_path) == []
    assert run(capsys, 'set', missing, 'd', 'k', 'v', '--create')[0] == 0
    assert run(capsys, 'get', missing, 'd', 'k')[1] == 'v\n'


def test_not_a_database_is_untouched(capsys, tmp_path):
    junk = tmp_path / 'junk.fs'
    junk.write_bytes(b'\x00garbage' * 100)
    digest = hashlib.sha256(junk.read_bytes()).hexdigest()
    status, out, err = run(capsys, 'info', junk)
    assert status == 2 and 'junk.fs' in err
    assert hashlib.sha256(junk.read_bytes()).hexdigest() == digest
    assert os.listdir(tmp_path) == ['junk.fs']


def test_info(capsys, fs):
    status, out, err = run(capsys, 'info', fs)
    assert status == 0
    assert 'file size: ' in out and 'last transaction: ' in out
    assert "'stack': AppendStack 2x3, 4 items" in out
    assert "'archive': Archive, newest generation 1" in out
    assert "dict 'cfg': DictData, 1 items" in out


def test_dict_commands(capsys, fs):
    assert run(capsys, 'get', fs, 'cfg', 'colour')[1] == 'blue\n'
    assert run(capsys, 'set', fs, 'cfg', 'size', 'L')[0] == 0
    assert run(capsys, 'keys', fs, 'cfg')[1] == 'colour\nsize\n'
    assert run(capsys, 'delete', fs, 'cfg', 'colour')[0] == 0
    status, out, err = run(capsys, 'get', fs, 'cfg', 'colour')
    assert status == 2 and "no key 'colour'" in err
    status, out, err = run(capsys, 'keys', fs, 'nodict')
    assert status == 2 and "no dict named 'nodict'" in err


def test_storage_container_commands(capsys, fs):
    status, out, err = run(capsys, 'keys', fs, 'docs', '--storage')
    assert status == 2 and 'no Storage containers' in err
    assert run(capsys, 'set', fs, 'docs', 'a', '1', '--storage')[0] == 0
    assert run(capsys, 'set', fs, 'docs', 'b', '2', '--storage')[0] == 0
    assert run(capsys, 'get', fs, 'docs', 'a', '--storage')[1] == '1\n'
    assert run(capsys, 'keys', fs, 'docs', '--storage')[1] == 'a\nb\n'
    assert run(capsys, 'delete', fs, 'docs', 'a', '--storage')[0] == 0
    status, out, err = run(capsys, 'get', fs, 'docs', 'a', '--storage')
    assert status == 2 and "no key 'a'" in err
    status, out, err = run(capsys, 'keys', fs, 'other', '--storage')
    assert status == 2 and "no container 'other'" in err
    assert "storage container 'docs': 1 items" in run(capsys, 'info', fs)[1]
    from appendonly.storage import ZODBStorage
    with ZODBStorage(fs) as storage:
        assert dict(storage.get_container_items('docs')) == {'b': '2'}


def test_queue_commands(capsys, fs):
    assert run(capsys, 'queue', 'put', fs, 'jobs', 'a')[0] == 0
    assert run(capsys, 'queue', 'put', fs, 'jobs', 'b')[0] == 0
    assert run(capsys, 'queue', 'size', fs, 'jobs')[1] == '2\n'
    assert run(capsys, 'queue', 'get', fs, 'jobs')[1] == 'a\n'
    assert run(capsys, 'queue', 'get', fs, 'jobs')[1] == 'b\n'
    assert run(capsys, 'queue', 'get', fs, 'jobs')[:2] == (1, '')


def test_tail(capsys, fs):
    # 2 layers of 3: the stack holds items 6-9, the archive the rest.
    status, out, err = run(capsys, 'tail', fs, 'stack', '-n', '3')
    assert (status, out.splitlines()) == (0, [
        '2 1 item 7', '2 2 item 8', '3 0 item 9'])
    status, out, err = run(capsys, 'tail', fs, 'stack', '-n', '6',
                           '--archive', 'archive')
    assert out.splitlines() == ['1 1 item 4', '1 2 item 5', '2 0 item 6',
                                '2 1 item 7', '2 2 item 8', '3 0 item 9']
    status, out, err = run(capsys, 'tail', fs, 'archive')
    assert status == 2 and "root['archive'] is not an AppendStack" in err


def _readline(process, timeout=20):
    """The next line the process prints; fails instead of hanging."""
    import select
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, f'nothing printed in {timeout} s'
    return process.stdout.readline()


def test_tail_follow_prints_new_entries(fs, tmp_path):
    # The database is served over ZEO so a writer can commit meanwhile.
    sock = str(tmp_path / 'zeo.sock')
    server = subprocess.Popen([sys.executable, '-m', 'appendonly', 'serve',
                               fs, '--addr', sock], env=env(),
                              stderr=subprocess.DEVNULL)
    tail = None
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.path.exists(sock), 'the server did not start'
        uri = 'zeo://' + sock
        tail = subprocess.Popen(
            [sys.executable, '-m', 'appendonly', 'tail', uri, 'stack',
             '-n', '1', '--follow', '--interval', '0.05'],
            env=env(), stdout=subprocess.PIPE, text=True)
        assert _readline(tail).split(' ', 2)[2] == 'item 9\n'
        db = ZEO.DB(sock)
        with db.transaction() as conn:
            conn.root.stack.push('fresh', conn.root.archive.addLayer)
        db.close()
        assert _readline(tail).split(' ', 2)[2] == 'fresh\n'
        tail.send_signal(signal.SIGINT)
        assert tail.wait(10) == 0
    finally:
        # However the test ends, neither process outlives it.
        for process, sig in ((tail, signal.SIGKILL),
                             (server, signal.SIGTERM)):
            if process is not None and process.poll() is None:
                process.send_signal(sig)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if tail is not None:
            tail.stdout.close()


def test_verify_sound_and_damaged(capsys, fs):
    status, out, err = run(capsys, 'verify', fs)
    assert status == 0
    assert out.endswith('structures checked, 0 problems\n')
    db = ZODB.DB(fs)
    with db.transaction() as conn:
        data = conn.root()['appendonly'][('dict', 'cfg')]
        data._len.change(5)          # a counter out of step
        conn.root.stack._layers[0].tail.extend(['x'] * 5)   # too long
        conn.root.stack._p_changed = True
    db.close()
    status, out, err = run(capsys, 'verify', fs)
    assert status == 1
    assert "dict 'cfg': 1 items, 1 positions, length says 6" in out
    assert "'stack': layer 3 holds" in out
    assert out.endswith('2 problems\n')


def test_pack(capsys, fs):
    before = os.path.getsize(fs)
    status, out, err = run(capsys, 'pack', fs)
    assert status == 0 and out.startswith('packed in ')
    assert os.path.getsize(fs) < before
    assert run(capsys, 'verify', fs)[0] == 0


def test_python_m_and_demo(tmp_path):
    result = subprocess.run(
        [sys.executable, '-m', 'appendonly', 'demo', '--dir', str(tmp_path),
         '--writers', '2', '--pushes', '20'], env=env(),
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert 'OK: nothing lost, nothing duplicated' in result.stdout


def test_embedded_dictdata_listed_only_under_facades(capsys, tmp_path):
    path = str(tmp_path / 'app.fs')
    db = ZODB.DB(path)
    with db.transaction() as conn:
        conn.root.mine = DictData()     # the application's own
    db.close()
    status, out, err = run(capsys, 'info', path)
    assert status == 0 and 'mine' not in out
