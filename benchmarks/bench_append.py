"""Concurrent append throughput, conflicts, losses and disk use on FileStorage.

K writer threads, each with its own connection and TransactionManager, make
N commits of one 100-character item each into a shared structure, committed
with ``tm.attempts()`` so that ConflictErrors are retried.  Competitors:

- ``AppendStack`` of this checkout, windows 10x100 (the default) and 3x5,
  with an ``Archive`` as pruner;
- ``AppendStack`` of appendonly 1.2 (from PyPI), same windows and pruner;
- a shared ``PersistentList`` (``append``);
- a shared ``OOBTree`` keyed per push (``tree[(writer, seq)] = item``);
- one private ``AppendStack`` per writer (no contention);
- the fair ceiling: each writer rewrites a private record of its own, as
  big as an ``AppendStack``'s own record, at every push.

The harness (``_harness.py``) runs every competitor once per round, each in
a fresh child process on a fresh FileStorage, and reports paired ratios to
the ceiling.  Both versions of ``appendonly`` share an import name, so each
child has only one of them on its path.

Usage::

    python benchmarks/bench_append.py              # K=4, N=500, R=5
    python benchmarks/bench_append.py --quick      # a few seconds
    python benchmarks/bench_append.py --json out.json

See ``benchmarks/README.rst`` for the workloads and caveats.
"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from persistent import Persistent

import _harness
from _harness import Option
from _harness import Target

DEFAULT_CACHE = os.path.join(_harness.ROOT, '.bench-cache')
OLD_VERSION = '1.2'
ITEM_LENGTH = 100
OLD = 'appendonly12'

#: key -> (implementation, kind, window).
SETUPS = {
    'stack-10x100': ('ours', 'stack', (10, 100)),
    'stack-3x5': ('ours', 'stack', (3, 5)),
    'stack12-10x100': (OLD, 'stack', (10, 100)),
    'stack12-3x5': (OLD, 'stack', (3, 5)),
    'plist': ('ours', 'plist', None),
    'oobtree': ('ours', 'oobtree', None),
    'stack-private': ('ours', 'private-stack', (10, 100)),
    'ceiling': ('ours', 'record', None),
}
STACK, OOBTREE, CEILING = 'stack-10x100', 'oobtree', 'ceiling'
LEGEND = [
    'conflicts: ConflictErrors that reached the retry loop; exhausted: '
    'commits abandoned after all attempts;',
    'lost, dup: committed items missing from the structure (stacks: stack + '
    'archive), or found twice (medians per round).']


class PrivateRecord(Persistent):
    """The fair ceiling's record: how many items its writer pushed, the
    last one, and padding up to the size of an AppendStack's record."""

    count = 0
    last = None
    padding = b''


#
# The workload, run in the child process
#
# A structure is three functions of a connection's root: ``setup`` creates
# it (committed before the clock starts), ``push`` adds one item, and
# ``check(root, committed)`` returns ``(checked, lost, duplicated)`` given
# the items each writer committed.

def _checker(collect):
    def check(root, committed):
        expected = [item for items in committed for item in items]
        return (len(expected),) + _harness.compare(expected, collect(root))
    return check


def _structure(kind, window, writers, record_bytes=0):
    if kind == 'stack':
        from appendonly import AppendStack
        from appendonly import Archive

        def setup(root):
            root['stack'] = AppendStack(*window)
            root['archive'] = Archive()

        def push(root, writer, seq, item):
            root['stack'].push(item, root['archive'].addLayer)

        def collect(root):
            return ([item for _, _, item in root['stack']] +
                    [item for _, _, item in root['archive']])

    elif kind == 'plist':
        from persistent.list import PersistentList

        def setup(root):
            root['list'] = PersistentList()

        def push(root, writer, seq, item):
            root['list'].append(item)

        def collect(root):
            return list(root['list'])

    elif kind == 'oobtree':
        from BTrees.OOBTree import OOBTree

        def setup(root):
            root['tree'] = OOBTree()

        def push(root, writer, seq, item):
            root['tree'][(writer, seq)] = item

        def collect(root):
            return list(root['tree'].values())

    elif kind == 'private-stack':
        from appendonly import AppendStack
        from appendonly import Archive

        def setup(root):
            for writer in range(writers):
                root[f'stack{writer}'] = AppendStack(*window)
                root[f'archive{writer}'] = Archive()

        def push(root, writer, seq, item):
            archive = root[f'archive{writer}']
            root[f'stack{writer}'].push(item, archive.addLayer)

        def collect(root):
            return [item for writer in range(writers)
                    for name in (f'stack{writer}', f'archive{writer}')
                    for _, _, item in root[name]]

    elif kind == 'record':
        padding = b'p' * max(0, record_bytes - _empty_record_bytes())

        def setup(root):
            for writer in range(writers):
                root[f'record{writer}'] = PrivateRecord()

        def push(root, writer, seq, item):
            record = root[f'record{writer}']
            record.count += 1
            record.last = item
            record.padding = padding

        def check(root, committed):
            lost = duplicated = 0
            for writer, items in enumerate(committed):
                record = root[f'record{writer}']
                lost += max(0, len(items) - record.count)
                duplicated += max(0, record.count - len(items))
                if items and record.last != items[-1]:
                    lost += 1
            return sum(map(len, committed)), lost, duplicated

        return setup, push, check

    else:
        raise ValueError(f'unknown workload kind {kind!r}')
    return setup, push, _checker(collect)


def _items(writer, pushes):
    """``pushes`` distinct random 100-character strings for one writer."""
    items = []
    for seq in range(pushes):
        prefix = f'{writer}.{seq}.'
        pad = os.urandom(ITEM_LENGTH // 2).hex()
        items.append((prefix + pad)[:ITEM_LENGTH])
    return items


def _writer(db, writer, items, push, attempts, start, out):
    """Commit one push per transaction; record what happened in ``out``."""
    import transaction
    from ZODB.POSException import ConflictError

    tm = transaction.TransactionManager()
    committed, surfaced, exhausted, errors = [], 0, 0, []
    try:
        conn = db.open(tm)
        start.wait()
    except BaseException:
        start.abort()       # don't leave the others waiting for us
        raise
    try:
        for seq, item in enumerate(items):
            tries = 0
            try:
                for attempt in tm.attempts(attempts):
                    tries += 1
                    with attempt:
                        push(conn.root(), writer, seq, item)
            except ConflictError:
                # Every attempt failed; each one surfaced a ConflictError.
                tm.abort()
                surfaced += tries
                exhausted += 1
            except Exception as e:  # e.g. 1.2's Archive refusing a layer
                tm.abort()
                surfaced += tries - 1
                errors.append(f'{type(e).__name__}: {e}')
            else:
                # attempts() retries only after a TransientError, which in
                # this workload means a ConflictError from commit.
                surfaced += tries - 1
                committed.append(item)
    finally:
        conn.close()
    out[writer] = {'committed': committed, 'surfaced': surfaced,
                   'exhausted': exhausted, 'errors': errors}


def run_writers(db, structure, writers, pushes, attempts, size=None):
    """Set up ``structure`` in ``db``, run the writers, check the result;
    a measurement (see ``_harness``).  With ``size``, a function that
    returns the storage's size in bytes, it has ``bytes_per_push`` too:
    how much the storage grew per commit, the setup not counted."""
    import transaction

    setup, push, check = structure
    db.setPoolSize(writers + 1)
    with db.transaction() as conn:
        setup(conn.root())
    size_before = size() if size else None
    items = [_items(writer, pushes) for writer in range(writers)]
    start = threading.Barrier(writers + 1)
    out = {}
    threads = [threading.Thread(target=_writer,
                                args=(db, w, items[w], push, attempts,
                                      start, out))
               for w in range(writers)]
    for thread in threads:
        thread.start()
    try:
        start.wait()
    except threading.BrokenBarrierError:
        pass                # a writer failed to start; reported below
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    if len(out) != writers:
        raise RuntimeError('a writer thread died; see stderr')
    size_after = size() if size else None

    committed = [out[w]['committed'] for w in range(writers)]
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    try:
        checked, lost, duplicated = check(conn.root(), committed)
    finally:
        tm.abort()
        conn.close()
    errors = [e for w in range(writers) for e in out[w]['errors']]
    commits = sum(map(len, committed))
    growth = {}
    if size:
        growth['bytes_per_push'] = (size_after - size_before) / max(commits, 1)
    return {
        **growth, 'ops': commits, 'seconds': wall,
        'checked': checked, 'lost': lost, 'duplicated': duplicated,
        'problems': [f'{len(errors)} errors, e.g. {e}'
                     for e in sorted(set(errors))[:1]],
        'surfaced': sum(out[w]['surfaced'] for w in range(writers)),
        'exhausted': sum(out[w]['exhausted'] for w in range(writers)),
    }


def _empty_record_bytes():
    from ZODB.serialize import ObjectWriter
    return len(ObjectWriter().serialize(PrivateRecord()))


def stack_record_bytes(pushes):
    """The mean size of an AppendStack 10x100's own record (its pickle, as
    ZODB writes it) over ``pushes`` pushes, one per commit, by one writer
    on a MappingStorage."""
    import ZODB
    from ZODB.serialize import ObjectWriter

    from appendonly import AppendStack
    from appendonly import Archive

    sizes = []
    original = ObjectWriter.serialize

    def serialize(self, obj):
        data = original(self, obj)
        if isinstance(obj, AppendStack):
            sizes.append(len(data))
        return data

    db = ZODB.DB(None)
    ObjectWriter.serialize = serialize
    try:
        with db.transaction() as conn:
            conn.root()['stack'] = AppendStack()
            conn.root()['archive'] = Archive()
        del sizes[:]
        for item in _items(0, pushes):
            with db.transaction() as conn:
                root = conn.root()
                root['stack'].push(item, root['archive'].addLayer)
    finally:
        ObjectWriter.serialize = original
        db.close()
    return round(statistics.mean(sizes))


#
# The parent: installs 1.2; the harness does the rest
#

def ensure_old_version(cache_dir):
    """Install appendonly 1.2 (no dependencies) into the cache; its path."""
    target = os.path.join(cache_dir, f'appendonly-{OLD_VERSION}')
    marker = os.path.join(
        target, f'appendonly-{OLD_VERSION}.dist-info', 'METADATA')
    if not os.path.exists(marker):
        os.makedirs(cache_dir, exist_ok=True)
        # Keep the cache out of git even before .gitignore lists it.
        ignore = os.path.join(cache_dir, '.gitignore')
        if not os.path.exists(ignore):
            with open(ignore, 'w') as f:
                f.write('# Created by benchmarks/bench_append.py\n*\n')
        shutil.rmtree(target, ignore_errors=True)
        proc = subprocess.run(
            [sys.executable, '-m', 'pip', 'install', '--quiet',
             '--disable-pip-version-check', '--no-deps',
             '--target', target, f'appendonly=={OLD_VERSION}'],
            capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout + proc.stderr)
            raise SystemExit(f'could not install appendonly {OLD_VERSION}')
    return target


def _shown(path):
    shown = os.path.relpath(path)
    return path if shown.startswith(os.pardir) else shown


class AppendBench(_harness.Bench):
    title = __doc__.split('\n\n')[0]
    competitors = [
        ('stack-10x100', 'appendonly AppendStack 10x100'),
        ('stack-3x5', 'appendonly AppendStack 3x5'),
        ('stack12-10x100', f'appendonly {OLD_VERSION} AppendStack 10x100'),
        ('stack12-3x5', f'appendonly {OLD_VERSION} AppendStack 3x5'),
        ('plist', 'PersistentList, shared'),
        ('oobtree', 'OOBTree, key per push'),
        ('stack-private', 'appendonly AppendStack 10x100 per writer'),
        ('ceiling', 'private record per writer (ceiling)'),
    ]
    baseline = CEILING
    workloads = [('append', '')]
    unit = 'commits/s'
    competitor_heading = 'workload'
    ratio_heading = 'x ceiling'
    options = [
        Option('-k', '--threads', default=4, help='writer threads (K)'),
        Option('-n', '--pushes', default=500, quick=25,
               help='commits per writer thread (N)'),
        Option('--attempts', default=10, help='tm.attempts() per commit'),
    ]
    rounds = (5, 1)

    def add_arguments(self, parser):
        parser.add_argument(
            '--cache-dir', default=DEFAULT_CACHE,
            help=f'where appendonly {OLD_VERSION} is installed (default: '
                 f'.bench-cache/ in the checkout)')

    def prepare(self, args):
        if args.only is None or {'stack12-10x100', 'stack12-3x5'} & set(
                args.only):
            ensure_old_version(args.cache_dir)
        return {}

    def _import_dir(self, args, key):
        if SETUPS[key][0] == OLD:
            return os.path.join(args.cache_dir, f'appendonly-{OLD_VERSION}')
        return _harness.ROOT

    def env(self, args, key):
        return dict(os.environ, PYTHONPATH=self._import_dir(args, key))

    def run(self, args, key, workloads, extra):
        from ZODB import DB
        from ZODB.FileStorage import FileStorage

        _harness.check_import(self._import_dir(args, key))
        impl, kind, window = SETUPS[key]
        info = {}
        if kind == 'record':
            info['record_bytes'] = stack_record_bytes(args.pushes)
        structure = _structure(kind, window, args.threads,
                               info.get('record_bytes', 0))
        workdir = tempfile.mkdtemp(prefix='appendonly-bench-',
                                   dir=args.tmpdir)
        try:
            path = os.path.join(workdir, 'Data.fs')
            db = DB(FileStorage(path))
            try:
                result = run_writers(db, structure, args.threads,
                                     args.pushes, args.attempts,
                                     size=lambda: os.path.getsize(path))
            finally:
                db.close()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return {'workloads': {'append': result}, 'info': info}

    def header(self, data):
        p = data['parameters']
        old = (f', {OLD_VERSION} from PyPI in '
               f'{_shown(os.path.join(p["cache_dir"], "appendonly-1.2"))}')
        lines = [
            f'appendonly append benchmark: K={p["threads"]} writer threads '
            f'x N={p["pushes"]} commits (one {ITEM_LENGTH}-char item each), '
            f'tm.attempts({p["attempts"]}) per commit',
            f'FileStorage (default fsync on commit) in a fresh temporary '
            f'directory per run; appendonly from this checkout{old}']
        record = data['info'].get(CEILING, {}).get('record_bytes')
        if record:
            lines.append(
                f'ceiling: each thread rewrites a private record of '
                f'{record:,} bytes pickled at every push, the mean size of '
                f'an AppendStack 10x100\'s own record')
        return lines

    def columns(self, data):
        def extra(name, spec):
            return lambda s, key: format(s['extra'].get(name, 0), spec)
        return [('conflicts', extra('surfaced', ',.0f')),
                ('exhausted', extra('exhausted', ',.0f')),
                ('lost', lambda s, key: f'{s["lost_median"]:,.0f}'),
                ('dup', lambda s, key: f'{s["duplicated_median"]:,.0f}'),
                ('bytes/push', lambda s, key: format(
                    s['extra']['bytes_per_push'], ',.0f')
                 if 'bytes_per_push' in s['extra'] else '-')]

    def notes(self, data):
        summary = data['summary']['append']
        lines = LEGEND + ['bytes/push: Data.fs growth / commits.']
        stack = summary.get(STACK)
        if stack and 'ratio' in stack:
            line = (f'AppendStack 10x100, K={data["parameters"]["threads"]} '
                    f'threads: {stack["ratio"]:.2f}x the ceiling '
                    f'({stack["ratio_min"]:.2f}..{stack["ratio_max"]:.2f})')
            oob = _harness.paired(data, 'append', STACK, 'append', OOBTREE)
            if oob:
                line += (f', {statistics.median(oob):.2f}x OOBTree keyed '
                         f'per push ({min(oob):.2f}..{max(oob):.2f}), '
                         f'paired medians')
            lines.append(line)
        ours, old = summary.get(STACK), summary.get('stack12-10x100')
        if ours and old and ours['extra'].get('bytes_per_push'):
            mine = ours['extra']['bytes_per_push']
            theirs = old['extra']['bytes_per_push']
            lines.append(f'bytes per push, AppendStack 10x100: '
                         f'{OLD_VERSION} {theirs:,.0f}, this checkout '
                         f'{mine:,.0f}: {theirs / mine:.1f}x smaller')
        return lines

    def targets(self, data):
        def no_conflicts(data):
            s = data['summary']['append'].get(STACK)
            worst = s['extra_max'].get('surfaced', 0) + \
                s['extra_max'].get('exhausted', 0) if s else None
            return worst == 0, (f'{worst} conflicts surfaced in the worst '
                                f'round')
        return [Target(
            f'AppendStack 10x100, {data["parameters"]["threads"]} threads '
            f'>= 1.0x OOBTree keyed per push with 0 conflicts surfaced',
            'append', STACK, OOBTREE, 1.0, condition=no_conflicts)]


if __name__ == '__main__':
    _harness.main(AppendBench())
