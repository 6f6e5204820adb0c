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

The harness (``_harness.py``) runs every target once per round, each in a
fresh child process on a fresh storage, and reports medians and paired
ratios to FileStorage.

Usage::

    eval "$(.ci/postgres.sh start)"
    python benchmarks/bench_scaling.py              # K=4, N=500, R=3
    python benchmarks/bench_scaling.py --quick      # a few seconds
    .ci/postgres.sh stop
"""
import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import _harness
import bench_append

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


#
# The parent: the servers
#

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
                    env=_harness.checkout_env(), cwd=directory)
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
        if not _harness.stop_process(self.process, ZEO_STOP_TIMEOUT):
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


class ScalingBench(bench_append.AppendBench):
    """The append benchmark's workload, options and columns; other
    competitors: the storages."""

    title = __doc__.split('\n\n')[0].replace('\n', ' ')
    competitors = TARGETS
    baseline = BASELINE
    competitor_heading = 'target'
    ratio_heading = 'x FileStorage'
    rounds = (3, 1)
    packages = ('ZODB', 'ZEO', 'RelStorage', 'psycopg2-binary',
                'persistent', 'BTrees', 'transaction')

    def add_arguments(self, parser):
        pass

    def env(self, args, key):
        return _harness.checkout_env()

    def prepare(self, args):
        self.pg_uri, self.pg_note = None, None
        if args.only is not None and 'relstorage' not in args.only:
            return {}
        self.pg_uri, self.pg_note = postgres()
        if self.pg_uri:
            return {}
        return {'relstorage': self.pg_note.replace('skipped: ', '', 1)}

    @contextlib.contextmanager
    def around(self, args, key, workload):
        workdir = tempfile.mkdtemp(prefix='appendonly-scaling-',
                                   dir=args.tmpdir)
        try:
            if key == 'filestorage':
                yield {'spec': os.path.join(workdir, 'Data.fs')}
            elif key == 'zeo':
                server = ZEOServer(workdir)
                try:
                    yield {'spec': server.spec}
                finally:
                    server.stop()
            else:
                yield {'spec': self.pg_uri, 'postgres': self.pg_note}
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def run(self, args, key, workloads, extra):
        _harness.check_import()
        structure = bench_append._structure(KIND, WINDOW, args.threads)
        db = _open(key, extra['spec'])
        try:
            result = bench_append.run_writers(db, structure, args.threads,
                                              args.pushes, args.attempts)
        finally:
            db.close()
        return {'workloads': {'append': result},
                'info': {'postgres': extra.get('postgres')}}

    def header(self, data):
        p = data['parameters']
        lines = [
            f'appendonly scaling benchmark: {WORKLOAD_LABEL}, '
            f'K={p["threads"]} writer threads x N={p["pushes"]} commits (one '
            f'{bench_append.ITEM_LENGTH}-char item each), '
            f'tm.attempts({p["attempts"]}) per commit',
            'FileStorage and the ZEO server\'s FileStorage: default fsync on '
            'commit; ZEO and PostgreSQL on 127.0.0.1']
        note = data['info'].get('relstorage', {}).get('postgres')
        return lines + ([note] if note else [])

    def columns(self, data):
        # Not bytes/push: ZEO's and PostgreSQL's files are not ours.
        return bench_append.AppendBench.columns(self, data)[:-1]

    def notes(self, data):
        return bench_append.LEGEND

    def targets(self, data):
        return []


if __name__ == '__main__':
    _harness.main(ScalingBench())
