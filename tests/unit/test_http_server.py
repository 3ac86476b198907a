"""The built-in HTTP/1.1 server (smdpp/http/server.py), driven over an in-memory transport."""
from __future__ import annotations

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from smdpp.http.es9p import HttpRequest, HttpResponse
from smdpp.http.server import MAX_HEAD, MAX_HEADERS, HttpConnection, HttpFactory

POST = (b"POST /gsma/rsp2/es9plus/x HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n")


class Recorder:
    """A handler that remembers its requests and echoes the body's length."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[HttpRequest] = []
        self.status = status

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        if request.body == b"boom":
            raise RuntimeError("a bug")
        return HttpResponse(self.status, ((b"X-Test", b"1"),), b"got %d" % len(request.body))


def connect(handler: Recorder, max_body: int = 100, clock: Clock | None = None
            ) -> tuple[HttpConnection, StringTransport]:
    connection = HttpFactory(handler, max_body).buildProtocol(None)
    if clock is not None:
        connection.callLater = clock.callLater  # TimeoutMixin's timer
    transport = StringTransport()
    connection.makeConnection(transport)
    return connection, transport


def answers(transport: StringTransport) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    """The responses written so far: status, headers (lower-case names), body."""
    data = transport.value()
    result = []
    while data:
        head, _, data = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v for k, _, v in (line.partition(b": ") for line in lines[1:])}
        length = int(headers.get(b"content-length", b"0"))
        result.append((status, headers, data[:length]))
        data = data[length:]
    return result


def test_a_request_reaches_the_handler_with_path_method_headers_and_body() -> None:
    handler = Recorder()
    connection, transport = connect(handler)
    connection.dataReceived(POST % 5 + b"hello")
    [request] = handler.requests
    assert (request.method, request.path, request.body) == ("POST", "/gsma/rsp2/es9plus/x", b"hello")
    assert request.headers[b"content-type"] == b"application/json" and not request.body_too_large
    [(status, headers, body)] = answers(transport)
    assert (status, body) == (200, b"got 5")
    assert headers[b"x-test"] == b"1" and b"date" in headers and b"connection" not in headers
    assert not transport.disconnecting


def test_query_string_is_not_part_of_the_path() -> None:
    handler = Recorder()
    connection, _ = connect(handler)
    connection.dataReceived(b"POST /gsma/rsp2/es9plus/x?a=b HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert handler.requests[0].path == "/gsma/rsp2/es9plus/x"


def test_absolute_form_target_gives_the_path() -> None:
    handler = Recorder()
    connection, transport = connect(handler)
    connection.dataReceived(b"POST http://smdp.example:80/gsma/rsp2/es9plus/x?q=1 HTTP/1.1\r\n"
                            b"Content-Length: 0\r\n\r\n"
                            b"OPTIONS * HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert [r.path for r in handler.requests] == ["/gsma/rsp2/es9plus/x", "*"]
    assert [a[0] for a in answers(transport)] == [200, 200]


def test_byte_by_byte_delivery_gives_the_same_request() -> None:
    handler = Recorder()
    connection, transport = connect(handler)
    for byte in POST % 5 + b"hello":
        connection.dataReceived(bytes([byte]))
    assert handler.requests[0].path == "/gsma/rsp2/es9plus/x" and handler.requests[0].body == b"hello"
    assert [a[0] for a in answers(transport)] == [200]


def test_pipelined_requests_are_answered_in_order_on_one_connection() -> None:
    handler = Recorder()
    connection, transport = connect(handler)
    connection.dataReceived(POST % 1 + b"a" + POST % 2 + b"bb" + POST % 3 + b"ccc")
    assert [r.body for r in handler.requests] == [b"a", b"bb", b"ccc"]
    assert [a[2] for a in answers(transport)] == [b"got 1", b"got 2", b"got 3"]
    assert not transport.disconnecting


def test_chunked_body_is_reassembled() -> None:
    handler = Recorder()
    connection, _ = connect(handler)
    connection.dataReceived(b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    assert handler.requests[0].body == b"abcde"


@pytest.mark.parametrize("chunked", [False, True])
def test_body_over_the_limit_is_dropped_and_flagged(chunked: bool) -> None:
    handler = Recorder()
    connection, transport = connect(handler, max_body=100)
    if chunked:
        connection.dataReceived(b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(50):
            connection.dataReceived(b"a\r\n" + b"x" * 10 + b"\r\n")
        connection.dataReceived(b"0\r\n\r\n")
    else:
        connection.dataReceived(POST % 500)
        for _ in range(50):
            connection.dataReceived(b"x" * 10)
    [request] = handler.requests
    assert request.body_too_large and request.body == b""
    assert connection._body == []  # nothing of it kept
    assert len(answers(transport)) == 1 and not transport.disconnecting  # keep-alive goes on


def test_body_at_the_limit_is_kept() -> None:
    handler = Recorder()
    connection, _ = connect(handler, max_body=100)
    connection.dataReceived(POST % 100 + b"y" * 100)
    assert not handler.requests[0].body_too_large and handler.requests[0].body == b"y" * 100


def test_expect_continue_gets_100_then_the_answer() -> None:
    handler = Recorder()
    connection, transport = connect(handler)
    connection.dataReceived(POST.replace(b"Host: a", b"Expect: 100-continue") % 4)
    assert transport.value() == b"HTTP/1.1 100 Continue\r\n\r\n"
    transport.clear()
    connection.dataReceived(b"abcd")
    assert answers(transport)[0][2] == b"got 4"


def test_expect_continue_with_an_oversized_body_is_answered_at_once_and_closed() -> None:
    handler = Recorder(status=413)
    connection, transport = connect(handler, max_body=100)
    connection.dataReceived(POST.replace(b"Host: a", b"Expect: 100-continue") % 10_000)
    [(status, headers, _)] = answers(transport)
    assert status == 413 and headers[b"connection"] == b"close" and transport.disconnecting
    assert handler.requests[0].body_too_large
    connection.dataReceived(b"x" * 10_000)  # a client that sends it anyway: ignored
    assert len(handler.requests) == 1


def test_oversized_head_is_431_and_closed() -> None:
    handler = Recorder()
    connection, transport = connect(handler)
    connection.dataReceived(b"POST /p HTTP/1.1\r\n")
    for _ in range(MAX_HEAD // 1000 + 2):
        connection.dataReceived(b"X-Filler: " + b"f" * 1000 + b"\r\n")
    assert handler.requests == []
    [(status, headers, _)] = answers(transport)
    assert status == 431 and transport.disconnecting


def test_too_many_headers_is_431() -> None:
    handler = Recorder()
    connection, transport = connect(handler)
    connection.dataReceived(b"POST /p HTTP/1.1\r\n" + b"".join(
        b"X-%d: 1\r\n" % i for i in range(MAX_HEADERS + 1)) + b"Content-Length: 0\r\n\r\n")
    assert handler.requests == [] and answers(transport)[0][0] == 431 and transport.disconnecting


@pytest.mark.parametrize("garbage", [
    b"NOT HTTP AT ALL\r\n\r\n",
    b"POST /p HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",  # smuggling
    b"POST /p HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST /p HTTP/1.1\r\nBad Header Name: x\r\n\r\n",
])
def test_malformed_requests_are_400_and_closed(garbage: bytes) -> None:
    handler = Recorder()
    connection, transport = connect(handler)
    connection.dataReceived(garbage)
    assert handler.requests == []
    assert answers(transport)[0][0] == 400 and transport.disconnecting
    connection.dataReceived(POST % 0)  # nothing more is read
    assert handler.requests == []


def test_connection_close_and_http10_close_after_the_answer() -> None:
    for request in (POST.replace(b"Host: a", b"Connection: close") % 0,
                    b"POST /p HTTP/1.0\r\nContent-Length: 0\r\n\r\n"):
        handler = Recorder()
        connection, transport = connect(handler)
        connection.dataReceived(request + POST % 0)  # the second request is not served
        assert len(handler.requests) == 1
        [(_, headers, _)] = answers(transport)
        assert headers[b"connection"] == b"close" and transport.disconnecting


def test_head_answer_has_no_body_and_204_no_length() -> None:
    handler = Recorder()
    connection, transport = connect(handler)
    connection.dataReceived(b"HEAD /p HTTP/1.1\r\n\r\n")
    assert transport.value().endswith(b"Content-Length: 5\r\n\r\n")
    handler204 = Recorder(status=204)
    connection, transport = connect(handler204)
    connection.dataReceived(POST % 0)
    assert b"content-length" not in transport.value().lower()
    assert transport.value().endswith(b"\r\n\r\n")


def test_handler_exception_is_500_without_traceback() -> None:
    handler = Recorder()
    connection, transport = connect(handler)
    connection.dataReceived(POST % 4 + b"boom")
    [(status, _, body)] = answers(transport)
    assert status == 500 and b"Traceback" not in body and b"a bug" not in body


def test_idle_connection_is_closed() -> None:
    clock = Clock()
    handler = Recorder()
    connection, transport = connect(handler, clock=clock)
    clock.advance(30)
    connection.dataReceived(POST % 0)
    clock.advance(59)
    assert not transport.disconnected
    clock.advance(2)
    assert transport.disconnected  # aborted: StringTransport marks abortConnection this way


def test_reading_pauses_while_answers_are_not_read() -> None:
    connection, transport = connect(Recorder())
    assert transport.producer is connection and transport.streaming
    connection.pauseProducing()
    assert transport.producerState == "paused"
    connection.resumeProducing()
    assert transport.producerState == "producing"


def test_under_tls_reading_pauses_on_the_tcp_connection() -> None:
    """TLSMemoryBIOProtocol is no IPushProducer: the TCP transport below it is paused."""
    from twisted.internet.interfaces import IPushProducer
    from twisted.protocols.tls import TLSMemoryBIOProtocol

    tcp = StringTransport()
    assert IPushProducer.providedBy(tcp) and not IPushProducer.implementedBy(TLSMemoryBIOProtocol)

    class Wrapper:  # what the connection sees under TLS: a transport with a transport
        transport = tcp

        def registerProducer(self, producer: object, streaming: bool) -> None:
            self.producer = producer

    connection = HttpFactory(Recorder(), 100).buildProtocol(None)
    connection.makeConnection(Wrapper())
    connection.pauseProducing()
    assert tcp.producerState == "paused"
    connection.resumeProducing()
    assert tcp.producerState == "producing"


class _ShortSocket:
    """A socket whose send takes at most ``limit`` bytes, then refuses (EAGAIN)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.sent = limit, b""

    def send(self, data: bytes) -> int:
        if self.limit == 0:
            raise BlockingIOError
        taken = data[:self.limit]
        self.limit -= len(taken)
        self.sent += taken
        return len(taken)


def test_an_answer_the_socket_does_not_take_goes_on_through_the_transport_in_order() -> None:
    handler = Recorder()
    connection, transport = connect(handler)
    sock = _ShortSocket(limit=10**6)
    connection._socket = sock  # as for a plain TCP connection
    connection.dataReceived(POST % 1 + b"a")
    assert answers(_Sent(sock.sent))[0][2] == b"got 1" and transport.value() == b""
    sock.limit = 20  # the send buffer fills up during the second answer
    connection.dataReceived(POST % 2 + b"bb")
    assert connection._socket is None and transport.value()
    sock.limit = 10**6  # the socket would take more now, but Twisted still holds bytes
    connection.dataReceived(POST % 3 + b"ccc")
    assert b"got 3" not in sock.sent and transport.value().endswith(b"got 3")
    assert [a[2] for a in answers(_Sent(sock.sent + transport.value()))] == [
        b"got 1", b"got 2", b"got 3"]


class _Sent(StringTransport):
    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.io.write(data)


def test_only_a_tcp_connection_itself_is_written_directly() -> None:
    """A wrapper (TLS) hands getHandle down to the TCP socket: it must not be used."""
    import socket

    from twisted.internet import tcp
    from twisted.protocols.policies import ProtocolWrapper, WrappingFactory

    from smdpp.http.server import _tcp_socket

    left, right = socket.socketpair()
    try:
        plain = tcp.Connection(left, None)
        assert _tcp_socket(plain) is left
        wrapper = ProtocolWrapper(WrappingFactory(HttpFactory(Recorder(), 100)), None)
        wrapper.transport = plain
        assert wrapper.getHandle() is left  # what makes the check necessary
        assert _tcp_socket(wrapper) is None and _tcp_socket(StringTransport()) is None
    finally:
        left.close()
        right.close()


def test_a_failure_inside_the_parser_callbacks_is_500_and_closed() -> None:
    """A bug past the handler (here an answer header that is not bytes) is caught too."""

    def bad_answer(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, ((b"X-Bad", "not bytes"),), b"")  # type: ignore[arg-type]

    connection = HttpFactory(bad_answer, 100).buildProtocol(None)
    transport = StringTransport()
    connection.makeConnection(transport)
    connection.dataReceived(POST % 0)
    assert answers(transport)[0][0] == 500 and transport.disconnecting
