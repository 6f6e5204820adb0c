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
