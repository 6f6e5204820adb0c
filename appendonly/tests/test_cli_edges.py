"""The CLI's edges (issue #11): every error is one line and exit status 2
(1 for problems found by verify), nothing is created or changed next to a
file that is not a database, help reads as plain sentences, and keys
round-trip."""
import hashlib
import os
import re
import socket
import subprocess
import sys

import pytest
import ZODB

from appendonly import AppendStack
from appendonly import cli
from appendonly.tests.zeoserver import env


def run(capsys, *argv):
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def one_line_error(status, err, code=2):
    assert status == code, err
    assert err.startswith('appendonly: error: '), err
    assert err.count('\n') == 1, err
    assert 'Traceback' not in err


def command(*argv, timeout=60):
    """The real command, in a process of its own."""
    return subprocess.run(
        [sys.executable, '-m', 'appendonly', *map(str, argv)], env=env(),
        capture_output=True, text=True, timeout=timeout)


def folder_state(folder):
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
            for name in sorted(os.listdir(folder))}


def test_unreachable_zeo_server_is_one_line(capsys):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]       # nobody listens there
    status, out, err = run(capsys, 'info', f'zeo://127.0.0.1:{port}',
                           '--timeout', '1')
    one_line_error(status, err)
    assert 'no ZEO server answered within 1 s (--timeout)' in err
    # Without --timeout: 5 s, not ClientStorage's 30.
    result = command('info', f'zeo://127.0.0.1:{port}')
    one_line_error(result.returncode, result.stderr)
    assert 'within 5 s' in result.stderr


@pytest.mark.parametrize('content', [b'', b'FS30'],
                         ids=['0-byte', 'header-only'])
@pytest.mark.parametrize('argv', [
    ['info'], ['verify'], ['keys', '@', 'cfg'], ['get', '@', 'cfg', 'k'],
    ['tail', '@', 'stack'], ['queue', 'size', '@', 'jobs']])
def test_empty_database_is_one_line(capsys, tmp_path, content, argv):
    path = tmp_path / 'Data.fs'
    path.write_bytes(content)
    before = folder_state(tmp_path)
    argv = [str(path) if a == '@' else a for a in argv]
    if len(argv) == 1:
        argv.append(str(path))
    status, out, err = run(capsys, *argv)
    one_line_error(status, err)
    assert 'the database is empty (nothing committed yet)' in err
    assert folder_state(tmp_path) == before


@pytest.mark.parametrize('extra', [[], ['--create'], ['--addr', '@sock']])
def test_serve_on_a_file_that_is_not_a_database(tmp_path, extra):
    bad = tmp_path / 'bad'
    bad.mkdir()
    notes = bad / 'notes.txt'
    notes.write_text('my notes\n')
    before = folder_state(bad)
    extra = [str(tmp_path / 'zeo.sock') if a == '@sock' else a
             for a in extra]
    result = command('serve', notes, *extra)
    one_line_error(result.returncode, result.stderr)
    assert 'not a ZODB FileStorage or ZConfig file' in result.stderr
    assert folder_state(bad) == before      # no .lock, .tmp, .index


def _unloadable(tmp_path):
    """A Data.fs whose root names a class that is now a function (the
    'TypeError: issubclass() arg 1 must be a class' case), and the
    PYTHONPATH that makes it so."""
    from persistent.mapping import PersistentMapping
    lib = tmp_path / 'lib'
    lib.mkdir()
    (lib / 'gone.py').write_text('import persistent.mapping\n'
                                 'class Thing(persistent.mapping.'
                                 'PersistentMapping):\n    pass\n')
    sys.path.insert(0, str(lib))
    try:
        import gone
        path = tmp_path / 'Data.fs'
        db = ZODB.DB(str(path))
        with db.transaction() as conn:
            conn.root.stack = AppendStack()
            root = conn.root()
            root.__class__ = gone.Thing
            root._p_changed = True
        db.close()
        assert isinstance(PersistentMapping(), PersistentMapping)
    finally:
        sys.path.remove(str(lib))
        sys.modules.pop('gone', None)
    (lib / 'gone.py').write_text('def Thing():\n    pass\n')
    return path, {**env(), 'PYTHONPATH': os.pathsep.join(
        [str(lib), env().get('PYTHONPATH', '')])}


def test_records_that_do_not_load(tmp_path):
    path, environ = _unloadable(tmp_path)
    result = subprocess.run(
        [sys.executable, '-m', 'appendonly', 'verify', str(path)],
        env=environ, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert 'Traceback' not in result.stderr + result.stdout
    assert 'cannot open the database: TypeError: issubclass()' \
        in result.stdout
    assert result.stdout.endswith('1 problems\n')
    for argv in (['info', path], ['keys', path, 'cfg']):
        result = subprocess.run(
            [sys.executable, '-m', 'appendonly', *map(str, argv)],
            env=environ, capture_output=True, text=True, timeout=60)
        one_line_error(result.returncode, result.stderr)
        assert 'issubclass()' in result.stderr


def test_garbled_record(capsys, tmp_path):
    path = tmp_path / 'Data.fs'
    db = ZODB.DB(str(path))
    with db.transaction() as conn:
        conn.root.stack = AppendStack()
        conn.root.stack.push('MARKER' * 4)
    db.close()
    data = path.read_bytes()
    at = data.index(b'MARKER' * 4)
    path.write_bytes(data[:at - 20] + b'\xff' * 40 + data[at + 20:])
    status, out, err = run(capsys, 'verify', path)
    assert status == 1 and "'stack': cannot read a record: a record does " \
        "not load: ValueError: unsupported pickle protocol" in out, out
    status, out, err = run(capsys, 'info', path)
    assert status == 0 and "'stack': cannot read it:" in out, err
    assert 'Traceback' not in err


def test_verify_reports_a_cut_transaction(capsys, tmp_path):
    path = tmp_path / 'Data.fs'
    db = ZODB.DB(str(path))
    for n in range(3):
        with db.transaction() as conn:
            conn.root.n = n
    db.close()
    whole = os.path.getsize(path)
    with open(path, 'ab') as f:     # half of a fourth transaction
        f.write(open(path, 'rb').read()[-60:][:40])
    os.remove(str(path) + '.index')
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    status, out, err = run(capsys, 'verify', path)
    assert status == 1
    assert f'truncated: the file ends inside a transaction at offset ' \
        f'{whole}' in out, out
    assert f'will cut the file to {whole} bytes, moving the last 40' in out
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    # What it says is what FileStorage does on a writable open.
    ZODB.DB(str(path)).close()
    assert os.path.getsize(path) == whole
    assert run(capsys, 'verify', path)[0] == 0


def test_info_on_a_zconfig_file_shows_the_storage_file(capsys, tmp_path):
    data = tmp_path / 'Data.fs'
    db = ZODB.DB(str(data))
    with db.transaction() as conn:
        conn.root.stack = AppendStack()
        for n in range(50):
            conn.root.stack.push('x' * 100)
    db.close()
    conf = tmp_path / 'app.conf'
    conf.write_text(f'<zodb>\n <filestorage>\n  path {data}\n'
                    f' </filestorage>\n</zodb>\n')
    status, out, err = run(capsys, 'info', conf)
    assert status == 0, err
    assert f'file: {data}\n' in out
    assert f'file size: {os.path.getsize(data)} bytes' in out
    assert f'file size: {os.path.getsize(conf)} bytes' not in out


def test_version(capsys):
    from importlib.metadata import version
    with pytest.raises(SystemExit) as exit:
        cli.main(['--version'])
    assert exit.value.code == 0
    assert capsys.readouterr().out == f'appendonly {version("appendonly")}\n'


def _help(*argv):
    result = subprocess.run(
        [sys.executable, '-m', 'appendonly', *argv, '--help'],
        env={**env(), 'COLUMNS': '80'}, capture_output=True, text=True,
        timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_help_is_plain_whole_sentences():
    main = _help()
    listed = re.findall(r'^    (\S+)\s+(.*)$', main, re.MULTILINE)
    assert {name for name, _ in listed} == set(cli.COMMANDS)
    for name, summary in listed:
        # One sentence, capitalised, ending with a period, on one line
        # (nothing wrapped onto a line of its own).
        assert summary[0].isupper() and summary.endswith('.'), summary
        assert summary.count('. ') == 0, summary
    for text in [main] + [_help(name) for name in cli.COMMANDS]:
        assert '``' not in text and ':func:' not in text \
            and ':class:' not in text, text
        for line in text.splitlines():
            # No orphan: a lone word on a wrapped line of prose.
            words = line.split()
            assert len(words) != 1 or line == line.lstrip() \
                or words[0].startswith(('-', '{')) or words[0].isupper(), \
                f'orphan word in: {line!r}\n{text}'


def test_bench_passes_its_arguments_on():
    result = command('bench', '--', '--help')
    assert result.returncode == 0, result.stderr
    assert '--quick' in result.stdout and '--rounds' in result.stdout
    result = command('bench', '--quick', '--bogus')
    assert result.returncode == 2 and 'unrecognized arguments: --bogus' \
        in result.stderr


def test_bench_shows_progress_on_a_terminal():
    import pty
    import select
    import time
    main, child = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, '-m', 'appendonly', 'bench', '--quick', '-r', '1'],
        env=env(), stdin=subprocess.DEVNULL, stdout=child, stderr=child)
    os.close(child)
    seen, first, start = b'', None, time.monotonic()
    try:
        while process.poll() is None or select.select([main], [], [], 0)[0]:
            if select.select([main], [], [], 1)[0]:
                try:
                    chunk = os.read(main, 4096)
                except OSError:
                    break
                if chunk and first is None:
                    first = time.monotonic() - start
                seen += chunk
        assert process.wait(120) == 0, seen
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(main)
    assert b'\r' in seen, seen     # a progress line, rewritten in place
    assert b'targets:' in seen


def test_demo_reports_under_its_name():
    result = command('demo', '--bogus')
    assert result.returncode == 2
    assert 'appendonly demo: error: unrecognized arguments: --bogus' \
        in result.stderr


def test_serve_create(tmp_path):
    import signal
    path = tmp_path / 'new.fs'
    result = command('serve', path)
    one_line_error(result.returncode, result.stderr)
    assert 'no such database (--create makes a new one)' in result.stderr
    assert os.listdir(tmp_path) == []
    server = subprocess.Popen(
        [sys.executable, '-m', 'appendonly', 'serve', str(path), '--create'],
        env=env(), stdout=subprocess.PIPE, text=True)
    try:
        assert 'hosting' in server.stdout.readline()
        assert command('info', path).returncode == 0
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        server.stdout.close()
    assert server.returncode == 0


def test_missing_database_mentions_create_where_it_exists(capsys, tmp_path):
    missing = tmp_path / 'missing.fs'
    for argv, hint in [(['set', missing, 'd', 'k', 'v'], True),
                       (['queue', 'put', missing, 'q', 'x'], True),
                       (['get', missing, 'd', 'k'], False),
                       (['info', missing], False)]:
        status, out, err = run(capsys, *argv)
        one_line_error(status, err)
        assert ('--create' in err) == hint, err


@pytest.mark.parametrize('argv', [
    ['tail', '@', 'stack', '-n', '-1'],
    ['tail', '@', 'stack', '--interval', '0'],
    ['pack', '@', '--days', '-2'],
    ['info', '@', '--timeout', '0'],
    ['info', '@', '--timeout', 'soon'],
])
def test_negative_and_bad_numbers_are_refused(capsys, fs, argv):
    digest = hashlib.sha256(open(fs, 'rb').read()).hexdigest()
    status, out, err = run(capsys, *[fs if a == '@' else a for a in argv])
    one_line_error(status, err)
    assert re.search(r'argument (-n|--\w+): .* (is below|is not a number)',
                     err), err
    assert hashlib.sha256(open(fs, 'rb').read()).hexdigest() == digest


@pytest.fixture
def keyed(tmp_path):
    from appendonly.facades import DurableDict
    path = str(tmp_path / 'Data.fs')
    with DurableDict(path, 'settings') as d:
        d[7] = 'seven'
        d[('user', 42)] = {'name': 'ann'}
        d['plain'] = 'text'
        d[b'raw'] = 'bytes'
    return path


def test_whatever_keys_prints_get_fetches(capsys, keyed):
    status, out, err = run(capsys, 'keys', keyed, 'settings')
    assert status == 0 and err == ''
    printed = out.splitlines()
    assert printed == ['7', "('user', 42)", 'plain', "b'raw'"]
    values = [run(capsys, 'get', keyed, 'settings', key)[1]
              for key in printed]
    assert values == ['seven\n', "{'name': 'ann'}\n", 'text\n', 'bytes\n']
    # --literal: every key as a Python literal, and back.
    status, out, err = run(capsys, 'keys', keyed, 'settings', '--literal')
    assert out.splitlines() == ['7', "('user', 42)", "'plain'", "b'raw'"]
    for key in out.splitlines():
        assert run(capsys, 'get', keyed, 'settings', key, '--literal')[0] \
            == 0
    # set and delete take them too.
    assert run(capsys, 'set', keyed, 'settings', "('user', 43)",
               "{'name': 'bob'}", '--literal')[0] == 0
    from appendonly.facades import DurableDict
    with DurableDict(keyed, 'settings', readonly=True) as d:
        assert d[('user', 43)] == {'name': 'bob'}
    assert run(capsys, 'delete', keyed, 'settings', "('user', 42)")[0] == 0
    status, out, err = run(capsys, 'get', keyed, 'settings', "('user', 42)")
    one_line_error(status, err)


def test_keys_that_print_alike_are_flagged(capsys, keyed):
    assert run(capsys, 'set', keyed, 'settings', '7', 'the string')[0] == 0
    status, out, err = run(capsys, 'keys', keyed, 'settings')
    assert out.splitlines().count('7') == 2
    assert 'keys --literal tells them apart' in err
    # A plain KEY is the string first; --literal reaches the integer.
    assert run(capsys, 'get', keyed, 'settings', '7')[1] == 'the string\n'
    assert run(capsys, 'get', keyed, 'settings', '7', '--literal')[1] \
        == "'seven'\n"
    status, out, err = run(capsys, 'get', keyed, 'settings', "('user', 4)",
                           '--literal')
    one_line_error(status, err)
    assert "no key \"('user', 4)\" in 'settings'" in err, err


def test_bad_literal_is_one_line(capsys, keyed):
    status, out, err = run(capsys, 'get', keyed, 'settings', 'plain',
                           '--literal')
    one_line_error(status, err)
    assert "KEY 'plain' is not a Python literal" in err


def test_the_pyramid_add_ons_data_is_seen_and_reached(capsys, tmp_path):
    from BTrees.OOBTree import OOBTree

    from appendonly import ActivityLog
    from appendonly._keys import PYRAMID_KEY
    from appendonly.facades import DictData
    from appendonly.facades import QueueData
    path = str(tmp_path / 'Data.fs')
    db = ZODB.DB(path)
    with db.transaction() as conn:
        container = conn.root()[PYRAMID_KEY] = OOBTree()
        log = container[('log', 'feed')] = ActivityLog(2, 3)
        for n in range(10):
            log.append(f'entry {n}')
        container[('queue', 'mail')] = QueueData()
        container[('queue', 'mail')].put('hello')
        container[('dict', 'prefs')] = DictData()
        container[('dict', 'prefs')]['theme'] = 'dark'
    db.close()
    status, out, err = run(capsys, 'info', path)
    assert status == 0, err
    assert "pyramid log 'feed': ActivityLog 2x3" in out
    assert "pyramid queue 'mail': DurableQueue data, 1 items" in out
    assert "pyramid dict 'prefs': DictData, 1 items" in out
    status, out, err = run(capsys, 'tail', path, 'feed', '-n', '8')
    assert status == 0, err
    assert [line.split(' ', 2)[2] for line in out.splitlines()] == [
        f'entry {n}' for n in range(2, 10)]    # stack and archive
    assert run(capsys, 'keys', path, 'prefs')[1] == 'theme\n'
    assert run(capsys, 'get', path, 'prefs', 'theme')[1] == 'dark\n'
    assert run(capsys, 'set', path, 'prefs', 'font', 'mono')[0] == 0
    assert run(capsys, 'queue', 'put', path, 'mail', 'again')[0] == 0
    assert run(capsys, 'queue', 'size', path, 'mail')[1] == '2\n'
    assert run(capsys, 'queue', 'get', path, 'mail')[1] == 'hello\n'
    db = ZODB.DB(path)
    with db.transaction() as conn:
        container = conn.root()[PYRAMID_KEY]
        assert container[('dict', 'prefs')]['font'] == 'mono'
        assert container[('queue', 'mail')].qsize() == 1
        # Nothing was created under the façades' own key.
        assert 'appendonly' not in conn.root()
    db.close()
