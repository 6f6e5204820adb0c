"""Concurrent append throughput, conflicts, losses and disk use on FileStorage.

K writer threads, each with its own connection and TransactionManager, make
N commits of one 100-character item each into a shared structure, committed
with ``tm.attempts()`` so that ConflictErrors are retried.  Workloads:

- ``AppendStack`` of this checkout, windows 10x100 (the default) and 3x5,
  with an ``Archive`` as pruner;
- ``AppendStack`` of appendonly 1.2 (from PyPI), same windows and pruner;
- a shared ``PersistentList`` (``append``);
- a shared ``OOBTree`` keyed per writer (``tree[(writer, seq)] = item``);
- the no-contention ceiling: one private ``PersistentList`` per writer.

Every run happens in a fresh child process (this script, re-invoked with
``--child``) on a fresh FileStorage in a temporary directory, so both
versions of ``appendonly``, which share an import name, run the same code.
The runs are repeated R times, round-robin, and the table shows medians.

Usage::

    python benchmarks/bench_append.py              # K=4, N=500, R=5
    python benchmarks/bench_append.py --quick      # a few seconds
    python benchmarks/bench_append.py --json out.json

See ``benchmarks/README.rst`` for the workloads and caveats.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from importlib import metadata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_CACHE = os.path.join(ROOT, '.bench-cache')
OLD_VERSION = '1.2'
ITEM_LENGTH = 100

# (key, implementation, kind, window, label), in table order.  The ceiling
# must stay in the list: every ratio is taken against it.
WORKLOADS = [
    ('stack-10x100', 'ours', 'stack', (10, 100),
     'appendonly AppendStack 10x100'),
    ('stack-3x5', 'ours', 'stack', (3, 5),
     'appendonly AppendStack 3x5'),
    ('stack12-10x100', 'appendonly12', 'stack', (10, 100),
     f'appendonly {OLD_VERSION} AppendStack 10x100'),
    ('stack12-3x5', 'appendonly12', 'stack', (3, 5),
     f'appendonly {OLD_VERSION} AppendStack 3x5'),
    ('plist', 'ours', 'plist', None, 'PersistentList, shared'),
    ('oobtree', 'ours', 'oobtree', None, 'OOBTree, key per writer'),
    ('stack-private', 'ours', 'private-stack', (10, 100),
     'appendonly AppendStack 10x100 per writer'),
    ('ceiling', 'ours', 'private', None,
     'PersistentList per writer (ceiling)'),
]
CEILING = 'ceiling'


#
# The workload, run in the child process
#
# A structure is three functions of a connection's root: ``setup`` creates
# it (committed before the clock starts), ``push`` adds one item, and
# ``collect`` returns every item it holds afterwards.

def _structure(kind, window, writers):
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

    elif kind == 'private':
        from persistent.list import PersistentList

        def setup(root):
            for writer in range(writers):
                root[f'list{writer}'] = PersistentList()

        def push(root, writer, seq, item):
            root[f'list{writer}'].append(item)

        def collect(root):
            return [item for writer in range(writers)
                    for item in root[f'list{writer}']]

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

    else:
        raise ValueError(f'unknown workload kind {kind!r}')
    return setup, push, collect


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


def run_workload(kind, window, writers, pushes, attempts, tmpdir=None):
    """One run of one workload on a fresh FileStorage; returns a dict."""
    import transaction
    from ZODB import DB
    from ZODB.FileStorage import FileStorage

    setup, push, collect = _structure(kind, window, writers)
    workdir = tempfile.mkdtemp(prefix='appendonly-bench-', dir=tmpdir)
    try:
        path = os.path.join(workdir, 'Data.fs')
        db = DB(FileStorage(path), pool_size=writers + 1)
        try:
            with db.transaction() as conn:
                setup(conn.root())
            size_before = os.path.getsize(path)

            items = [_items(writer, pushes) for writer in range(writers)]
            start = threading.Barrier(writers + 1)
            out = {}
            threads = [
                threading.Thread(target=_writer,
                                 args=(db, w, items[w], push, attempts,
                                       start, out))
                for w in range(writers)]
            for thread in threads:
                thread.start()
            try:
                start.wait()
            except threading.BrokenBarrierError:
                pass        # a writer failed to start; reported below
            began = time.perf_counter()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - began
            if len(out) != writers:
                raise RuntimeError('a writer thread died; see stderr')

            size_after = os.path.getsize(path)
            tm = transaction.TransactionManager()
            conn = db.open(tm)
            try:
                found = collect(conn.root())
            finally:
                tm.abort()
                conn.close()
        finally:
            db.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    committed = [item for w in range(writers) for item in out[w]['committed']]
    errors = [e for w in range(writers) for e in out[w]['errors']]
    found_set, committed_set = set(found), set(committed)
    growth = size_after - size_before
    return {
        'kind': kind,
        'window': list(window) if window else None,
        'writers': writers,
        'pushes_per_writer': pushes,
        'attempts': attempts,
        'wall_s': wall,
        'commits': len(committed),
        'commits_per_s': len(committed) / wall,
        'surfaced': sum(out[w]['surfaced'] for w in range(writers)),
        'exhausted': sum(out[w]['exhausted'] for w in range(writers)),
        'errors': len(errors),
        'error_samples': sorted(set(errors))[:3],
        'lost': len(committed_set - found_set),
        'duplicated': len(found) - len(found_set),
        'unknown': len(found_set - committed_set),
        'bytes_growth': growth,
        'bytes_per_push': growth / len(committed) if committed else None,
    }


def child_main(args):
    """Run one workload and print its result as one JSON line."""
    import appendonly
    where = os.path.realpath(appendonly.__file__)
    expected = os.path.realpath(args.import_dir) + os.sep
    assert where.startswith(expected), (
        f'appendonly imported from {where}, expected under {expected}')
    window = _window(args.window) if args.window else None
    result = run_workload(args.workload, window,
                          args.threads, args.pushes, args.attempts,
                          args.tmpdir)
    result['appendonly_file'] = where
    print(json.dumps(result))


#
# The parent: installs 1.2, runs the children round-robin, prints the table
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


def run_child(args, impl, kind, window, import_dir):
    cmd = [sys.executable, os.path.abspath(__file__),
           '--child', impl, '--workload', kind,
           '--import-dir', import_dir,
           '-k', str(args.threads), '-n', str(args.pushes),
           '--attempts', str(args.attempts)]
    if window:
        cmd += ['--window', '%dx%d' % window]
    if args.tmpdir:
        cmd += ['--tmpdir', args.tmpdir]
    env = dict(os.environ, PYTHONPATH=import_dir)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f'child {impl} {kind} {window} failed')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(runs, keys):
    """Medians per workload, and each throughput relative to the ceiling."""
    summary = {}
    for key in keys:
        mine = runs[key]
        rates = [r['commits_per_s'] for r in mine]
        summary[key] = {
            'commits_per_s': _median(rates),
            'min_commits_per_s': min(rates),
            'max_commits_per_s': max(rates),
            **{name: _median([r[name] for r in mine])
               for name in ('surfaced', 'exhausted', 'errors', 'lost',
                            'duplicated', 'bytes_per_push')},
            **{f'max_{name}': max(r[name] for r in mine)
               for name in ('surfaced', 'exhausted', 'errors', 'lost',
                            'duplicated', 'unknown')},
        }
    ceiling = summary[CEILING]['commits_per_s']
    for values in summary.values():
        values['ratio_to_ceiling'] = values['commits_per_s'] / ceiling
    return summary


def _fmt(value, spec):
    return '-' if value is None else format(value, spec)


def format_table(summary, keys, labels):
    header = ['workload', 'commits/s', 'min..max', 'x ceiling',
              'conflicts', 'exhausted', 'lost', 'bytes/push']
    rows = []
    for key in keys:
        s = summary[key]
        rows.append([
            labels[key],
            _fmt(s['commits_per_s'], '.0f'),
            '%.0f..%.0f' % (s['min_commits_per_s'], s['max_commits_per_s']),
            _fmt(s['ratio_to_ceiling'], '.2f'),
            _fmt(s['surfaced'], '.0f'),
            _fmt(s['exhausted'], '.0f'),
            _fmt(s['lost'], '.0f'),
            _fmt(s['bytes_per_push'], ',.0f'),
        ])
    widths = [max(len(row[i]) for row in [header] + rows)
              for i in range(len(header))]

    def line(row):
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:],
                                                           widths[1:])]
        return '  '.join(cells).rstrip()

    rule = '  '.join('-' * w for w in widths)
    return '\n'.join([line(header), rule] + [line(r) for r in rows])


def _where(old_dir):
    if old_dir is None:
        return ''
    shown = os.path.relpath(old_dir)
    if shown.startswith(os.pardir):
        shown = old_dir
    return f', {OLD_VERSION} from PyPI in {shown}'


def _versions():
    names = ('ZODB', 'persistent', 'BTrees', 'transaction')
    return {name: metadata.version(name) for name in names}


def _window(text):
    layers, length = text.lower().split('x')
    return int(layers), int(length)


def parent_main(args):
    selected = [w for w in WORKLOADS
                if args.only is None or w[0] in args.only or w[0] == CEILING]
    keys = [w[0] for w in selected]
    labels = {w[0]: w[4] for w in selected}
    old_dir = None
    if any(w[1] == 'appendonly12' for w in selected):
        old_dir = ensure_old_version(args.cache_dir)
    import_dirs = {'ours': ROOT, 'appendonly12': old_dir}

    load_before = os.getloadavg()
    runs = {key: [] for key in keys}
    began = time.perf_counter()
    for rep in range(args.repeat):
        # Round-robin, starting one workload later each round, so that no
        # workload always runs right after the same (disk-heavy) one.
        shift = rep % len(selected)
        for key, impl, kind, window, label in (selected[shift:] +
                                               selected[:shift]):
            # Write back what the previous run left dirty, off the clock.
            os.sync()
            result = run_child(args, impl, kind, window, import_dirs[impl])
            result['repetition'] = rep
            runs[key].append(result)
            if args.verbose:
                print(f'  [{rep + 1}/{args.repeat}] {label}: '
                      f'{result["commits_per_s"]:.0f} commits/s, '
                      f'{result["surfaced"]} conflicts, '
                      f'{result["lost"]} lost', file=sys.stderr)
    elapsed = time.perf_counter() - began
    load_after = os.getloadavg()

    summary = summarize(runs, keys)
    versions = _versions()
    print(f'appendonly append benchmark: K={args.threads} writer threads x '
          f'N={args.pushes} commits (one {ITEM_LENGTH}-char item each), '
          f'R={args.repeat} repetitions, round-robin; medians shown')
    print(f'FileStorage (default fsync on commit) in a fresh temporary '
          f'directory per run; tm.attempts({args.attempts}) per commit;')
    print(f'each run in a fresh child process; appendonly from this '
          f'checkout{_where(old_dir)}')
    print(f'Python {platform.python_version()} '
          f'({platform.python_implementation()}), '
          + ', '.join(f'{n} {v}' for n, v in versions.items())
          + f'; {os.cpu_count()} CPUs')
    print()
    print(format_table(summary, keys, labels))
    print()
    print('conflicts: ConflictErrors that reached the retry loop; '
          'exhausted: commits abandoned after all attempts;')
    print('lost: committed items missing from the structure (stacks: '
          'stack + archive); bytes/push: Data.fs growth / commits.')
    for key in keys:
        s = summary[key]
        if (s['max_surfaced'], s['max_lost']) != (s['surfaced'], s['lost']):
            print(f'  note: {labels[key]}: worst repetition had '
                  f'{s["max_surfaced"]} conflicts, {s["max_lost"]} lost')
        if s['max_errors'] or s['max_duplicated'] or s['max_unknown']:
            samples = sorted({e for r in runs[key]
                              for e in r['error_samples']})
            print(f'  note: {labels[key]}: up to {s["max_errors"]} other '
                  f'errors, {s["max_duplicated"]} duplicated, '
                  f'{s["max_unknown"]} unknown items; {samples[:2]}')
    ours, old = summary.get('stack-10x100'), summary.get('stack12-10x100')
    if ours and old and ours['bytes_per_push'] and old['bytes_per_push']:
        print()
        print(f'bytes per push, AppendStack 10x100: {OLD_VERSION} '
              f'{old["bytes_per_push"]:,.0f}, this checkout '
              f'{ours["bytes_per_push"]:,.0f}: '
              f'{old["bytes_per_push"] / ours["bytes_per_push"]:.1f}x smaller')
    print()
    print(f'Noise: a shared {os.cpu_count()}-CPU machine; load average '
          f'{load_before[0]:.2f} before, {load_after[0]:.2f} after; '
          f'{elapsed:.0f} s in all.  Compare ratios within one run, '
          f'not absolute numbers across runs.')

    if args.json:
        with open(args.json, 'w') as f:
            json.dump({
                'parameters': {
                    'threads': args.threads, 'pushes': args.pushes,
                    'repeat': args.repeat, 'attempts': args.attempts,
                    'python': platform.python_version(),
                    'versions': versions, 'cpus': os.cpu_count(),
                    'loadavg_before': load_before,
                    'loadavg_after': load_after, 'elapsed_s': elapsed,
                },
                'labels': labels,
                'summary': summary,
                'runs': runs,
            }, f, indent=2)
            f.write('\n')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0])
    parser.add_argument('-k', '--threads', type=int, default=4,
                        help='writer threads (K; default: 4)')
    parser.add_argument('-n', '--pushes', type=int,
                        help='commits per writer thread (N) '
                             '(default: 500, or 25 with --quick)')
    parser.add_argument('-r', '--repeat', type=int,
                        help='repetitions of each workload (R) '
                             '(default: 5, or 1 with --quick)')
    parser.add_argument('--attempts', type=int, default=10,
                        help='tm.attempts() per commit (default: 10)')
    parser.add_argument('--quick', action='store_true',
                        help='a tiny run, for trying the script out')
    parser.add_argument('--json', metavar='FILE',
                        help='also write parameters and raw results here')
    parser.add_argument('--only', action='append', metavar='KEY',
                        choices=[w[0] for w in WORKLOADS],
                        help='run only this workload (repeatable; the '
                             'ceiling always runs): %(choices)s')
    parser.add_argument('--cache-dir', default=DEFAULT_CACHE,
                        help=f'where appendonly {OLD_VERSION} is installed '
                             f'(default: .bench-cache/ in the checkout)')
    parser.add_argument('--tmpdir', default=None,
                        help='where the temporary FileStorages go '
                             '(default: the system temp directory)')
    parser.add_argument('-v', '--verbose', action='store_true',
                        help='print each run to stderr as it ends')
    # Internal: one run in a child process.
    parser.add_argument('--child', choices=['ours', 'appendonly12'],
                        help=argparse.SUPPRESS)
    parser.add_argument('--workload', help=argparse.SUPPRESS)
    parser.add_argument('--window', help=argparse.SUPPRESS)
    parser.add_argument('--import-dir', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = args.quick
    if args.pushes is None:
        args.pushes = 25 if quick else 500
    if args.repeat is None:
        args.repeat = 1 if quick else 5
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        child_main(args)
    else:
        parent_main(args)


if __name__ == '__main__':
    main()
