"""Crash loops: writer processes killed with SIGKILL at random moments,
20 times per structure; after each kill the database reopens with every
transaction reported committed present exactly once, and none partially.

Items are 20 KB so that kills often land while a transaction is being
written; FileStorage then finds a partial transaction at the end of the
file and truncates it on open.  The test checks that this happened at
least once, so the recovery path is really exercised.
"""
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import ZODB
import ZODB.FileStorage

from appendonly.tests.zeoserver import env

pytestmark = pytest.mark.slow
KILLS = 20


def _run_and_kill(kind, path, start, rng):
    """Start a worker, let it commit for a random while, SIGKILL it; return
    the lines it printed (what it reported committed)."""
    worker = subprocess.Popen(
        [sys.executable, '-m', 'appendonly.tests.crash_worker', kind, path,
         str(start)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=env(), text=True)
    # Wait until it commits at least once, then kill it a little later.
    first = worker.stdout.readline()
    time.sleep(rng.uniform(0.0, 0.3))
    worker.send_signal(signal.SIGKILL)
    out, err = worker.communicate(timeout=30)
    assert first, err
    # A kill can cut the last line short: only whole lines were reported.
    return [line.split() for line in (first + out).splitlines(True)
            if line.endswith('\n') and line.strip()]


def _size(path):
    return os.path.getsize(path)


def _reopen(path):
    """Open and close the FileStorage; return (size before, size after)."""
    before = _size(path)
    db = ZODB.DB(ZODB.FileStorage.FileStorage(path))
    return db, before


def test_stack_crash_loop(tmp_path):
    from appendonly.tests.workload import check_stack_invariants
    from appendonly.tests.workload import stack_history
    path = str(tmp_path / 'Data.fs')
    rng = random.Random(1)
    batches, truncated, start = [], 0, 0
    # KILLS rounds, and more while no kill landed inside a transaction.
    for round_ in range(3 * KILLS):
        if round_ >= KILLS and truncated:
            break
        for _, n, size in _run_and_kill('stack', path, start, rng):
            batches.append([(int(n), i, int(size)) for i in range(int(size))])
        db, before = _reopen(path)
        truncated += _size(path) < before
        with db.transaction() as conn:
            history = stack_history(conn.root.stack, conn.root.archive)
        db.close()
        items = [item[:3] for _, _, item in history]
        # Every reported batch is there exactly once; any other batch (the
        # one being committed when killed, if its commit finished but the
        # report didn't) is there whole, never in part.
        reported = {b[0][0] for b in batches}
        found = {}
        for n, i, size in items:
            found.setdefault(n, []).append((i, size))
        for n, entries in found.items():
            size = entries[0][1]
            assert sorted(entries) == [(i, size) for i in range(size)], n
        assert reported <= set(found)
        known = [b for b in batches] + [
            [(n, i, s) for i, s in found[n]] for n in sorted(found)
            if n not in reported]
        violations = check_stack_invariants(
            [(g, i, it[:3]) for g, i, it in history], known, 4)
        assert violations == dict.fromkeys(violations, 0)
        start = max(found) + 1
    assert truncated >= 1, 'no kill landed inside a transaction'


def test_dict_crash_loop(tmp_path):
    from appendonly.facades import DurableDict
    path = str(tmp_path / 'Data.fs')
    rng = random.Random(2)
    reported, start, truncated = set(), 0, 0
    # KILLS rounds, and more while no kill landed inside a transaction.
    for round_ in range(3 * KILLS):
        if round_ >= KILLS and truncated:
            break
        reported |= {int(n) for _, n, _ in _run_and_kill(
            'dict', path, start, rng)}
        before = _size(path)
        with DurableDict(path, 'crash') as d:
            keys = d.keys()
        truncated += _size(path) < before
        groups = {}
        for n, i in keys:
            groups.setdefault(n, set()).add(i)
        assert all(g == {0, 1, 2} for g in groups.values())   # never partial
        assert reported <= set(groups)
        start = max(groups) + 1
    assert truncated >= 1, 'no kill landed inside a transaction'


def test_queue_crash_loop_delivers_once(tmp_path):
    from appendonly.facades import DurableQueue
    path = str(tmp_path / 'Data.fs')
    total = 400
    with DurableQueue(path, 'in') as q:
        with q.transaction():
            for i in range(total):
                q.put(i)
    rng = random.Random(3)
    moved = []
    for _ in range(KILLS):
        moved += [int(line[1]) for line in _run_and_kill(
            'queue', path, 0, rng)]
        with DurableQueue(path, 'in') as source, \
                DurableQueue(path, 'out') as sink:
            left = source.qsize()
            out = sink.qsize()
        # Transactional moves: every item is in exactly one queue.
        assert left + out == total
        if left == 0:
            break
    with DurableQueue(path, 'out') as sink:
        delivered = []
        while not sink.empty():
            delivered.append(sink.get_nowait()[0])
    with DurableQueue(path, 'in') as source:
        remaining = []
        while not source.empty():
            remaining.append(source.get_nowait())
    assert sorted(delivered + remaining) == list(range(total))
    assert len(set(delivered)) == len(delivered)
    assert set(moved) <= set(delivered)


def test_storage_crash_loop(tmp_path):
    from appendonly.storage import ZODBStorage
    path = str(tmp_path / 'Data.fs')
    rng = random.Random(4)
    reported, start, truncated = set(), 0, 0
    # KILLS rounds, and more while no kill landed inside a transaction.
    for round_ in range(3 * KILLS):
        if round_ >= KILLS and truncated:
            break
        reported |= {int(n) for _, n, _ in _run_and_kill(
            'storage', path, start, rng)}
        before = _size(path)
        with ZODBStorage(path) as store:
            keys = list(store.get_container_keys('crash'))
        truncated += _size(path) < before
        groups = {}
        for key in keys:
            n, i = key.split('-')
            groups.setdefault(int(n), set()).add(int(i))
        assert all(g == {0, 1, 2} for g in groups.values())   # never partial
        assert reported <= set(groups)
        start = max(groups) + 1
    assert truncated >= 1, 'no kill landed inside a transaction'


def test_zeo_server_killed_and_restarted(tmp_path):
    """The server is SIGKILLed 10 times while a client process pushes;
    restarted on the same address, the client reconnects and retries, and
    every batch it reported committed is there exactly once."""
    from appendonly import AppendStack
    from appendonly import Archive
    from appendonly.tests.workload import check_stack_invariants
    from appendonly.tests.workload import stack_history
    from appendonly.tests.zeoserver import _start_server
    from appendonly.tests.zeoserver import _stop
    server, addr, stderr = _start_server(tmp_path)
    import ZEO
    db = ZEO.DB(addr)
    with db.transaction() as conn:
        conn.root.stack = AppendStack(3, 4)
        conn.root.archive = Archive()
    db.close()
    client = subprocess.Popen(
        [sys.executable, '-m', 'appendonly.tests.crash_worker', 'zeo',
         '%s:%d' % addr, '0'], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=env(), text=True)
    rng = random.Random(5)
    try:
        for _ in range(10):
            time.sleep(rng.uniform(0.2, 0.6))
            server.send_signal(signal.SIGKILL)
            server.wait(10)
            server = _restart(tmp_path, addr)
        time.sleep(0.5)
    finally:
        client.send_signal(signal.SIGKILL)
        out, err = client.communicate(timeout=30)
    lines = [line.split() for line in out.splitlines(True)
             if line.endswith('\n') and line.strip()]
    assert len(lines) > 10, err[-2000:]
    db = ZEO.DB(addr)
    with db.transaction() as conn:
        history = stack_history(conn.root.stack, conn.root.archive)
    db.close()
    _stop(server)
    batches = [[(int(n), i, 2, 'zeo') for i in range(2)]
               for _, n, _ in lines]
    found = {item[0] for _, _, item in history}
    unreported = [[(n, i, 2, 'zeo') for i in range(2)]
                  for n in sorted(found - {b[0][0] for b in batches})]
    violations = check_stack_invariants(history, batches + unreported, 4)
    assert violations == dict.fromkeys(violations, 0)


def _restart(tmp_path, addr):
    """runzeo again on the same address and file (the conf is there)."""
    from appendonly.tests.zeoserver import _accepts
    conf = tmp_path / 'zeo.conf'
    server = subprocess.Popen(
        [sys.executable, '-m', 'ZEO.runzeo', '-C', str(conf)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, env=env(), cwd=tmp_path)
    deadline = time.monotonic() + 30
    while not _accepts(addr):
        assert time.monotonic() < deadline, 'server did not restart'
        time.sleep(0.05)
    return server
