"""Shared paths for configurations: the ``appendonly://`` zodburi scheme
(pyramid_zodbconn's ``zodbconn.uri``, the CLI) and the ZConfig storage
sections ``<appendonlyfile>`` and ``<reserveoids>`` (``component.xml``).

``file://`` and ``<filestorage>`` open a FileStorage exclusively; these
open it the way ``open_db(path)`` does, so an application configured
with them, the CLI and the façades work on one path at once.
"""
import os
from urllib.parse import parse_qsl

from zodburi.resolvers import Resolver

from appendonly.share._oids import MARK_SUFFIX
from appendonly.share._oids import OidReservingStorage


def _open_shared(path, read_only, create):
    from appendonly.share import open_storage
    if not os.path.exists(path) and (read_only or not create):
        raise FileNotFoundError(f'{path}: no such database')
    return open_storage(path, read_only=read_only)


class SharedFileResolver(Resolver):
    """``appendonly:///path/to/Data.fs?read_only=1&create=0`` plus
    zodburi's database arguments (``connection_cache_size``,
    ``database_name``...)."""

    _int_args = ('read_only', 'create')

    def __call__(self, uri):
        rest = uri.split('appendonly://', 1)[1]
        path, _, query = rest.partition('?')
        if not path:
            raise ValueError(f'{uri}: no path (appendonly:///path/Data.fs)')
        path = os.path.normpath(path)
        kw, dbkw = self.interpret_kwargs(dict(parse_qsl(query)))

        def factory():
            return _open_shared(path, bool(kw.get('read_only', 0)),
                                bool(kw.get('create', 1)))

        return factory, dbkw


resolve_uri = SharedFileResolver()


class SharedFileConfig:
    """ZConfig ``<appendonlyfile>``: ``path``, ``read-only``, ``create``."""

    def __init__(self, config):
        self.config = config
        self.name = config.getSectionName()

    def open(self):
        return _open_shared(self.config.path, self.config.read_only,
                            self.config.create)


class ReservingConfig:
    """ZConfig ``<reserveoids>``: wraps the storage section inside it so
    that its oids never repeat across restarts (for users' own
    ``runzeo``).  The mark is kept beside a FileStorage's file, or at
    ``mark-path``."""

    def __init__(self, config):
        self.config = config
        self.name = config.getSectionName()

    def open(self):
        base = self.config.base.open()
        try:
            mark = self.config.mark_path
            if mark is None:
                import ZODB.FileStorage
                if not isinstance(base, ZODB.FileStorage.FileStorage):
                    raise ValueError(
                        '<reserveoids>: set mark-path for a storage that '
                        'is not a <filestorage>')
                mark = base.getName() + MARK_SUFFIX
            return OidReservingStorage(base, mark)
        except BaseException:
            base.close()
            raise
