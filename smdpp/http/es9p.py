"""ES9+ over HTTP (SGP.22 6.5): thin Klein routes around the RSP engine.

This layer only checks headers and sizes, parses JSON and base64, calls one
engine method and serialises the answer.  Function failures are answered with
HTTP 200 and ``header.functionExecutionStatus.status = "Failed"`` carrying the
SGP.22 subjectCode/reasonCode (SGP.22 6.5.1.4); requests that are not ES9+ at
all (wrong method or path, not JSON, too large) get an HTTP 4xx with the same
JSON header so that a client can still read why.
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass
from typing import Any, Callable

from klein import Klein
from twisted.web.iweb import IRequest
from twisted.web.server import Request, Site

from smdpp.errors import SgpError
from smdpp.rsp import status
from smdpp.rsp.engine import RspEngine

log = logging.getLogger(__name__)

ADMIN_PROTOCOL = "gsma/rsp/v2.2.0"
DEFAULT_MAX_BODY = 64 * 1024  # the largest ES9+ request (authenticateClient) is ~3 KiB


@dataclass(frozen=True)
class Function:
    """One ES9+ function: its request fields and the engine method behind it."""

    fields: dict[str, str]  # JSON name -> 'b64' | 'str' | 'tid'
    call: Callable[..., dict[str, Any] | None]
    no_content: bool = False  # handleNotification answers 204 (SGP.22 6.5.2.9)


class Es9pServer:
    """The ES9+ HTTP front of one :class:`RspEngine`."""

    app = Klein()

    def __init__(self, engine: RspEngine, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.engine = engine
        self.max_body = max_body
        self.functions: dict[str, Function] = {
            "initiateAuthentication": Function(
                {"euiccChallenge": "b64", "euiccInfo1": "b64", "smdpAddress": "str"},
                engine.initiate_authentication),
            "authenticateClient": Function(
                {"transactionId": "tid", "authenticateServerResponse": "b64"},
                engine.authenticate_client),
            "getBoundProfilePackage": Function(
                {"transactionId": "tid", "prepareDownloadResponse": "b64"},
                engine.get_bound_profile_package),
            "handleNotification": Function(
                {"pendingNotification": "b64"}, engine.handle_notification, no_content=True),
            "cancelSession": Function(
                {"transactionId": "tid", "cancelSessionResponse": "b64"},
                engine.cancel_session),
        }

    def resource(self) -> Any:
        """The twisted.web resource to serve."""
        return self.app.resource()

    def site(self) -> Site:
        """The twisted.web site to listen with: :class:`Es9pSite` over :meth:`resource`."""
        return Es9pSite(self.resource(), self.max_body)

    @app.route("/gsma/rsp2/es9plus/<string:name>", methods=["POST"])
    def es9plus(self, request: IRequest, name: str) -> bytes:
        """Dispatch one ES9+ function call."""
        function = self.functions.get(name)
        if function is None:
            return _reply(request, 404, _failed(status.malformed(f"unknown ES9+ function "
                                                                 f"{name!r}")))
        problem = self._check_request(request)
        if problem is not None:
            code, error = problem
            return _reply(request, code, _failed(error))
        try:
            body = json.loads(request.content.read(self.max_body + 1))
        except (ValueError, UnicodeDecodeError):
            return _reply(request, 400, _failed(status.malformed("body is not valid JSON")))
        if not isinstance(body, dict):
            return _reply(request, 400, _failed(status.malformed("body is not a JSON object")))
        tid = _loggable_tid(body.get("transactionId"))
        try:
            result = function.call(**_arguments(function.fields, body))
        except SgpError as err:
            log.info("transactionId=%s: %s failed %s/%s: %s", tid, name, err.subject_code,
                     err.reason_code, err.message)
            return _reply(request, 200, _failed(err))
        except Exception:  # a bug of ours: log it, answer a generic failure
            log.exception("transactionId=%s: %s raised unexpectedly", tid, name)
            return _reply(request, 200, _failed(SgpError("1.2", "4.1", "internal error")))
        if function.no_content:
            request.setResponseCode(204)
            request.setHeader(b"X-Admin-Protocol", ADMIN_PROTOCOL.encode())
            return b""
        answer: dict[str, Any] = {"header": {"functionExecutionStatus":
                                             {"status": "Executed-Success"}}}
        for key, value in (result or {}).items():
            answer[key] = base64.b64encode(value).decode() if isinstance(value, bytes) else value
        return _reply(request, 200, answer)

    @app.route("/gsma/rsp2/es9plus/<string:name>", methods=["GET", "PUT", "DELETE", "PATCH"])
    def wrong_method(self, request: IRequest, name: str) -> bytes:
        """ES9+ functions are POST only (SGP.22 6.1)."""
        request.setHeader(b"Allow", b"POST")
        return _reply(request, 405, _failed(status.malformed("ES9+ functions take POST")))

    def _check_request(self, request: IRequest) -> tuple[int, SgpError] | None:
        """Headers and size of SGP.22 6.1 / 6.5.1 before the body is parsed."""
        content_type = (request.getHeader(b"content-type") or b"").decode("latin-1")
        if content_type.split(";")[0].strip().lower() != "application/json":
            return 415, status.malformed("Content-Type must be application/json")
        admin = (request.getHeader(b"x-admin-protocol") or b"").decode("latin-1")
        if not admin.startswith("gsma/rsp/v2"):
            return 400, status.malformed("X-Admin-Protocol gsma/rsp/v2.x.y is required")
        if getattr(request, "body_too_large", False):
            return 413, status.malformed(f"request body larger than {self.max_body} bytes")
        length = request.getHeader(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return 413, status.malformed(f"request body larger than {self.max_body} bytes")
        content = request.content
        content.seek(0, 2)
        too_large = content.tell() > self.max_body
        content.seek(0)
        if too_large:
            return 413, status.malformed(f"request body larger than {self.max_body} bytes")
        return None


def _arguments(fields: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    """Map JSON fields to engine keyword arguments, decoding base64 strictly."""
    args: dict[str, Any] = {}
    for name, kind in fields.items():
        value = body.get(name)
        if value is None:
            raise status.missing(f"{name} is missing")
        if not isinstance(value, str):
            raise status.malformed(f"{name} must be a string")
        if kind == "b64":
            try:
                args[_snake(name)] = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise status.malformed(f"{name} is not valid base64") from None
        else:
            args[_snake(name)] = value
    return args


def _loggable_tid(value: Any) -> str:
    """The transactionId for a log line, only if it looks like one (no log injection)."""
    if isinstance(value, str) and 0 < len(value) <= 32 and all(
            c in "0123456789abcdefABCDEF" for c in value):
        return value.upper()
    return "-"


def _snake(name: str) -> str:
    """euiccInfo1 -> euicc_info1: the engine's argument names."""
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _failed(error: SgpError) -> dict[str, Any]:
    return {"header": {"functionExecutionStatus": error.status()}}


def _reply(request: IRequest, code: int, body: dict[str, Any]) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json;charset=UTF-8")
    request.setHeader(b"X-Admin-Protocol", ADMIN_PROTOCOL.encode())
    return json.dumps(body, separators=(",", ":")).encode()


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
