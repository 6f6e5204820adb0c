"""A client process for the multi-process scenarios (``test_zeo.py``,
``test_relstorage.py``).

Each subcommand opens its own database (a ZEO ClientStorage on ``--addr``,
or whatever ``open_db`` makes of ``--target``: a ``postgres://`` URI for
RelStorage, a ZConfig file...), does its share of a
workload with ``TransactionManager.attempts()`` retries (through
``workload.run_in_transaction``), and prints one JSON line on stdout when
it is done: what it committed or consumed, and how many ConflictErrors
reached its retry loop.  Any other failure exits non-zero with a traceback
on stderr.

Usage::

    python -m appendonly.tests.zeo_worker stack --addr HOST:PORT \\
        --writer N --pushes 60 --per-txn 1-3
    python -m appendonly.tests.zeo_worker produce --addr HOST:PORT \\
        --writer N --items 60
    python -m appendonly.tests.zeo_worker consume --addr HOST:PORT \\
        --stop-file PATH

``--target TARGET`` instead of ``--addr``: a consumer needs every
transaction to begin with what other processes committed before it began;
RelStorage polls when a transaction begins, so it does, but a ``zeo://``
URI cannot ask for ``server_sync``: use ``--addr`` for ZEO.

``--barrier DIR`` (every subcommand) makes the worker connect, create
``DIR/ready-<pid>``, and wait for ``DIR/go`` before it starts, so that the
test can start all workers at once.
"""
import argparse
import json
import os
import sys
import time

import ZEO

from appendonly.db import open_db
from appendonly.tests.workload import new_counter
from appendonly.tests.workload import run_in_transaction
from appendonly.tests.workload import stack_writer

# Nothing in a worker may wait forever: the test kills it anyway, but a
# worker that gives up on its own says why on stderr.
CONNECT_TIMEOUT = 30
BARRIER_TIMEOUT = 30
CONSUME_TIMEOUT = 60


def stack(db, args):
    """Push (writer, seq) items with stack.push(item, archive.addLayer)."""
    counter, batches = new_counter(), []
    stack_writer(db, args.writer, args.pushes, args.per_txn, counter,
                 batches)
    return {'writer': args.writer, 'batches': batches,
            'conflicts': counter['conflicts']}


def produce(db, args):
    """Append (writer, seq) items to root['acc'], one per transaction."""
    counter, produced = new_counter(), []
    for seq in range(args.items):
        def add(root, item=(args.writer, seq)):
            if seq % 3:
                root['acc'].append(item)
            else:
                root['acc'].extend([item])
        run_in_transaction(db, add, counter)
        produced.append((args.writer, seq))
    return {'writer': args.writer, 'produced': produced,
            'conflicts': counter['conflicts']}


def consume(db, args):
    """Call root['acc'].consume() until the stop file exists, then once
    more (everything committed before the stop file was created is then
    either consumed here, by another consumer, or left over)."""
    counter, batches = new_counter(), []
    deadline = time.monotonic() + CONSUME_TIMEOUT
    while True:
        last = os.path.exists(args.stop_file)
        got = run_in_transaction(db, lambda root: root['acc'].consume(),
                                 counter, attempts=1000)
        if got:
            batches.append(got)
        if last:
            break
        if time.monotonic() > deadline:
            sys.exit(f'consume: no stop file after {CONSUME_TIMEOUT} s')
        if not got:
            time.sleep(0.005)   # two cores are shared with the writers
    return {'batches': batches, 'conflicts': counter['conflicts']}


def _address(text):
    host, sep, port = text.rpartition(':')
    if not sep or not host:
        raise argparse.ArgumentTypeError(f'expected HOST:PORT, not {text!r}')
    return host, int(port)


def _per_txn(text):
    lo, sep, hi = text.partition('-')
    if not sep:
        return int(lo)
    return int(lo), int(hi)


def _wait_at_barrier(directory):
    with open(os.path.join(directory, f'ready-{os.getpid()}'), 'w'):
        pass
    go = os.path.join(directory, 'go')
    deadline = time.monotonic() + BARRIER_TIMEOUT
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            sys.exit(f'barrier: no {go} after {BARRIER_TIMEOUT} s')
        time.sleep(0.01)


def _parser():
    parser = argparse.ArgumentParser(
        prog='python -m appendonly.tests.zeo_worker',
        description=__doc__.split('\n\n')[0])
    commands = parser.add_subparsers(dest='command', required=True)
    for func in (stack, produce, consume):
        sub = commands.add_parser(func.__name__, help=func.__doc__,
                                  description=func.__doc__)
        sub.set_defaults(func=func)
        where = sub.add_mutually_exclusive_group(required=True)
        where.add_argument('--addr', type=_address,
                           help='the ZEO server, HOST:PORT')
        where.add_argument('--target',
                           help='what open_db() opens: URI, ZConfig file')
        sub.add_argument('--barrier', metavar='DIR',
                         help='wait for DIR/go before starting')
        if func is consume:
            sub.add_argument('--stop-file', required=True,
                             help='stop once this file exists')
        else:
            sub.add_argument('--writer', type=int, required=True,
                             help='this worker\'s number, first in items')
        if func is stack:
            sub.add_argument('--pushes', type=int, default=60)
            sub.add_argument('--per-txn', type=_per_txn, default=1,
                             help='pushes per transaction: N or LO-HI')
        if func is produce:
            sub.add_argument('--items', type=int, default=60)
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    # server_sync: every transaction begins with a round trip to the
    # server, so it sees everything committed before it began (a consumer
    # that saw the stop file then drains what the producers left).
    if args.target:
        db = open_db(args.target)
    else:
        db = ZEO.DB(args.addr, wait_timeout=CONNECT_TIMEOUT,
                    server_sync=args.func is consume)
    try:
        if args.barrier:
            _wait_at_barrier(args.barrier)
        result = args.func(db, args)
    finally:
        db.close()
    print(json.dumps(result), flush=True)


if __name__ == '__main__':
    main()
