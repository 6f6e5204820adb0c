# Thin shim for tools that still call setup.py; metadata is in setup.cfg.
from setuptools import setup

setup()
