"""Where the processes sharing a path meet: a private folder of the user.

The election lock and the host's Unix socket of a database are not put
next to the data file, where anyone who can read that folder could take
the lock or pose as the host.  They live in the *runtime folder*:

- ``$APPENDONLY_RUNTIME_DIR`` if set, else ``<tmp>/appendonly-<uid>``
  (``tempfile.gettempdir()``, so ``TMPDIR`` counts): every process that
  shares a path must see the same one.
- It is created with mode 0700 (``mkdir`` never follows a symlink) and,
  created or found, must be a real folder owned by this user that nobody
  else can enter; otherwise opening fails naming it.
- Per database (its real path, hashed): ``<hash>.lock`` (0600, holds the
  host's pid and the path) and ``<hash>.sock`` (0600).

A group of users may share databases only by saying so:
``APPENDONLY_SHARE_GROUP=<group>`` (the same in every process) makes the
folder 0770 and the files 0660, owned by that group, and lets its members
use them whichever member made them, and host or connect to each other.
Nothing else makes the files reachable by another user, whatever the
umask.
"""
import contextlib
import grp
import hashlib
import os
import pwd
import socket
import stat
import struct
import tempfile

from appendonly.share._errors import DatabaseUnavailableError
from appendonly.share._errors import UntrustedPeerError

#: Environment variable: the runtime folder (default
#: ``<tmp>/appendonly-<uid>``).
RUNTIME_DIR_ENV = 'APPENDONLY_RUNTIME_DIR'

#: Environment variable: a group whose members may share databases (opt-in).
SHARE_GROUP_ENV = 'APPENDONLY_SHARE_GROUP'

#: The longest AF_UNIX path, in bytes, without its terminating NUL.
AF_UNIX_MAX = 107


def share_group():
    """The gid of the opted-in sharing group, or None."""
    name = os.environ.get(SHARE_GROUP_ENV)
    if not name:
        return None
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise DatabaseUnavailableError(
            f'{SHARE_GROUP_ENV}={name}: no such group') from None


def runtime_dir():
    """The runtime folder, created if missing and checked either way."""
    folder = os.environ.get(RUNTIME_DIR_ENV) or os.path.join(
        tempfile.gettempdir(), f'appendonly-{os.getuid()}')
    gid = share_group()
    try:
        os.mkdir(folder, 0o700)
        if gid is not None:
            os.chown(folder, -1, gid)
            os.chmod(folder, 0o770)
    except FileExistsError:
        pass
    _check_private(folder, os.lstat(folder), gid, stat.S_ISDIR, 'folder')
    return folder


def _ours(info, gid):
    """Is the file of ``info`` this user's or, with the opted-in group
    ``gid``, of that group and of one of its members?"""
    return info.st_uid == os.getuid() or (
        gid is not None and info.st_gid == gid and _member(info.st_uid, gid))


def _check_private(path, info, gid, is_kind, kind):
    """Refuse ``path`` unless it is a ``kind`` of this user that no other
    user can write (nor read: sockets and locks), save the opted-in group."""
    other_bits = 0o077 if gid is None else 0o007
    problem = None
    if not is_kind(info.st_mode):
        problem = f'is not a {kind} (a symlink or something else)'
    elif not _ours(info, gid):
        problem = f'belongs to uid {info.st_uid}, not to this user'
    elif info.st_mode & other_bits:
        problem = (f'has mode {stat.S_IMODE(info.st_mode):o}: other users '
                   f'can use it')
    elif gid is not None and info.st_gid != gid:
        problem = f'belongs to group {info.st_gid}, not {gid}'
    if problem:
        raise DatabaseUnavailableError(
            f'{path} {problem}; remove it, or set {RUNTIME_DIR_ENV} to a '
            f'private folder')


def names(path):
    """``(lock_path, socket_path)`` of the FileStorage at ``path`` (a real
    path): every process computes the same ones."""
    digest = hashlib.sha256(os.fsencode(path)).hexdigest()[:32]
    base = os.path.join(runtime_dir(), digest)
    address = base + '.sock'
    if len(os.fsencode(address)) > AF_UNIX_MAX:
        raise DatabaseUnavailableError(
            f'{address}: longer than a Unix socket path may be; set '
            f'{RUNTIME_DIR_ENV} to a shorter folder')
    return base + '.lock', address


def open_lock(lock_path, create=True):
    """Open (or create) the election lock file, 0600 (0660 for a sharing
    group), refusing a symlink or a file of another user.  ``create``
    false: open it read-only, FileNotFoundError if missing."""
    flags = os.O_CLOEXEC | os.O_NOFOLLOW
    flags |= os.O_RDWR | os.O_CREAT if create else os.O_RDONLY
    gid = share_group()
    try:
        fd = os.open(lock_path, flags, 0o600)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise DatabaseUnavailableError(
            f'{lock_path}: cannot open the election lock: {exc.strerror} '
            f'(a symlink?)') from None
    try:
        if create and gid is not None and os.fstat(fd).st_uid == os.getuid():
            os.fchown(fd, -1, gid)
            os.fchmod(fd, 0o660)
        _check_private(lock_path, os.fstat(fd), gid, stat.S_ISREG, 'file')
    except BaseException:
        os.close(fd)
        raise
    return fd


def prepare_socket(address):
    """Before serving on ``address``: remove a stale socket of ours, refuse
    anything else found there."""
    try:
        info = os.lstat(address)
    except FileNotFoundError:
        return
    if not (stat.S_ISSOCK(info.st_mode) and _ours(info, share_group())):
        raise DatabaseUnavailableError(
            f'{address}: something other than a socket of this user is '
            f'where the host socket belongs; remove it')
    os.unlink(address)      # we hold the election lock: the socket is stale


def secure_socket(address):
    """After binding: 0600 (0660 for a sharing group), whatever the umask."""
    gid = share_group()
    if gid is not None:
        os.chown(address, -1, gid)
    os.chmod(address, 0o600 if gid is None else 0o660)


def peer_credentials(sock):
    """``(pid, uid, gid)`` of the process at the other end of a connected
    Unix socket, or None where the platform cannot tell (Linux can)."""
    if not hasattr(socket, 'SO_PEERCRED'):
        return None     # pragma: no cover  (the private folder still holds)
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                          struct.calcsize('3i'))
    return struct.unpack('3i', raw)


def trusted(uid, gid):
    """May a process of ``uid``/``gid`` be trusted with our pickles?  This
    user's, or with the opted-in group, one running as that group or of
    a member of it (``SO_PEERCRED`` gives no supplementary groups)."""
    group = share_group()
    if uid == os.getuid():
        return True
    return group is not None and (gid == group or _member(uid, group))


def _member(uid, gid):
    """Is user ``uid`` a member of group ``gid``, by the group database?"""
    try:
        user = pwd.getpwuid(uid)
    except KeyError:
        return False
    return user.pw_gid == gid or user.pw_name in grp.getgrgid(gid).gr_mem


def check_host(address):
    """Connect to ``address`` once and refuse a host run by another user.
    Returns False if nobody listens there."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            sock.connect(address)
        except (FileNotFoundError, ConnectionRefusedError):
            return False
        creds = peer_credentials(sock)
        if creds is None or trusted(creds[1], creds[2]):
            # Take the host's greeting (its protocol announcement) before
            # hanging up, or it logs a broken pipe.
            sock.settimeout(5)
            with contextlib.suppress(OSError):
                sock.recv(64)
    finally:
        sock.close()
    if creds is not None and not trusted(creds[1], creds[2]):
        raise UntrustedPeerError(
            f'{address}: served by process {creds[0]} of uid {creds[1]}, '
            f'not by this user (uid {os.getuid()}): refusing to connect')
    return True


def host_pid(lock_path):
    """The pid the host wrote in the lock file, for error messages."""
    try:
        with open(lock_path) as f:
            return f.readline().strip() or '?'
    except OSError:
        return '?'
