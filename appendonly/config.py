"""ZConfig support: ``%import appendonly`` and ``<appendonly NAME>``
sections (see ``component.xml``), read beside the database's ``<zodb>``
section by :func:`load`, which :func:`appendonly.db.open_db` uses for
ZConfig files."""
import os

import ZConfig
import ZODB.config

KINDS = ('stack', 'queue', 'dict', 'accumulator')
_schema = None


def kind(value):
    """ZConfig datatype: one of KINDS."""
    value = value.lower()
    if value not in KINDS:
        raise ValueError(f'kind must be one of {", ".join(KINDS)}, '
                         f'not {value!r}')
    return value


class StructureSettings:
    """One ``<appendonly NAME>`` section."""

    def __init__(self, section):
        self.name = section.getSectionName()
        self.kind = section.kind
        self.max_layers = section.max_layers
        self.max_length = section.max_length
        self.maxsize = section.maxsize

    def __repr__(self):
        return (f'<appendonly {self.name} kind={self.kind} '
                f'{self.max_layers}x{self.max_length} maxsize={self.maxsize}>')


def schema():
    global _schema
    if _schema is None:
        _schema = ZConfig.loadSchema(
            os.path.join(os.path.dirname(__file__), 'schema.xml'))
    return _schema


def read(path):
    """The configuration in a ZConfig file, nothing opened yet."""
    config, _ = ZConfig.loadConfig(schema(), path)
    return config


def load(path):
    """Read a ZConfig file; return ``(db, {name: StructureSettings})``:
    the database of its first ``<zodb>`` section, and its
    ``<appendonly>`` sections."""
    config = read(path)
    db = ZODB.config.databaseFromConfig(config.database)
    return db, {s.name: s for s in config.structures}
