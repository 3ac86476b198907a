"""End-to-end fixtures: the real server started as a subprocess, the README way.

Each server listens on 127.0.0.1 with a port the kernel picks (``-p 0``) and
announces it in its log line ``serving ES9+ ... on http://HOST:PORT/...``
(``https://`` with ``--tls``).
"""
from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest

REPO = Path(__file__).resolve().parents[2]
READY = re.compile(r"serving ES9\+ for \S+ on (https?://[0-9.]+:\d+)/")


@dataclass
class RunningServer:
    """One smdpp process and what it printed."""

    process: subprocess.Popen
    url: str
    data_dir: Path
    lines: list[str] = field(default_factory=list)
    # start_server's reader thread: set while it waits in read() with nothing of the pipe
    # in hand, and once it has read the pipe's end (None: a reader of the caller's own)
    reader_idle: threading.Event | None = None
    reader_done: threading.Event | None = None

    def log(self, settle: float = 5.0) -> str:
        """Everything the server has printed so far.

        The server writes a call's log line before it sends the answer, so the
        line is in the pipe once the answer is here; but it reaches
        :attr:`lines` only through the reader thread, which a busy machine may
        not have scheduled yet.  So wait (at most ``settle`` seconds) until
        the pipe is empty and the reader is back in read() with nothing in hand.
        """
        deadline = time.monotonic() + settle
        stdout = self.process.stdout
        idle, done = self.reader_idle, self.reader_done
        while (idle is not None and done is not None and time.monotonic() < deadline
               and stdout is not None and not stdout.closed and not done.is_set()):
            try:
                pending = select.select([stdout.fileno()], [], [], 0)[0]
            except (OSError, ValueError):  # the reader closed the pipe meanwhile
                break
            if not pending and idle.is_set():
                break
            time.sleep(0.005)
        return "".join(self.lines)

    def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        """The log once it contains ``text``; AssertionError naming it after ``timeout``.

        A server writes a call's log line before it sends the answer, but the
        line reaches :attr:`lines` only when the reader thread of this process
        has read it from the pipe: a test that checks the log right after the
        answer races that thread (and loses on a busy machine).
        """
        deadline = time.monotonic() + timeout
        while True:
            log = self.log()
            if text in log:
                return log
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in the server log within {timeout} s:\n{self.log()}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(data_dir: Path, *extra: str, timeout: float = 60.0,
                 preexec_fn: Callable[[], None] | None = None,
                 cwd: Path | None = None) -> RunningServer:
    """Start ``./osmo-smdpp.py`` on 127.0.0.1 and wait until it serves.

    ``preexec_fn`` runs in the child before the server (e.g. a lower resource limit).
    With ``cwd`` it runs there with no option but ``-H`` and ``-p`` (and
    ``extra``), on ``./smdpp-data`` as osmo-smdpp's users start it.
    """
    where = ["--data-dir", str(data_dir)] if cwd is None else []
    cmd = [sys.executable, str(REPO / "osmo-smdpp.py"), "-H", "127.0.0.1", "-p", "0",
           *where, *extra]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # binary and unbuffered: the reader's os.read() sees exactly what is in the pipe
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               bufsize=0, env=env, cwd=cwd or REPO, preexec_fn=preexec_fn)
    lines: list[str] = []
    found: list[str] = []
    ready = threading.Event()
    idle, done = threading.Event(), threading.Event()

    def reader() -> None:
        assert process.stdout is not None
        fd, partial = process.stdout.fileno(), b""
        while True:
            idle.set()
            chunk = os.read(fd, 65536)
            idle.clear()
            if not chunk:
                break
            *complete, partial = (partial + chunk).split(b"\n")
            for raw in complete:
                line = raw.decode("utf-8", "replace") + "\n"
                lines.append(line)
                match = READY.search(line)
                if match and not found:
                    found.append(match.group(1))
                    ready.set()
        if partial:
            lines.append(partial.decode("utf-8", "replace"))
        done.set()
        ready.set()

    threading.Thread(target=reader, daemon=True).start()
    if not ready.wait(timeout) or not found:
        process.kill()
        process.wait()
        raise RuntimeError("smdpp did not start:\n" + "".join(lines))
    return RunningServer(process, found[0], data_dir, lines, idle, done)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator:
    """Start servers on demand; all are stopped at the end of the test."""
    servers: list[RunningServer] = []

    def factory(data_dir: Path | None = None, *extra: str) -> RunningServer:
        server = start_server(data_dir or tmp_path / "smdpp-data", *extra)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server on its embedded defaults (test PKI, generated profile), for many tests."""
    server = start_server(tmp_path_factory.mktemp("shared") / "smdpp-data")
    yield server
    server.stop()


def with_upps(data_dir: Path, upps: list[Path]) -> Path:
    """A data folder whose upp/ links to the given UPP files (read in place, not copied)."""
    upp_dir = data_dir / "upp"
    upp_dir.mkdir(parents=True, exist_ok=True)
    for upp in upps:
        (upp_dir / upp.name).symlink_to(upp.resolve())
    return data_dir

