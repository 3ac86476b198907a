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
- deadlines a trickle of bytes cannot stretch (:class:`~smdpp.http.guard.Limits`):
  the head within ``head_timeout`` of its first byte, the body within the time
  its announced size allows (past either: 408 and a close), ``idle_timeout``
  before a request begins (then a close), and ``close_timeout`` for a
  client to read a final answer;
- a transfer coding other than ``chunked`` answered 501, an HTTP/0.9 request
  (no version: RFC 9112 2.3 makes servers answer it in 1.x) 400 and closed;
- reading paused while the client does not read its answers.

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
from smdpp.http.guard import Limits, set_deadline

log = logging.getLogger(__name__)

Handler = Callable[[HttpRequest], HttpResponse]

MAX_HEAD = 16 * 1024  # request line + headers; ES9+ clients send well under 1 KiB
MAX_HEADERS = 100

# what a connection is waiting for; each has its own deadline (see HttpConnection._expect)
_IDLE, _HEAD, _BODY, _CLOSING = "idle", "head", "body", "closing"

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
                 limits: Limits = Limits(), peer_certificates: bool = False) -> None:
        self.handler = handler
        # hand each request the TLS client certificate (ES2+ mutual TLS)
        self.peer_certificates = peer_certificates
        self.max_body = max_body
        self.max_head = max_head
        self.limits = limits
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
        self._head_bytes = 0  # received since the request began (over several reads)
        self._first_line = b""  # the request line so far, until its end is seen
        self._line_pending = False
        self._waiting = _IDLE
        self._reset_request()
        # the transport pauses us (we stop reading) while its write buffer is full
        self._reader = _reading_side(self.transport)
        # plain TCP: answers go straight to the socket while nothing waits in Twisted's buffer
        self._socket = _tcp_socket(self.transport)
        self.transport.registerProducer(self, True)
        self.setTimeout(self.factory.limits.idle_timeout)

    def _reset_request(self) -> None:
        self._url: list[bytes] = []
        self._headers: dict[bytes, bytes] = {}
        self._header_count = 0
        self._head_size = 0  # request line and header fields, as parsed
        self._codings: list[bytes] = []  # every Transfer-Encoding field, in order
        self._body: list[bytes] = []
        self._body_size = 0
        self._too_large = False
        self._answered = False  # an early final answer (Expect: 100-continue) was sent
        self._method = b""

    # -- the transport's side ------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        # no resetTimeout(): a byte now and then must not stretch a deadline
        if self._in_head:
            self._head_bytes += len(data)
            # a read that starts a request (no URL yet) or ends a request line begun before
            if (self._line_pending or not self._url) and not self._check_request_line(data):
                return
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
        """A deadline passed: 408 for a request begun and not complete, else just close."""
        limits = self.factory.limits
        if self._waiting is _HEAD and not self._closing:
            self._refuse(408, b"request head not complete within %g s" % limits.head_timeout)
        elif self._waiting is _BODY and not self._closing:
            self._refuse(408, b"request body not complete in time (%g s at most, "
                              b"%g bytes/s at least)" % (limits.body_timeout, limits.body_min_rate))
        else:  # idle, or a final answer the client does not read: nothing may be pending
            self._closing = True
            self.transport.abortConnection()

    def _expect(self, waiting: str, seconds: float) -> None:
        """Wait for ``waiting`` at most ``seconds`` from now (a new timer: :func:`set_deadline`)."""
        self._waiting = waiting
        set_deadline(self, seconds)

    def _check_request_line(self, data: bytes) -> bool:
        """False (after a 400) for an HTTP/0.9 request line, which has no version.

        llhttp would wait for headers that an HTTP/0.9 client never sends.
        Empty lines before the request line are skipped, as llhttp does.
        """
        line = self._first_line + data
        while True:
            end = line.find(b"\n")
            if end < 0:
                self._first_line = line[:self.factory.max_head + 1]
                self._line_pending = bool(self._first_line)
                return True
            if line[:end].strip():
                break
            line = line[end + 1:]
        self._line_pending = False
        self._first_line = b""
        if line[:end].rstrip(b"\r").rpartition(b" ")[2].startswith(b"HTTP/"):
            return True
        self._refuse(400, b"HTTP/0.9 is not supported: send HTTP/1.1")
        return False

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
        self._expect(_HEAD, self.factory.limits.head_timeout)

    def on_url(self, url: bytes) -> None:
        self._url.append(url)  # llhttp may hand the URL over in pieces
        self._head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._head_size += len(name) + len(value) + 4
        lower = name.lower()
        if lower == b"transfer-encoding":
            self._codings.append(value)
        if self._header_count <= MAX_HEADERS:
            self._headers[lower] = value

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._method = self._parser.get_method()
        if self._closing:
            return
        # counted as parsed: a whole head in one read is held to the limit too
        if self._head_size > self.factory.max_head:
            self._refuse(431, b"request head too large")
            return
        if self._header_count > MAX_HEADERS:
            self._refuse(431, b"too many header fields")
            return
        if self._parser.get_http_version() == "0.9":
            self._refuse(400, b"HTTP/0.9 is not supported: send HTTP/1.1")
            return
        if self._codings:
            codings = [c.strip().lower() for v in self._codings for c in v.split(b",")]
            if codings != [b"chunked"]:  # RFC 9112 6.1: 501 for a coding the server lacks
                self._refuse(501, b"transfer coding not supported: only chunked")
                return
        length = self._headers.get(b"content-length")
        known = int(length) if length is not None and length.isdigit() else None
        if known is not None and known > self.factory.max_body:
            self._too_large = True
        self._expect(_BODY, self.factory.limits.body_deadline(
            None if self._codings else known))
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
        self._expect(_IDLE, self.factory.limits.idle_timeout)
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
                              b"".join(self._body), self._too_large,
                              self._peer_certificate() if self.factory.peer_certificates else None)
        self._body = []
        self._url = []  # an empty URL marks the next read as the start of a request
        try:
            return self.factory.handler(request)
        except Exception:  # the handler answers every request itself; this is a bug
            log.exception("HTTP handler failed for %s", path[:100])
            return HttpResponse(500, ((b"Content-Type", b"text/plain"),), b"internal error\n")

    def _peer_certificate(self) -> bytes | None:
        """DER of the TLS client certificate of this connection (None without one)."""
        get = getattr(self.transport, "getPeerCertificate", None)
        peer = get() if get is not None else None
        if peer is None:
            return None
        from cryptography.hazmat.primitives.serialization import Encoding
        return peer.to_cryptography().public_bytes(Encoding.DER)

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
            # without a producer the transport closes once the answer is written;
            # a client that does not read it is cut off after close_timeout
            self._expect(_CLOSING, self.factory.limits.close_timeout)
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
