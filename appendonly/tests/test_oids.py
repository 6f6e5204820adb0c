"""No oid is handed out twice: the durable high-water mark of
OidReservingStorage (hosts, ``serve``, ``<reserveoids>``), and clients
that drop prefetched oids when they reconnect."""
import os
import stat
import subprocess
import sys
import time

import pytest
import ZODB
import ZODB.config
import ZODB.FileStorage
from persistent.mapping import PersistentMapping
from ZODB.utils import u64

from appendonly.share import _oids
from appendonly.share import _zeo
from appendonly.tests.zeoserver import _stop
from appendonly.tests.zeoserver import env


def _handed_out(storage, n):
    return [u64(storage.new_oid()) for _ in range(n)]


def test_new_oids_never_repeat_across_opens_even_uncommitted(tmp_path):
    path = str(tmp_path / 'Data.fs')
    storage = _oids.reserving_filestorage(path)
    first = _handed_out(storage, 250)       # none of them committed
    storage.close()
    assert stat.S_IMODE(os.stat(path + '.oids').st_mode) == 0o600
    storage = _oids.reserving_filestorage(path)
    try:
        second = _handed_out(storage, 250)
    finally:
        storage.close()
    assert min(second) > max(first)
    # A plain FileStorage hands the same oids out again: the bug.
    plain = ZODB.FileStorage.FileStorage(path)
    try:
        assert u64(plain.new_oid()) <= max(first)
    finally:
        plain.close()


def test_mark_moves_a_block_at_a_time(tmp_path):
    path = str(tmp_path / 'Data.fs')
    storage = _oids.reserving_filestorage(path)
    try:
        handed = _handed_out(storage, _oids.OID_BLOCK + 5)
        with open(path + '.oids', 'rb') as f:
            mark = u64(f.read())
        assert max(handed) < mark <= max(handed) + _oids.OID_BLOCK
    finally:
        storage.close()


def test_committed_data_unaffected_and_db_works(tmp_path):
    path = str(tmp_path / 'Data.fs')
    db = ZODB.DB(_oids.reserving_filestorage(path))
    with db.transaction() as conn:
        conn.root()['m'] = PersistentMapping(a=1)
    db.close()
    db = ZODB.DB(_oids.reserving_filestorage(path))
    try:
        with db.transaction() as conn:
            assert conn.root()['m'] == {'a': 1}
            conn.root()['n'] = PersistentMapping()
            conn.add(conn.root()['n'])
            assert u64(conn.root()['n']._p_oid) > _oids.OID_BLOCK
    finally:
        db.close()


def test_reserveoids_zconfig_section(tmp_path):
    path = tmp_path / 'Data.fs'
    config = (f'%import appendonly\n<reserveoids>\n  <filestorage>\n'
              f'    path {path}\n  </filestorage>\n</reserveoids>\n')
    storage = ZODB.config.storageFromString(config)
    first = _handed_out(storage, 3)
    storage.close()
    storage = ZODB.config.storageFromString(config)
    try:
        assert u64(storage.new_oid()) > max(first)
    finally:
        storage.close()


def test_reserveoids_needs_a_mark_path_for_other_storages():
    config = '%import appendonly\n<reserveoids>\n  <mappingstorage/>\n' \
             '</reserveoids>\n'
    with pytest.raises(ValueError, match='mark-path'):
        ZODB.config.storageFromString(config)


def _runzeo(tmp_path, address):
    """A plain ZEO server (no mark) on a Unix socket; waits until it
    listens."""
    conf = tmp_path / 'zeo.conf'
    conf.write_text(f'<zeo>\n  address {address}\n</zeo>\n<filestorage>\n'
                    f'  path {tmp_path / "Data.fs"}\n</filestorage>\n')
    server = subprocess.Popen(
        [sys.executable, '-m', 'ZEO.runzeo', '-C', str(conf)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, env=env())
    _wait(lambda: os.path.exists(address), 'the server listening')
    return server


def _wait(condition, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f'{what}: not after {timeout} s'
        time.sleep(0.02)


def test_client_drops_prefetched_oids_when_it_reconnects(tmp_path):
    # After a restart a plain server hands out oid 1 again.  A client that
    # kept its 99 prefetched oids would go on with oid 2 (and collide with
    # what the new server hands to others); ours asks the new server.
    address = str(tmp_path / 'zeo.sock')
    server = _runzeo(tmp_path, address)
    client = _zeo.client_storage('t', address, False, 30, 0.1)
    try:
        _wait(client.is_connected, 'connected')
        assert u64(client.new_oid()) == 1
        server.kill()
        server.wait()
        os.unlink(address)
        _wait(lambda: not client.is_connected(), 'disconnected')
        server = _runzeo(tmp_path, address)
        _wait(client.is_connected, 'reconnected')
        assert u64(client.new_oid()) == 1   # from the new server
    finally:
        client.close()
        _stop(server)
