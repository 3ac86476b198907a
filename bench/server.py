"""Start and stop the SM-DP+ under test: ``./osmo-smdpp.py -H 127.0.0.1 -p 0 --data-dir DIR``.

The server picks a free port and announces it in its log line ``serving ES9+
for ... on http://HOST:PORT/...``.  Its output goes to ``DIR/server.log``
rather than to a pipe, so the benchmark process spends no CPU reading it and
a full pipe can never stall the server.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.profiled_server import START_SIGNAL, STOP_SIGNAL

__all__ = ["REPO", "ServerProcess", "start_server", "PySpy"]

REPO = Path(__file__).resolve().parents[1]
READY = re.compile(r"serving ES9\+ for \S+ on (https?://[0-9.]+:\d+)/")
LOG_NAME = "server.log"


@dataclass
class ServerProcess:
    """One running server."""

    process: subprocess.Popen
    url: str
    log_path: Path
    profile_to: Path | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's output, for error messages."""
        try:
            return "".join(self.log_path.read_text(errors="replace").splitlines(True)[-lines:])
        except OSError:
            return ""

    def profile_start(self) -> None:
        """Switch the profiler on (a server started with ``profile_to``)."""
        if self.profile_to is None:
            raise ValueError("the server was not started with a profiler")
        self.profile_to.unlink(missing_ok=True)
        self.process.send_signal(START_SIGNAL)

    def profile_stop(self, timeout: float = 30.0) -> None:
        """Switch the profiler off and wait until it has written its file."""
        if self.profile_to is None:
            raise ValueError("the server was not started with a profiler")
        self.process.send_signal(STOP_SIGNAL)
        deadline = time.monotonic() + timeout
        size = -1
        while time.monotonic() < deadline:
            # written in one go by the server's main thread: done once the size settles
            current = self.profile_to.stat().st_size if self.profile_to.exists() else -1
            if current > 0 and current == size:
                return
            size = current
            time.sleep(0.2)
        raise RuntimeError(f"the server wrote no profile to {self.profile_to}")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (the server shuts down cleanly, a profiler writes its file), then wait."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_server(data_dir: Path, *extra: str, profile_to: Path | None = None,
                 timeout: float = 60.0, cpus: set[int] | None = None) -> ServerProcess:
    """Start the server on ``data_dir`` and wait until it serves.

    ``extra`` are further command-line options (``--workers 2``, ``--store
    URL``...).  With ``profile_to`` the server runs under
    :mod:`bench.profiled_server`: :meth:`ServerProcess.profile_start` and
    :meth:`ServerProcess.profile_stop` profile a window and write the
    statistics there.  ``cpus`` confines the server (and the worker processes
    it forks) to those CPUs.
    """
    log_path = Path(data_dir) / LOG_NAME
    if profile_to is None:
        program = [str(REPO / "osmo-smdpp.py")]
    else:
        program = ["-m", "bench.profiled_server", str(Path(profile_to).resolve())]
    cmd = [sys.executable, *program, "-H", "127.0.0.1", "-p", "0",
           "--data-dir", str(data_dir), *extra]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "ab") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    if cpus is not None:
        # set before the server has finished importing, long before it forks any worker
        os.sched_setaffinity(process.pid, cpus)
    server = ServerProcess(process, "", log_path,
                           None if profile_to is None else Path(profile_to).resolve())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = READY.search(log_path.read_text(errors="replace"))
        if match:
            server.url = match.group(1)
            return server
        if process.poll() is not None:
            break
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"smdpp did not start (exit {process.returncode}):\n{server.log_tail()}")


class PySpy:
    """``py-spy record`` attached to a running process, writing collapsed stacks (``--format raw``).

    py-spy samples from outside the process (ptrace), so the server runs its
    normal code; idle time (waiting in epoll) is not sampled.  It is a
    separate tool: ``pip install py-spy``.
    """

    def __init__(self, pid: int, out: Path, rate: int = 100) -> None:
        executable = shutil.which("py-spy")
        if executable is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        self.out = Path(out)
        self.out.unlink(missing_ok=True)
        self._process = subprocess.Popen(
            [executable, "record", "--pid", str(pid), "--format", "raw", "--function",
             "--rate", str(rate), "-o", str(self.out)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        # py-spy needs a moment to attach; samples before that would be lost
        time.sleep(1.0)
        if self._process.poll() is not None:
            output = self._process.communicate()[0].decode(errors="replace")
            raise RuntimeError(f"py-spy did not start:\n{output}")

    def stop(self, timeout: float = 60.0) -> None:
        """Stop sampling (SIGINT, as Ctrl-C) and wait until the file is written."""
        self._process.send_signal(signal.SIGINT)
        output = self._process.communicate(timeout=timeout)[0].decode(errors="replace")
        if not self.out.exists():
            raise RuntimeError(f"py-spy wrote no {self.out}:\n{output}")
