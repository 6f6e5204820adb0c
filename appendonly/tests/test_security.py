"""The trust boundary of path sharing (docs/security.rst): the runtime
folder, the election lock, the host's socket, and who may be served.

Most tests need a second user: they run processes as ``nobody`` (with
``setpriv``, else ``runuser``), which only root can do; elsewhere they are
skipped, saying why.  An *impostor* is a ``nobody`` process serving its
own FileStorage, whose root runs ``touch MARKER`` when unpickled: the
marker appearing would mean that its pickles ran in our process.

The processes are this module run as a script (see ``main`` at the end):
``python -m appendonly.tests.test_security impostor|client|member|modes``.
Each runs in a session of its own, killed at the end of its test.
"""
import argparse
import fcntl
import grp
import json
import logging
import os
import pwd
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time

import pytest
import transaction
import ZEO.ClientStorage
import ZEO.StorageServer
import ZODB
import ZODB.FileStorage

from appendonly import share
from appendonly.db import DatabaseUnavailableError
from appendonly.db import UntrustedPeerError
from appendonly.db import open_db
from appendonly.share import _runtime
from appendonly.tests._procs import Procs
from appendonly.tests.zeoserver import env

#: Seconds a refusal may take: far below the 30 s an open waits for a
#: host (``_client.CONNECT_TIMEOUT``).
QUICK = 5.0

#: Seconds a worker may take to say it is ready, or to end.
PROCESS_TIMEOUT = 30

OTHER_USER = 'nobody'


#
# Helpers and fixtures
#

def _other():
    """(uid, gid, group name) of the other user."""
    user = pwd.getpwnam(OTHER_USER)
    return user.pw_uid, user.pw_gid, grp.getgrgid(user.pw_gid).gr_name


def _as_other(groups=()):
    """The command prefix that runs a program as the other user, with
    ``groups`` as its only supplementary groups."""
    uid, gid, group = _other()
    if shutil.which('setpriv'):
        extra = [f'--groups={",".join(map(str, groups))}' if groups
                 else '--clear-groups']
        return ['setpriv', f'--reuid={uid}', f'--regid={gid}', *extra]
    extra = [arg for g in groups for arg in ('-G', grp.getgrgid(g).gr_name)]
    return ['runuser', '-u', OTHER_USER, '-g', group, *extra, '--']


@pytest.fixture
def other_user():
    """The other user's uid; skips unless this process can run one."""
    if os.geteuid() != 0:
        pytest.skip('running a second user (nobody) needs root')
    try:
        uid = _other()[0]
    except KeyError:
        pytest.skip(f'no user {OTHER_USER!r} on this machine')
    if not (shutil.which('setpriv') or shutil.which('runuser')):
        pytest.skip('neither setpriv nor runuser is installed')
    return uid


@pytest.fixture
def shared_tmp():
    """A sticky, world-writable folder, as the system's temporary folder
    is: both users can create things in it."""
    folder = tempfile.mkdtemp(prefix='appendonly-security-')
    os.chmod(folder, 0o1777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def _private_runtime(tmp_path, monkeypatch):
    """Every test has a runtime folder of its own (never the machine's
    ``<tmp>/appendonly-<uid>``) and no sharing group unless it says so."""
    monkeypatch.setenv(_runtime.RUNTIME_DIR_ENV, str(tmp_path / 'run'))
    monkeypatch.delenv(_runtime.SHARE_GROUP_ENV, raising=False)
    return tmp_path / 'run'


class Workers(Procs):
    """Worker processes (this module run as a script), as this user or as
    the other one; all killed at the end."""

    def start(self, name, role, *args, other=False, groups=(), environ=None,
              pass_fds=(), cwd=None):
        base = {k: v for k, v in env().items()
                if not k.startswith('APPENDONLY_')}
        base.update(environ or {})
        prefix = _as_other(groups) if other else []
        return super().start(
            name, *prefix, sys.executable, '-m', 'appendonly.tests.'
            'test_security', role, *args, env=base, stdin=subprocess.PIPE,
            cwd=cwd or tempfile.gettempdir(), pass_fds=pass_fds)

    def proc(self, name):
        return next(p for p in self.all if p.name == name)

    def ready(self, name):
        """The rest of the worker's first line, once it has printed it."""
        proc = self.proc(name)
        deadline = time.monotonic() + PROCESS_TIMEOUT
        while not proc.out.read_text().endswith('\n'):
            if not proc.alive():
                self.fail(f'{name} exited with {proc.popen.returncode}:\n'
                          f'{proc.stderr()}')
            if time.monotonic() > deadline:
                self.fail(f'{name} not ready after {PROCESS_TIMEOUT} s')
            time.sleep(0.02)
        return proc.out.read_text().splitlines()[0]

    def wait(self, name):
        """(exit status, stdout lines) once the worker has ended (its stdin
        closed first: workers that wait for it then leave)."""
        proc = self.proc(name)
        proc.popen.stdin.close()
        try:
            proc.popen.wait(PROCESS_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail(f'{name} still running after {PROCESS_TIMEOUT} s')
        return proc.popen.returncode, proc.out.read_text().splitlines()

    def stderr(self, name):
        return self.proc(name).stderr(tail=None)

    def fail(self, message):
        self.kill_all()
        pytest.fail(message)


@pytest.fixture
def workers(tmp_path):
    with Workers(tmp_path) as workers:
        yield workers


def _make_db(path):
    """A FileStorage at ``path`` with one commit, closed again."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    db = open_db(path, shared=False)
    with db.transaction() as conn:
        conn.root()['x'] = 1
    db.close()
    return str(path)


def _listing(folder):
    return sorted(os.listdir(folder))


def _open_and_read(path, **kw):
    """Open ``path`` and unpickle its root: an impostor's payload, if it
    were served to us, would run here."""
    db = open_db(path, **kw)
    try:
        with db.transaction() as conn:
            return dict(conn.root().items())
    finally:
        db.close()


def _refused(opener, error=DatabaseUnavailableError):
    """The error ``opener()`` raises, which it must do quickly."""
    start = time.monotonic()
    with pytest.raises(error) as info:
        opener()
    assert time.monotonic() - start < QUICK
    return str(info.value)


def _cli_info(path, **environ):
    """``appendonly info PATH`` in a process of this user."""
    base = {k: v for k, v in env().items() if not k.startswith('APPENDONLY_')}
    base.update(environ)
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, '-m', 'appendonly', 'info', str(path)],
        capture_output=True, text=True, env=base, timeout=PROCESS_TIMEOUT)
    return result, time.monotonic() - start


def _assert_one_line_error(result, elapsed, *words):
    assert result.returncode != 0
    assert 'Traceback' not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith('appendonly: error:'), \
        result.stderr
    for word in words:
        assert word in lines[0]
    assert elapsed < QUICK + 5      # plus the interpreter's start


def _read_served(address):
    """Unpickle the root served on ``address`` with a plain ClientStorage,
    trusting it: what the checks keep our openers from doing."""
    storage = ZEO.ClientStorage.ClientStorage(address, wait_timeout=QUICK)
    db = ZODB.DB(storage)
    try:
        with db.transaction() as conn:
            return dict(conn.root().items())
    finally:
        db.close()


class _Touch:
    """Unpickles as ``os.system('touch MARKER')``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {shlex.quote(self.marker)}',)


#
# 1. The runtime folder and its files: private whatever the umask
#

@pytest.mark.parametrize('umask', ['000', '002'])
def test_runtime_folder_0700_and_files_0600_under_umask(tmp_path, workers,
                                                        umask):
    run = tmp_path / 'run'
    workers.start('opener', 'modes', tmp_path / 'Data.fs', umask,
                  environ={_runtime.RUNTIME_DIR_ENV: str(run)})
    status, lines = workers.wait('opener')
    assert status == 0, workers.stderr('opener')
    assert json.loads(lines[-1]) == {'folder': '700', 'lock': '600',
                                     'socket': '600'}


#
# 2. A runtime folder that is not private
#

def _runtime_not_private(run, kind, tmp_path):
    """Put a runtime folder that is not ours alone at ``run``."""
    if kind == 'symlink':
        real = tmp_path / 'real-run'
        real.mkdir(mode=0o700)
        os.symlink(real, run)
        return
    if kind == 'file':
        run.write_bytes(b'')
        return
    run.mkdir()
    os.chmod(run, {'group': 0o750, 'world': 0o705, 'sticky': 0o1777,
                   'other user': 0o700}[kind])
    if kind == 'other user':
        os.chown(run, _other()[0], -1)


@pytest.mark.parametrize('opening', ['new', 'existing', 'read-only'])
@pytest.mark.parametrize('kind', ['other user', 'group', 'world', 'sticky',
                                  'symlink', 'file'])
def test_runtime_folder_not_private_is_refused(tmp_path, _private_runtime,
                                               kind, opening):
    if kind == 'other user' and os.geteuid() != 0:
        pytest.skip('giving a folder to another user needs root')
    run = _private_runtime
    _runtime_not_private(run, kind, tmp_path)
    folder = tmp_path / 'db'
    folder.mkdir()
    path = folder / 'Data.fs'
    if opening != 'new':
        _make_db(path)
    before = _listing(folder), _listing(tmp_path)
    message = _refused(lambda: _open_and_read(
        path, read_only=opening == 'read-only'))
    assert str(run) in message
    assert (_listing(folder), _listing(tmp_path)) == before
    if kind == 'symlink':
        assert _listing(tmp_path / 'real-run') == []


#
# 3. The election lock: a regular file of ours, 0600
#

@pytest.mark.parametrize('read_only', [False, True])
@pytest.mark.parametrize('kind', ['symlink', 'dangling symlink',
                                  'other user', 'mode 644'])
def test_lock_not_ours_is_refused(tmp_path, kind, read_only):
    if kind == 'other user' and os.geteuid() != 0:
        pytest.skip('giving a file to another user needs root')
    path = _make_db(tmp_path / 'db' / 'Data.fs')
    lock_path, _ = _runtime.names(os.path.realpath(path))
    decoy = tmp_path / 'decoy'
    decoy.write_bytes(b'mine')
    os.chmod(decoy, 0o600)
    if kind == 'symlink':
        os.symlink(decoy, lock_path)
    elif kind == 'dangling symlink':
        os.symlink(tmp_path / 'nothing', lock_path)
    else:
        fd = os.open(lock_path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
        if kind == 'other user':
            os.chown(lock_path, _other()[0], -1)
        else:
            os.chmod(lock_path, 0o644)
    before = _listing(tmp_path / 'db')
    message = _refused(lambda: _open_and_read(path, read_only=read_only))
    assert lock_path in message
    assert {'symlink': 'symlink', 'dangling symlink': 'symlink',
            'other user': 'belongs to uid',
            'mode 644': 'has mode 644'}[kind] in message
    assert decoy.read_bytes() == b'mine'
    assert not os.path.exists(tmp_path / 'nothing')
    assert _listing(tmp_path / 'db') == before


#
# 4. An impostor host: another user holding the lock and serving its own
#    database on the socket we would use
#

@pytest.mark.parametrize('folder', ['APPENDONLY_RUNTIME_DIR', 'default'])
def test_impostor_in_a_shared_tmp_is_refused(tmp_path, shared_tmp, workers,
                                             monkeypatch, other_user,
                                             folder):
    # The impostor takes the runtime folder we would use: the one both
    # name, or <tmp>/appendonly-<our uid> in a sticky shared tmp.
    victim = _make_db(os.path.join(shared_tmp, 'victim', 'Data.fs'))
    marker = tmp_path / 'marker'
    if folder == 'default':
        run = os.path.join(shared_tmp, f'appendonly-{os.getuid()}')
        monkeypatch.delenv(_runtime.RUNTIME_DIR_ENV)
        monkeypatch.setattr(tempfile, 'tempdir', shared_tmp)
        ours = {'TMPDIR': shared_tmp}
    else:
        run = os.path.join(shared_tmp, 'run')
        monkeypatch.setenv(_runtime.RUNTIME_DIR_ENV, run)
        ours = {_runtime.RUNTIME_DIR_ENV: run}
    workers.start('impostor', 'impostor', '--victim', victim,
                  '--fs', os.path.join(shared_tmp, 'evil', 'Data.fs'),
                  '--marker', marker, other=True,
                  environ={_runtime.RUNTIME_DIR_ENV: run})
    address = workers.ready('impostor').split()[1]
    assert os.path.dirname(address) == run
    before = _listing(os.path.dirname(victim))

    for read_only in (False, True):
        message = _refused(lambda: _open_and_read(victim,
                                                  read_only=read_only))
        assert run in message and f'uid {other_user}' in message
    result, elapsed = _cli_info(victim, **ours)
    _assert_one_line_error(result, elapsed, run, f'uid {other_user}')

    assert not marker.exists()
    assert _listing(os.path.dirname(victim)) == before
    # The impostor's payload is real: trusting its socket runs it.
    _read_served(address)
    assert marker.exists()


def test_impostor_socket_in_our_folder_is_refused_by_peer_check(
        tmp_path, shared_tmp, workers, other_user):
    # Should the folder check be got round (here: we move the impostor's
    # socket into our folder, and hand it our lock), SO_PEERCRED on the
    # socket still tells who serves it.
    victim = _make_db(tmp_path / 'db' / 'Data.fs')
    marker = tmp_path / 'marker'
    lock_path, address = _runtime.names(os.path.realpath(victim))
    fd = _runtime.open_lock(lock_path)
    evil = os.path.join(shared_tmp, 'evil')
    try:
        workers.start('impostor', 'impostor', '--lock-fd', fd,
                      '--address', os.path.join(evil, 'evil.sock'),
                      '--fs', os.path.join(evil, 'Data.fs'),
                      '--marker', marker, other=True, pass_fds=(fd,))
    finally:
        os.close(fd)
    workers.ready('impostor')
    os.rename(os.path.join(evil, 'evil.sock'), address)
    before = _listing(tmp_path / 'db')

    for read_only in (False, True):
        message = _refused(lambda: _open_and_read(victim,
                                                  read_only=read_only),
                           UntrustedPeerError)
        assert address in message and f'uid {other_user}' in message
    result, elapsed = _cli_info(victim, **{
        _runtime.RUNTIME_DIR_ENV: str(tmp_path / 'run')})
    _assert_one_line_error(result, elapsed, address, f'uid {other_user}')

    assert not marker.exists()
    assert _listing(tmp_path / 'db') == before
    _read_served(address)
    assert marker.exists()


#
# 5. The host serves its own user only
#

def _expose(address):
    """Let any user reach the socket at ``address`` (for a test only: the
    folder check refuses such a folder)."""
    os.chmod(os.path.dirname(address), 0o711)
    os.chmod(address, 0o666)


def _refusals(caplog, uid):
    return [r for r in caplog.records
            if r.name == 'appendonly.share'
            and 'refused a connection' in r.getMessage()
            and r.getMessage().endswith(f'uid {uid}')]


def test_host_refuses_zeo_clients_of_another_user(tmp_path, shared_tmp,
                                                  monkeypatch, workers,
                                                  caplog, other_user):
    caplog.set_level(logging.WARNING, logger='appendonly.share')
    monkeypatch.setenv(_runtime.RUNTIME_DIR_ENV,
                       os.path.join(shared_tmp, 'run'))
    path = tmp_path / 'Data.fs'
    db = open_db(path)
    try:
        address = share.address(path)
        _expose(address)
        workers.start('client', 'client', address, other=True)
        status, lines = workers.wait('client')
        assert status == 0, workers.stderr('client')
        assert lines == ['closed by the host', 'never connected']
        assert _refusals(caplog, other_user)
        assert _runtime.check_host(address)     # we are still served
        with db.transaction() as conn:
            assert dict(conn.root()) == {}
    finally:
        db.close()


#
# 6. What is found where the host's socket belongs
#

def _socket_at(address, uid=None):
    """A socket file nobody listens on (what a killed host leaves)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(address)
    if uid is not None:
        os.chown(address, uid, -1)


def _not_our_socket(address, kind, tmp_path):
    """Put something other than a socket of ours at ``address``."""
    if kind == 'file':
        open(address, 'w').close()
    elif kind == 'symlink':
        _socket_at(str(tmp_path / 'elsewhere.sock'))
        os.symlink(tmp_path / 'elsewhere.sock', address)
    elif kind == 'dangling symlink':
        os.symlink(tmp_path / 'nothing', address)
    else:
        _socket_at(address, _other()[0])


@pytest.mark.parametrize('kind', ['file', 'symlink', 'dangling symlink',
                                  'socket of another user'])
def test_not_our_socket_where_the_host_socket_belongs(tmp_path, kind):
    if kind == 'socket of another user' and os.geteuid() != 0:
        pytest.skip('giving a socket to another user needs root')
    folder = tmp_path / 'db'
    folder.mkdir()
    path = folder / 'Data.fs'
    address = share.address(path)
    _not_our_socket(address, kind, tmp_path)
    message = _refused(lambda: open_db(path))
    assert address in message
    assert _listing(folder) == []
    assert os.path.lexists(address)
    assert share.host_pid(path) is None


def test_stale_socket_of_ours_is_replaced(tmp_path):
    path = tmp_path / 'Data.fs'
    address = share.address(path)
    _socket_at(address)
    assert not _runtime.check_host(address)     # nobody listens
    db = open_db(path)
    try:
        assert share.host_pid(path) == os.getpid()
        assert _runtime.check_host(address)
    finally:
        db.close()


#
# 7. Another user cannot block our opens
#

def test_other_users_lock_in_its_own_folder_does_not_affect_us(
        tmp_path, shared_tmp, workers, monkeypatch, other_user):
    # Both use the default folder, <tmp>/appendonly-<uid>, of one tmp.
    victim = _make_db(os.path.join(shared_tmp, 'victim', 'Data.fs'))
    marker = tmp_path / 'marker'
    monkeypatch.delenv(_runtime.RUNTIME_DIR_ENV)
    monkeypatch.setattr(tempfile, 'tempdir', shared_tmp)
    workers.start('other', 'impostor', '--victim', victim,
                  '--fs', os.path.join(shared_tmp, 'evil', 'Data.fs'),
                  '--marker', marker, other=True,
                  environ={'TMPDIR': shared_tmp})
    theirs = workers.ready('other').split()[1]
    assert theirs.startswith(os.path.join(shared_tmp,
                                          f'appendonly-{other_user}'))
    start = time.monotonic()
    db = open_db(victim)
    try:
        assert time.monotonic() - start < QUICK
        assert share.host_pid(victim) == os.getpid()
        assert os.path.dirname(share.address(victim)) == os.path.join(
            shared_tmp, f'appendonly-{os.getuid()}')
        with db.transaction() as conn:
            assert conn.root()['x'] == 1
            conn.root()['x'] = 2
        assert _open_and_read(victim, read_only=True) == {'x': 2}
    finally:
        db.close()
    assert not marker.exists()


#
# 8. APPENDONLY_SHARE_GROUP: a group may share, by opting in
#

@pytest.fixture
def share_group(other_user):
    """A new group whose members are this user and the other one."""
    if not (shutil.which('groupadd') and shutil.which('groupdel')
            and shutil.which('gpasswd')):
        pytest.skip('groupadd, groupdel or gpasswd is missing')
    name = f'aoshare{os.getpid()}'
    me = pwd.getpwuid(os.getuid()).pw_name
    try:
        subprocess.run(['groupadd', name], check=True, capture_output=True)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f'groupadd failed: {exc.stderr.decode().strip()}')
    try:
        subprocess.run(['gpasswd', '-M', f'{me},{OTHER_USER}', name],
                       check=True, capture_output=True)
        yield name, grp.getgrnam(name).gr_gid
    finally:
        subprocess.run(['groupdel', name], check=True, capture_output=True)


def _group_folder(shared_tmp, gid):
    """A data folder the group can write (setgid: files stay its own)."""
    folder = os.path.join(shared_tmp, 'group-db')
    os.mkdir(folder)
    os.chown(folder, -1, gid)
    os.chmod(folder, 0o2770)
    return os.path.join(folder, 'Data.fs')


def _modes(address, gid):
    lock = address[:-len('.sock')] + '.lock'
    result = {}
    for name, item in [('folder', os.path.dirname(address)),
                       ('lock', lock), ('socket', address)]:
        info = os.stat(item)
        assert info.st_gid == gid, name
        result[name] = f'{stat.S_IMODE(info.st_mode):o}'
    return result


def test_share_group_members_host_and_connect(tmp_path, shared_tmp, workers,
                                              monkeypatch, share_group,
                                              other_user):
    name, gid = share_group
    run = os.path.join(shared_tmp, 'run')
    group_env = {_runtime.RUNTIME_DIR_ENV: run,
                 _runtime.SHARE_GROUP_ENV: name}
    for key, value in group_env.items():
        monkeypatch.setenv(key, value)
    path = _group_folder(shared_tmp, gid)

    # The other user hosts; we are its client.
    workers.start('host', 'member', path, '--stay', other=True,
                  groups=[gid], environ=group_env)
    assert json.loads(workers.ready('host')) == [other_user]
    db = open_db(path)
    try:
        assert share.host_pid(path) == workers.proc('host').pid
        assert _modes(share.address(path), gid) == {
            'folder': '770', 'lock': '660', 'socket': '660'}
        with db.transaction() as conn:
            conn.root()['who'] += (os.getuid(),)
    finally:
        db.close()
    assert workers.wait('host')[0] == 0, workers.stderr('host')

    # We host; the other user is our client.
    db = open_db(path)
    try:
        assert share.host_pid(path) == os.getpid()
        workers.start('client', 'member', path, other=True, groups=[gid],
                      environ=group_env)
        status, lines = workers.wait('client')
        assert status == 0, workers.stderr('client')
        assert json.loads(lines[0]) == [other_user, os.getuid(), other_user]
    finally:
        db.close()


def test_share_group_folder_of_a_non_member_is_refused(
        tmp_path, monkeypatch, share_group, other_user):
    # Its group is the sharing group (a setgid parent would do that), but
    # its owner is not a member: it could let anyone in.
    name, gid = share_group
    subprocess.run(['gpasswd', '-d', OTHER_USER, name], check=True,
                   capture_output=True)
    run = tmp_path / 'group-run'
    run.mkdir()
    os.chown(run, other_user, gid)
    os.chmod(run, 0o770)
    monkeypatch.setenv(_runtime.RUNTIME_DIR_ENV, str(run))
    monkeypatch.setenv(_runtime.SHARE_GROUP_ENV, name)
    message = _refused(lambda: open_db(tmp_path / 'Data.fs'))
    assert str(run) in message and f'uid {other_user}' in message
    assert _listing(run) == []


def test_share_group_member_refused_without_opting_in(
        tmp_path, shared_tmp, workers, monkeypatch, share_group, caplog,
        other_user):
    name, gid = share_group
    caplog.set_level(logging.WARNING, logger='appendonly.share')
    run = os.path.join(shared_tmp, 'run')
    monkeypatch.setenv(_runtime.RUNTIME_DIR_ENV, run)
    path = _group_folder(shared_tmp, gid)
    db = open_db(path)
    try:
        address = share.address(path)
        # Our runtime folder is ours alone: the member cannot use it ...
        workers.start('member', 'member', path, other=True, groups=[gid],
                      environ={_runtime.RUNTIME_DIR_ENV: run})
        status, lines = workers.wait('member')
        assert status == 3 and lines[0].startswith('refused:')
        assert run in lines[0] and f'uid {os.getuid()}' in lines[0]
        # ... and were the socket reachable, the host would not serve it.
        _expose(address)
        workers.start('client', 'client', address, other=True, groups=[gid])
        status, lines = workers.wait('client')
        assert status == 0, workers.stderr('client')
        assert lines == ['closed by the host', 'never connected']
        assert _refusals(caplog, other_user)
    finally:
        db.close()


#
# The workers
#

def _impostor(args):
    """Hold the lock and serve our own database, whose root runs
    ``touch MARKER`` when unpickled.  Prints ``ready ADDRESS``."""
    if args.victim:
        lock_path, address = _runtime.names(os.path.realpath(args.victim))
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    else:
        address, fd = args.address, args.lock_fd
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.pwrite(fd, f'{os.getpid()}\n'.encode(), 0)
    os.makedirs(os.path.dirname(args.fs), exist_ok=True)
    os.makedirs(os.path.dirname(address), exist_ok=True)
    db = ZODB.DB(args.fs)
    with db.transaction() as conn:
        conn.root()['payload'] = _Touch(args.marker)
    db.close()
    server = ZEO.StorageServer.StorageServer(
        address, {'1': ZODB.FileStorage.FileStorage(args.fs)})
    print('ready', address, flush=True)
    server.loop()


def _client(args):
    """As a ZEO client of ADDRESS: does the host serve us?"""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(PROCESS_TIMEOUT)
        sock.connect(args.address)
        while sock.recv(4096):      # the greeting, then the end
            pass
    print('closed by the host', flush=True)
    storage = ZEO.ClientStorage.ClientStorage(args.address, wait=False)
    deadline = time.monotonic() + 3
    while not storage.is_connected() and time.monotonic() < deadline:
        time.sleep(0.05)
    print('connected' if storage.is_connected() else 'never connected',
          flush=True)
    storage.close()


def _member(args):
    """Open PATH, add our uid to root['who'], print it; with --stay, keep
    it open until stdin closes.  Refused: print why, exit 3."""
    try:
        db = open_db(args.path)
    except DatabaseUnavailableError as exc:
        print(f'refused: {exc}', flush=True)
        sys.exit(3)
    try:
        tm = transaction.TransactionManager()
        conn = db.open(tm)
        for attempt in tm.attempts(10):
            with attempt:
                root = conn.root()
                root['who'] = root.get('who', ()) + (os.getuid(),)
        print(json.dumps(root['who']), flush=True)
        conn.close()
        if args.stay:
            sys.stdin.read()
    finally:
        db.close()


def _show_modes(args):
    """Open PATH under UMASK, print the modes of the runtime folder, the
    lock and the socket."""
    os.umask(int(args.umask, 8))
    db = open_db(args.path)
    try:
        address = share.address(args.path)
        lock = address[:-len('.sock')] + '.lock'
        print(json.dumps({
            name: f'{stat.S_IMODE(os.stat(item).st_mode):o}'
            for name, item in [('folder', os.path.dirname(address)),
                               ('lock', lock), ('socket', address)]}))
    finally:
        db.close()


def main(argv=None):
    parser = argparse.ArgumentParser()
    roles = parser.add_subparsers(dest='role', required=True)
    impostor = roles.add_parser('impostor')
    impostor.add_argument('--fs', required=True)
    impostor.add_argument('--marker', required=True)
    impostor.add_argument('--victim', help='take the lock and socket '
                                           'of this path, in our folder')
    impostor.add_argument('--address')
    impostor.add_argument('--lock-fd', type=int)
    client = roles.add_parser('client')
    client.add_argument('address')
    member = roles.add_parser('member')
    member.add_argument('path')
    member.add_argument('--stay', action='store_true')
    modes = roles.add_parser('modes')
    modes.add_argument('path')
    modes.add_argument('umask')
    args = parser.parse_args(argv)
    {'impostor': _impostor, 'client': _client, 'member': _member,
     'modes': _show_modes}[args.role](args)


if __name__ == '__main__':
    main()
