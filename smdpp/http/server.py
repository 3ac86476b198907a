"""A small HTTP/1.1 server for ES9+ on the Twisted reactor (the default front end).

ES9+ (SGP.22 6.1, 6.5) needs little of HTTP: POST with a JSON body, keep-alive,
a few headers.  twisted.web with Klein costs about 0.6 ms of CPU per request
here, more than the cryptography of a whole download; this server costs about
a fifth of that.  The request line and headers are parsed by httptools (the
llhttp parser of Node.js, written in C and hardened against hostile input:
request smuggling, bad chunking and malformed lines are refused by it); this
module adds what an exposed server needs around it:

- a cap on the request head (:data:`MAX_HEAD`, answered 431) and on the body
  (``max_body``: bytes past it are dropped as they arrive, and the request is
  still answered, 413 by the handler), so no request costs more memory than that;
- ``Expect: 100-continue`` answered (or refused at once with the final answer
  when the announced body is too large);
- keep-alive and pipelining in order, ``Connection: close`` and HTTP/1.0 honoured;
- an idle timeout, and reading paused while the client does not read its answers.

It knows nothing of ES9+: the handler maps an :class:`HttpRequest` to an
:class:`HttpResponse` (:meth:`smdpp.http.es9p.Es9pApi.handle`).
"""
from __future__ import annotations

import email.utils
import logging
import socket
import time
from http import HTTPStatus
from typing import Any, Callable

import httptools
from twisted.internet import protocol, tcp
from twisted.internet.interfaces import IPushProducer
from twisted.protocols.policies import TimeoutMixin

from smdpp.http.es9p import HttpRequest, HttpResponse

log = logging.getLogger(__name__)

Handler = Callable[[HttpRequest], HttpResponse]

MAX_HEAD = 16 * 1024  # request line + headers; ES9+ clients send well under 1 KiB
MAX_HEADERS = 100
IDLE_TIMEOUT = 60.0  # seconds a connection may stay silent between or inside requests

_NO_BODY_STATUS = frozenset({204, 304}) | frozenset(range(100, 200))


_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


class _Clock:
    """The Date header (RFC 9110 6.6.1), formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def date(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = email.utils.formatdate(now, usegmt=True).encode()
        return self._value


def _reading_side(transport: Any) -> IPushProducer | None:
    """What stops reading for ``transport``: itself over TCP, the TCP connection under TLS.

    TLSMemoryBIOProtocol is no IPushProducer, but pausing the TCP connection
    below it stops the encrypted bytes, and so the requests, from coming in.
    """
    while transport is not None and not IPushProducer.providedBy(transport):
        transport = getattr(transport, "transport", None)
    return transport


def _tcp_socket(transport: Any) -> socket.socket | None:
    """The socket of a plain Twisted TCP connection; None for anything else.

    Only a ``tcp.Connection`` itself: a wrapper such as TLS passes
    ``getHandle`` on to the TCP connection below it, and writing to that
    socket would skip the wrapper (send clear text under TLS).
    """
    if type(transport) not in (tcp.Server, tcp.Client, tcp.Connection):
        return None
    handle = transport.getHandle()
    return handle if isinstance(handle, socket.socket) else None


class HttpFactory(protocol.Factory):
    """Serves ``handler`` over HTTP/1.1 to every connection."""

    noisy = False  # no "Starting factory" lines

    def __init__(self, handler: Handler, max_body: int, max_head: int = MAX_HEAD,
                 idle_timeout: float = IDLE_TIMEOUT) -> None:
        self.handler = handler
        self.max_body = max_body
        self.max_head = max_head
        self.idle_timeout = idle_timeout
        self.clock = _Clock()

    def buildProtocol(self, addr: Any) -> "HttpConnection":
        connection = HttpConnection()
        connection.factory = self
        return connection


class HttpConnection(protocol.Protocol, TimeoutMixin):
    """One client connection: httptools parses, the factory's handler answers."""

    factory: HttpFactory

    def connectionMade(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._closing = False
        self._in_head = True  # between the start of a request and the end of its headers
        self._head_bytes = 0
        self._reset_request()
        # the transport pauses us (we stop reading) while its write buffer is full
        self._reader = _reading_side(self.transport)
        # plain TCP: answers go straight to the socket while nothing waits in Twisted's buffer
        self._socket = _tcp_socket(self.transport)
        self.transport.registerProducer(self, True)
        self.setTimeout(self.factory.idle_timeout)

    def _reset_request(self) -> None:
        self._url: list[bytes] = []
        self._headers: dict[bytes, bytes] = {}
        self._header_count = 0
        self._body: list[bytes] = []
        self._body_size = 0
        self._too_large = False
        self._answered = False  # an early final answer (Expect: 100-continue) was sent
        self._method = b""

    # -- the transport's side ------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        self.resetTimeout()
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, b"protocol upgrade is not supported")
            return
        except httptools.HttpParserCallbackError as exc:  # one of our callbacks failed: a bug
            log.error("HTTP request handling failed", exc_info=exc.__context__ or exc)
            self._refuse(500, b"internal error")
            return
        except httptools.HttpParserError as exc:
            self._refuse(400, b"malformed HTTP request: " + str(exc).encode("ascii", "replace")[:100])
            return
        if self._in_head and self._head_bytes > self.factory.max_head and not self._closing:
            self._refuse(431, b"request head too large")

    def connectionLost(self, reason: Any = None) -> None:
        self._closing = True
        self.setTimeout(None)
        self._body = []

    def timeoutConnection(self) -> None:
        """Idle for IDLE_TIMEOUT: close without an answer (nothing may be pending)."""
        self._closing = True
        self.transport.abortConnection()

    # IPushProducer, for the transport: stop reading while answers pile up unread
    def pauseProducing(self) -> None:
        if self._reader is not None:
            self._reader.pauseProducing()

    def resumeProducing(self) -> None:
        if self._reader is not None:
            self._reader.resumeProducing()

    def stopProducing(self) -> None:
        self._closing = True

    # -- httptools callbacks -------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_head = True
        self._reset_request()

    def on_url(self, url: bytes) -> None:
        self._url.append(url)  # llhttp may hand the URL over in pieces

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count <= MAX_HEADERS:
            self._headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._method = self._parser.get_method()
        if self._closing:
            return
        if self._header_count > MAX_HEADERS:
            self._refuse(431, b"too many header fields")
            return
        length = self._headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.factory.max_body:
            self._too_large = True
        if (self._headers.get(b"expect", b"").lower() == b"100-continue"
                and self._parser.get_http_version() == "1.1"):
            if self._too_large:
                # answer now, so that the client does not send the body at all (RFC 9110 10.1.1)
                self._send(self._call_handler(), close=True)
                self._answered = True
            else:
                self._write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self.factory.max_body:
            self._too_large = True
            self._body = []  # drop what was kept: the answer is 413 whatever it held
        elif not self._too_large:
            self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_head = True
        if self._closing or self._answered:
            return
        self._send(self._call_handler(), close=not self._parser.should_keep_alive())

    # -- answering -------------------------------------------------------------

    def _call_handler(self) -> HttpResponse:
        url = b"".join(self._url)
        if url[:1] == b"/":  # origin-form, what clients and proxies send (RFC 9112 3.2.1)
            raw_path = url.split(b"?", 1)[0]
        else:  # absolute-form (RFC 9112 3.2.2), which a server must accept too
            try:
                raw_path = httptools.parse_url(url).path or b""
            except httptools.HttpParserInvalidURLError:
                raw_path = b""
        path = raw_path.decode("latin-1")
        request = HttpRequest(self._method.decode("latin-1"), path, self._headers,
                              b"".join(self._body), self._too_large)
        self._body = []
        try:
            return self.factory.handler(request)
        except Exception:  # the handler answers every request itself; this is a bug
            log.exception("HTTP handler failed for %s", path[:100])
            return HttpResponse(500, ((b"Content-Type", b"text/plain"),), b"internal error\n")

    def _send(self, response: HttpResponse, close: bool) -> None:
        status = response.status
        lines = [b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Unknown")),
                 b"Date: " + self.factory.clock.date()]
        for key, value in response.headers:
            lines.append(key + b": " + value)
        body = response.body
        if status in _NO_BODY_STATUS:
            body = b""
        else:
            lines.append(b"Content-Length: %d" % len(body))
            if self._method == b"HEAD":
                body = b""
        if close:
            lines.append(b"Connection: close")
        self._write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        if close:
            self._closing = True
            # without a producer the transport closes once the answer is written
            self.transport.unregisterProducer()
            self.transport.loseConnection()

    def _write(self, data: bytes) -> None:
        """Send ``data`` now if the socket takes it; else leave (the rest of) it to the transport.

        Twisted's ``write`` only buffers: the socket is written on the next
        reactor turn, after two epoll changes and one more poll, ~40 us per
        answer here.  An answer (a few KiB, a BPP some more) usually fits in
        the socket's send buffer at once.  Whatever does not, and everything
        after it on this connection, goes through ``transport.write``, so the
        order of bytes, backpressure and error handling stay Twisted's.
        """
        sock = self._socket
        if sock is not None:
            try:
                sent = sock.send(data)
            except OSError:  # EAGAIN, or a broken connection that Twisted will report
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
            self._socket = None
        self.transport.write(data)

    def _refuse(self, status: int, message: bytes) -> None:
        """Answer a request that cannot be parsed or served, and close the connection."""
        if self._closing:
            return
        self._send(HttpResponse(status, ((b"Content-Type", b"text/plain"),), message + b"\n"),
                   close=True)
