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


def test_queue_takes_maxsize_from_its_section(conf):
    import queue

    from appendonly.facades import DurableQueue
    with DurableQueue(conf, 'jobs') as q:
        assert q.maxsize == 100
        for n in range(100):
            q.put_nowait(n)
        with pytest.raises(queue.Full):
            q.put_nowait('one too many')
    with DurableQueue(conf, 'jobs', maxsize=0) as q:   # the caller wins
        assert q.maxsize == 0
        q.put_nowait('fits')
    with DurableQueue(conf, 'other') as q:      # no section: no limit
        assert q.maxsize == 0


def test_facade_of_the_wrong_kind_is_refused(conf, tmp_path):
    from appendonly.facades import DurableDict
    from appendonly.facades import DurableQueue
    with pytest.raises(ValueError, match='<appendonly jobs> configures a '
                                         'queue, not a dict'):
        DurableDict(conf, 'jobs')
    with pytest.raises(ValueError, match='configures a dict, not a queue'):
        DurableQueue(conf, 'prefs')
    # Refused before anything was opened or created.
    assert not (tmp_path / 'Data.fs').exists()
    with DurableDict(conf, 'prefs') as d:
        d['k'] = 'v'
        assert d['k'] == 'v'


@pytest.mark.parametrize('kind, line, problem', [
    ('dict', 'maxsize 10', 'maxsize does nothing for a dict'),
    ('queue', 'max-layers 3', 'max-layers does nothing for a queue'),
    ('stack', 'maxsize 5', 'maxsize does nothing for a stack'),
    ('accumulator', 'max-length 7', 'max-length does nothing for a'),
    ('queue', 'maxsize -1', 'sizes must be positive'),
    ('stack', 'max-layers 0', 'sizes must be positive'),
])
def test_keys_that_do_nothing_are_refused(tmp_path, kind, line, problem):
    path = tmp_path / 'app.conf'
    path.write_text(f'%import appendonly\n'
                    f'<zodb>\n <filestorage>\n  path {tmp_path}/Data.fs\n'
                    f' </filestorage>\n</zodb>\n'
                    f'<appendonly thing>\n kind {kind}\n {line}\n'
                    f'</appendonly>\n')
    with pytest.raises(ZConfig.ConfigurationError, match=problem):
        config.load(str(path))
    assert not (tmp_path / 'Data.fs').exists()
