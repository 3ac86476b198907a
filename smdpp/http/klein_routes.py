"""ES9+ as Klein routes over twisted.web (``--http klein``).

For embedding smdpp in a Klein or twisted.web application, and for comparing
with the built-in server (:mod:`smdpp.http.server`), which serves the same
:class:`~smdpp.http.es9p.Es9pApi` at about a fifth of the per-request CPU
(``python -m bench.download --server-arg=--http --server-arg=klein``).

The deadlines of :class:`~smdpp.http.guard.Limits` hold here too
(:class:`Es9pChannel`), with what twisted.web does not allow:

- a request line or header line longer than 16 KiB closes the connection
  without an answer (twisted.web's line limit), where the built-in server
  answers 431;
- a transfer coding other than chunked is refused 400 by twisted.web (the
  built-in server: 501), and so is an HTTP/0.9 request line;
- while a request is being answered no deadline runs (twisted.web's design;
  ES9+ answers are computed at once, so this is not a wait on the client);
- pipelined requests are answered one per reactor turn for the whole site
  (twisted.web would answer all that have arrived in one go, see
  :meth:`Es9pChannel.setLineMode` and :class:`PipelineTurns`).
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable

from klein import Klein
from twisted.web.http import HTTPChannel
from twisted.web.iweb import IRequest
from twisted.web.server import Request, Site

from smdpp.http.es9p import DEFAULT_MAX_BODY, Es9pApi, HttpRequest
from smdpp.http.guard import Limits, set_deadline


class Es9pRoutes:
    """Klein routes for the ES9+ functions of one :class:`Es9pApi`."""

    app = Klein()

    def __init__(self, api: Es9pApi) -> None:
        self.api = api

    def resource(self) -> Any:
        """The twisted.web resource to serve."""
        return self.app.resource()

    def site(self, limits: Limits = Limits()) -> Site:
        """The twisted.web site to listen with: :class:`Es9pSite` over :meth:`resource`."""
        return Es9pSite(self.resource(), self.api.max_body, limits)

    @app.route("/gsma/rsp2/es9plus/<string:name>",
               methods=["POST", "GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"])
    def es9plus(self, request: IRequest, name: str) -> bytes:
        """One ES9+ call, answered by :meth:`Es9pApi.handle`."""
        headers = {key.lower(): values[-1]
                   for key, values in request.requestHeaders.getAllRawHeaders()}
        response = self.api.handle(HttpRequest(
            request.method.decode("latin-1"), request.path.decode("latin-1"), headers,
            request.content.read(self.api.max_body + 1),
            getattr(request, "body_too_large", False)))
        request.setResponseCode(response.status)
        for key, value in response.headers:
            request.setHeader(key, value)
        return response.body


class PipelineTurns:
    """The pipelined requests of every connection of a site, one per reactor turn, in turn.

    twisted.web costs about 0.3 ms per request here.  With one pipelined
    request per connection and turn, 20 connections pipelining hundreds of
    requests each made every turn 20 requests long, and a legitimate call
    waited for that at each of its four steps.  One pipelined request per
    turn for the whole site (connections queued first come, first served)
    leaves the reactor's poll, and so the requests of other clients, between
    any two of them.
    """

    def __init__(self) -> None:
        self._queue: deque[tuple["Es9pChannel", bytes]] = deque()
        self._call: Any = None  # the delayed call of the next turn

    def add(self, channel: "Es9pChannel", extra: bytes) -> None:
        """Go on with ``channel``'s pipelined ``extra`` bytes in a later turn."""
        self._queue.append((channel, extra))
        self._schedule(channel.callLater)

    def discard(self, channel: "Es9pChannel") -> None:
        """``channel`` is gone: drop what it had queued."""
        self._queue = deque(entry for entry in self._queue if entry[0] is not channel)

    def _schedule(self, call_later: Callable[..., Any]) -> None:
        if self._call is None and self._queue:
            # a call made during a turn runs in the next one, after the reactor polled
            self._call = call_later(0, self._turn, call_later)

    def _turn(self, call_later: Callable[..., Any]) -> None:
        self._call = None
        if self._queue:
            channel, extra = self._queue.popleft()
            try:
                channel._next_pipelined(extra)  # noqa: SLF001 - its own queue
            finally:
                self._schedule(call_later)


class Es9pSite(Site):
    """A twisted.web Site tuned for ES9+.

    ES9+ bodies are JSON, so twisted.web's form parsing of POST bodies
    (urlencoded and multipart, run on every request with a Content-Type) is
    turned off: it costs time and would parse hostile input for nothing.  The
    per-request access log is off too: smdpp logs each session step itself,
    and a TLS proxy in front keeps the access log.
    """

    displayTracebacks = False  # a traceback is never an answer to the network

    def __init__(self, resource: Any, max_body: int = DEFAULT_MAX_BODY,
                 limits: Limits = Limits()) -> None:
        super().__init__(resource, requestFactory=Es9pRequest, parsePOSTFormSubmission=False,
                         timeout=limits.idle_timeout)
        self.max_body = max_body
        self.limits = limits
        self.turns = PipelineTurns()

    def protocol(self) -> "Es9pChannel":  # type: ignore[override]
        """twisted.web builds each connection's channel with this (HTTP/1.1 only)."""
        channel = Es9pChannel()
        # after a timeout's answer, how long a client that does not read it keeps the connection
        channel.abortTimeout = self.limits.close_timeout
        return channel

    def log(self, request: Any) -> None:
        """No access log line (see the class docstring)."""


class Es9pRequest(Request):
    """A request that keeps at most ``max_body`` bytes of its body.

    twisted.web would store any body (spooling a large one to a temporary
    file) before the resource sees it.  Here the bytes past the limit are
    read and dropped, whether the client announced a Content-Length or sent
    chunks, and :attr:`body_too_large` makes the route answer 413: an
    oversized request costs neither memory nor disk.
    """

    body_too_large = False
    _received = 0

    def gotLength(self, length: int | None) -> None:
        """The body is about to arrive; ``length`` is its Content-Length, if any."""
        if length is not None and length > self.channel.site.max_body:
            self.body_too_large = True
        # a small in-memory buffer in every case: no more than max_body is kept
        super().gotLength(0)

    def handleContentChunk(self, data: bytes) -> None:
        """Keep body bytes up to the limit, drop the rest."""
        self._received += len(data)
        if self._received > self.channel.site.max_body:
            self.body_too_large = True
        if not self.body_too_large:
            super().handleContentChunk(data)


class Es9pChannel(HTTPChannel):
    """An HTTPChannel whose deadlines are not moved by each byte that arrives.

    twisted.web has one idle timeout, restarted by every read, so a byte every
    few seconds held a connection for ever.  Here, as in
    :mod:`smdpp.http.server`, each phase has its own deadline: the keep-alive
    idle limit until a request's first byte, then the head's, then the body's
    (from its Content-Length and the minimum rate); a request not complete in
    time is answered 408.
    """

    site: Es9pSite
    _waiting = "idle"

    def resetTimeout(self) -> None:
        """Called by twisted.web on every read: deliberately nothing (see the class docstring)."""

    def dataReceived(self, data: bytes) -> None:
        if self._waiting == "idle" and data.strip(b"\r\n"):
            self._expect("head", self.site.limits.head_timeout)
        super().dataReceived(data)

    def allHeadersReceived(self) -> None:
        super().allHeadersReceived()
        # twisted.web's length: the Content-Length, None for chunked, 0 without a body
        self._expect("body", self.site.limits.body_deadline(self.length))

    def allContentReceived(self) -> None:
        self._waiting = "answer"  # twisted.web stops the timer while the answer is made
        super().allContentReceived()

    def requestDone(self, request: Any) -> None:
        # the deadline twisted.web restores when the next request may come: the idle one;
        # set before, as it goes on at once with requests already received
        self._savedTimeOut = self.site.limits.idle_timeout
        self._waiting = "idle"
        super().requestDone(request)

    def setLineMode(self, extra: bytes = b"") -> Any:
        """twisted.web calls this when an answer is done, with the requests pipelined meanwhile.

        It would parse and answer all of them at once, in one reactor turn: a
        few connections pipelining hundreds of requests each held every other
        client for seconds.  Here the next request waits its turn in the
        site's :class:`PipelineTurns`, reading paused until then.
        """
        if not extra:
            return super().setLineMode()
        super().setLineMode()
        self._networkProducer.pauseProducing()
        self.site.turns.add(self, extra)
        return None

    def _next_pipelined(self, extra: bytes) -> None:
        """Its turn (:class:`PipelineTurns`): read again, and parse what was pipelined."""
        if not self._waitingForTransport:  # else the transport resumes us once it drains
            self._networkProducer.resumeProducing()
        self.dataReceived(extra)

    def connectionLost(self, reason: Any) -> None:
        if isinstance(self.site, Es9pSite):  # built by one (twisted.web sets it)
            self.site.turns.discard(self)
        super().connectionLost(reason)

    def timeoutConnection(self) -> None:
        if self._waiting in ("head", "body"):
            limit = ("head", self.site.limits.head_timeout) if self._waiting == "head" else \
                ("body", self.site.limits.body_timeout)
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                                 b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
                                 % _timeout_body(*limit))
        super().timeoutConnection()

    def _expect(self, waiting: str, seconds: float) -> None:
        self._waiting = waiting
        set_deadline(self, seconds)  # a new timer, not the old one moved sooner


def _timeout_body(part: str, seconds: float) -> tuple[int, bytes]:
    body = b"request %s not complete in time (%g s at most)\n" % (part.encode(), seconds)
    return len(body), body
