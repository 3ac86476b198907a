"""A flood of refused ES9+ requests cannot fill the disk with log lines (smdpp.logs.Budget).

Each refused request is logged as before, up to a burst, then at a bounded
rate; the first line logged after some were left out says how many.  Real
server, both front ends, one connection pipelining requests as an attacker would.
"""
from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest

from smdpp.logs import Budget

from .conftest import start_server

FLOOD = 1500
BODY = b'{"transactionId":"0102","prepareDownloadResponse":"AA=="}'


def _request(tid: bytes) -> bytes:
    """getBoundProfilePackage for a transactionId nobody began: refused (SGP.22 5.6.2)."""
    body = BODY.replace(b"0102", tid)
    return (b"POST /gsma/rsp2/es9plus/getBoundProfilePackage HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nX-Admin-Protocol: gsma/rsp/v2.2.0\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


def _answers(sock: socket.socket, count: int) -> list[bytes]:
    data = b""
    while data.count(b"HTTP/1.1 ") < count:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data.count(b'HTTP/1.1 ')} answers"
        data += chunk
    return re.findall(rb"HTTP/1\.1 (\d+) ", data)


@pytest.mark.parametrize("front", ["smdpp", "klein"])
def test_a_flood_of_refused_requests_logs_a_bounded_number_of_lines(tmp_path: Path, front: str) -> None:
    server = start_server(tmp_path / "smdpp-data", "--http", front)
    try:
        host, port = server.url.split("://", 1)[1].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(_request(b"0102") * FLOOD)
            assert _answers(sock, FLOOD) == [b"200"] * FLOOD  # every request answered
            logged = server.log().count("transactionId=0102: getBoundProfilePackage failed")
            burst = Budget().burst
            # the burst, and what the rate refilled meanwhile; far fewer than the flood
            assert burst <= logged < FLOOD - 500, logged
            time.sleep(0.5)  # tokens come back: the next refusal is logged, with the count
            sock.sendall(_request(b"0A0B"))
            assert _answers(sock, 1) == [b"200"]
        server.wait_for_log("transactionId=0A0B: getBoundProfilePackage failed")
        log = server.log()
        # every refusal is either logged or counted in the next line logged
        left = [int(n) for n in re.findall(r"\((\d+) such line\(s\) left out before this one", log)]
        after = [line for line in log.splitlines() if "transactionId=0A0B:" in line]
        assert len(after) == 1, after  # logged (tokens came back), with the count if one was left out
        assert log.count("transactionId=0102: getBoundProfilePackage failed") + sum(left) == FLOOD
        assert "Traceback" not in log
    finally:
        server.stop()
