"""ZConfig: the appendonly component and open_db on a ZConfig file."""
import pytest
import ZConfig

from appendonly import AppendStack
from appendonly import Archive
from appendonly import config
from appendonly._kinds import create
from appendonly.db import open_db
from appendonly.facades import DictData
from appendonly.facades import QueueData

CONF = """\
%import appendonly

<zodb>
  <filestorage>
    path {path}
  </filestorage>
</zodb>

<appendonly feed>
  kind stack
  max-layers 20
  max-length 50
</appendonly>

<appendonly jobs>
  kind queue
  maxsize 100
</appendonly>

<appendonly prefs>
  kind dict
</appendonly>
"""


@pytest.fixture
def conf(tmp_path):
    path = tmp_path / 'app.conf'
    path.write_text(CONF.format(path=tmp_path / 'Data.fs'))
    return str(path)


def test_load_reads_database_and_sections(conf):
    db, structures = config.load(conf)
    try:
        assert sorted(structures) == ['feed', 'jobs', 'prefs']
        feed = structures['feed']
        assert (feed.kind, feed.max_layers, feed.max_length) == (
            'stack', 20, 50)
        stack, archive = create(feed)
        assert isinstance(stack, AppendStack) and isinstance(archive, Archive)
        assert (stack._max_layers, stack._max_length) == (20, 50)
        assert structures['jobs'].maxsize == 100
        assert isinstance(create(structures['jobs']), QueueData)
        assert isinstance(create(structures['prefs']), DictData)
        assert structures['prefs'].max_layers == 10     # the default
        with db.transaction() as conn:
            conn.root.feed = stack
    finally:
        db.close()


def test_open_db_accepts_the_config_file(conf):
    db = open_db(conf)
    try:
        with db.transaction() as conn:
            conn.root.x = 1
    finally:
        db.close()


def test_bad_kind_names_the_problem(tmp_path):
    path = tmp_path / 'bad.conf'
    path.write_text(CONF.format(path=tmp_path / 'Data.fs').replace(
        'kind dict', 'kind tree'))
    with pytest.raises(ZConfig.ConfigurationError,
                       match='kind must be one of'):
        config.load(str(path))


def test_every_key_has_a_description():
    import xml.etree.ElementTree as ET
    import os
    tree = ET.parse(os.path.join(os.path.dirname(config.__file__),
                                 'component.xml'))
    keys = tree.findall('.//key') + tree.findall('.//section')
    names = {key.get('name') for key in keys}
    assert {'kind', 'max-layers', 'path', 'mark-path', '*'} <= names
    for key in keys + tree.findall('.//sectiontype'):
        assert key.find('description').text.strip(), key.get('name')
