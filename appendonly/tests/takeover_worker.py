"""Writers for ``test_takeover.py``, run until SIGTERM (or SIGKILL)::

    python -m appendonly.tests.takeover_worker shared PATH NAME LOG SEED
    python -m appendonly.tests.takeover_worker zeo HOST:PORT NAME LOG SEED

``shared``: opens the shared path ``PATH`` as every writer does (whichever
process wins the election hosts it) and loops over DurableDict sets,
DurableQueue puts and gets, and ZODBStorage single-item commits.
``zeo``: a plain ZEO client (``ZEO.DB``, nothing of ours in between) of a
``runzeo`` server, pushing onto the AppendStacks ``s0`` and ``s1``, pruned
into the Archives ``a0`` and ``a1``.

The log, one line per event, each starting with the time (``time.time()``)
and written with one ``write()`` (a line buffered file: a SIGKILLed process
loses nothing it wrote, only what it had not written yet)::

    T OP ARG        about to call OP
    A OP ARG [RES]  the call returned: acknowledged (RES: what a get got)
    E OP ARG EXC    the call raised: not acknowledged
    closed          SIGTERM: the last call returned, everything closed

OP is ``set`` (``d[ARG] = N`` where ARG is ``NAME-N``), ``put`` (ARG put),
``get`` (ARG ``-``; RES the item, or ``-`` when the queue stayed empty),
``commit`` (``set_container_item('c', ARG, N)``) or ``push`` (ARG is
``STACK:NAME-N``).
"""
import queue
import random
import signal
import sys
import time
import traceback

#: What the test prepares before starting the workers.
DICT, QUEUE, CONTAINER = 'd', 'q', 'c'
STACKS = ('s0', 's1')

_stopping = []


def _on_sigterm(signum, frame):
    _stopping.append(signum)


class Log:
    """The worker's log file (line buffered: each line one write)."""

    def __init__(self, path):
        self.file = open(path, 'a', buffering=1)

    def __call__(self, *words):
        self.file.write(f'{time.time():.6f} ' + ' '.join(map(str, words))
                        + '\n')


def _call(log, op, arg, func):
    """Log, call, log: the A line only once ``func()`` returned."""
    log('T', op, arg)
    try:
        result = func()
    except Exception as exc:
        log('E', op, arg, type(exc).__name__, str(exc).replace('\n', ' '))
        traceback.print_exc()       # to the worker's .err file
        time.sleep(0.05)
        return None
    log('A', op, arg, *(() if result is None else (result,)))
    return result


def shared(path, name, log, rng):
    from appendonly.facades import DurableDict
    from appendonly.facades import DurableQueue
    from appendonly.storage import ZODBStorage
    d = DurableDict(path, DICT)
    q = DurableQueue(path, QUEUE)
    store = ZODBStorage(path)
    log('opened')

    def get():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            return '-'

    n = 0
    while not _stopping:
        n += 1
        key = f'{name}-{n}'
        op = rng.choices(('set', 'put', 'get', 'commit'), (3, 3, 3, 2))[0]
        if op == 'set':
            _call(log, 'set', key, lambda: d.__setitem__(key, n))
        elif op == 'put':
            _call(log, 'put', key, lambda: q.put(key))
        elif op == 'get':
            _call(log, 'get', '-', get)
        else:
            _call(log, 'commit', key, lambda: store.set_container_item(
                CONTAINER, key, str(n)))
    store.close()
    q.close()
    d.close()


def zeo(address, name, log, rng):
    import transaction
    import ZEO
    host, port = address.rsplit(':', 1)
    db = ZEO.DB((host, int(port)), wait_timeout=120)
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    log('opened')

    def push(stack_name, item):
        for retry, attempt in enumerate(tm.attempts(1000)):
            with attempt:
                root = conn.root()
                stack, archive = root[stack_name], root['a' + stack_name[1:]]
                # The answer to a commit can be lost with the server after
                # the commit is on disk (ZEO's at-least-once, not what
                # this test is about): a retry looks first, through the
                # archive too (the other client may have pushed the item
                # out of the window meanwhile).
                if not (retry and _pushed(item, stack, archive)):
                    stack.push(item, archive.addLayer)

    n = 0
    while not _stopping:
        n += 1
        stack_name = rng.choice(STACKS)
        item = f'{name}-{n}'
        _call(log, 'push', f'{stack_name}:{item}',
              lambda: push(stack_name, item))
    conn.close()
    db.close()


def _pushed(item, stack, archive):
    return any(entry[2] == item for structure in (stack, archive)
               for entry in structure)


def main(argv):
    kind, where, name, log_path, seed = argv
    signal.signal(signal.SIGTERM, _on_sigterm)
    log = Log(log_path)
    {'shared': shared, 'zeo': zeo}[kind](where, name, log,
                                         random.Random(int(seed)))
    log('closed')


if __name__ == '__main__':
    main(sys.argv[1:])
