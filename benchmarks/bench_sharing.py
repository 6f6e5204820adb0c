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

The harness (``_harness.py``) runs every competitor once per round, the
order reversed every other round, so each host run has a bare run next to
it; the table shows per-round paired ratios against ``bare`` and medians
over the rounds.  Each commit carries a note with its number: afterwards
the child reads every transaction back from ``Data.fs`` and checks that
none is missing or there twice.

Usage::

    python benchmarks/bench_sharing.py                 # N=2,000, R=5
    python benchmarks/bench_sharing.py --quick         # a few seconds
    python benchmarks/bench_sharing.py --json out.json
    python benchmarks/bench_sharing.py --only host --workload update

See ``docs/sharing.rst`` for the results and the caveats.
"""
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import _harness
from _harness import Option
from _harness import Target

BASELINE = 'bare'

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
    """One run: a measurement (see ``_harness``), checked against the
    transactions in the file."""
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
                tm.begin().note(f'bench {i}')
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
        conn.close()
    finally:
        db.close()
    return _harness.measurement(
        commits, seconds, list(range(WARMUP + commits)),
        committed_notes(path), storage=storage,
        cpu_us=cpu / commits * 1e6,
        median_commit_us=statistics.median(times) * 1e6)


def committed_notes(path):
    """The numbers of the benchmark's transactions in ``path``, read back
    from the file (read-only, beside whoever holds it)."""
    from ZODB.FileStorage import FileStorage
    storage = FileStorage(path, read_only=True)
    try:
        return [int(t.description.split()[1]) for t in storage.iterator()
                if t.description.startswith(b'bench ')]
    finally:
        storage.close()


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
# The parent: the other process of a client or zeo run
#

def _env(workdir):
    """The sharing runtime folder (lock and socket) private to this run."""
    return {'APPENDONLY_RUNTIME_DIR': os.path.join(workdir, 'run')}


class Helper:
    """The other process of a ``client`` run (an idle host) or of a
    ``zeo`` run (runzeo on a Unix socket); nothing for the others."""

    def __init__(self, impl, workdir, path, address):
        self.process = None
        self.log = os.path.join(workdir, 'helper.log')
        env = _harness.checkout_env(**_env(workdir))
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
        if self.process is None:
            return
        if self.process.stdin is not None:
            # The holder closes its DB when its stdin closes.
            _harness.stop_process(self.process, STOP_TIMEOUT,
                                  lambda process: process.stdin.close())
        else:
            _harness.stop_process(self.process, STOP_TIMEOUT)


def _accepts(address):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(address)
        except OSError:
            return False
    return True


class SharingBench(_harness.Bench):
    title = __doc__.split('\n\n')[0]
    competitors = [
        ('bare', 'bare FileStorage'),
        ('host', 'open_db(path), host alone'),
        ('client', 'open_db(path), client of an idle host'),
        ('zeo', 'plain ZEO server + ClientStorage'),
    ]
    baseline = BASELINE
    workloads = [
        ('update', 'update 1 object'),
        ('new', 'add 1 new object'),
    ]
    child_per_workload = True
    unit = 'commits/s'
    ratio_heading = 'x bare'
    options = [Option('-n', '--commits', default=2_000, quick=200,
                      help='commits per run')]
    rounds = (5, 1)
    packages = ('ZODB', 'ZEO', 'persistent', 'transaction')

    def add_arguments(self, parser):
        parser.add_argument('--hold', help=_harness.argparse.SUPPRESS)

    @contextlib.contextmanager
    def around(self, args, key, workload):
        workdir = tempfile.mkdtemp(prefix='appendonly-bench-',
                                   dir=args.tmpdir)
        path = os.path.join(workdir, 'Data.fs')
        address = os.path.join(workdir, 'zeo.sock')
        helper = None
        try:
            helper = Helper(key, workdir, path, address)
            yield {'path': path, 'address': address, 'env': _env(workdir)}
        finally:
            if helper is not None:
                helper.stop()
            shutil.rmtree(workdir, ignore_errors=True)

    def run(self, args, key, workloads, extra):
        _harness.check_import()
        result = run_workload(key, workloads[0], extra['path'],
                              extra['address'], args.commits)
        return {'workloads': {workloads[0]: result},
                'info': {'storage': result.pop('storage')}}

    def header(self, data):
        p = data['parameters']
        return [f'appendonly sharing benchmark: N={p["commits"]:,} '
                f'single-item commits per run (after {WARMUP} off the '
                f'clock), one thread',
                'each run on a fresh Data.fs in a temporary folder; fsync '
                'on every commit (FileStorage default)']

    def columns(self, data):
        return [('median commit',
                 lambda s, key: f'{s["extra"]["median_commit_us"]:,.0f} us'),
                ('CPU/commit',
                 lambda s, key: f'{s["extra"]["cpu_us"]:,.0f} us')]

    def notes(self, data):
        return ['median commit: the median time of one commit, begin to '
                'end (median over the rounds; less sensitive to other '
                'processes stealing the CPU than commits/s).  CPU/commit: '
                'the committing process only (all its threads), median.']

    def targets(self, data):
        out = []
        for workload, label in data['workloads']:
            def commit_times(data, workload=workload):
                host = data['summary'][workload]['host']['extra']
                bare = data['summary'][workload][BASELINE]['extra']
                return True, (f'median commit '
                              f'{host["median_commit_us"]:,.0f} us vs '
                              f'{bare["median_commit_us"]:,.0f} us')
            if 'host' in data['runs'][workload]:
                out.append(Target(
                    f'host alone >= {TARGET}x bare FileStorage, {label}',
                    workload, 'host', BASELINE, TARGET,
                    condition=commit_times))
        return out


if __name__ == '__main__':
    args = _harness.parse_args(SharingBench())
    if args.hold:
        hold_main(args.hold)
    else:
        _harness.main(SharingBench())
