"""The ``appendonly`` command (also ``python -m appendonly``).

One function per subcommand; its docstring is its ``--help``.  TARGET is
anything :func:`appendonly.db.open_db` accepts: a FileStorage path, a
zodburi URI or a ZConfig file.  Commands never create a database unless
asked to (``--create``).
"""
import argparse
import datetime
import logging
import os
import sys
import time
import warnings

import transaction
from ZODB.FileStorage.FileStorage import FileStorageError

from appendonly import Accumulator
from appendonly import AppendStack
from appendonly import Archive
from appendonly.db import DatabaseUnavailableError
from appendonly.db import NotADatabaseError
from appendonly.db import open_db
from appendonly.facades._session import ROOT_KEY
from appendonly.storage._zodb import ROOT_KEY as STORAGE_KEY

COMMANDS = {}


def command(*arguments):
    """Register a subcommand: ``arguments`` are (args, kwargs) pairs for
    ``add_argument``."""
    def register(func):
        COMMANDS[func.__name__.rstrip('_').replace('_', '-')] = (
            func, arguments)
        return func
    return register


def arg(*args, **kw):
    return args, kw


TARGET = arg('target', help='database: path, zodburi URI or ZConfig file')
STORAGE = arg('--storage', action='store_true',
              help='NAME is a container of the Storage bridge '
                   '(appendonly.storage), not a DurableDict')


class UsageError(Exception):
    """Bad arguments or a missing/unusable database: one line, exit 2."""


def _open(args, read_only=True, create=False):
    """Open TARGET; commands that only read open a file read-only (a URI
    or ZConfig file is opened as it says)."""
    target = args.target
    try:
        return open_db(target, create=create, read_only=(
            read_only and not create and '://' not in target))
    except (NotADatabaseError, FileNotFoundError, ValueError,
            DatabaseUnavailableError) as e:
        raise UsageError(str(e)) from None
    except FileStorageError as e:     # a damaged Data.fs
        raise UsageError(f'{target}: cannot open: {type(e).__name__}: {e}') \
            from None


def _tty():
    return sys.stderr.isatty()


def _progress(done, total, label):
    if _tty() and total:
        width = 30
        filled = int(width * done / total)
        sys.stderr.write(f'\r{label} [{"#" * filled}{"." * (width - filled)}]'
                         f' {done}/{total}')
        if done == total:
            sys.stderr.write('\n')
        sys.stderr.flush()


def _structures(root):
    """(path, object) for every structure of this package: the top level
    of the root, and the façades' and storage bridge's containers."""
    for key in sorted(root.keys(), key=repr):
        value = root[key]
        if isinstance(value, (AppendStack, Archive, Accumulator)):
            yield repr(key), value
    containers = root.get(ROOT_KEY)
    if containers is not None:
        for (kind, name), data in containers.items():
            yield f'{kind} {name!r}', data
    containers = root.get(STORAGE_KEY)
    if containers is not None:
        for name, tree in containers.items():
            yield f'storage container {name!r}', tree


@command(TARGET)
def info(args):
    """Show what is in the database: the structures and containers this
    package created, their sizes, the file size and the last
    transaction."""
    db = _open(args)
    try:
        last = db.lastTransaction()
        stamp = datetime.datetime.fromtimestamp(
            _tid_seconds(last), tz=datetime.timezone.utc)
        print(f'database: {args.target}')
        if os.path.isfile(args.target):
            print(f'file size: {os.path.getsize(args.target)} bytes')
        print(f'last transaction: {stamp:%Y-%m-%d %H:%M:%S} UTC '
              f'({last.hex()})')
        with db.transaction() as conn:
            for path, obj in _structures(conn.root()):
                print(f'{path}: {_describe(obj)}')
    finally:
        db.close()


def _is_snapshot(db, target):
    """Is ``db`` a read-only FileStorage opened alone (no host then) on
    ``target``, which has grown or gained a host since?"""
    from ZODB.FileStorage import FileStorage

    from appendonly import share
    storage = db.storage
    if not (isinstance(storage, FileStorage) and storage.isReadOnly()):
        return False
    return (os.path.getsize(target) != storage.getSize()
            or share.host_pid(target) is not None)


def _tid_seconds(tid):
    from persistent.TimeStamp import TimeStamp
    return TimeStamp(tid).timeTime()


def _describe(obj):
    if isinstance(obj, AppendStack):
        return (f'AppendStack {obj._max_layers}x{obj._max_length}, '
                f'{len(obj)} items')
    if isinstance(obj, Archive):
        return f'Archive, newest generation {obj._generation}'
    if isinstance(obj, Accumulator):
        return f'Accumulator, {len(obj)} items'
    if hasattr(obj, 'qsize'):
        return f'DurableQueue data, {obj.qsize()} items'
    if type(obj).__name__ == 'OOBTree':
        return f'{len(obj)} items'
    return f'{type(obj).__name__}, {len(obj)} items'


def _dict(args, readonly):
    from appendonly.facades import DurableDict
    db = _open(args, read_only=readonly,
               create=getattr(args, 'create', False))
    try:
        return DurableDict(db, args.name, readonly=readonly), db
    except KeyError as e:
        db.close()
        raise UsageError(e.args[0]) from None


def _container(args, readonly, op):
    """Run ``op(storage)`` on the Storage bridge of TARGET."""
    from appendonly.storage import ContainerNotFoundError
    from appendonly.storage import StorageNotFoundError
    from appendonly.storage import ZODBStorage
    db = _open(args, read_only=readonly, create=getattr(args, 'create',
                                                        False))
    try:
        try:
            storage = ZODBStorage(db, readonly=readonly)
        except StorageNotFoundError:
            if readonly:
                raise UsageError('no Storage containers in this database') \
                    from None
            storage = ZODBStorage(db, create=True)
        try:
            return op(storage)
        except ContainerNotFoundError:
            raise UsageError(f'no container {args.name!r}') from None
        finally:
            storage.close()
    finally:
        db.close()


@command(TARGET, arg('name', help='name of the DurableDict (or container)'),
         arg('key'), STORAGE)
def get(args):
    """Print the value stored for KEY in the DurableDict NAME (with
    --storage: in the Storage container NAME)."""
    if args.storage:
        def get_item(storage):
            try:
                return storage.get_container_item(args.name, args.key)
            except KeyError:
                raise UsageError(f'no key {args.key!r} in {args.name!r}') \
                    from None
        print(_container(args, True, get_item))
        return
    d, db = _dict(args, readonly=True)
    try:
        print(_show(d[args.key]))
    except KeyError:
        raise UsageError(f'no key {args.key!r} in {args.name!r}') from None
    finally:
        db.close()


@command(TARGET, arg('name', help='name of the DurableDict (or container)'),
         arg('key'), arg('value'), STORAGE,
         arg('--create', action='store_true',
             help='create the database if missing'))
def set_(args):
    """Store the string VALUE for KEY in the DurableDict NAME (with
    --storage: in the Storage container NAME); the dict or container is
    created if missing."""
    if args.storage:
        def set_item(storage):
            from appendonly.storage import DuplicateContainerError
            try:
                storage.add_container(args.name)
            except DuplicateContainerError:
                pass
            storage.set_container_item(args.name, args.key, args.value)
        _container(args, False, set_item)
        return
    d, db = _dict(args, readonly=False)
    try:
        d[args.key] = args.value
    finally:
        db.close()


@command(TARGET, arg('name', help='name of the DurableDict (or container)'),
         arg('key'), STORAGE)
def delete(args):
    """Remove KEY from the DurableDict NAME (with --storage: from the
    Storage container NAME)."""
    if args.storage:
        def delete_item(storage):
            if args.key not in set(storage.get_container_keys(args.name)):
                raise UsageError(f'no key {args.key!r} in {args.name!r}')
            storage.delete_container_item(args.name, args.key)
        _container(args, False, delete_item)
        return
    d, db = _dict(args, readonly=False)
    try:
        del d[args.key]
    except KeyError:
        raise UsageError(f'no key {args.key!r} in {args.name!r}') from None
    finally:
        db.close()


@command(TARGET, arg('name', help='name of the DurableDict (or container)'),
         STORAGE)
def keys(args):
    """List the keys of the DurableDict NAME, in insertion order (with
    --storage: of the Storage container NAME, in key order)."""
    if args.storage:
        for key in _container(args, True, lambda storage: list(
                storage.get_container_keys(args.name))):
            print(key)
        return
    d, db = _dict(args, readonly=True)
    try:
        for key in d.keys():
            print(_show(key))
    finally:
        db.close()


def _show(value):
    return value if isinstance(value, str) else repr(value)


@command(TARGET, arg('name', help='root key of the AppendStack'),
         arg('-n', type=int, default=10, help='entries to show (10)'),
         arg('--archive', help='root key of its Archive, to reach back'),
         arg('--follow', action='store_true',
             help='keep printing new entries as they commit'),
         arg('--interval', type=float, default=0.5, help=argparse.SUPPRESS))
def tail(args):
    """Print the newest entries of the AppendStack at root[NAME] (and its
    Archive), oldest of them first, as GENERATION INDEX ITEM; with
    --follow, keep printing entries as they commit (Ctrl-C stops)."""
    db = _open(args)
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    try:
        root = conn.root()
        stack = root.get(args.name)
        if not isinstance(stack, AppendStack):
            raise UsageError(f'root[{args.name!r}] is not an AppendStack')
        entries = []
        for entry in stack:
            if len(entries) >= args.n:
                break
            entries.append(entry)
        if args.archive and len(entries) < args.n:
            for entry in root[args.archive]:
                if len(entries) >= args.n:
                    break
                entries.append(entry)
        for entry in reversed(entries):
            print(*entry)
        sys.stdout.flush()
        cursor = entries[0][:2] if entries else (-1, -1)
        while args.follow:
            time.sleep(args.interval)
            if _is_snapshot(db, args.target):
                # Nobody hosted the file when it was opened: a read-only
                # FileStorage sees it as it was.  Open it again once it
                # has grown (or once a host serves it).
                conn.close()
                db.close()
                db = _open(args)
                conn = db.open(tm)
                root = conn.root()
            tm.begin()
            fresh = list(root[args.name].newer(*cursor))
            for entry in reversed(fresh):
                print(*entry, flush=True)
            if fresh:
                cursor = fresh[0][:2]
            tm.abort()
    except KeyboardInterrupt:
        pass
    finally:
        conn.close()
        db.close()


@command(arg('action', choices=['put', 'get', 'size']), TARGET,
         arg('name', help='name of the DurableQueue'),
         arg('item', nargs='?', help='the string to put'),
         arg('--create', action='store_true',
             help='create the database if missing'))
def queue(args):
    """put ITEM into, get one item from (nothing printed and exit status 1
    if empty), or print the size of the DurableQueue NAME."""
    import queue as stdlib_queue

    from appendonly.facades import DurableQueue
    readonly = args.action == 'size'
    db = _open(args, read_only=readonly, create=args.create)
    try:
        try:
            q = DurableQueue(db, args.name, readonly=readonly)
        except KeyError as e:
            raise UsageError(e.args[0]) from None
        if args.action == 'put':
            if args.item is None:
                raise UsageError('queue put needs an ITEM')
            q.put(args.item)
        elif args.action == 'get':
            try:
                print(_show(q.get_nowait()))
            except stdlib_queue.Empty:
                return 1
        else:
            print(q.qsize())
    finally:
        db.close()


@command(TARGET, arg('--days', type=float, default=0,
                     help='keep history this many days old (0)'))
def pack(args):
    """Pack the database: remove old revisions and unreachable records
    (FileStorage compaction); prints the size before and after."""
    db = _open(args, read_only=False)
    try:
        before = os.path.getsize(args.target) \
            if os.path.isfile(args.target) else None
        start = time.monotonic()
        _progress(0, 1, 'packing')
        db.pack(days=args.days)
        _progress(1, 1, 'packing')
        after = os.path.getsize(args.target) \
            if os.path.isfile(args.target) else None
        size = f', {before} -> {after} bytes' if before is not None else ''
        print(f'packed in {time.monotonic() - start:.1f}s{size}')
    finally:
        db.close()


@command(TARGET)
def verify(args):
    """Walk every structure this package created and check its invariants
    (generations strictly ordered, archive chain intact, no layer longer
    than its limit, counters matching contents).  Exit status 1 if any
    problem is found."""
    from appendonly.verify import check
    try:
        db = _open(args)
    except UsageError as e:
        if 'cannot open' not in str(e):
            raise
        print(f'{e}')
        print('0 structures checked, 1 problems')
        return 1
    problems, found = [], []
    # A damaged record makes ZODB log a traceback before raising: the
    # problem is reported below, once, as a line.
    zodb_log = logging.getLogger('ZODB')
    level, zodb_log.level = zodb_log.level, logging.CRITICAL
    try:
        with db.transaction() as conn:
            found = list(_structures(conn.root()))
            for n, (path, obj) in enumerate(found, 1):
                try:
                    problems.extend(f'{path}: {p}' for p in check(obj))
                except Exception as e:
                    problems.append(f'{path}: cannot read a record: '
                                    f'{type(e).__name__} {e}'.rstrip())
                _progress(n, len(found), 'verifying')
    except Exception as e:     # a damaged database: report, don't crash
        problems.append(f'cannot read the database: {type(e).__name__}: '
                        f'{e}')
    finally:
        zodb_log.level = level
        db.close()
    for problem in problems:
        print(problem)
    print(f'{len(found)} structures checked, {len(problems)} problems')
    return 1 if problems else 0


@command(arg('path', help='the FileStorage file'),
         arg('--addr', help='serve it exclusively over ZEO on HOST:PORT or '
                            'a Unix socket path instead (for other '
                            'machines; local processes then use zeo://)'))
def serve(args):
    """Host a FileStorage path for the processes of this user, and keep
    hosting until stopped (SIGTERM or Ctrl-C hands the file over): the
    CLI, the façades and appendonly:// apps on the same path work
    meanwhile.  With --addr, serve it over ZEO instead (this package
    importable, so the server resolves conflicts; oids reserved durably),
    binding 127.0.0.1 unless told otherwise."""
    import signal

    from appendonly import share
    if not os.path.exists(args.path):
        raise UsageError(f'{args.path}: no such database')
    if args.addr:
        return _serve_zeo(args.path, args.addr)
    signal.signal(signal.SIGTERM, _interrupt)
    storage = share.open_storage(args.path)
    try:
        host = share.host_pid(args.path)
        if host != os.getpid():
            print(f'{args.path}: process {host} hosts it; taking over when '
                  f'it leaves', flush=True)
            while share.host_pid(args.path) != os.getpid():
                time.sleep(0.1)
        print(f'{args.path}: hosting (pid {os.getpid()}) on '
              f'{share.address(args.path)}', flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        storage.close()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _serve_zeo(path, addr):
    import tempfile

    from ZEO import runzeo
    config = ZEO_CONFIG.format(addr=addr, path=os.path.abspath(path))
    with tempfile.NamedTemporaryFile('w', suffix='.conf') as f:
        f.write(config)
        f.flush()
        runzeo.main(['-C', f.name])


#: runzeo's configuration for ``serve --addr``: the file behind
#: <reserveoids>, so no oid is handed out twice across restarts.
ZEO_CONFIG = """\
%import appendonly
<zeo>
  address {addr}
</zeo>
<reserveoids>
  <filestorage>
    path {path}
  </filestorage>
</reserveoids>
"""


@command()
def demo(args):
    """Run the demo: concurrent writers on an embedded FileStorage under
    var/, then count what was committed.  Other options (--dir, --writers,
    --pushes, --producers, --consumers) go to the demo."""
    from appendonly import demo as demo_module
    return demo_module.main(args.passed_on)


@command()
def bench(args):
    """Run the concurrent-append benchmark (benchmarks/bench_append.py in
    a source checkout); other options go to the script."""
    import runpy
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = os.path.join(here, 'benchmarks', 'bench_append.py')
    if not os.path.exists(script):
        raise UsageError('the benchmarks ship with the source checkout')
    sys.argv = [script] + args.passed_on
    runpy.run_path(script, run_name='__main__')


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def parser():
    main = _Parser(prog='appendonly', description=__doc__.split('\n')[0])
    subparsers = main.add_subparsers(dest='command', metavar='COMMAND')
    for name, (func, arguments) in COMMANDS.items():
        doc = func.__doc__
        sub = subparsers.add_parser(name, help=doc.split('\n')[0].rstrip('.'),
                                    description=doc)
        for args, kw in arguments:
            sub.add_argument(*args, **kw)
        sub.set_defaults(func=func)
    return main


#: Commands whose unknown options go to the program they run.
PASS_ON = ('demo', 'bench')


def main(argv=None):
    # ZEO 6.0 imports pkg_resources, which newer setuptools warn about on
    # every run: nothing a user of this command can act on.
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated',
                            category=UserWarning)
    try:
        args, extra = parser().parse_known_args(argv)
        if extra and args.command not in PASS_ON:
            raise UsageError(f'unrecognized arguments: {" ".join(extra)}')
        args.passed_on = extra
        if args.command is None:
            raise UsageError('a COMMAND is required (see appendonly --help)')
        return args.func(args) or 0
    except (UsageError, DatabaseUnavailableError) as e:
        print(f'appendonly: error: {e}', file=sys.stderr)
        return 2
    except BrokenPipeError:     # e.g. piped into head
        sys.stderr.close()
        return 0
