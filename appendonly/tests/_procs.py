"""Subprocesses for tests: workers, servers and CPU burners, each with its
output in files, all killed when the test ends, however it ends.

A test's fixture makes one in its ``tmp_path``::

    @pytest.fixture
    def procs(tmp_path):
        with Procs(tmp_path) as procs:
            yield procs

and uses it::

    worker = procs.python('w0', 'appendonly.tests.takeover_worker', ...)
    procs.burn_cpu(2)
    procs.kill(worker)              # SIGKILL, and reaped
    procs.stop(worker)              # SIGTERM; fails the test if it hangs

Every process runs with :func:`appendonly.tests.zeoserver.env` (this
repository importable) plus the ``env`` given to :class:`Procs`.
"""
import contextlib
import dataclasses
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from appendonly.tests.zeoserver import env as base_env

#: Seconds a process may take to exit after SIGTERM before the test fails.
STOP_TIMEOUT = 60

#: A loop that keeps one core busy until killed.
BURN_CPU = 'while True: pass'


@dataclasses.dataclass
class Proc:
    """One subprocess: its name, ``Popen`` and output files."""

    name: str
    popen: subprocess.Popen
    out: pathlib.Path
    err: pathlib.Path
    killed: bool = False        # SIGKILLed by the test

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def stderr(self, tail=4000):
        return self.err.read_text(errors='replace')[-tail:]


class Procs:
    """The subprocesses of one test."""

    def __init__(self, directory, env=None):
        self.directory = pathlib.Path(directory)
        self.env = dict(base_env(), **(env or {}))
        self.all = []

    def start(self, name, *argv, env=None, **popen):
        """Start ``argv`` with stdout and stderr in ``NAME.out``/``.err``,
        in a session of its own (so that killing it kills what it
        started).  ``env`` replaces the environment; other keywords go to
        ``Popen`` (``stdin``, ``pass_fds``, ``cwd``)."""
        out = self.directory / f'{name}.out'
        err = self.directory / f'{name}.err'
        popen.setdefault('stdin', subprocess.DEVNULL)
        popen.setdefault('cwd', self.directory)
        with open(out, 'wb') as o, open(err, 'wb') as e:
            process = subprocess.Popen(
                [str(a) for a in argv], stdout=o, stderr=e,
                env=self.env if env is None else env,
                start_new_session=True, **popen)
        proc = Proc(name, process, out, err)
        self.all.append(proc)
        return proc

    def python(self, name, module, *args):
        """Start ``python -m module args``."""
        return self.start(name, sys.executable, '-m', module, *args)

    def burn_cpu(self, count):
        """Start ``count`` processes that keep a core busy each."""
        return [self.start(f'burn{i}', sys.executable, '-c', BURN_CPU)
                for i in range(count)]

    def running(self):
        return [p for p in self.all if p.alive()]

    def kill(self, proc):
        """SIGKILL ``proc`` and reap it: once this returns, the kernel has
        closed its files and released its locks."""
        proc.killed = True
        if proc.alive():
            proc.popen.send_signal(signal.SIGKILL)
        proc.popen.wait()

    def stop(self, proc, timeout=STOP_TIMEOUT):
        """SIGTERM ``proc`` and wait for it; fail the test if it is still
        running after ``timeout`` seconds or exits with an error."""
        if proc.alive():
            proc.popen.send_signal(signal.SIGTERM)
        try:
            proc.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill(proc)
            pytest.fail(f'{proc.name} still running {timeout} s after '
                        f'SIGTERM:\n{proc.stderr()}')
        if proc.popen.returncode != 0:
            pytest.fail(f'{proc.name} exited with {proc.popen.returncode}:'
                        f'\n{proc.stderr()}')

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.kill_all()

    def kill_all(self):
        for proc in self.all:
            if proc.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        for proc in self.all:
            try:
                proc.popen.wait(10)
            except subprocess.TimeoutExpired:   # pragma: no cover
                pass
            if proc.popen.stdin:
                proc.popen.stdin.close()


def wait_until(condition, timeout, message, poll=0.02, during=None):
    """Call ``condition()`` until it returns something true, and return
    that; fail the test with ``message`` after ``timeout`` seconds.
    ``during()``, if given, is called between two tries."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f'{message} (waited {timeout} s)')
        if during is not None:
            during()
        time.sleep(poll)
