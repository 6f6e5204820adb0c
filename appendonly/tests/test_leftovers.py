"""The autouse fixture of conftest.py that fails a test leaving a process
behind (and kills the process)."""
import subprocess
import sys
import textwrap

from appendonly.tests import conftest
from appendonly.tests.zeoserver import env


def test_descendants_lists_live_children_only():
    child = subprocess.Popen([sys.executable, '-c',
                              'import time; time.sleep(60)'])
    try:
        assert child.pid in conftest._descendants()
    finally:
        child.kill()
        child.wait()
    assert child.pid not in conftest._descendants()


def test_a_test_that_leaves_a_process_fails(tmp_path):
    pidfile = tmp_path / 'pid'
    test = tmp_path / 'test_leaky.py'
    test.write_text(textwrap.dedent(f'''
        import subprocess, sys

        def test_leaks():
            child = subprocess.Popen(
                [sys.executable, '-c', 'import time; time.sleep(600)'])
            open({str(pidfile)!r}, 'w').write(str(child.pid))

        def test_cleans_up():
            child = subprocess.Popen(
                [sys.executable, '-c', 'import time; time.sleep(600)'])
            child.kill()
            child.wait()
    '''))
    result = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
         '-p', 'appendonly.tests.conftest', str(test)],
        cwd=tmp_path, env=env(), capture_output=True, text=True,
        timeout=120)
    assert result.stdout.startswith('.E.'), result.stdout
    assert '2 passed, 1 error' in result.stdout, result.stdout
    assert 'processes left behind' in result.stdout
    pid = int(pidfile.read_text())
    # ... and the process was killed.
    import os
    try:
        os.kill(pid, 0)
        alive = open(f'/proc/{pid}/stat').read().split(') ')[1][0] != 'Z'
    except (ProcessLookupError, FileNotFoundError):
        alive = False
    assert not alive
