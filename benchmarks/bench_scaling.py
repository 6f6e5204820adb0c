"""Concurrent append throughput on each target of docs/scaling.rst:
FileStorage, ZEO and RelStorage on PostgreSQL, measured in the same run.

The workload is ``bench_append.py``'s ``appendonly AppendStack 10x100``
(imported from it, not copied): K writer threads, each with its own
connection and TransactionManager, make N commits of one 100-character item
each, ``stack.push(item, archive.addLayer)`` with an ``Archive`` as pruner,
committed with ``tm.attempts()`` so that ConflictErrors are retried.  Only
the storage changes:

- ``FileStorage``: a fresh ``Data.fs`` in a temporary directory, opened by
  the writers' process (conflicts resolved there);
- ``ZEO``: a fresh ``runzeo`` subprocess on 127.0.0.1 serving a fresh
  FileStorage, with this checkout on its ``PYTHONPATH`` (it resolves the
  conflicts); the writers' process is one ZEO client;
- ``RelStorage``: history-free, on the PostgreSQL that
  ``.ci/postgres.sh start`` runs (its ``APPENDONLY_PG_*`` variables must be
  exported; without them the row says so and is skipped), emptied
  (``zap_all``) before each run; conflicts resolved by the committing
  client.

Every run is a fresh child process (this script, re-invoked with
``--child``); the R repetitions go round-robin and the table shows medians
and the ratio to FileStorage's median.

Usage::

    eval "$(.ci/postgres.sh start)"
    python benchmarks/bench_scaling.py              # K=4, N=500, R=3
    python benchmarks/bench_scaling.py --quick      # a few seconds
    .ci/postgres.sh stop
"""
import argparse
import importlib.util
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from importlib import metadata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import bench_append  # noqa: E402  (the workload, shared)

KIND, WINDOW = 'stack', (10, 100)
WORKLOAD_LABEL = 'appendonly AppendStack 10x100 + Archive'

# (key, label), in table order.  FileStorage must stay: ratios are to it.
TARGETS = [
    ('filestorage', 'FileStorage (path, in process)'),
    ('zeo', 'ZEO (runzeo on loopback, FileStorage)'),
    ('relstorage', 'RelStorage, PostgreSQL, history-free'),
]
BASELINE = 'filestorage'

#: What ``.ci/postgres.sh start`` exports and the RelStorage row needs.
PG_VARIABLES = ('APPENDONLY_PG_HOST', 'APPENDONLY_PG_PORT',
                'APPENDONLY_PG_USER', 'APPENDONLY_PG_PASSWORD',
                'APPENDONLY_PG_DB_HF')

ZEO_CONF = """\
<zeo>
  address {host}:{port}
</zeo>
<filestorage>
  path {path}
</filestorage>
"""
ZEO_START_TIMEOUT = 30
ZEO_STOP_TIMEOUT = 15
CONNECT_TIMEOUT = 30


#
# The child: one run on one target
#

def _open(target, spec):
    """A ZODB.DB on the target, freshly emptied where it is not new."""
    if target == 'filestorage':
        from ZODB import DB
        from ZODB.FileStorage import FileStorage
        return DB(FileStorage(spec))
    if target == 'zeo':
        import ZEO
        host, _, port = spec.rpartition(':')
        return ZEO.DB((host, int(port)), wait_timeout=CONNECT_TIMEOUT)
    if target == 'relstorage':
        import zodburi

        from appendonly.db import open_db
        factory, _ = zodburi.resolve_uri(spec)
        storage = factory()
        try:
            storage.zap_all()
        finally:
            storage.close()
        db = open_db(spec)
        assert db.storage.keep_history is False, 'not history-free'
        return db
    raise ValueError(f'unknown target {target!r}')


def run_on(target, spec, writers, pushes, attempts):
    """The bench_append workload on one target; returns a dict."""
    import transaction

    setup, push, collect = bench_append._structure(KIND, WINDOW, writers)
    db = _open(target, spec)
    try:
        db.setPoolSize(writers + 1)
        with db.transaction() as conn:
            setup(conn.root())
        items = [bench_append._items(w, pushes) for w in range(writers)]
        start = threading.Barrier(writers + 1)
        out = {}
        threads = [
            threading.Thread(target=bench_append._writer,
                             args=(db, w, items[w], push, attempts, start,
                                   out))
            for w in range(writers)]
        for thread in threads:
            thread.start()
        try:
            start.wait()
        except threading.BrokenBarrierError:
            pass            # a writer failed to start; reported below
        began = time.perf_counter()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - began
        if len(out) != writers:
            raise RuntimeError('a writer thread died; see stderr')
        tm = transaction.TransactionManager()
        conn = db.open(tm)
        try:
            found = collect(conn.root())
        finally:
            tm.abort()
            conn.close()
    finally:
        db.close()

    committed = [item for w in range(writers) for item in out[w]['committed']]
    errors = [e for w in range(writers) for e in out[w]['errors']]
    found_set, committed_set = set(found), set(committed)
    return {
        'target': target, 'writers': writers, 'pushes_per_writer': pushes,
        'attempts': attempts, 'wall_s': wall,
        'commits': len(committed),
        'commits_per_s': len(committed) / wall,
        'surfaced': sum(out[w]['surfaced'] for w in range(writers)),
        'exhausted': sum(out[w]['exhausted'] for w in range(writers)),
        'errors': len(errors),
        'error_samples': sorted(set(errors))[:3],
        'lost': len(committed_set - found_set),
        'duplicated': len(found) - len(found_set),
        'unknown': len(found_set - committed_set),
    }


def child_main(args):
    import appendonly
    where = os.path.realpath(appendonly.__file__)
    assert where.startswith(os.path.realpath(ROOT) + os.sep), (
        f'appendonly imported from {where}, not from this checkout')
    result = run_on(args.child, args.spec, args.threads, args.pushes,
                    args.attempts)
    print(json.dumps(result))


#
# The parent: the targets, the children, the table
#

def _env():
    """This checkout importable: by the children, and by the ZEO server,
    which resolves the conflicts."""
    env = dict(os.environ)
    paths = [ROOT] + ([env['PYTHONPATH']] if env.get('PYTHONPATH') else [])
    env['PYTHONPATH'] = os.pathsep.join(paths)
    return env


def _free_port(host):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _accepts(addr):
    try:
        with socket.create_connection(addr, timeout=0.5):
            return True
    except OSError:
        return False


class ZEOServer:
    """A runzeo subprocess serving a fresh FileStorage in ``directory``."""

    def __init__(self, directory, host='127.0.0.1'):
        self.directory = directory
        self.log = os.path.join(directory, 'zeo.log')
        # A port found free may be taken before the server binds it: retry.
        for _ in range(3):
            self.addr = (host, _free_port(host))
            conf = os.path.join(directory, 'zeo.conf')
            with open(conf, 'w') as f:
                f.write(ZEO_CONF.format(
                    host=host, port=self.addr[1],
                    path=os.path.join(directory, 'Data.fs')))
            with open(self.log, 'wb') as log:
                self.process = subprocess.Popen(
                    [sys.executable, '-m', 'ZEO.runzeo', '-C', conf],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    env=_env(), cwd=directory)
            deadline = time.monotonic() + ZEO_START_TIMEOUT
            while (self.process.poll() is None and
                   time.monotonic() < deadline):
                if _accepts(self.addr):
                    return
                time.sleep(0.05)
            self.stop()
            if 'in use' not in self._log():
                break
        raise SystemExit(f'ZEO server did not start:\n{self._log()}')

    def _log(self):
        with open(self.log, errors='replace') as f:
            return f.read()

    @property
    def spec(self):
        return '%s:%d' % self.addr

    def stop(self):
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(ZEO_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise SystemExit(f'ZEO server ignored SIGTERM:\n{self._log()}')


def postgres():
    """(URI, description) of the history-free database, or (None, why)."""
    missing = [name for name in PG_VARIABLES if not os.environ.get(name)]
    if missing:
        return None, (f'skipped: PostgreSQL not running ({missing[0]} not '
                      f'set); eval "$(.ci/postgres.sh start)" first')
    get = os.environ.__getitem__
    if importlib.util.find_spec('relstorage') is None:
        return None, 'skipped: RelStorage is not installed'
    try:
        import psycopg2
    except ImportError as e:
        return None, f'skipped: {e}; pip install psycopg2-binary'
    # RelStorage's resolver does not unquote: the password must be URL-safe
    # (.ci/postgres.sh makes it hex).
    uri = (f'postgres://{get("APPENDONLY_PG_USER")}:'
           f'{get("APPENDONLY_PG_PASSWORD")}@{get("APPENDONLY_PG_HOST")}:'
           f'{get("APPENDONLY_PG_PORT")}/{get("APPENDONLY_PG_DB_HF")}'
           f'?keep_history=false&connect_timeout=10')
    try:
        conn = psycopg2.connect(
            host=get('APPENDONLY_PG_HOST'), port=get('APPENDONLY_PG_PORT'),
            user=get('APPENDONLY_PG_USER'),
            password=get('APPENDONLY_PG_PASSWORD'),
            dbname=get('APPENDONLY_PG_DB_HF'), connect_timeout=10)
    except Exception as e:
        return None, f'skipped: cannot connect to PostgreSQL ({e})'
    try:
        with conn.cursor() as cursor:
            settings = []
            for name in ('server_version', 'fsync', 'synchronous_commit'):
                cursor.execute(f'SHOW {name}')
                settings.append(cursor.fetchone()[0])
    finally:
        conn.close()
    version, fsync, sync = settings
    return uri, (f'PostgreSQL {version.split()[0]} on '
                 f'{get("APPENDONLY_PG_HOST")}, fsync {fsync}, '
                 f'synchronous_commit {sync}')


def run_child(args, target, spec):
    cmd = [sys.executable, os.path.abspath(__file__),
           '--child', target, '--spec', spec,
           '-k', str(args.threads), '-n', str(args.pushes),
           '--attempts', str(args.attempts)]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f'child {target} failed')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_once(args, target, pg_uri):
    """One repetition on one target, its storage created for it."""
    workdir = tempfile.mkdtemp(prefix='appendonly-scaling-',
                               dir=args.tmpdir)
    try:
        if target == 'filestorage':
            return run_child(args, target, os.path.join(workdir, 'Data.fs'))
        if target == 'zeo':
            server = ZEOServer(workdir)
            try:
                return run_child(args, target, server.spec)
            finally:
                server.stop()
        return run_child(args, target, pg_uri)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _median(values):
    return statistics.median(values) if values else None


def summarize(runs):
    summary = {}
    for key, mine in runs.items():
        if not mine:
            continue
        rates = [r['commits_per_s'] for r in mine]
        summary[key] = {
            'commits_per_s': _median(rates),
            'min_commits_per_s': min(rates),
            'max_commits_per_s': max(rates),
            **{name: _median([r[name] for r in mine])
               for name in ('surfaced', 'exhausted', 'errors', 'lost')},
            **{f'max_{name}': max(r[name] for r in mine)
               for name in ('surfaced', 'exhausted', 'errors', 'lost',
                            'duplicated', 'unknown')},
        }
    baseline = summary.get(BASELINE, {}).get('commits_per_s')
    for values in summary.values():
        values['ratio'] = (values['commits_per_s'] / baseline
                           if baseline else None)
    return summary


def _fmt(value, spec):
    return '-' if value is None else format(value, spec)


def format_table(summary, skipped):
    header = ['target', 'commits/s', 'min..max', 'x FileStorage',
              'conflicts', 'exhausted', 'lost']
    rows = []
    for key, label in TARGETS:
        s = summary.get(key)
        if s is None:
            rows.append([label, skipped.get(key, 'not run')])
            continue
        rows.append([
            label,
            _fmt(s['commits_per_s'], '.0f'),
            '%.0f..%.0f' % (s['min_commits_per_s'], s['max_commits_per_s']),
            _fmt(s['ratio'], '.2f'),
            _fmt(s['surfaced'], '.0f'),
            _fmt(s['exhausted'], '.0f'),
            _fmt(s['lost'], '.0f'),
        ])
    full = [r for r in rows if len(r) == len(header)]
    widths = [max(len(row[i]) for row in [header] + full)
              for i in range(len(header))]

    def line(row):
        if len(row) != len(header):     # a skipped target: its reason
            return f'{row[0].ljust(widths[0])}  {row[1]}'
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:],
                                                           widths[1:])]
        return '  '.join(cells).rstrip()

    rule = '  '.join('-' * w for w in widths)
    return '\n'.join([line(header), rule] + [line(r) for r in rows])


def _versions():
    names = ('ZODB', 'ZEO', 'RelStorage', 'psycopg2-binary', 'persistent',
             'BTrees', 'transaction')
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def parent_main(args):
    selected = [key for key, _ in TARGETS
                if args.only is None or key in args.only or key == BASELINE]
    skipped = {}
    pg_uri = pg_note = None
    if 'relstorage' in selected:
        pg_uri, pg_note = postgres()
        if pg_uri is None:
            skipped['relstorage'] = pg_note
            selected.remove('relstorage')
    labels = dict(TARGETS)

    load_before = os.getloadavg()
    runs = {key: [] for key in selected}
    began = time.perf_counter()
    for rep in range(args.repeat):
        # Round-robin, starting one target later each round.
        shift = rep % len(selected)
        for target in selected[shift:] + selected[:shift]:
            os.sync()       # what the previous run left dirty, off the clock
            result = run_once(args, target, pg_uri)
            result['repetition'] = rep
            runs[target].append(result)
            if args.verbose:
                print(f'  [{rep + 1}/{args.repeat}] {labels[target]}: '
                      f'{result["commits_per_s"]:.0f} commits/s, '
                      f'{result["surfaced"]} conflicts, '
                      f'{result["lost"]} lost', file=sys.stderr)
    elapsed = time.perf_counter() - began
    load_after = os.getloadavg()

    summary = summarize(runs)
    versions = _versions()
    print(f'appendonly scaling benchmark: {WORKLOAD_LABEL}, '
          f'K={args.threads} writer threads x N={args.pushes} commits (one '
          f'{bench_append.ITEM_LENGTH}-char item each),')
    print(f'R={args.repeat} repetitions, round-robin, each run in a fresh '
          f'child process on a fresh storage; medians shown; '
          f'tm.attempts({args.attempts}) per commit')
    print('FileStorage and the ZEO server\'s FileStorage: default fsync on '
          'commit; ZEO and PostgreSQL on 127.0.0.1')
    if pg_note and pg_uri:
        print(pg_note)
    print(f'Python {platform.python_version()} '
          f'({platform.python_implementation()}), '
          + ', '.join(f'{n} {v}' for n, v in versions.items())
          + f'; {os.cpu_count()} CPUs')
    print()
    print(format_table(summary, skipped))
    print()
    print('conflicts: ConflictErrors that reached the retry loop; '
          'exhausted: commits abandoned after all attempts;')
    print('lost: committed items missing from stack + archive.')
    for key in selected:
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
    print()
    print(f'Noise: a shared {os.cpu_count()}-CPU machine running the '
          f'writers, the ZEO server and PostgreSQL alike; load average '
          f'{load_before[0]:.2f} before, {load_after[0]:.2f} after; '
          f'{elapsed:.0f} s in all.')

    if args.json:
        with open(args.json, 'w') as f:
            json.dump({
                'parameters': {
                    'threads': args.threads, 'pushes': args.pushes,
                    'repeat': args.repeat, 'attempts': args.attempts,
                    'workload': WORKLOAD_LABEL,
                    'python': platform.python_version(),
                    'versions': versions, 'cpus': os.cpu_count(),
                    'postgres': pg_note,
                    'loadavg_before': load_before,
                    'loadavg_after': load_after, 'elapsed_s': elapsed,
                },
                'labels': labels, 'skipped': skipped,
                'summary': summary, 'runs': runs,
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
                        help='repetitions of each target (R) '
                             '(default: 3, or 1 with --quick)')
    parser.add_argument('--attempts', type=int, default=10,
                        help='tm.attempts() per commit (default: 10)')
    parser.add_argument('--quick', action='store_true',
                        help='a tiny run, for trying the script out')
    parser.add_argument('--json', metavar='FILE',
                        help='also write parameters and raw results here')
    parser.add_argument('--only', action='append', metavar='TARGET',
                        choices=[key for key, _ in TARGETS],
                        help='run only this target (repeatable; '
                             'FileStorage always runs): %(choices)s')
    parser.add_argument('--tmpdir', default=None,
                        help='where the temporary FileStorages go '
                             '(default: the system temp directory)')
    parser.add_argument('-v', '--verbose', action='store_true',
                        help='print each run to stderr as it ends')
    # Internal: one run in a child process.
    parser.add_argument('--child', choices=[key for key, _ in TARGETS],
                        help=argparse.SUPPRESS)
    parser.add_argument('--spec', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.pushes is None:
        args.pushes = 25 if args.quick else 500
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        child_main(args)
    else:
        parent_main(args)


if __name__ == '__main__':
    main()
