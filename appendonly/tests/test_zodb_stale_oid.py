"""ZODB's own part in the lost writes (``docs/sharing.rst``, "Why
acknowledged writes were lost", step 3): the reproduction script there
must keep reproducing on the ZODB installed.  When upstream fixes the bug
this test fails, to say that the page and the upstream report need
updating."""
import os
import subprocess
import sys
from importlib import metadata

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir,
                      'docs', 'examples', 'zodb_stale_oid.py')


def test_zodb_abort_detaches_the_committed_object_of_a_reused_oid(tmp_path):
    if not os.path.exists(SCRIPT):
        pytest.skip('docs/examples are not part of this installation')
    proc = subprocess.run([sys.executable, SCRIPT], capture_output=True,
                          text=True, cwd=str(tmp_path), timeout=120)
    version = metadata.version('ZODB')
    if proc.returncode == 0:
        pytest.fail(
            f'ZODB {version} no longer leaves a dangling reference after '
            f'an oid is handed out twice ({proc.stdout.strip()}): upstream '
            f'fixed Connection._invalidate_creating.  Update '
            f'docs/sharing.rst ("Why acknowledged writes were lost", step '
            f'3 and the upstream report) and this test.')
    assert proc.returncode == 1, proc.stderr
    assert 'BUG: committed data refers to oid' in proc.stderr
    assert 'never stored (POSKeyError)' in proc.stderr
