"""The façades on a ZEO URI, shared by several processes."""
import json
import queue
import subprocess
import sys
import time

import pytest

from appendonly.facades import DurableDict
from appendonly.facades import DurableQueue
from appendonly.tests.zeoserver import env

pytestmark = pytest.mark.zeo


def _uri(addr):
    return 'zeo://%s:%d?wait_timeout=30' % addr


def _start(*args):
    return subprocess.Popen(
        [sys.executable, '-m', 'appendonly.tests.facade_worker'] +
        [str(a) for a in args], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, env=env())


def _result(process, timeout=60):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err.decode()
    return json.loads(out.decode().strip().splitlines()[-1])


def test_queue_exactly_once_across_processes(zeo_server, tmp_path):
    uri = _uri(zeo_server)
    stop = tmp_path / 'stop'
    consumers = [_start('consume', uri, 'jobs', stop) for _ in range(2)]
    producers = [_start('produce', uri, 'jobs', 'p%d' % n, 60)
                 for n in range(2)]
    # This process produces and consumes too.
    local = []
    with DurableQueue(uri, 'jobs') as q:
        for i in range(30):
            q.put(['local', i])
            if i % 3 == 0:
                try:    # the consumer processes may have taken them all
                    local.append(q.get(timeout=1))
                except queue.Empty:
                    pass
        for p in producers:
            _result(p)
        stop.touch()
        per_consumer = [[tuple(item) for item in _result(c)['consumed']]
                        for c in consumers]
        consumed = [item for got in per_consumer for item in got]
        left = []
        while not q.empty():
            left.append(q.get_nowait())
    delivered = consumed + [tuple(i) for i in local + left]
    produced = [('p%d' % n, i) for n in range(2) for i in range(60)] + \
        [('local', i) for i in range(30)]
    assert len(delivered) == len(set(delivered)), 'delivered twice'
    assert sorted(delivered) == sorted(produced), 'lost'
    # FIFO: each consumer saw each producer's items in the order put.
    for got in per_consumer:
        for writer in ('p0', 'p1'):
            mine = [i for w, i in got if w == writer]
            assert mine == sorted(mine)


def test_blocked_get_wakes_for_a_put_from_another_process(zeo_server):
    uri = _uri(zeo_server)
    with DurableQueue(uri, 'wake') as q:
        waiter = _start('wait', uri, 'wake')
        time.sleep(2.0)             # the waiter is connected and blocked
        put_at = time.time()
        q.put('ping')
        result = _result(waiter)
    assert result['item'] == 'ping'
    assert result['at'] - put_at < 0.1


def test_dict_writers_in_processes(zeo_server):
    uri = _uri(zeo_server)
    writers = [_start('set', uri, 'shared', 'w%d' % n, 50) for n in range(3)]
    with DurableDict(uri, 'shared') as d:
        for i in range(50):
            d[('local', i)] = i
        for w in writers:
            _result(w)
        keys = d.keys()
    assert sorted(keys) == sorted((w, i) for w in ('w0', 'w1', 'w2', 'local')
                                  for i in range(50))


def test_task_done_and_join_across_processes(zeo_server):
    uri = _uri(zeo_server)
    with DurableQueue(uri, 'tasks') as q:
        for i in range(20):
            q.put(i)
        workers = [_start('work', uri, 'tasks', 10) for _ in range(2)]
        q.join()                # returns once both processes are done
        assert q.qsize() == 0
        for w in workers:
            assert _result(w) == {'worked': 10}
