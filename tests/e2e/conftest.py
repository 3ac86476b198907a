"""End-to-end fixtures: the real server started as a subprocess, the README way.

Each server listens on 127.0.0.1 with a port the kernel picks (``-p 0``) and
announces it in its log line ``serving ES9+ ... on http://HOST:PORT/...``
(``https://`` with ``--tls``).
"""
from __future__ import annotations

import os
import re
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

    def log(self) -> str:
        """What the server has printed so far, as far as the reader thread has got."""
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
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env, cwd=cwd or REPO, preexec_fn=preexec_fn)
    lines: list[str] = []
    found: list[str] = []
    ready = threading.Event()

    def reader() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            match = READY.search(line)
            if match and not found:
                found.append(match.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=reader, daemon=True).start()
    if not ready.wait(timeout) or not found:
        process.kill()
        process.wait()
        raise RuntimeError("smdpp did not start:\n" + "".join(lines))
    return RunningServer(process, found[0], data_dir, lines)


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

