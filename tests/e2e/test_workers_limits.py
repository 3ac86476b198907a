"""``--workers 2`` under the limits of issue 17: each worker applies them to its own connections.

The caps are per worker process (:mod:`smdpp.http.guard`): with two workers
up to twice ``--max-connections`` in all, and twice
``--max-connections-per-client`` for one client, since the kernel spreads a
client's connections over the workers.  Deadlines hold in every worker, and
legitimate downloads (whose calls may reach either worker) still pass.
"""
from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Iterator

import pytest

from smdpp.euicc.card import SoftEuicc
from smdpp.euicc.client import download
from smdpp.euicc.es9 import Es9Client

from .conftest import RunningServer, start_server
from .flow import ADDRESS
from .test_fd_limits import _closed_by_server
from .test_hardening import _address

PER_PROCESS, PER_CLIENT = 5, 3


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_server(tmp_path_factory.mktemp("workers") / "smdpp-data", "--workers", "2",
                          "--head-timeout", "1", "--idle-timeout", "20",
                          "--max-connections", str(PER_PROCESS),
                          "--max-connections-per-client", str(PER_CLIENT))
    yield server
    server.stop()


def _download(server: RunningServer) -> None:
    card = SoftEuicc.from_identity_dir(server.data_dir / "euicc")
    with Es9Client(server.url) as client:
        assert download(client, card, smdp_address=ADDRESS,
                        matching_id="SMDPP-TEST-1").notification_sent


def _held(server: RunningServer, sources: list[str]) -> int:
    """Open one connection from each of ``sources``; how many the server keeps open."""
    socks = [socket.create_connection(_address(server), timeout=5, source_address=(src, 0))
             for src in sources]
    try:
        time.sleep(0.5)  # refused ones are closed at once
        return sum(not _closed_by_server(sock) for sock in socks)
    finally:
        for sock in socks:
            sock.close()
        time.sleep(0.5)  # the workers see them go and give the slots back


def test_the_caps_hold_per_worker(workers: RunningServer) -> None:
    assert "connection caps apply per worker: with 2 workers" in workers.log()
    _download(workers)
    # 40 connections, 20 per worker on average: each worker keeps its cap of 5
    assert _held(workers, [f"127.0.7.{n + 1}" for n in range(40)]) == 2 * PER_PROCESS
    # 20 from one address: each worker keeps 3 of them
    assert _held(workers, ["127.0.8.1"] * 20) == 2 * PER_CLIENT
    log = workers.wait_for_log("the most per client")
    refusals = [line for line in log.splitlines() if "closed at once" in line]
    assert {"[worker 1]", "[worker 2]"} <= {w for line in refusals
                                            for w in ("[worker 1]", "[worker 2]") if w in line}
    _download(workers)  # the slots came back in both workers
    assert "Traceback" not in workers.log()


def test_trickled_heads_are_cut_off_at_the_head_deadline(workers: RunningServer) -> None:
    """Six at once, so that the kernel spreads them over the workers (not checked which)."""
    socks = [socket.create_connection(_address(workers), timeout=10,
                                      source_address=(f"127.0.9.{n + 1}", 0)) for n in range(6)]
    start = time.monotonic()
    closed: dict[int, float] = {}
    for sock in socks:
        sock.sendall(b"POST /gsma/rsp2/es9plus/initiateAuthentication HTTP/1.1\r\n")
    for _ in range(20):  # one header byte each every 0.2 s: 4 s if a byte moved the deadline
        for n, sock in enumerate(socks):
            if n in closed:
                continue
            try:
                sock.sendall(b"X")
            except OSError:
                closed[n] = time.monotonic() - start
                continue
            if _closed_by_server(sock):
                closed[n] = time.monotonic() - start
            sock.setblocking(True)
        if len(closed) == len(socks):
            break
        time.sleep(0.2)
    for sock in socks:
        sock.close()
    assert len(closed) == len(socks) and all(0.9 < t < 3.0 for t in closed.values()), closed
    _download(workers)
