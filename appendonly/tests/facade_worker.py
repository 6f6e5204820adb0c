"""A second process for the façade tests:
``python -m appendonly.tests.facade_worker KIND TARGET NAME ARGS...``
prints one JSON line with what it did.

- ``produce TARGET NAME WRITER COUNT``: put (WRITER, i) items;
- ``consume TARGET NAME STOPFILE``: get items until STOPFILE exists and
  the queue is empty;
- ``wait TARGET NAME``: one blocking get; prints the item and the time;
- ``set TARGET NAME WRITER COUNT``: d[(WRITER, i)] = i;
- ``work TARGET NAME COUNT``: get COUNT items, task_done() each.
"""
import json
import os
import queue
import sys
import time

from appendonly.facades import DurableDict
from appendonly.facades import DurableQueue


def main(kind, target, name, *args):
    if kind == 'set':
        writer, count = args[0], int(args[1])
        with DurableDict(target, name) as d:
            for i in range(count):
                d[(writer, i)] = i
        print(json.dumps({'set': count}))
        return
    with DurableQueue(target, name) as q:
        if kind == 'produce':
            writer, count = args[0], int(args[1])
            for i in range(count):
                q.put([writer, i])
            print(json.dumps({'produced': count}))
        elif kind == 'consume':
            stopfile, got = args[0], []
            while True:
                try:
                    got.append(q.get(timeout=0.2))
                except queue.Empty:
                    if os.path.exists(stopfile):
                        break
            print(json.dumps({'consumed': got}))
        elif kind == 'work':
            for _ in range(int(args[0])):
                q.get(timeout=30)
                q.task_done()
            print(json.dumps({'worked': int(args[0])}))
        elif kind == 'wait':
            item = q.get(timeout=30)
            print(json.dumps({'item': item, 'at': time.time()}))


if __name__ == '__main__':
    main(*sys.argv[1:])
