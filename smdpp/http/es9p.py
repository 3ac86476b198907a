"""ES9+ over HTTP (SGP.22 6.5): the thin mapping between HTTP requests and the RSP engine.

This layer only checks headers and sizes, parses JSON and base64, calls one
engine method and serialises the answer.  Function failures are answered with
HTTP 200 and ``header.functionExecutionStatus.status = "Failed"`` carrying the
SGP.22 subjectCode/reasonCode (SGP.22 6.5.1.4); requests that are not ES9+ at
all (wrong method or path, not JSON, too large) get an HTTP 4xx with the same
JSON header so that a client can still read why.

It knows no web framework: :meth:`Es9pApi.handle` takes a parsed request and
returns status, headers and body.  :mod:`smdpp.http.server` (the default, a
small HTTP/1.1 server) and :mod:`smdpp.http.klein_routes` (Klein routes over
twisted.web) both serve it.
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from smdpp.errors import SgpError, bounded
from smdpp import status
from smdpp.logs import Budget, Throttle, left_out
from smdpp.observe import CallOutcome, Observer, masked
from smdpp.rsp.engine import RspEngine

log = logging.getLogger(__name__)

ADMIN_PROTOCOL = "gsma/rsp/v2.2.0"
DEFAULT_MAX_BODY = 64 * 1024  # the largest ES9+ request (authenticateClient) is ~3 KiB
PATH_PREFIX = "/gsma/rsp2/es9plus/"  # SGP.22 6.5.1: https://<address>/gsma/rsp2/es9plus/<function>
MAX_FQDN = 255  # RFC 1035 2.3.4: the longest smdpAddress (an FQDN, SGP.22 4.1) there can be
SERVER_ERROR_LOG_INTERVAL = 60.0  # seconds between lines about failing server I/O

JSON_HEADERS = ((b"Content-Type", b"application/json;charset=UTF-8"),
                 (b"X-Admin-Protocol", ADMIN_PROTOCOL.encode()))
_NO_CONTENT_HEADERS = ((b"X-Admin-Protocol", ADMIN_PROTOCOL.encode()),)
_ENCODER = json.JSONEncoder(separators=(",", ":"))  # json.dumps would build one per call


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request as the server received it.

    ``headers`` has lower-case names (the last value of a repeated header).
    ``body_too_large`` says the body went past the limit: ``body`` then holds
    only what was kept before it.  ``peer_certificate`` is the DER of the TLS
    client certificate, when the server asks for one (ES2+ mutual TLS).
    """

    method: str
    path: str
    headers: Mapping[bytes, bytes]
    body: bytes
    body_too_large: bool = False
    peer_certificate: bytes | None = None


@dataclass(frozen=True)
class HttpResponse:
    """Status, headers (without Content-Length, Date, Connection) and body of an answer."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


@dataclass(frozen=True)
class Function:
    """One ES9+ function: its request fields and the engine method behind it."""

    # JSON name -> (engine keyword argument, 'b64' | 'str')
    fields: tuple[tuple[str, str, str], ...]
    call: Callable[..., dict[str, Any] | None]
    no_content: bool = False  # handleNotification answers 204 (SGP.22 6.5.2.9)

    @property
    def names(self) -> tuple[str, ...]:
        """The JSON names of the request fields."""
        return tuple(name for name, _argument, _kind in self.fields)


def _function(fields: dict[str, str], call: Callable[..., dict[str, Any] | None],
              no_content: bool = False) -> Function:
    return Function(tuple((name, _snake(name), kind) for name, kind in fields.items()),
                    call, no_content)


class Es9pApi:
    """The ES9+ functions of one :class:`RspEngine`, as HTTP request -> response."""

    def __init__(self, engine: RspEngine, max_body: int = DEFAULT_MAX_BODY,
                 observer: Observer | None = None) -> None:
        self.engine = engine
        self.max_body = max_body
        # a full disk fails every request alike: one line per interval, not one per request
        self._server_errors = Throttle(SERVER_ERROR_LOG_INTERVAL)
        # refused requests are logged each, up to a rate a flood of them cannot exceed
        self._refusals = Budget()
        #: told of each call of a known function, once, after the engine answered
        self.observer = observer
        self.functions: dict[str, Function] = {
            "initiateAuthentication": _function(
                {"euiccChallenge": "b64", "euiccInfo1": "b64", "smdpAddress": "str"},
                engine.initiate_authentication),
            "authenticateClient": _function(
                {"transactionId": "str", "authenticateServerResponse": "b64"},
                engine.authenticate_client),
            "getBoundProfilePackage": _function(
                {"transactionId": "str", "prepareDownloadResponse": "b64"},
                engine.get_bound_profile_package),
            "handleNotification": _function(
                {"pendingNotification": "b64"}, engine.handle_notification, no_content=True),
            "cancelSession": _function(
                {"transactionId": "str", "cancelSessionResponse": "b64"},
                engine.cancel_session),
        }

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Answer one request for ``/gsma/rsp2/es9plus/<function>`` (SGP.22 6.5)."""
        if not request.path.startswith(PATH_PREFIX):
            count = self._refusals.due()
            if count is not None:
                log.info("%s %s: not an ES9+ path (404); the status page, /health and /metrics "
                         "are on the admin listener (--admin-port)%s", bounded(request.method, 10),
                         bounded(request.path), left_out(count))
            return json_reply(404, failed_body(status.malformed("not an ES9+ path")))
        name = request.path[len(PATH_PREFIX):]
        function = self.functions.get(name)
        if function is None:
            return json_reply(404, failed_body(status.malformed(
                f"unknown ES9+ function {name[:64]!r}")))
        if request.method != "POST":  # ES9+ functions are POST only (SGP.22 6.1)
            return json_reply(405, failed_body(status.malformed("ES9+ functions take POST")),
                          ((b"Allow", b"POST"),))
        started, clock = time.time(), time.perf_counter()
        self.engine.touched = None
        response, error = self._call(name, function, request)
        if self.observer is not None:
            self.observer(self._outcome(name, started, time.perf_counter() - clock, error))
        return response

    def _call(self, name: str, function: Function,
              request: HttpRequest) -> tuple[HttpResponse, SgpError | None]:
        """The answer to a request for a known function, and its failure if it failed."""
        problem = self._check_request(request)
        if problem is not None:
            code, error = problem
            return json_reply(code, failed_body(error)), error
        try:
            body = json.loads(request.body, object_pairs_hook=_unique_keys)
        except _DuplicateKey as exc:  # which one a parser keeps differs: refuse, do not guess
            error = status.malformed(f"duplicate JSON key {exc}")
            return json_reply(400, failed_body(error)), error
        except (ValueError, RecursionError):  # ValueError covers UnicodeDecodeError;
            # deep nesting exceeds the decoder's recursion limit well within max_body
            error = status.malformed("body is not valid JSON")
            return json_reply(400, failed_body(error)), error
        if not isinstance(body, dict):
            error = status.malformed("body is not a JSON object")
            return json_reply(400, failed_body(error)), error
        tid = _loggable_tid(body.get("transactionId"))
        address = body.get("smdpAddress") if "smdpAddress" in function.names else None
        if isinstance(address, str) and len(address) > MAX_FQDN:
            # before anything else: no decoding, no engine call, no echo of it
            count = self._refusals.due()
            if count is not None:
                log.info("transactionId=%s: %s refused: smdpAddress of %d characters%s", tid,
                         name, len(address), left_out(count))
            error = status.invalid_smdp_address(
                f"smdpAddress of {len(address)} characters is longer than an FQDN ({MAX_FQDN})")
            return json_reply(200, failed_body(error)), error
        try:
            result = function.call(**_arguments(function.fields, body))
        except SgpError as err:
            count = self._refusals.due()
            if count is not None:
                log.info("transactionId=%s: %s failed %s/%s: %s%s", tid, name, err.subject_code,
                         err.reason_code, err.message, left_out(count))
            return json_reply(200, failed_body(err)), err
        except OSError as exc:  # the server's own I/O (a full disk under the session store)
            unlogged = self._server_errors.due()
            if unlogged is not None:
                log.error("transactionId=%s: %s failed on the server: %s%s", tid, name, exc,
                          f" ({unlogged} more such failure(s) since the last line)"
                          if unlogged else "")
            error = status.internal_error()
            return json_reply(200, failed_body(error)), error
        except Exception:  # a bug of ours: log it, answer a generic failure
            log.exception("transactionId=%s: %s raised unexpectedly", tid, name)
            error = status.internal_error()
            return json_reply(200, failed_body(error)), error
        if function.no_content:
            return HttpResponse(204, _NO_CONTENT_HEADERS, b""), None
        return HttpResponse(200, JSON_HEADERS, success_body(result or {})), None

    def _outcome(self, name: str, started: float, duration: float,
                 error: SgpError | None) -> CallOutcome:
        """The call's report for observers, with what its session says (no secrets)."""
        touched = self.engine.touched
        session, before = touched if touched is not None else (None, None)
        installed = None
        if session is not None and name == "handleNotification" and error is None \
                and session.state.value == "done" and before is not None \
                and before.value != "done":  # a repeated PIR reports nothing new
            installed = bool(session.result.get("success"))
        return CallOutcome(
            interface="ES9+", function=name, started=started, duration=duration,
            transaction_id=session.transaction_id if session is not None else None,
            subject_code=error.subject_code if error else None,
            reason_code=error.reason_code if error else None,
            message=error.message if error else None,
            eid=session.eid if session else None,
            # an order's matchingId downloads its profile: never shown whole (smdpp/observe.py)
            matching_id=(masked(session.matching_id) if session.ordered else
                         session.matching_id) if session else None,
            iccid=session.iccid if session else None,
            state_before=before.value if before is not None else None,
            state=session.state.value if session is not None else None,
            installed=installed)

    def _check_request(self, request: HttpRequest) -> tuple[int, SgpError] | None:
        return check_json_request(request, self.max_body)


def check_json_request(request: HttpRequest, max_body: int) -> tuple[int, SgpError] | None:
    """Headers and size of SGP.22 6.1 / 6.5.1 before the body is parsed (ES9+ and ES2+)."""
    content_type = request.headers.get(b"content-type", b"").decode("latin-1")
    if content_type.split(";")[0].strip().lower() != "application/json":
        return 415, status.malformed("Content-Type must be application/json")
    admin = request.headers.get(b"x-admin-protocol", b"").decode("latin-1")
    if not admin.startswith("gsma/rsp/v2"):
        return 400, status.malformed("X-Admin-Protocol gsma/rsp/v2.x.y is required")
    if request.body_too_large or len(request.body) > max_body:
        return 413, status.malformed(f"request body larger than {max_body} bytes")
    return None


def _arguments(fields: tuple[tuple[str, str, str], ...], body: dict[str, Any]) -> dict[str, Any]:
    """Map JSON fields to engine keyword arguments, decoding base64 strictly."""
    args: dict[str, Any] = {}
    for name, argument, kind in fields:
        value = body.get(name)
        if value is None:
            raise status.missing(f"{name} is missing")
        if not isinstance(value, str):
            raise status.malformed(f"{name} must be a string")
        if kind == "b64":
            try:
                args[argument] = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise status.malformed(f"{name} is not valid base64") from None
        else:
            args[argument] = value
    return args


_HEX = frozenset("0123456789abcdefABCDEF")


def _loggable_tid(value: Any) -> str:
    """The transactionId for a log line, only if it looks like one (no log injection)."""
    if isinstance(value, str) and 0 < len(value) <= 32 and _HEX.issuperset(value):
        return value.upper()
    return "-"


def _snake(name: str) -> str:
    """euiccInfo1 -> euicc_info1: the engine's argument names."""
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


_SUCCESS_HEAD = b'{"header":{"functionExecutionStatus":{"status":"Executed-Success"}}'


def success_body(result: dict[str, Any]) -> bytes:
    """The JSON of a successful answer: the header, then ``result`` with bytes in base64.

    Base64 text needs no JSON escaping, so it is put in as it is: a BPP of
    several hundred KB is not scanned character by character and copied
    again (json costs ~100 us for a 12 KB profile's BPP, more than its base64).
    """
    parts = [_SUCCESS_HEAD]
    for key, value in result.items():
        parts += (b",", _ENCODER.encode(key).encode(), b":")
        if isinstance(value, bytes):
            parts += (b'"', base64.b64encode(value), b'"')
        else:
            parts.append(_ENCODER.encode(value).encode())
    parts.append(b"}")
    return b"".join(parts)


def failed_body(error: SgpError) -> dict[str, Any]:
    """The JSON body of a failed function: only the header with its status (SGP.22 6.5.1.4)."""
    return {"header": {"functionExecutionStatus": error.status()}}


class _DuplicateKey(ValueError):
    """A JSON object names a key twice (RFC 8259 4: the outcome is then unpredictable)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object_pairs_hook: the object as a dict, refused if a key repeats."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise _DuplicateKey(repr(bounded(key, 64)))
            seen.add(key)
    return result


def json_reply(code: int, body: dict[str, Any],
               extra: tuple[tuple[bytes, bytes], ...] = ()) -> HttpResponse:
    """An HTTP response carrying ``body`` as JSON (shared by the ES9+ and ES2+ adapters)."""
    return HttpResponse(code, JSON_HEADERS + extra,
                        _ENCODER.encode(body).encode())
