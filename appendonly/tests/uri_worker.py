"""``zeo_worker``'s client process on any ``open_db`` target.

The same subcommands (``stack``, ``produce``, ``consume``), the same
workloads and the same JSON line on stdout, but the database is
``open_db(TARGET)``: a zodburi URI (``postgres://...`` for RelStorage,
``zeo://...``), a ZConfig file or a path.  ``test_relstorage.py`` runs it.

Usage::

    python -m appendonly.tests.uri_worker stack --target URI \\
        --writer N --pushes 60 --per-txn 1-3
    python -m appendonly.tests.uri_worker produce --target URI \\
        --writer N --items 60
    python -m appendonly.tests.uri_worker consume --target URI \\
        --stop-file PATH

``--barrier DIR`` works as in ``zeo_worker``.  A consumer needs every
transaction to begin with what other processes committed before it began:
RelStorage polls the database when a transaction begins, so it does.  A
``zeo://`` URI cannot ask for ``server_sync`` (zodburi has no such
parameter): use ``zeo_worker`` for ZEO consumers.
"""
import argparse
import json

from appendonly.db import open_db
from appendonly.tests.zeo_worker import _per_txn
from appendonly.tests.zeo_worker import _wait_at_barrier
from appendonly.tests.zeo_worker import consume
from appendonly.tests.zeo_worker import produce
from appendonly.tests.zeo_worker import stack


def _parser():
    parser = argparse.ArgumentParser(
        prog='python -m appendonly.tests.uri_worker',
        description=__doc__.split('\n\n')[0])
    commands = parser.add_subparsers(dest='command', required=True)
    for func in (stack, produce, consume):
        sub = commands.add_parser(func.__name__, help=func.__doc__,
                                  description=func.__doc__)
        sub.set_defaults(func=func)
        sub.add_argument('--target', required=True,
                         help='what open_db() opens: URI, ZConfig file, '
                              'path')
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
    db = open_db(args.target)
    try:
        if args.barrier:
            _wait_at_barrier(args.barrier)
        result = args.func(db, args)
    finally:
        db.close()
    print(json.dumps(result), flush=True)


if __name__ == '__main__':
    main()
