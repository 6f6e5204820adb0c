"""Sphinx configuration for the appendonly documentation."""
import configparser
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Let autodoc import the package from the checkout even when it is not
# installed (``make docs`` and tox install it anyway).
sys.path.insert(0, ROOT)

# The version lives in one place: setup.cfg.
_setup_cfg = configparser.ConfigParser()
_setup_cfg.read(os.path.join(ROOT, 'setup.cfg'))
release = _setup_cfg.get('metadata', 'version', fallback='unknown')
version = '.'.join(release.split('.')[:2])

project = 'appendonly'
author = 'Zope Foundation and Contributors'
copyright = '2010-2025, Zope Foundation and Contributors'

extensions = [
    'sphinx.ext.autodoc',
    'sphinx.ext.doctest',
    'repoze.sphinx.autointerface',
]

root_doc = 'index'
exclude_patterns = ['_build']

autodoc_member_order = 'bysource'

html_theme = 'alabaster'


def _write_cli_reference():
    """docs/_generated/cli.rst: the --help of every subcommand, so the CLI
    reference is never out of date."""
    from appendonly import cli
    parser = cli.parser()
    choices = parser._subparsers._group_actions[0].choices
    lines = []
    for name in cli.COMMANDS:
        title = f'``appendonly {name}``'
        lines += [title, '-' * len(title), '', '.. code-block:: text', '']
        lines += ['    ' + line if line else ''
                  for line in choices[name].format_help().splitlines()]
        lines.append('')
    folder = os.path.join(HERE, '_generated')
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, 'cli.rst.inc'), 'w') as f:
        f.write('\n'.join(lines))


_write_cli_reference()


def _write_zconfig_reference():
    """docs/_generated/zconfig.rst.inc: every key of component.xml with its
    <description>."""
    import xml.etree.ElementTree as ET
    tree = ET.parse(os.path.join(ROOT, 'appendonly', 'component.xml'))
    lines = []
    for section in tree.getroot().iter('sectiontype'):
        lines += [f'``<{section.get("name")} NAME>``', '',
                  ' '.join(section.find('description').text.split()), '']
        for key in section.iter('key'):
            default = key.get('default')
            lines += [f'``{key.get("name")}``'
                      + (f' (default ``{default}``)' if default else ''),
                      '    ' + ' '.join(key.find('description').text.split()),
                      '']
    with open(os.path.join(HERE, '_generated', 'zconfig.rst.inc'), 'w') as f:
        f.write('\n'.join(lines))


_write_zconfig_reference()
