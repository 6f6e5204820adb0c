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


#: Which keys of an ``<appendonly>`` section each kind uses; a key set
#: (to other than its default) for a kind that does not use it is an
#: error, rather than a setting silently ignored.
USED_KEYS = {
    'stack': ('max_layers', 'max_length'),
    'queue': ('maxsize',),
    'dict': (),
    'accumulator': (),
}
DEFAULTS = {'max_layers': 10, 'max_length': 100, 'maxsize': 0}


class StructureSettings:
    """One ``<appendonly NAME>`` section.

    Who reads what: DurableDict and DurableQueue opened on the ZConfig
    file (``DurableQueue('app.conf', 'jobs')``) check ``kind`` and take
    ``maxsize``; ``max_layers`` and ``max_length`` are for the
    application's own stacks, read through :func:`load`.
    """

    def __init__(self, section):
        self.name = section.getSectionName()
        self.kind = section.kind
        self.max_layers = section.max_layers
        self.max_length = section.max_length
        self.maxsize = section.maxsize
        for key, default in DEFAULTS.items():
            if getattr(self, key) != default \
                    and key not in USED_KEYS[self.kind]:
                raise ValueError(
                    f'<appendonly {self.name}>: {key.replace("_", "-")} '
                    f'does nothing for a {self.kind} (it is for '
                    f'{_kinds_using(key)})')
        if self.maxsize < 0 or self.max_layers < 1 or self.max_length < 1:
            raise ValueError(f'<appendonly {self.name}>: sizes must be '
                             f'positive (maxsize: 0 or more)')

    def __repr__(self):
        return (f'<appendonly {self.name} kind={self.kind} '
                f'{self.max_layers}x{self.max_length} maxsize={self.maxsize}>')


def _kinds_using(key):
    return ' and '.join(f'{kind}s' for kind, keys in USED_KEYS.items()
                        if key in keys)


def looks_like_config(head):
    """Do these first bytes of a file read as a ZConfig file (its first
    statement a ``<section>``, ``%import`` or ``%define``)?"""
    try:
        text = head.decode('utf-8')
    except UnicodeDecodeError:
        return False
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        return line.startswith(('<', '%import', '%define'))
    return False


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


def settings(target, name):
    """The ``<appendonly NAME>`` section of ``target`` if ``target`` is
    the path of a ZConfig file that has one, else None.  The façades
    opened on a ZConfig file take their settings from it."""
    if not isinstance(target, (str, os.PathLike)):
        return None
    target = os.fspath(target)
    if '://' in target or not os.path.isfile(target):
        return None
    with open(target, 'rb') as f:
        if not looks_like_config(f.read(4096)):
            return None
    for section in read(target).structures:
        if section.name == name:
            return section
    return None


def load(path):
    """Read a ZConfig file; return ``(db, {name: StructureSettings})``:
    the database of its first ``<zodb>`` section, and its
    ``<appendonly>`` sections."""
    config = read(path)
    db = ZODB.config.databaseFromConfig(config.database)
    return db, {s.name: s for s in config.structures}
