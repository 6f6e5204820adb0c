"""What sharing a path costs: single durable commits through ``open_db(path)``.

The acceptance point: a process alone on its path keeps at least 0.9x the
single-commit rate of a bare FileStorage, measured in one run.

Workloads, one thread, N commits each (after a warm-up off the clock),
every commit durable (FileStorage's default fsync in ``tpc_finish``):

- ``update``: one small ``PersistentMapping`` changed per commit (one
  record stored);
- ``new``: a new small ``PersistentMapping`` hung under a holder per
  commit (two records stored, one ``new_oid``).

Competitors, each run in a fresh child process (this script, re-invoked
with ``--child``) on a fresh ``Data.fs`` in a fresh temporary folder:

- ``bare``: ``ZODB.DB(ZODB.FileStorage.FileStorage(path))``, the baseline;
- ``host``: ``appendonly.db.open_db(path)`` alone on the path: the
  process hosts (``HostStorage`` over ``OidReservingStorage``, and an
  idle ZEO server thread);
- ``client``: ``open_db(path)`` while another process hosts the same path
  and stays idle, so the commits go through a ``ClientStorage`` and a
  Unix socket (what making every process a ZEO client would cost);
- ``zeo``: a plain ``runzeo`` subprocess on a Unix socket and a plain
  ``ClientStorage``, for context.

Rounds run the competitors one after the other, in reverse order every
other round, so each host run has a bare run next to it; the table shows
per-round paired ratios against ``bare`` and medians over the rounds.

Usage::

    python benchmarks/bench_sharing.py                 # N=2,000, R=5
    python benchmarks/bench_sharing.py --quick         # a few seconds
    python benchmarks/bench_sharing.py --json out.json
    python benchmarks/bench_sharing.py --only bare --only host

See ``docs/sharing.rst`` for the results and the caveats.
"""
import argparse
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
import time
from importlib import metadata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# (key, label), in table order; ``bare`` is the baseline.
COMPETITORS = [
    ('bare', 'bare FileStorage'),
    ('host', 'open_db(path), host alone'),
    ('client', 'open_db(path), client of an idle host'),
    ('zeo', 'plain ZEO server + ClientStorage'),
]
BASELINE = 'bare'

# (key, label)
WORKLOADS = [
    ('update', 'update 1 object'),
    ('new', 'add 1 new object'),
]

#: The acceptance point: host alone / bare, per workload, at least this.
TARGET = 0.9

#: Commits made before the clock starts (connection, caches, file warm).
WARMUP = 50

ZEO_CONF = """\
<zeo>
  address {address}
</zeo>
<filestorage>
  path {path}
</filestorage>
"""
START_TIMEOUT = 30
STOP_TIMEOUT = 15


#
# One run, in the child process
#

def _open(impl, path, address):
    """A ``ZODB.DB`` of competitor ``impl`` on ``path``."""
    import ZODB
    if impl == 'bare':
        import ZODB.FileStorage
        return ZODB.DB(ZODB.FileStorage.FileStorage(path))
    if impl == 'zeo':
        import ZEO.ClientStorage
        return ZODB.DB(ZEO.ClientStorage.ClientStorage(
            address, wait_timeout=START_TIMEOUT))
    from appendonly.db import open_db
    return open_db(path)


def _check_role(impl, db):
    """Refuse to measure the wrong thing (a client where a host was
    meant, or the reverse)."""
    name = type(db.storage).__name__
    wanted = {'bare': 'FileStorage', 'host': 'HostStorage',
              'client': 'ClientStorage', 'zeo': 'ClientStorage'}[impl]
    if name != wanted:
        raise RuntimeError(f'{impl}: the storage is a {name}, not a '
                           f'{wanted}')
    return name


def run_workload(impl, workload, path, address, commits):
    """One run; returns a dict (times in seconds)."""
    import transaction
    from persistent.mapping import PersistentMapping

    db = _open(impl, path, address)
    try:
        storage = _check_role(impl, db)
        tm = transaction.TransactionManager()
        conn = db.open(tm)
        with tm:
            conn.root()['bench'] = holder = PersistentMapping(n=0)
        if workload == 'update':
            def change(i):
                holder['n'] = i
        else:
            def change(i):
                holder['last'] = PersistentMapping(n=i)

        def commits_(first, last, times):
            clock = time.perf_counter
            for i in range(first, last):
                began = clock()
                tm.begin()
                change(i)
                tm.commit()
                times.append(clock() - began)

        commits_(0, WARMUP, [])
        times = []
        cpu = time.process_time()
        began = time.perf_counter()
        commits_(WARMUP, WARMUP + commits, times)
        seconds = time.perf_counter() - began
        cpu = time.process_time() - cpu
        tm.begin()
        check = holder['n' if workload == 'update' else 'last']
        check = check if workload == 'update' else check['n']
        tm.abort()
        conn.close()
    finally:
        db.close()
    if check != WARMUP + commits - 1:
        raise RuntimeError(f'{impl} {workload}: last commit not there')
    return {'impl': impl, 'workload': workload, 'commits': commits,
            'seconds': seconds, 'cpu_seconds': cpu, 'storage': storage,
            'median_commit_s': statistics.median(times),
            'bytes': os.path.getsize(path)}


def child_main(args):
    import appendonly
    where = os.path.realpath(appendonly.__file__)
    assert where.startswith(ROOT + os.sep), (
        f'appendonly imported from {where}, not from this checkout')
    print(json.dumps(run_workload(args.child, args.workload[0], args.path,
                                  args.address, args.commits)))


def hold_main(path):
    """The idle host of the ``client`` runs: opens ``path``, says so, and
    waits for its stdin to close."""
    from appendonly.db import open_db
    db = open_db(path)
    if type(db.storage).__name__ != 'HostStorage':
        raise SystemExit(f'{path}: the holder is not the host')
    print('ready', flush=True)
    sys.stdin.read()
    db.close()


#
# The parent: helpers of the client and zeo runs, rounds, the table
#

def _env(workdir):
    """This checkout importable; the sharing runtime folder (lock and
    socket) private to this run."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    env['APPENDONLY_RUNTIME_DIR'] = os.path.join(workdir, 'run')
    return env


class Helper:
    """The other process of a ``client`` run (an idle host) or of a
    ``zeo`` run (runzeo on a Unix socket); nothing for the others."""

    def __init__(self, impl, workdir, path, address):
        self.process = None
        self.log = os.path.join(workdir, 'helper.log')
        env = _env(workdir)
        if impl == 'client':
            with open(self.log, 'wb') as log:
                self.process = subprocess.Popen(
                    [sys.executable, os.path.abspath(__file__), '--hold',
                     path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=log, env=env)
            if self.process.stdout.readline().strip() != b'ready':
                self.stop()
                raise SystemExit(f'the idle host did not start:\n'
                                 f'{self._log()}')
        elif impl == 'zeo':
            conf = os.path.join(workdir, 'zeo.conf')
            with open(conf, 'w') as f:
                f.write(ZEO_CONF.format(address=address, path=path))
            with open(self.log, 'wb') as log:
                self.process = subprocess.Popen(
                    [sys.executable, '-m', 'ZEO.runzeo', '-C', conf],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    env=env, cwd=workdir)
            deadline = time.monotonic() + START_TIMEOUT
            while not _accepts(address):
                if (self.process.poll() is not None
                        or time.monotonic() > deadline):
                    self.stop()
                    raise SystemExit(f'runzeo did not start:\n'
                                     f'{self._log()}')
                time.sleep(0.02)

    def _log(self):
        with open(self.log, errors='replace') as f:
            return f.read()

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        if self.process.stdin is not None:
            self.process.stdin.close()      # the holder closes its DB
        else:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def _accepts(address):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(address)
        except OSError:
            return False
    return True


def run_child(args, impl, workload):
    workdir = tempfile.mkdtemp(prefix='appendonly-bench-', dir=args.tmpdir)
    path = os.path.join(workdir, 'Data.fs')
    address = os.path.join(workdir, 'zeo.sock')
    helper = None
    try:
        helper = Helper(impl, workdir, path, address)
        os.sync()       # write back what the last run left, off the clock
        cmd = [sys.executable, os.path.abspath(__file__), '--child', impl,
               '--workload', workload, '--path', path, '--address', address,
               '--commits', str(args.commits)]
        proc = subprocess.run(cmd, env=_env(workdir), capture_output=True,
                              text=True)
    finally:
        if helper is not None:
            helper.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f'child {impl} {workload} failed')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rate(run):
    return run['commits'] / run['seconds']


def summarize(runs):
    """Medians per (impl, workload), and per-round ratios to ``bare``."""
    summary = {}
    for (impl, workload), mine in runs.items():
        rates = [rate(r) for r in mine]
        values = summary[impl, workload] = {
            'rate': statistics.median(rates),
            'min': min(rates), 'max': max(rates),
            'median_commit_us': statistics.median(
                r['median_commit_s'] * 1e6 for r in mine),
            'cpu_us': statistics.median(
                r['cpu_seconds'] / r['commits'] * 1e6 for r in mine),
        }
        base = runs.get((BASELINE, workload))
        if base is not None:
            ratios = [rate(r) / rate(b) for r, b in zip(mine, base)]
            values.update(ratio=statistics.median(ratios),
                          ratio_min=min(ratios), ratio_max=max(ratios),
                          ratios=ratios)
    return summary


def format_table(summary, impls, workloads):
    header = ['workload', 'competitor', 'commits/s', 'min..max',
              'x bare', 'min..max', 'median commit', 'CPU/commit']
    rows = []
    for workload, label in workloads:
        first = True
        for impl, impl_label in impls:
            s = summary.get((impl, workload))
            if s is None:
                continue
            ratio = ratio_range = ''
            if 'ratio' in s:
                ratio = f'{s["ratio"]:.2f}'
                ratio_range = f'{s["ratio_min"]:.2f}..{s["ratio_max"]:.2f}'
            rows.append([label if first else '', impl_label,
                         f'{s["rate"]:,.0f}',
                         f'{s["min"]:,.0f}..{s["max"]:,.0f}',
                         ratio, ratio_range,
                         f'{s["median_commit_us"]:,.0f} us',
                         f'{s["cpu_us"]:,.0f} us'])
            first = False
    widths = [max(len(row[i]) for row in [header] + rows)
              for i in range(len(header))]

    def line(row):
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [c.rjust(w) for c, w in zip(row[2:], widths[2:])]
        return '  '.join(cells).rstrip()

    rule = '  '.join('-' * w for w in widths)
    return '\n'.join([line(header), rule] + [line(r) for r in rows])


def targets(summary, workloads):
    """``(met, line)`` per workload: host alone against bare."""
    out = []
    for workload, label in workloads:
        host = summary.get(('host', workload))
        bare = summary.get((BASELINE, workload))
        if host is None or bare is None:
            continue
        met = host['ratio'] >= TARGET
        out.append((met, (
            f'{"met     " if met else "NOT MET "} host alone >= {TARGET}x '
            f'bare FileStorage, {label}: {host["ratio"]:.2f}x (paired '
            f'median; {host["ratio_min"]:.2f}..{host["ratio_max"]:.2f}), '
            f'{host["rate"]:,.0f}/s vs {bare["rate"]:,.0f}/s; median '
            f'commit {host["median_commit_us"]:,.0f} us vs '
            f'{bare["median_commit_us"]:,.0f} us')))
    return out


def _versions():
    names = ('ZODB', 'ZEO', 'persistent', 'transaction')
    return {name: metadata.version(name) for name in names}


class Progress:
    """One line on stderr, rewritten, when stderr is a terminal."""

    def __init__(self, total):
        self.total, self.done = total, 0
        self.live = sys.stderr.isatty()

    def show(self, text):
        if self.live:
            sys.stderr.write(f'\r\033[K[{self.done}/{self.total}] {text}')
            sys.stderr.flush()

    def step(self):
        self.done += 1

    def close(self):
        if self.live:
            sys.stderr.write('\r\033[K')
            sys.stderr.flush()


def parent_main(args):
    impls = [i for i in COMPETITORS
             if args.only is None or i[0] in args.only or i[0] == BASELINE]
    workloads = [w for w in WORKLOADS
                 if args.workload is None or w[0] in args.workload]
    runs = {(impl, w): [] for w, _ in workloads for impl, _ in impls}
    progress = Progress(args.rounds * len(runs))
    load_before = os.getloadavg()
    began = time.perf_counter()
    for rnd in range(args.rounds):
        # Every other round backwards: each competitor runs next to the
        # baseline, before it in one round and after it in the next.
        order = impls if rnd % 2 == 0 else impls[::-1]
        for workload, label in workloads:
            for impl, impl_label in order:
                progress.show(f'round {rnd + 1}/{args.rounds}: {label}, '
                              f'{impl_label}')
                result = run_child(args, impl, workload)
                runs[impl, workload].append(result)
                progress.step()
                if args.verbose:
                    progress.close()
                    print(f'  [{rnd + 1}/{args.rounds}] {impl} {workload}: '
                          f'{rate(result):,.0f} commits/s', file=sys.stderr)
    progress.close()
    elapsed = time.perf_counter() - began
    load_after = os.getloadavg()
    summary = summarize(runs)
    versions = _versions()
    verdicts = targets(summary, workloads)

    print(f'appendonly sharing benchmark: N={args.commits:,} single-item '
          f'commits per run (after {WARMUP} off the clock), one thread, '
          f'R={args.rounds} rounds, order reversed every other round')
    print('each run in a fresh child process on a fresh Data.fs in a '
          'temporary folder; fsync on every commit (FileStorage default)')
    print(f'Python {platform.python_version()}, '
          + ', '.join(f'{n} {v}' for n, v in versions.items())
          + f'; {os.cpu_count()} CPUs')
    print()
    print(format_table(summary, impls, workloads))
    print()
    print('commits/s: median over the rounds.  x bare: median of the '
          'per-round ratios to the bare FileStorage run of the same round '
          '(higher is faster).  median commit: the median time of one '
          'commit, begin to end (median over the rounds; less sensitive to '
          'other processes stealing the CPU than commits/s).  CPU/commit: '
          'the committing process only (all its threads), median.')
    if verdicts:
        print()
        print('targets:')
        for met, text in verdicts:
            print(f'  {text}')
    print()
    print(f'Noise: a shared {os.cpu_count()}-CPU machine; load average '
          f'{load_before[0]:.2f} before, {load_after[0]:.2f} after; '
          f'{elapsed:.0f} s in all.  Compare ratios within one run.')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({
                'parameters': {
                    'commits': args.commits, 'rounds': args.rounds,
                    'warmup': WARMUP, 'versions': versions,
                    'python': platform.python_version(),
                    'cpus': os.cpu_count(), 'loadavg_before': load_before,
                    'loadavg_after': load_after, 'elapsed_s': elapsed},
                'summary': {f'{impl} {workload}': values
                            for (impl, workload), values in summary.items()},
                'targets': [{'met': met, 'line': text}
                            for met, text in verdicts],
                'runs': {f'{impl} {workload}': mine
                         for (impl, workload), mine in runs.items()},
            }, f, indent=2)
            f.write('\n')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('-n', '--commits', type=int, help='commits per run '
                        '(default: 2,000; 200 with --quick)')
    parser.add_argument('-r', '--rounds', type=int, help='rounds (default: '
                        '5; 1 with --quick)')
    parser.add_argument('--quick', action='store_true',
                        help='a small run, for trying the script out')
    parser.add_argument('--json', metavar='FILE',
                        help='also write parameters and raw results here')
    parser.add_argument('--only', action='append', metavar='COMPETITOR',
                        choices=[i[0] for i in COMPETITORS],
                        help='run only this competitor (repeatable; the '
                             'bare FileStorage always runs): %(choices)s')
    parser.add_argument('--workload', action='append', metavar='WORKLOAD',
                        choices=[w[0] for w in WORKLOADS],
                        help='run only this workload (repeatable): '
                             '%(choices)s')
    parser.add_argument('--tmpdir', default=None,
                        help='where the temporary databases go (default: '
                             'the system temp directory)')
    parser.add_argument('-v', '--verbose', action='store_true',
                        help='print each run to stderr as it ends')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    parser.add_argument('--hold', help=argparse.SUPPRESS)
    parser.add_argument('--path', help=argparse.SUPPRESS)
    parser.add_argument('--address', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    defaults = ({'commits': 200, 'rounds': 1} if args.quick else
                {'commits': 2_000, 'rounds': 5})
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.hold:
        hold_main(args.hold)
    elif args.child:
        child_main(args)
    else:
        parent_main(args)


if __name__ == '__main__':
    main()
