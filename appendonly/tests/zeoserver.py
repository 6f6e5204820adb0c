"""A real ZEO server in a subprocess, for tests: ``zeo_server`` yields its
(host, port) on 127.0.0.1; ``env()`` is the environment subprocesses need."""
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

import appendonly

REPO_ROOT = pathlib.Path(appendonly.__file__).resolve().parent.parent
SERVER_START_TIMEOUT = 30
SERVER_STOP_TIMEOUT = 15

ZEO_CONF = """\
<zeo>
  address {host}:{port}
</zeo>
<filestorage>
  path {path}
</filestorage>
"""


def env():
    """The environment of every subprocess: this repository importable.

    The server needs it as much as the clients: it runs the conflict
    resolution, so it must import ``appendonly`` to find the classes named
    in the records.  Without it every conflict would be unresolvable.
    """
    env = dict(os.environ)
    paths = [str(REPO_ROOT)] + [p for p in sys.path if p]
    if env.get('PYTHONPATH'):
        paths.append(env['PYTHONPATH'])
    env['PYTHONPATH'] = os.pathsep.join(paths)
    return env


def _free_port(host):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _accepts(addr):
    try:
        with socket.create_connection(addr, timeout=0.5):
            return True
    except OSError:
        return False


def _start_server(tmp_path, host='127.0.0.1'):
    """Start runzeo; return (process, address, stderr path)."""
    # A port found free may be taken before the server binds it: retry.
    for attempt in range(3):
        port = _free_port(host)
        conf = tmp_path / 'zeo.conf'
        conf.write_text(ZEO_CONF.format(host=host, port=port,
                                        path=tmp_path / 'Data.fs'))
        stderr = tmp_path / f'zeo-{attempt}.stderr'
        with open(stderr, 'wb') as err:
            server = subprocess.Popen(
                [sys.executable, '-m', 'ZEO.runzeo', '-C', str(conf)],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                env=env(), cwd=tmp_path)
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while server.poll() is None and time.monotonic() < deadline:
            if _accepts((host, port)):
                return server, (host, port), stderr
            time.sleep(0.05)
        if server.poll() is None:
            _stop(server)
            pytest.fail(f'ZEO server not listening after '
                        f'{SERVER_START_TIMEOUT} s:\n{stderr.read_text()}')
        if 'in use' not in stderr.read_text():
            break
    pytest.fail(f'ZEO server exited with {server.returncode}:\n'
                f'{stderr.read_text()}')


def _stop(process, timeout=SERVER_STOP_TIMEOUT):
    """SIGTERM, then SIGKILL; return True if it stopped on SIGTERM."""
    if process.poll() is not None:
        return True
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
        return False


@pytest.fixture
def zeo_server(tmp_path):
    """A ZEO server in a subprocess, serving ``tmp_path/Data.fs`` on a free
    loopback port; yields its (host, port)."""
    server, addr, stderr = _start_server(tmp_path)
    try:
        yield addr
    finally:
        stopped = _stop(server)
        assert stopped, f'ZEO server ignored SIGTERM:\n{stderr.read_text()}'
        assert server.returncode == 0, (
            f'ZEO server exited with {server.returncode}:\n'
            f'{stderr.read_text()}')
