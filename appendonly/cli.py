"""The ``appendonly`` command (also ``python -m appendonly``).

One function per subcommand; its docstring is its ``--help``, in plain
text (no markup): a first sentence that fits on one line, which is its
summary in ``appendonly --help``, then what else a user needs.  TARGET is
anything :func:`appendonly.db.open_db` accepts: a FileStorage path, a
zodburi URI or a ZConfig file.  Commands never create a database unless
asked to (``--create``).

Errors are one line on stderr and exit status 2 (1: problems found by
``verify``, or nothing to get from a queue); ``APPENDONLY_DEBUG=1`` shows
the traceback instead.
"""
import argparse
import ast
import datetime
import inspect
import logging
import os
import sys
import time
import warnings

import transaction
from ZODB.FileStorage.FileStorage import FileStorageError

from appendonly import Accumulator
from appendonly import ActivityLog
from appendonly import AppendStack
from appendonly import Archive
from appendonly import share
from appendonly._keys import FACADES_KEY
from appendonly._keys import PYRAMID_KEY
from appendonly._keys import STORAGE_KEY
from appendonly.db import DatabaseUnavailableError
from appendonly.db import NotADatabaseError
from appendonly.db import check_path
from appendonly.db import open_db
from appendonly.facades import DurableDict
from appendonly.facades import DurableQueue

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


def _at_least(lowest, kind=int):
    """argparse type: a number no smaller than ``lowest``."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f'{text!r} is not a number') from None
        if value != value or value < lowest:     # NaN, or too small
            raise argparse.ArgumentTypeError(
                f'{text} is below {lowest}')
        return value
    parse.__name__ = kind.__name__
    return parse


TARGET = arg('target', help='database: path, zodburi URI or ZConfig file')
TIMEOUT = arg('--timeout', type=_at_least(1), default=5, metavar='SECONDS',
              help='wait this long for a zeo:// server (5)')
STORAGE = arg('--storage', action='store_true',
              help='NAME is a container of the Storage bridge '
                   '(appendonly.storage), not a DurableDict')
LITERAL = arg('--literal', action='store_true',
              help='KEY (and VALUE) are Python literals, as keys --literal '
                   'prints them: 7, (\'user\', 42), \'text\'')
KEY = arg('key', help='the key (see --literal)')
CREATE = arg('--create', action='store_true',
             help='create the database if missing')


class UsageError(Exception):
    """Bad arguments or a missing/unusable database: one line, exit 2."""


def _open(args, read_only=True, create=False):
    """Open TARGET; commands that only read open a file read-only (a URI
    or ZConfig file is opened as it says)."""
    from ZEO.Exceptions import ClientDisconnected
    timeout = getattr(args, 'timeout', None)
    target = _with_timeout(args.target, timeout)
    try:
        return open_db(target, create=create, read_only=(
            read_only and not create and '://' not in target))
    except ClientDisconnected:
        raise UsageError(f'{args.target}: no ZEO server answered within '
                         f'{timeout} s (--timeout)') from None
    except FileNotFoundError as e:
        hint = ' (--create makes a new one)' if hasattr(args, 'create') \
            else ''
        raise UsageError(f'{e}{hint}') from None
    except (NotADatabaseError, ValueError, DatabaseUnavailableError) as e:
        raise UsageError(str(e)) from None
    except FileStorageError as e:     # a damaged Data.fs
        raise UsageError(f'{target}: cannot open: {type(e).__name__}: {e}') \
            from None


def _with_timeout(target, timeout):
    """A zeo:// URI waits ``timeout`` seconds for its server unless it
    says otherwise (ClientStorage's own default is 30)."""
    if timeout is None or not target.startswith('zeo://') \
            or 'wait_timeout=' in target:
        return target
    return f'{target}{"&" if "?" in target else "?"}wait_timeout={timeout}'


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
    of the root, the façades' and the Pyramid add-on's containers, and
    the Storage bridge's."""
    for key in sorted(root.keys(), key=repr):
        value = root[key]
        if isinstance(value, (AppendStack, Archive, Accumulator,
                              ActivityLog)):
            yield repr(key), value
    for root_key, where in ((FACADES_KEY, ''), (PYRAMID_KEY, 'pyramid ')):
        containers = root.get(root_key)
        if containers is not None:
            for (kind, name), data in containers.items():
                yield f'{where}{kind} {name!r}', data
    containers = root.get(STORAGE_KEY)
    if containers is not None:
        for name, tree in containers.items():
            yield f'storage container {name!r}', tree


@command(TARGET, TIMEOUT)
def info(args):
    """Show what is in a database.

    Lists the structures and containers this package created (AppendStacks
    and Archives at the top of the root, DurableDicts and DurableQueues,
    the Pyramid add-on's logs, queues and dicts, the Storage bridge's
    containers) with their sizes, then the size of the storage's file and
    the time of the last transaction.
    """
    db = _open(args)
    try:
        last = db.lastTransaction()
        stamp = datetime.datetime.fromtimestamp(
            _tid_seconds(last), tz=datetime.timezone.utc)
        print(f'database: {args.target}')
        path = _storage_file(args.target)
        if path is not None:
            print(f'file: {path}')
            print(f'file size: {os.path.getsize(path)} bytes')
        else:
            print(f'storage size: {db.getSize()} bytes')
        print(f'last transaction: {stamp:%Y-%m-%d %H:%M:%S} UTC '
              f'({last.hex()})')
        with db.transaction() as conn:
            for path, obj in _structures(conn.root()):
                print(f'{path}: {_describe(obj)}')
    finally:
        db.close()


def _storage_file(target):
    """The FileStorage file behind TARGET (a path, or a ZConfig file whose
    storage is a <filestorage> or <appendonlyfile>, possibly inside a
    <reserveoids>), or None."""
    if '://' in target:
        return None
    try:
        kind = check_path(target)
    except (NotADatabaseError, FileNotFoundError):
        return None     # for open_db to report
    if kind == 'filestorage':
        return target
    from appendonly.config import read
    storage = read(target).database[0].config.storage.config
    storage = getattr(storage, 'base', storage)
    storage = getattr(storage, 'config', storage)
    path = getattr(storage, 'path', None)
    return path if isinstance(path, str) and os.path.isfile(path) else None


def _is_snapshot(db, target):
    """Is ``db`` a read-only FileStorage opened alone (no host then) on
    ``target``, which has grown or gained a host since?"""
    from ZODB.FileStorage import FileStorage

    storage = db.storage
    if not (isinstance(storage, FileStorage) and storage.isReadOnly()):
        return False
    return (os.path.getsize(target) != storage.getSize()
            or share.host_pid(target) is not None)


def _tid_seconds(tid):
    from persistent.TimeStamp import TimeStamp
    return TimeStamp(tid).timeTime()


def _describe(obj):
    try:
        if isinstance(obj, AppendStack):
            return (f'AppendStack {obj._max_layers}x{obj._max_length}, '
                    f'{len(obj)} items')
        if isinstance(obj, Archive):
            return f'Archive, newest generation {obj._generation}'
        if isinstance(obj, Accumulator):
            return f'Accumulator, {len(obj)} items'
        if isinstance(obj, ActivityLog):
            return (f'ActivityLog {obj.stack._max_layers}x'
                    f'{obj.stack._max_length}, {len(obj.stack)} recent '
                    f'items, archive up to generation '
                    f'{obj.archive._generation}')
        if hasattr(obj, 'qsize'):
            return f'DurableQueue data, {obj.qsize()} items'
        if type(obj).__name__ == 'OOBTree':
            return f'{len(obj)} items'
        return f'{type(obj).__name__}, {len(obj)} items'
    except Exception as e:      # a record that does not load
        return f'cannot read it: {_explain(e)}'


def _find(db, kind, name):
    """Whether the façade ``kind`` NAME is only in the Pyramid add-on's
    container (then it is used embedded, in a transaction of our own);
    else it is the façades' own, opened by name.  The façades' container
    wins if both have NAME."""
    with db.transaction() as conn:
        root = conn.root()
        if (kind, name) in root.get(FACADES_KEY, ()) \
                or (kind, name) not in root.get(PYRAMID_KEY, ()):
            return False
        return True


def _facade(args, cls, readonly, func):
    """Run ``func(facade)`` on the DurableDict or DurableQueue NAME of
    TARGET: the façades' own, or else the Pyramid add-on's (changed in a
    transaction committed here, retried on conflicts)."""
    db = _open(args, read_only=readonly,
               create=getattr(args, 'create', False))
    try:
        if not _find(db, cls.kind, args.name):
            try:
                facade = cls(db, args.name, readonly=readonly)
            except KeyError as e:
                raise UsageError(e.args[0]) from None
            try:
                return func(facade)
            finally:
                facade.close()
        tm = transaction.TransactionManager()
        conn = db.open(tm)
        try:
            for attempt in tm.attempts(10):
                with attempt:
                    data = conn.root()[PYRAMID_KEY][(cls.kind, args.name)]
                    result = func(cls(data, args.name))
            return result
        finally:
            conn.close()
    finally:
        db.close()


def _literal(text, what):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError,
            RecursionError):
        raise UsageError(f'{what} {text!r} is not a Python literal '
                         f'(strings need quotes: \'text\')') from None


def _lookup(args, mapping, text):
    """The key of ``mapping`` that KEY means: with --literal, the Python
    literal it spells; else the string, unless the dict has no such
    string key but has the literal (so whatever ``keys`` prints, ``get``
    finds)."""
    if args.literal:
        return _literal(text, 'KEY')
    if text in mapping:
        return text
    try:
        literal = ast.literal_eval(text)
        if not isinstance(literal, str) and literal in mapping:
            return literal
    except Exception:       # not a literal, or not a possible key
        pass
    return text


def _container(args, readonly, op):
    """Run ``op(storage)`` on the Storage bridge of TARGET."""
    from appendonly.storage import ContainerNotFoundError
    from appendonly.storage import StorageNotFoundError
    from appendonly.storage import ZODBStorage
    if args.literal:
        raise UsageError('--literal is for DurableDict keys: the Storage '
                         'bridge\'s keys and values are strings')
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


def _no_key(args):
    return UsageError(f'no key {args.key!r} in {args.name!r}')


@command(TARGET, arg('name', help='name of the DurableDict (or container)'),
         KEY, STORAGE, LITERAL, TIMEOUT)
def get(args):
    """Print the value stored for KEY in a DurableDict.

    NAME is the DurableDict (with --storage: the Storage container).  A
    string value is printed as it is, anything else as its Python repr
    (with --literal, every value as its repr).  KEY is a string, or what
    keys printed for a key that is not one: 7 finds the integer 7 when
    there is no string '7'; --literal says KEY is a Python literal.
    """
    if args.storage:
        def get_item(storage):
            try:
                return storage.get_container_item(args.name, args.key)
            except KeyError:
                raise _no_key(args) from None
        print(_container(args, True, get_item))
        return

    def get_value(d):
        try:
            value = d[_lookup(args, d, args.key)]
        except KeyError:
            raise _no_key(args) from None
        return repr(value) if args.literal else _show(value)
    print(_facade(args, DurableDict, True, get_value))


@command(TARGET, arg('name', help='name of the DurableDict (or container)'),
         KEY, arg('value', help='the value to store'), STORAGE, LITERAL,
         CREATE, TIMEOUT)
def set_(args):
    """Store VALUE for KEY in a DurableDict, creating it if missing.

    NAME is the DurableDict (with --storage: the Storage container).  KEY
    and VALUE are strings; with --literal, Python literals (7, 'text',
    ('user', 42), [1, 2]).
    """
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
    key = _literal(args.key, 'KEY') if args.literal else args.key
    value = _literal(args.value, 'VALUE') if args.literal else args.value

    def set_value(d):
        d[key] = value
    _facade(args, DurableDict, False, set_value)


@command(TARGET, arg('name', help='name of the DurableDict (or container)'),
         KEY, STORAGE, LITERAL, TIMEOUT)
def delete(args):
    """Remove KEY from a DurableDict.

    NAME is the DurableDict (with --storage: the Storage container).  KEY
    is read as get reads it.
    """
    if args.storage:
        def delete_item(storage):
            if args.key not in set(storage.get_container_keys(args.name)):
                raise _no_key(args)
            storage.delete_container_item(args.name, args.key)
        _container(args, False, delete_item)
        return

    def delete_key(d):
        try:
            del d[_lookup(args, d, args.key)]
        except KeyError:
            raise _no_key(args) from None
    _facade(args, DurableDict, False, delete_key)


@command(TARGET, arg('name', help='name of the DurableDict (or container)'),
         STORAGE, arg('--literal', action='store_true',
                      help='print every key as a Python literal'),
         TIMEOUT)
def keys(args):
    """List the keys of a DurableDict, in insertion order.

    NAME is the DurableDict (with --storage: the Storage container, whose
    keys come in key order).  A string key is printed as it is, any other
    key as its Python repr, which get, set and delete accept back; with
    --literal every key is printed as a Python literal ('7' and 7 then
    differ).
    """
    if args.storage:
        for key in _container(args, True, lambda storage: list(
                storage.get_container_keys(args.name))):
            print(key)
        return
    shown = _facade(args, DurableDict, True, lambda d: [
        repr(key) if args.literal else _show(key) for key in d.keys()])
    for line in shown:
        print(line)
    if len(set(shown)) < len(shown):
        print('appendonly: some keys print alike (a string and another '
              'key); keys --literal tells them apart', file=sys.stderr)


def _show(value):
    return value if isinstance(value, str) else repr(value)


@command(TARGET, arg('name', help='root key of the AppendStack, or name of '
                                  'a Pyramid activity log'),
         arg('-n', type=_at_least(0), default=10,
             help='entries to show (10)'),
         arg('--archive', help='root key of its Archive, to reach back'),
         arg('--follow', action='store_true',
             help='keep printing new entries as they commit'),
         arg('--interval', type=_at_least(0.01, float), default=0.5,
             help=argparse.SUPPRESS), TIMEOUT)
def tail(args):
    """Print the newest entries of an AppendStack or activity log.

    NAME is the root key of an AppendStack (its Archive, given by
    --archive, is reached into for older entries) or of an ActivityLog, or
    the name of a Pyramid add-on's activity log.  Entries are printed
    oldest first, one per line, as GENERATION INDEX ITEM.  With --follow,
    new entries are printed as they commit, until Ctrl-C.
    """
    db = _open(args)
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    try:
        stack, archive = _log(conn.root(), args)
        entries = []
        for entry in _chain(stack, archive):
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
            tm.begin()
            stack, archive = _log(conn.root(), args)
            fresh = list(stack.newer(*cursor))
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


def _log(root, args):
    """(stack, archive or None) that NAME (and --archive) designate."""
    found = root.get(args.name)
    if found is None and not args.archive:
        found = root.get(PYRAMID_KEY, {}).get(('log', args.name))
    if isinstance(found, ActivityLog):
        return found.stack, found.archive
    if not isinstance(found, AppendStack):
        raise UsageError(f'root[{args.name!r}] is not an AppendStack or '
                         f'ActivityLog, nor is there a Pyramid activity '
                         f'log {args.name!r}')
    archive = None
    if args.archive:
        archive = root.get(args.archive)
        if not isinstance(archive, Archive):
            raise UsageError(f'root[{args.archive!r}] is not an Archive')
    return found, archive


def _chain(stack, archive):
    yield from stack
    if archive is not None:
        yield from archive


@command(arg('action', choices=['put', 'get', 'size']), TARGET,
         arg('name', help='name of the DurableQueue'),
         arg('item', nargs='?', help='the string to put'), CREATE, TIMEOUT)
def queue(args):
    """Put an item into a DurableQueue, get one, or print its size.

    NAME is a DurableQueue, or a Pyramid add-on's queue.  put ITEM adds
    the string ITEM; get takes the oldest item and prints it (exit status
    1, nothing printed, if the queue is empty); size prints how many items
    it holds.
    """
    import queue as stdlib_queue
    readonly = args.action == 'size'
    if args.action == 'put' and args.item is None:
        raise UsageError('queue put needs an ITEM')
    if args.action != 'put' and args.item is not None:
        raise UsageError(f'queue {args.action} takes no ITEM')

    def act(q):
        if args.action == 'put':
            q.put(args.item)
        elif args.action == 'get':
            try:
                return _show(q.get_nowait())
            except stdlib_queue.Empty:
                return None
        else:
            return str(q.qsize())
        return ''
    shown = _facade(args, DurableQueue, readonly, act)
    if shown is None:
        return 1
    if shown:
        print(shown)


@command(TARGET, arg('--days', type=_at_least(0, float), default=0,
                     help='keep history this many days old (0)'), TIMEOUT)
def pack(args):
    """Pack a database, removing old revisions and unreachable records.

    This is FileStorage compaction (or the pack of whatever storage
    TARGET names).  Prints the size before and after.
    """
    db = _open(args, read_only=False)
    try:
        path = _storage_file(args.target)
        before = os.path.getsize(path) if path else None
        start = time.monotonic()
        _progress(0, 1, 'packing')
        db.pack(days=args.days)
        _progress(1, 1, 'packing')
        size = f', {before} -> {os.path.getsize(path)} bytes' \
            if path else ''
        print(f'packed in {time.monotonic() - start:.1f}s{size}')
    finally:
        db.close()


@command(TARGET, TIMEOUT)
def verify(args):
    """Check every structure this package created, and the file itself.

    Checks the invariants of each structure (generations strictly
    ordered, archive chain intact, no layer longer than its limit,
    counters matching contents), that every record loads, and that a
    FileStorage file does not end inside a transaction.  Exit status 1
    if any problem is found.
    """
    from appendonly.verify import check
    from appendonly.verify import truncated_tail
    problems, found = [], []
    path = None if '://' in args.target else _storage_file(args.target)
    if path is not None:
        problem = _settled(path, truncated_tail)
        if problem:
            problems.append(f'{path}: {problem}')
    try:
        db = _open(args)
    except UsageError as e:
        if 'cannot open' not in str(e):
            raise
        problems.append(str(e))
        db = None
    except Exception as e:      # ZODB.DB() could not read the root
        problems.append(f'cannot open the database: {_explain(e)}')
        db = None
    # A damaged record makes ZODB log a traceback before raising: the
    # problem is reported below, once, as a line.
    zodb_log = logging.getLogger('ZODB')
    level, zodb_log.level = zodb_log.level, logging.CRITICAL
    try:
        if db is not None:
            with db.transaction() as conn:
                found = list(_structures(conn.root()))
                for n, (where, obj) in enumerate(found, 1):
                    try:
                        problems.extend(f'{where}: {p}' for p in check(obj))
                    except Exception as e:
                        problems.append(f'{where}: cannot read a record: '
                                        f'{_explain(e)}')
                    _progress(n, len(found), 'verifying')
    except Exception as e:     # a damaged database: report, don't crash
        problems.append(f'cannot read the database: {_explain(e)}')
    finally:
        zodb_log.level = level
        if db is not None:
            db.close()
    for problem in problems:
        print(problem)
    print(f'{len(found)} structures checked, {len(problems)} problems')
    return 1 if problems else 0


def _settled(path, check):
    """``check(path)``, asked again while a host serves the file: its
    tail may be a commit being written."""
    problem = check(path)
    for _ in range(20):
        if problem is None or share.host_pid(path) is None:
            break
        time.sleep(0.1)
        problem = check(path)
    return problem


@command(arg('path', help='the FileStorage file'), CREATE,
         arg('--addr', help='serve it over ZEO instead, on HOST:PORT or a '
                            'Unix socket path: for other machines (local '
                            'processes then use a zeo:// URI too)'))
def serve(args):
    """Host a FileStorage file for this user's processes until stopped.

    While it runs, the CLI, the façades and appendonly:// apps on the same
    path work through it; SIGTERM or Ctrl-C hands the file over to
    another process that has it open.  With --addr, serve it over ZEO
    instead (runzeo, with this package importable so the server resolves
    conflicts, and oids reserved durably), on 127.0.0.1 unless told
    otherwise.  Nothing is created next to a file that is not a database.
    """
    import signal

    try:
        kind = check_path(args.path, create=args.create)
    except FileNotFoundError as e:
        raise UsageError(f'{e} (--create makes a new one)') from None
    except NotADatabaseError as e:
        raise UsageError(str(e)) from None
    if kind != 'filestorage':
        raise UsageError(f'{args.path}: serve takes a FileStorage file, '
                         f'not a ZConfig file (runzeo serves those)')
    if args.addr:
        if not os.path.exists(args.path):
            open_db(args.path, create=True, shared=False).close()
        return _serve_zeo(args.path, args.addr)
    if not share.can_share():
        raise UsageError('this platform cannot share a path (it needs '
                         'Unix sockets and flock); use --addr')
    signal.signal(signal.SIGTERM, _interrupt)
    db = open_db(args.path, create=args.create)
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
        db.close()


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
    """Run the demo: concurrent writers on an embedded FileStorage.

    The writers push to a stack, producers and consumers share an
    accumulator, all on var/demo.fs; then it counts what was committed.
    Options after demo go to the demo: appendonly demo -- --help lists
    them (--dir, --writers, --pushes, --producers, --consumers).
    """
    from appendonly import demo as demo_module
    return demo_module.main(args.passed_on, prog='appendonly demo')


@command()
def bench(args):
    """Run the concurrent-append benchmark from a source checkout.

    It is benchmarks/bench_append.py, which prints its rows as they
    finish (and, on a terminal, a progress line).  Options after bench
    go to it: appendonly bench --quick runs a short version, and
    appendonly bench -- --help lists its options.
    """
    import runpy
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = os.path.join(here, 'benchmarks', 'bench_append.py')
    if not os.path.exists(script):
        raise UsageError('the benchmarks ship with the source checkout, '
                         'not with the installed package')
    sys.argv = ['appendonly bench'] + args.passed_on
    sys.path.insert(0, os.path.dirname(script))     # its _harness
    try:
        runpy.run_path(script, run_name='__main__')
    except SystemExit as e:     # its argparse: --help, or bad options
        return e.code


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _summary(doc):
    return doc.strip().split('\n\n')[0].replace('\n', ' ')


def parser():
    main = _Parser(
        prog='appendonly',
        description='Inspect and maintain appendonly databases: '
                    'FileStorage paths, zodburi URIs or ZConfig files.',
        epilog='appendonly COMMAND --help describes a command.  Errors '
               'are one line and exit status 2.')
    main.add_argument('--version', action='version',
                      version=f'appendonly {_version()}')
    subparsers = main.add_subparsers(dest='command', metavar='COMMAND')
    for name, (func, arguments) in COMMANDS.items():
        doc = inspect.cleandoc(func.__doc__)
        sub = subparsers.add_parser(
            name, help=_summary(doc), description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter)
        for args, kw in arguments:
            sub.add_argument(*args, **kw)
        sub.set_defaults(func=func)
    return main


def _version():
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version
    try:
        return version('appendonly')
    except PackageNotFoundError:
        return 'unknown (not installed)'


#: Commands whose options (after the command's name) go to the program
#: they run; ``--`` before them is dropped.
PASS_ON = ('demo', 'bench')


def _split_pass_on(argv):
    """``(argv for our parser, arguments passed on)``."""
    for i, word in enumerate(argv):
        if word in PASS_ON:
            rest = argv[i + 1:]
            if rest[:1] in (['-h'], ['--help']):
                return argv, []
            if rest[:1] == ['--']:
                rest = rest[1:]
            return argv[:i + 1], rest
        if not word.startswith('-'):
            break
    return argv, []


def _explain(e):
    """One line for an error this command does not expect."""
    from ZEO.Exceptions import ClientDisconnected
    from ZODB.POSException import StateLoadError
    if isinstance(e, ClientDisconnected):
        return ('cannot reach the ZEO server (not connected within '
                '--timeout seconds)')
    cause = e.__cause__ or e.__context__
    if isinstance(e, StateLoadError) and cause is not None:
        return f'a record does not load: {type(cause).__name__}: {cause}'
    text = str(e).splitlines()[0] if str(e) else ''
    return f'{type(e).__name__}: {text}'.rstrip(': ')


def main(argv=None):
    # ZEO 6.0 imports pkg_resources, which newer setuptools warn about on
    # every run: nothing a user of this command can act on.
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated',
                            category=UserWarning)
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        ours, passed_on = _split_pass_on(argv)
        args = parser().parse_args(ours)
        args.passed_on = passed_on
        if args.command is None:
            raise UsageError('a COMMAND is required (see appendonly --help)')
        return args.func(args) or 0
    except UsageError as e:
        print(f'appendonly: error: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:     # e.g. piped into head
        sys.stderr.close()
        return 0
    except Exception as e:
        if os.environ.get('APPENDONLY_DEBUG'):
            raise
        print(f'appendonly: error: {_explain(e)}', file=sys.stderr)
        return 2
