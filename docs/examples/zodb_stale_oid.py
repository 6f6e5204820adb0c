"""ZODB: when a commit fails because a new object got an oid already in
use, the abort detaches the committed object cached under that oid; later
commits then store a reference to an oid that is never stored.  Exits with
status 1 while the bug is there, 0 once it is fixed.
"""
import logging
import os
import sys
import tempfile

import transaction
import ZODB
from persistent.mapping import PersistentMapping as PM
from ZODB.POSException import POSKeyError

logging.disable(logging.ERROR)      # ZODB logs each failed load
path = os.path.join(tempfile.mkdtemp(), 'Data.fs')
db = ZODB.DB(path)
# A storage that hands out an oid twice, as ZEO's ClientStorage does
# with the oids it prefetched before its server restarted.
stale, new_oid = [], db.storage.new_oid
db.storage.new_oid = lambda: stale.pop() if stale else new_oid()
root = db.open().root()
root['a'], root['b'] = PM(), PM()
root['a']['x'] = root['b']['x'] = x = PM(v=1)
transaction.commit()
x._p_deactivate()                   # x: a ghost in the cache, as often

# 1-2. A new object gets x's oid; its commit fails (FileStorage:
# ConflictError; ZEO: "ValueError: A different object already has the
# same oid").  3. The abort detaches x, though a and b still hold it.
stale.append(x._p_oid)
root['new'] = PM()
try:
    transaction.commit()
except Exception:
    transaction.abort()
# 4. x is new to a's commit: it gets a fresh oid, whose load fails.
root['a']['y'] = 1
try:
    transaction.commit()
except POSKeyError:
    transaction.abort()
# x kept that oid: b's commit refers to it, and succeeds.
root['b']['y'] = 1
transaction.commit()
db.close()

db = ZODB.DB(path)
x = db.open().root()['b']['x']
try:
    x['v']
except POSKeyError:
    sys.exit(f'BUG: committed data refers to oid 0x{x._p_oid.hex()}, '
             f'which was never stored (POSKeyError)')
print('ok: every committed reference loads')
