"""A storage in a second process, for the cross-process tests:
``python -m appendonly.tests.storage_worker KIND TARGET`` opens
``ZODBStorage(TARGET)`` (KIND ``zodb``) or ``SqliteStorage(TARGET)``
(``sqlite``) and answers calls, one JSON line each way:

- in: ``[method, args]``, a method of the storage; generators come back
  as lists.  ``["fill", [c_id, prefix, count]]`` makes ``count``
  single-item commits ``prefix.<i> = <i>`` instead.
- out: ``{"result": ...}``, or ``{"error": [class name, message]}``.

The first line out is ``{"ready": true}`` once the storage is open (or
the error that kept it from opening).  End of input closes the storage.
"""
import json
import sys
import types

from appendonly.storage import SqliteStorage
from appendonly.storage import ZODBStorage

KINDS = {'zodb': ZODBStorage, 'sqlite': SqliteStorage}


def _fill(storage, c_id, prefix, count):
    for i in range(count):
        storage.set_container_item(c_id, f'{prefix}.{i}', i)
    return count


def _answer(call):
    try:
        result = call()
    except Exception as e:
        return {'error': [type(e).__name__, str(e)]}
    if isinstance(result, types.GeneratorType):
        result = list(result)
    return {'result': result}


def main(kind, target):
    out = sys.stdout
    opened = _answer(lambda: KINDS[kind](target))
    if 'error' in opened:
        print(json.dumps(opened), file=out, flush=True)
        return
    storage = opened['result']
    print(json.dumps({'ready': True}), file=out, flush=True)
    try:
        for line in sys.stdin:
            method, args = json.loads(line)
            if method == 'fill':
                answer = _answer(lambda: _fill(storage, *args))
            else:
                answer = _answer(lambda: getattr(storage, method)(*args))
            print(json.dumps(answer), file=out, flush=True)
    finally:
        storage.close()


if __name__ == '__main__':
    main(*sys.argv[1:])
