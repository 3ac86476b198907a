"""ES9+ as Klein routes over twisted.web (``--http klein``).

For embedding smdpp in a Klein or twisted.web application, and for comparing
with the built-in server (:mod:`smdpp.http.server`), which serves the same
:class:`~smdpp.http.es9p.Es9pApi` at about a fifth of the per-request CPU
(``python -m bench.download --server-arg=--http --server-arg=klein``).
"""
from __future__ import annotations

from typing import Any

from klein import Klein
from twisted.web.iweb import IRequest
from twisted.web.server import Request, Site

from smdpp.http.es9p import DEFAULT_MAX_BODY, Es9pApi, HttpRequest


class Es9pRoutes:
    """Klein routes for the ES9+ functions of one :class:`Es9pApi`."""

    app = Klein()

    def __init__(self, api: Es9pApi) -> None:
        self.api = api

    def resource(self) -> Any:
        """The twisted.web resource to serve."""
        return self.app.resource()

    def site(self) -> Site:
        """The twisted.web site to listen with: :class:`Es9pSite` over :meth:`resource`."""
        return Es9pSite(self.resource(), self.api.max_body)

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


class Es9pSite(Site):
    """A twisted.web Site tuned for ES9+.

    ES9+ bodies are JSON, so twisted.web's form parsing of POST bodies
    (urlencoded and multipart, run on every request with a Content-Type) is
    turned off: it costs time and would parse hostile input for nothing.  The
    per-request access log is off too: smdpp logs each session step itself,
    and a TLS proxy in front keeps the access log.
    """

    displayTracebacks = False  # a traceback is never an answer to the network

    def __init__(self, resource: Any, max_body: int = DEFAULT_MAX_BODY) -> None:
        super().__init__(resource, requestFactory=Es9pRequest, parsePOSTFormSubmission=False)
        self.max_body = max_body

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
