"""The private ZEO/ZODB names appendonly.share relies on are still there,
and the upstream code we copied or wrap has not changed.  When this fails
after an upgrade, read the upstream change, adapt
``appendonly/share/_zeo.py``, then update the hashes and TESTED_WITH (and
the pins in setup.cfg)."""
import hashlib
import importlib
import inspect
import textwrap

import pytest
from importlib.metadata import version

from appendonly.share import _zeo

#: sha256 of the upstream source we copied or override around: one hash
#: per distinct version of it among the tested releases.
UPSTREAM = {
    'ZEO.StorageServer.ZEOStorage.tpc_finish': {
        '65a825934726308a2651b48c5c08710de35e609afb7fcf4348bbc956ca9c5410'},
    'ZEO.StorageServer.StorageServer.invalidate': {
        '74ed1c2a65eacc2bb20a69f240defdd60f9d1ae179c84114b169e581cc3ed392'},
    'ZEO.ClientStorage.ClientStorage.new_oid': {
        '31fba54153731248a52c987a90b38dd6bc05ba0e765ba1f9352ecf2a241f5be5'},
    'ZEO.asyncio.server.Acceptor.factory': {
        'fcd8cf0e42928d083217b6ee132225135028d02f6511d66089771d59c1b21421'},
}


def _resolve(dotted):
    parts = dotted.split('.')
    for n in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module('.'.join(parts[:n]))
        except ImportError:
            continue
        for part in parts[n:]:
            obj = getattr(obj, part)
        return obj
    raise ImportError(dotted)


def _source_hash(dotted):
    source = textwrap.dedent(inspect.getsource(_resolve(dotted)))
    return hashlib.sha256(source.encode()).hexdigest()


def _version_tuple(text):
    return tuple(int(p) for p in text.split('.') if p.isdigit())


@pytest.mark.parametrize('dist', sorted(_zeo.TESTED_WITH))
def test_installed_version_is_one_we_tested(dist):
    lowest, highest = _zeo.TESTED_WITH[dist]
    installed = _version_tuple(version(dist))
    assert _version_tuple(lowest) <= installed[:len(_version_tuple(lowest))]
    assert installed[:len(_version_tuple(highest))] <= _version_tuple(
        highest), f'{dist} {version(dist)} is newer than we tested'


@pytest.mark.parametrize('owner, name', _zeo.PRIVATE_NAMES,
                         ids=['.'.join(n) for n in _zeo.PRIVATE_NAMES])
def test_private_name_still_exists(owner, name):
    obj = _resolve(owner)
    if owner.endswith('__init__'):          # a keyword argument
        assert name in inspect.signature(obj).parameters
    elif not hasattr(obj, name):            # an instance attribute
        assert f'self.{name} =' in inspect.getsource(obj)


@pytest.mark.parametrize('dotted', sorted(UPSTREAM))
def test_upstream_code_we_copied_is_unchanged(dotted):
    assert _source_hash(dotted) in UPSTREAM[dotted], (
        f'{dotted} changed upstream: review appendonly/share/_zeo.py')
