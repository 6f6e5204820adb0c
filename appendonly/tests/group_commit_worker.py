"""One process of test_group_commit: 8 threads on one shared path, each
putting its own items into a DurableQueue, getting items, setting its own
dict keys, and failing on purpose in between (a delete of a missing key,
a put into a full queue).  Prints one JSON line: what each thread was
told (items put, items got, keys set, errors raised)."""
import json
import queue
import sys
import threading

from appendonly.facades import DurableDict
from appendonly.facades import DurableQueue

THREADS = 8


def main(path, name, ops):
    q = DurableQueue(path, 'jobs')
    full = DurableQueue(path, 'full', maxsize=1)
    d = DurableDict(path, 'dict')
    report = {'put': [], 'got': [], 'set': [], 'missing': 0, 'full': 0}
    lock = threading.Lock()

    def thread(t):
        put, got, set_, missing, full_ = [], [], [], 0, 0
        for n in range(ops):
            item = f'{name}-{t}-{n}'
            q.put(item)
            put.append(item)
            d[item] = n
            set_.append(item)
            try:
                del d[f'missing-{item}']    # fails alone, in a batch
            except KeyError:
                missing += 1
            try:
                full.put_nowait(item)       # the first one fits
            except queue.Full:
                full_ += 1
            try:
                got.append(q.get_nowait())
            except queue.Empty:
                pass
        with lock:
            report['put'] += put
            report['got'] += got
            report['set'] += set_
            report['missing'] += missing
            report['full'] += full_

    threads = [threading.Thread(target=thread, args=(t,))
               for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(report), flush=True)


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
