"""Both HTTP front ends over real sockets: the built-in server (default) and ``--http klein``."""
from __future__ import annotations

import json
import socket

import pytest

from smdpp.euicc.card import SoftEuicc
from smdpp.euicc.client import download
from smdpp.euicc.es9 import Es9Client

from .conftest import RunningServer
from .flow import ADDRESS

HEADERS = (b"Content-Type: application/json\r\nX-Admin-Protocol: gsma/rsp/v2.2.0\r\n")


def _request(body: bytes, extra: bytes = b"") -> bytes:
    return (b"POST /gsma/rsp2/es9plus/initiateAuthentication HTTP/1.1\r\nHost: x\r\n" + HEADERS
            + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body)


def _address(server: RunningServer) -> tuple[str, int]:
    host, port = server.url.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)


def _read_answers(sock: socket.socket, count: int) -> list[tuple[bytes, dict[bytes, bytes], bytes]]:
    """Read ``count`` HTTP answers (status line, headers, body) from ``sock``."""
    data = b""
    answers = []
    while len(answers) < count:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed after {len(answers)} answer(s)"
            data += chunk
        head, _, data = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        headers = {k.lower(): v for k, _, v in (line.partition(b": ") for line in lines[1:])}
        length = int(headers.get(b"content-length", b"0"))
        while len(data) < length:
            data += sock.recv(65536)
        answers.append((lines[0], headers, data[:length]))
        data = data[length:]
    return answers


@pytest.mark.parametrize("front", ["smdpp", "klein"])
def test_full_download_through_each_front(server_factory, front: str) -> None:
    server: RunningServer = server_factory(None, "--http", front)
    card = SoftEuicc.from_identity_dir(server.data_dir / "euicc")
    with Es9Client(server.url) as client:
        result = download(client, card, smdp_address=ADDRESS, matching_id="SMDPP-TEST-1")
    assert result.iccid == "89000123456789012341"
    server.wait_for_log("ProfileInstallationResult success")


def test_pipelined_calls_are_answered_in_order(shared_server: RunningServer) -> None:
    """Three requests sent at once on one connection: three answers, in order, connection kept."""
    bodies = [b"{}", b"not json", b'{"euiccChallenge": 1}']
    with socket.create_connection(_address(shared_server), timeout=10) as sock:
        sock.sendall(b"".join(_request(body) for body in bodies))
        answers = _read_answers(sock, 3)
        codes = [json.loads(body)["header"]["functionExecutionStatus"]["statusCodeData"]
                 ["reasonCode"] for _, _, body in answers]
        assert [line.split()[1] for line, _, _ in answers] == [b"200", b"400", b"200"]
        assert codes == ["2.2", "2.1", "2.1"]  # missing field, not JSON, wrong type
        sock.sendall(_request(b"{}"))  # still open
        assert _read_answers(sock, 1)[0][0].startswith(b"HTTP/1.1 200")


def test_expect_continue_is_answered(shared_server: RunningServer) -> None:
    with socket.create_connection(_address(shared_server), timeout=10) as sock:
        head = _request(b"{}", b"Expect: 100-continue\r\n")[:-2]
        sock.sendall(head)
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"{}")
        assert _read_answers(sock, 1)[0][0].startswith(b"HTTP/1.1 200")


def test_malformed_http_is_400_and_other_connections_go_on(shared_server: RunningServer) -> None:
    with Es9Client(shared_server.url) as client, \
            socket.create_connection(_address(shared_server), timeout=10) as bad:
        bad.sendall(b"POST /gsma/rsp2/es9plus/x HTTP/1.1\r\nContent-Length: 1\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n")
        line, headers, _ = _read_answers(bad, 1)[0]
        assert line.startswith(b"HTTP/1.1 400") and headers[b"connection"] == b"close"
        assert bad.recv(100) == b""  # closed by the server
        reply = client.call("initiateAuthentication", {})
        assert reply.function_status == "Failed" and reply.http_status == 200
