"""Hardening of the built-in HTTP server (issue 17): deadlines a trickle cannot stretch,
the head limit whatever the read size, transfer codings, HTTP/0.9; over an in-memory
transport with a fake clock."""
from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from smdpp.http.guard import Limits
from smdpp.http.server import MAX_HEAD, HttpFactory

from .test_http_server import POST, Recorder, answers

LIMITS = Limits(head_timeout=10, body_timeout=60, body_min_rate=100, body_grace=5,
                idle_timeout=30, close_timeout=10)


def connect(handler: Recorder, limits: Limits = LIMITS, max_body: int = 100_000):
    from twisted.internet.testing import StringTransport
    clock = Clock()
    connection = HttpFactory(handler, max_body, limits=limits).buildProtocol(None)
    connection.callLater = clock.callLater
    transport = StringTransport()
    connection.makeConnection(transport)
    return connection, transport, clock


def test_a_trickled_head_is_408_at_its_deadline() -> None:
    handler = Recorder()
    connection, transport, clock = connect(handler)
    clock.advance(20)  # idle before the first byte: within the idle limit
    for byte in (POST % 0)[:60]:
        connection.dataReceived(bytes([byte]))
        clock.advance(0.15)  # a byte every 0.15 s: 9 s for 60 bytes
    assert not transport.disconnecting
    clock.advance(1.1)
    [(status, headers, body)] = answers(transport)
    assert status == 408 and b"head not complete within 10 s" in body
    assert headers[b"connection"] == b"close" and transport.disconnecting
    assert handler.requests == []


def test_a_trickled_body_is_408_at_the_deadline_its_size_allows() -> None:
    handler = Recorder()
    connection, transport, clock = connect(handler)
    connection.dataReceived(POST % 1000)  # 5 s + 1000 B at 100 B/s = 15 s
    for _ in range(14):
        connection.dataReceived(b"x")
        clock.advance(1)
    assert not transport.disconnecting
    clock.advance(1.1)
    assert answers(transport)[0][0] == 408 and transport.disconnecting
    assert handler.requests == []


def test_a_large_announced_body_gets_the_total_at_most() -> None:
    connection, transport, clock = connect(Recorder())
    connection.dataReceived(POST % 60_000)
    clock.advance(59.9)
    assert not transport.disconnecting
    clock.advance(0.2)
    assert answers(transport)[0][0] == 408


def test_a_body_on_time_is_served_and_the_idle_limit_follows() -> None:
    handler = Recorder()
    connection, transport, clock = connect(handler)
    connection.dataReceived(POST % 1000)
    clock.advance(14)
    connection.dataReceived(b"x" * 1000)
    assert answers(transport)[0][0] == 200
    clock.advance(29)
    assert not transport.disconnected
    clock.advance(1.1)
    assert transport.disconnected  # idle: aborted without an answer
    assert len(answers(transport)) == 1


def test_bytes_before_a_request_do_not_stretch_the_idle_limit() -> None:
    connection, transport, clock = connect(Recorder())
    for _ in range(40):
        connection.dataReceived(b"\r\n")  # llhttp skips empty lines before a request
        clock.advance(1)
    assert transport.disconnected


def test_a_final_answer_the_client_does_not_read_is_cut_off() -> None:
    connection, transport, clock = connect(Recorder())
    connection.dataReceived(b"GET /\r\n")
    assert transport.disconnecting and not transport.disconnected
    clock.advance(10.1)
    assert transport.disconnected


@pytest.mark.parametrize("head", [
    b"POST /p HTTP/1.1\r\nX-Long: " + b"a" * 65_000 + b"\r\nContent-Length: 0\r\n\r\n",
    b"POST /p HTTP/1.1\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"b" * 700) for i in range(90))
    + b"Content-Length: 0\r\n\r\n",
    b"POST /" + b"u" * (MAX_HEAD + 1) + b" HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
])
def test_the_head_limit_holds_when_the_whole_head_comes_in_one_read(head: bytes) -> None:
    handler = Recorder()
    connection, transport, _ = connect(handler)
    connection.dataReceived(head)
    assert handler.requests == []
    assert answers(transport)[0][0] == 431 and transport.disconnecting


def test_a_head_just_under_the_limit_is_served() -> None:
    handler = Recorder()
    connection, transport, _ = connect(handler)
    filler = MAX_HEAD - 200
    connection.dataReceived(b"POST /p HTTP/1.1\r\nX-Long: " + b"a" * filler
                            + b"\r\nContent-Length: 0\r\n\r\n")
    assert answers(transport)[0][0] == 200


@pytest.mark.parametrize("codings", [
    [b"gzip, chunked"], [b"gzip", b"chunked"], [b"identity, chunked"]])  # llhttp: chunked twice is 400
def test_a_transfer_coding_other_than_chunked_is_501(codings: list[bytes]) -> None:
    handler = Recorder()
    connection, transport, _ = connect(handler)
    connection.dataReceived(b"POST /p HTTP/1.1\r\n" + b"".join(
        b"Transfer-Encoding: " + c + b"\r\n" for c in codings) + b"\r\n5\r\nhello\r\n0\r\n\r\n")
    assert handler.requests == []
    assert answers(transport)[0][0] == 501 and transport.disconnecting


@pytest.mark.parametrize("request_line", [b"GET /\r\n", b"\r\nGET /gsma\n", b"GET /\r\n\r\n"])
def test_http09_is_400_and_closed(request_line: bytes) -> None:
    handler = Recorder()
    connection, transport, _ = connect(handler)
    connection.dataReceived(request_line)
    assert handler.requests == []
    [(status, _, body)] = answers(transport)
    assert status == 400 and b"HTTP/0.9" in body and transport.disconnecting


def test_http09_trickled_is_400_at_the_end_of_its_line() -> None:
    connection, transport, _ = connect(Recorder())
    for byte in b"GET /x":
        connection.dataReceived(bytes([byte]))
    assert transport.value() == b""
    connection.dataReceived(b"\r\n")
    assert answers(transport)[0][0] == 400


def test_pipelined_requests_split_anywhere_are_not_taken_for_http09() -> None:
    two = POST % 2 + b"ok" + POST % 3 + b"yes"
    for cut in range(1, len(two)):
        handler = Recorder()
        connection, transport, _ = connect(handler)
        connection.dataReceived(two[:cut])
        connection.dataReceived(two[cut:])
        assert [r.body for r in handler.requests] == [b"ok", b"yes"], cut
