"""An exposed server against slow clients and floods, over real sockets (issue 17).

Both front ends (the built-in server and ``--http klein``) run with short
limits so that every deadline and cap is reached within seconds; connections
of the "attacker" come from other loopback addresses (127.0.0.2...) so that
the per-client cap does not touch the legitimate downloads from 127.0.0.1.
"""
from __future__ import annotations

import re
import resource
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

LIMITS = ("--head-timeout", "1", "--idle-timeout", "2", "--body-timeout", "3",
          "--body-min-rate", "100", "--max-connections", "40",
          "--max-connections-per-client", "10")


@pytest.fixture(scope="module", params=["smdpp", "klein"])
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp(request.param) / "smdpp-data",
                           "--http", request.param, *LIMITS)
    yield running
    running.stop()


def _address(server: RunningServer) -> tuple[str, int]:
    host, port = server.url.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)


def _connect(server: RunningServer, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(_address(server), timeout=10, source_address=(source, 0))


def _until_closed(sock: socket.socket, limit: float = 10.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and the seconds that took."""
    start = time.monotonic()
    sock.settimeout(limit)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data, time.monotonic() - start


def _trickle(sock: socket.socket, pieces: bytes, pause: float) -> None:
    """Send ``pieces`` one byte at a time, ``pause`` seconds apart, until the server closes."""
    try:
        for byte in pieces:
            sock.sendall(bytes([byte]))
            time.sleep(pause)
    except OSError:
        pass  # closed by the server


def _download(server: RunningServer) -> None:
    card = SoftEuicc.from_identity_dir(server.data_dir / "euicc")
    with Es9Client(server.url) as client:
        result = download(client, card, smdp_address=ADDRESS, matching_id="SMDPP-TEST-1")
    assert result.notification_sent


def test_a_trickled_head_is_cut_off_at_its_deadline(server: RunningServer) -> None:
    sock = _connect(server, "127.0.0.2")
    start = time.monotonic()
    sock.sendall(b"POST /gsma/rsp2/es9plus/initiateAuthentication HTTP/1.1\r\n")
    _trickle(sock, b"X" * 20, 0.2)  # one header byte every 0.2 s: 4 s if the server let it
    data, _ = _until_closed(sock)
    elapsed = time.monotonic() - start
    assert 0.9 < elapsed < 3.0, elapsed
    if data:
        assert data.startswith(b"HTTP/1.1 408")


def test_a_trickled_body_is_cut_off_at_its_deadline(server: RunningServer) -> None:
    sock = _connect(server, "127.0.0.2")
    start = time.monotonic()
    sock.sendall(b"POST /gsma/rsp2/es9plus/initiateAuthentication HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n")
    _trickle(sock, b"{" * 40, 0.2)
    data, _ = _until_closed(sock)
    elapsed = time.monotonic() - start
    assert 2.9 < elapsed < 5.5, elapsed
    assert data.startswith(b"HTTP/1.1 408"), data[:100]


def test_an_idle_connection_is_closed_and_bytes_before_a_request_do_not_keep_it(
        server: RunningServer) -> None:
    quiet = _connect(server, "127.0.0.3")
    chatty = _connect(server, "127.0.0.3")
    start = time.monotonic()
    _trickle(chatty, b"\r\n" * 10, 0.2)
    for sock in (quiet, chatty):
        _until_closed(sock)
        assert time.monotonic() - start < 4.5


def test_the_per_client_cap_closes_new_connections_at_once(server: RunningServer) -> None:
    held = [_connect(server, "127.0.0.4") for _ in range(10)]
    time.sleep(0.3)
    extra = _connect(server, "127.0.0.4")
    data, elapsed = _until_closed(extra)
    assert data == b"" and elapsed < 1.0
    _download(server)  # another client address is served meanwhile
    for sock in held:
        sock.close()
    time.sleep(0.3)
    assert "most per client (--max-connections-per-client)" in server.log()


def test_the_per_process_cap_closes_new_connections_and_is_logged_once(
        server: RunningServer) -> None:
    held = [_connect(server, f"127.0.1.{n % 8 + 1}") for n in range(40)]
    time.sleep(0.3)
    refused = [_until_closed(_connect(server, "127.0.2.1"), 2.0) for _ in range(5)]
    assert all(data == b"" and elapsed < 1.0 for data, elapsed in refused)
    for sock in held:
        sock.close()
    time.sleep(0.3)
    log = server.log()
    assert log.count("the most per process (--max-connections)") == 1  # once per minute
    _download(server)  # slots come back as connections end


def test_pipelined_requests_are_all_answered_in_order(server: RunningServer) -> None:
    """Answered one per reactor turn under klein (see Es9pChannel.setLineMode), in order."""
    body = b"{}"
    requests = b"".join(
        b"POST /gsma/rsp2/es9plus/%s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"X-Admin-Protocol: gsma/rsp/v2.2.0\r\nContent-Length: 2\r\n\r\n%s"
        % (b"initiateAuthentication" if n % 2 else b"nothing", body) for n in range(60))
    sock = _connect(server, "127.0.0.6")
    sock.sendall(requests)
    data = b""
    while data.count(b"HTTP/1.1 ") < 60:
        chunk = sock.recv(65536)  # klein answers chunked, the built-in server with a length
        assert chunk, f"closed after {data.count(b'HTTP/1.1 ')} answers"
        data += chunk
    assert re.findall(rb"HTTP/1\.1 (\d+) ", data) == [b"404", b"200"] * 30
    sock.close()


@pytest.mark.parametrize("request_bytes, smdpp_status, klein_status", [
    # a transfer coding other than chunked: 501 (RFC 9112 6.1); twisted.web answers 400
    (b"POST /gsma/rsp2/es9plus/initiateAuthentication HTTP/1.1\r\nHost: x\r\n"
     b"Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", b"501", b"400"),
    (b"GET /\r\n", b"400", b"400"),  # HTTP/0.9
    # a head over 16 KiB in one write: 431; twisted.web closes at its line limit
    (b"POST /gsma/rsp2/es9plus/initiateAuthentication HTTP/1.1\r\nX-Long: "
     + b"a" * 65_000 + b"\r\nContent-Length: 0\r\n\r\n", b"431", b""),
])
def test_requests_that_are_not_plain_http11_are_refused_and_closed(
        server: RunningServer, request_bytes: bytes, smdpp_status: bytes,
        klein_status: bytes) -> None:
    sock = _connect(server, "127.0.0.7")
    sock.sendall(request_bytes)
    data, elapsed = _until_closed(sock, 5.0)
    expected = klein_status if "--http klein" in " ".join(server.process.args) else smdpp_status
    assert data.split(b" ", 2)[1:2] == ([expected] if expected else []), data[:200]
    assert elapsed < 1.0  # closed at once, not at a deadline


def test_limits_appear_in_the_start_up_log(server: RunningServer) -> None:
    log = server.log()
    assert "limits: head 1 s, body 3 s (at least 100 bytes/s), idle 2 s" in log
    assert "40 connections per process, 10 per client" in log
    assert "open files:" in log


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))


def test_under_a_low_open_files_limit_the_cap_fits_it_and_service_goes_on(
        tmp_path: Path) -> None:
    """ulimit -n 128: the cap is lowered below it, 200 idle connections cannot exhaust the
    descriptors, and once they go a download works."""
    server = start_server(tmp_path / "smdpp-data", "--idle-timeout", "2",
                          preexec_fn=_low_fd_limit)
    try:
        assert "64 connections per process" in server.log()
        idle = []
        for n in range(200):
            try:
                idle.append(_connect(server, f"127.0.3.{n % 50 + 1}"))
            except OSError:
                break
        time.sleep(3)  # the idle limit ends them
        for sock in idle:
            sock.close()
        _download(server)
        log = server.log()
        assert "closed at once" in log and "Traceback" not in log
    finally:
        server.stop()


@pytest.mark.parametrize("front", ["smdpp", "klein"])
def test_a_tls_handshake_that_never_finishes_is_cut_off(tmp_path: Path, front: str) -> None:
    server = start_server(tmp_path / "smdpp-data", "--tls", "--http", front,
                          "--tls-handshake-timeout", "1", "--idle-timeout", "30")
    try:
        silent = _connect(server, "127.0.0.5")
        partial = _connect(server, "127.0.0.5")
        start = time.monotonic()
        _trickle(partial, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" * 3, 0.1)  # a ClientHello
        for sock in (silent, partial):
            _until_closed(sock)
            assert time.monotonic() - start < 4.0
        # a real client's handshake is done well within the limit: a download over HTTPS
        card = SoftEuicc.from_identity_dir(server.data_dir / "euicc")
        ca = server.data_dir / "certs" / "CertificateIssuer" / "CERT_CI_ECDSA_NIST.pem"
        with Es9Client(server.url, ca_file=str(ca), tls_server_name=ADDRESS) as client:
            assert download(client, card, smdp_address=ADDRESS,
                            matching_id="SMDPP-TEST-1").notification_sent
    finally:
        server.stop()
