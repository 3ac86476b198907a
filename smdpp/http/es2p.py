"""ES2+ over HTTP (SGP.22 6.5): the thin mapping between HTTP requests and :class:`Es2pCore`.

``POST /gsma/rsp2/es2plus/{downloadOrder, confirmOrder, cancelOrder,
releaseProfile}`` with the JSON bodies of SGP.22 6.5.2, on a listener of
its own (``--es2-port``) under mutual TLS: the TLS client certificate names
the operator (:class:`~smdpp.orders.operators.OperatorRegistry`), whose name
must be the request's functionRequesterIdentifier.  A client certificate
that no operator registered gets HTTP 403 with ``1.1``/``1.1``.  With plain
HTTP (only on a loopback address, an explicit option for labs) there is no
certificate, and the functionRequesterIdentifier must name a registered
operator.

Headers, sizes and failures are answered like ES9+ (:mod:`smdpp.http.es9p`):
``X-Admin-Protocol: gsma/rsp/v2.x.y``, JSON, HTTP 200 with
``functionExecutionStatus`` ``Failed`` and the SGP.22 codes; and like ES9+
each call of a known function is reported once to the observer (metrics,
JSON log lines).
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any

from smdpp.errors import SgpError
from smdpp.http.es9p import (JSON_HEADERS, HttpRequest, HttpResponse, failed_body, json_reply,
                             success_body, check_json_request)
from smdpp.orders.es2p import Es2pCore
from smdpp.observe import CallOutcome, Observer, bounded
from smdpp.orders.operators import OperatorRegistry
from smdpp import status

log = logging.getLogger(__name__)

PATH_PREFIX = "/gsma/rsp2/es2plus/"
MAX_BODY = 16 * 1024  # an ES2+ request is a few hundred bytes


class Es2pApi:
    """The ES2+ functions of one :class:`Es2pCore`, as HTTP request -> response."""

    def __init__(self, core: Es2pCore, operators: OperatorRegistry, *,
                 client_certificates: bool = True, max_body: int = MAX_BODY,
                 observer: Observer | None = None) -> None:
        self.core = core
        #: told of each call of a known function once it is answered (smdpp/observe.py)
        self.observer = observer
        self.operators = operators
        self.client_certificates = client_certificates  # False: plain HTTP on loopback
        self.max_body = max_body

    def _operator(self, request: HttpRequest, body: dict[str, Any]) -> str:
        if self.client_certificates:
            if request.peer_certificate is None:
                raise status.requester_unknown("no TLS client certificate")
            operator = self.operators.by_certificate(request.peer_certificate)
            if operator is None:
                raise status.requester_unknown("the TLS client certificate is not a "
                                               "registered operator's")
            return operator.name
        header = body.get("header")
        requester = header.get("functionRequesterIdentifier") if isinstance(header, dict) else None
        if not isinstance(requester, str) or self.operators.by_name(requester) is None:
            raise status.requester_unknown("functionRequesterIdentifier is not a registered "
                                           "operator")
        return requester

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Answer one request for ``/gsma/rsp2/es2plus/<function>`` (SGP.22 6.5)."""
        if not request.path.startswith(PATH_PREFIX):
            return json_reply(404, failed_body(status.malformed("not an ES2+ path")))
        name = request.path[len(PATH_PREFIX):]
        if name not in self.core.functions:
            return json_reply(404, failed_body(status.malformed(f"unknown ES2+ function {name[:64]!r}")))
        if request.method != "POST":
            return json_reply(405, failed_body(status.malformed("ES2+ functions take POST")),
                          ((b"Allow", b"POST"),))
        started, clock = time.time(), time.perf_counter()
        call = _Call(name)
        response = self._call(call, request)
        if self.observer is not None:
            self.observer(call.outcome(started, time.perf_counter() - clock))
        return response

    def _call(self, call: _Call, request: HttpRequest) -> HttpResponse:
        """The answer to a request for a known function; ``call`` notes what it did."""
        name = call.function
        problem = check_json_request(request, self.max_body)
        if problem is not None:
            call.error = problem[1]
            return json_reply(problem[0], failed_body(problem[1]))
        try:
            body = json.loads(request.body)
        except (ValueError, RecursionError):
            call.error = status.malformed("body is not valid JSON")
            return json_reply(400, failed_body(call.error))
        if not isinstance(body, dict):
            call.error = status.malformed("body is not a JSON object")
            return json_reply(400, failed_body(call.error))
        call.body = body
        try:
            operator = self._operator(request, body)
        except SgpError as err:
            log.info("ES2+ %s refused: %s", name, err.message)
            call.error = err
            return json_reply(403, failed_body(err))
        try:
            result = self.core.call(name, operator, body)
        except SgpError as err:
            log.info("ES2+ %s: %s failed %s/%s: %s", operator, name, err.subject_code,
                     err.reason_code, err.message)
            call.error = err
            return json_reply(200, failed_body(err))
        except Exception:  # a bug of ours (or the store's I/O): logged, a generic failure
            log.exception("ES2+ %s: %s raised unexpectedly", operator, name)
            call.error = status.internal_error()
            return json_reply(200, failed_body(call.error))
        call.result = result
        return HttpResponse(200, JSON_HEADERS, success_body(result))


class _Call:
    """What one ES2+ request did, for its :class:`~smdpp.observe.CallOutcome`."""

    def __init__(self, function: str) -> None:
        self.function = function
        self.body: dict[str, Any] = {}
        self.result: dict[str, Any] = {}
        self.error: SgpError | None = None

    def _field(self, name: str) -> str | None:
        """A field of the result, else of the request (hostile: a string, bounded)."""
        for source in (self.result, self.body):
            value = source.get(name)
            if isinstance(value, str):
                return bounded(value)
        return None

    def outcome(self, started: float, duration: float) -> CallOutcome:
        """The report for observers: ids, ICCID, EID, matchingId (masked by whoever shows it);
        never the Confirmation Code (SGP.22 5.3.2), which is not read here."""
        header = self.body.get("header")
        header = header if isinstance(header, dict) else {}
        requester, call_id = (header.get(key) for key in ("functionRequesterIdentifier",
                                                          "functionCallIdentifier"))
        error = self.error
        return CallOutcome(
            interface="ES2+", function=self.function, started=started, duration=duration,
            transaction_id=None,
            subject_code=error.subject_code if error else None,
            reason_code=error.reason_code if error else None,
            message=error.message if error else None,
            eid=self._field("eid"), matching_id=self._field("matchingId"),
            iccid=self._field("iccid"),
            call_id=bounded(call_id) if isinstance(call_id, str) else None,
            requester=bounded(requester) if isinstance(requester, str) else None)


def es2_factory(api: Es2pApi, dptls: Any | None, limits: Any | None = None) -> Any:
    """The Twisted factory of the ES2+ listener: the HTTP/1.1 server, under mutual TLS if ``dptls``.

    ``dptls`` is a :class:`smdpp.http.tls.DptlsServer` of its own (its
    contexts are switched to require client certificates); ``limits``
    (:class:`smdpp.http.guard.Limits`) are the deadlines and connection caps of
    the ES9+ listener, applied here the same way.
    """
    from smdpp.http.guard import ConnectionGuard, GuardedFactory, Limits
    from smdpp.http.server import HttpFactory
    limits = limits or Limits()
    factory: Any = HttpFactory(api.handle, api.max_body, limits=limits,
                               peer_certificates=dptls is not None)
    if dptls is not None:
        dptls.require_client_certificates()
        factory = dptls.wrap(factory, limits.tls_handshake_timeout)
    return GuardedFactory(factory, ConnectionGuard(limits.max_connections, limits.max_per_client,
                                                   listener="ES2+"))
