"""Delivery of the queued HandleDownloadProgressInfo to operators (SGP.22 5.3.5), with back-off.

:func:`deliver_due` takes the notifications whose time has come from the
order store (each claimed first, so that several processes never send one
twice at the same time), POSTs each to ``<notify URL>/gsma/rsp2/es2plus/
handleDownloadProgressInfo`` over HTTPS with the DPtls as client
certificate (SGP.22 2.6.6; ``http://`` for a loopback notify URL), and
forgets it when the operator answers 204 (or 200 with Executed-Success).
An operator that is down, refuses or times out gets it again later:
after 1, 2, 4 ... seconds, at most :data:`MAX_DELAY` apart, for as long as
the queue holds it; the queue is in the store, so a restart loses nothing.

It blocks on the network: the server runs it in a thread of the reactor's
pool (:func:`start_delivery`), so an ES9+ answer never waits for it.  Each
attempt is reported as a :class:`~smdpp.observe.CallOutcome` (ES2+
``handleDownloadProgressInfo``), handed to the observers in the reactor's
thread: metrics and JSON log lines count the calls the server makes too.
"""
from __future__ import annotations

import json
import logging
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from smdpp.observe import CallOutcome, bounded

from smdpp.orders.notify import FUNCTION
from smdpp.orders.operators import Operator, OperatorRegistry
from smdpp.orders.store import OrderStore, QueuedNotification

log = logging.getLogger(__name__)

MAX_DELAY = 300.0  # seconds between two attempts at the most
LEASE = 60.0  # seconds one attempt may take before another process may try
TIMEOUT = 10.0  # seconds for one HTTP exchange
INTERVAL = 1.0  # seconds between two looks at the queue


@dataclass(frozen=True)
class ClientCredential:
    """The certificate (PEM file) and key the SM-DP+ presents to operators: its DPtls."""

    cert_file: Path
    key_file: Path


def backoff(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: 1, 2, 4 ... MAX_DELAY."""
    return min(MAX_DELAY, 2.0 ** max(0, attempts - 1))


def _context(operator: Operator, credential: ClientCredential | None) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cafile=str(operator.notify_ca) if operator.notify_ca else None)
    if credential is not None:
        context.load_cert_chain(str(credential.cert_file), str(credential.key_file))
    return context


class OperatorFailed(ValueError):
    """The operator answered, but not with success: HTTP status and SGP.22 codes if any."""

    def __init__(self, text: str, http_status: int, codes: tuple[str, str] | None) -> None:
        super().__init__(text)
        self.http_status = http_status
        self.codes = codes


def send(operator: Operator, body: bytes, credential: ClientCredential | None) -> None:
    """POST one notification; raises OSError or :class:`OperatorFailed` with what went wrong."""
    from smdpp.euicc.es9 import Es9TransportError
    from smdpp.orders.client import Es2pTransport
    assert operator.notify_url is not None
    https = operator.notify_url.startswith("https:")
    client = Es2pTransport(operator.notify_url, timeout=TIMEOUT,
                           ssl_context=_context(operator, credential) if https else None)
    try:
        reply = client.post(FUNCTION, body)
    except Es9TransportError as exc:
        raise OSError(str(exc)) from None
    finally:
        client.close()
    if reply.http_status == 204 or (reply.http_status == 200
                                    and reply.function_status == "Executed-Success"):
        return
    codes = None
    data = reply.status_code_data
    if reply.function_status == "Failed" and data:
        codes = (bounded(str(data.get("subjectCode")), 16) or "",
                 bounded(str(data.get("reasonCode")), 16) or "")
    raise OperatorFailed(f"operator answered {reply.describe()}", reply.http_status, codes)


Report = Callable[[CallOutcome], None]


def deliver_due(store: OrderStore, operators: OperatorRegistry,
                credential: ClientCredential | None, report: Report | None = None) -> int:
    """Send what is due now; returns how many the operators took.  ``report`` hears of each."""
    sent = 0
    for item in store.due():
        if not store.claim(item, LEASE):
            continue  # another process has it
        sent += _deliver(store, operators, credential, item, report)
    return sent


def outcome(item: QueuedNotification, started: float, duration: float,
            error: Exception | None) -> CallOutcome:
    """The report of one delivery attempt: what the body says (ids, ICCID, EID), no resultData."""
    try:
        body = json.loads(item.body)
    except ValueError:  # our own queue: cannot happen unless the store was altered
        body = None
    body = body if isinstance(body, dict) else {}
    header = body.get("header") if isinstance(body.get("header"), dict) else {}

    def text(value: Any) -> str | None:
        return bounded(value) if isinstance(value, str) else None

    subject = reason = failure = None
    if isinstance(error, OperatorFailed) and error.codes is not None:
        subject, reason = error.codes
    elif isinstance(error, OperatorFailed):
        failure = f"http {error.http_status}"
    elif error is not None:
        failure = "unreachable"
    return CallOutcome(
        interface="ES2+", function=FUNCTION, started=started, duration=duration,
        transaction_id=None, subject_code=subject, reason_code=reason, failure=failure,
        message=bounded(str(error), 160) if error is not None else None,
        eid=text(body.get("eid")), iccid=text(body.get("iccid")),
        call_id=text(header.get("functionCallIdentifier")),
        requester=text(header.get("functionRequesterIdentifier")), operator=item.operator)


def _deliver(store: OrderStore, operators: OperatorRegistry,
             credential: ClientCredential | None, item: QueuedNotification,
             report: Report | None = None) -> int:
    operator = operators.by_name(item.operator)
    if operator is None or operator.notify_url is None:
        log.warning("notification #%d: operator %s has no notify URL any more; dropped",
                    item.id, item.operator)
        store.delivered(item.id)
        return 0
    started, clock = time.time(), time.perf_counter()
    try:
        send(operator, item.body, credential)
    except (OSError, ValueError, ssl.SSLError) as exc:
        if report is not None:
            report(outcome(item, started, time.perf_counter() - clock, exc))
        delay = backoff(item.attempts + 1)
        store.retry_later(item.id, delay, str(exc))
        log.info("notification #%d to %s failed (attempt %d), again in %.0f s: %s", item.id,
                 operator.name, item.attempts + 1, delay, str(exc)[:200])
        return 0
    if report is not None:
        report(outcome(item, started, time.perf_counter() - clock, None))
    store.delivered(item.id)
    log.info("notification #%d delivered to %s", item.id, operator.name)
    return 1


def start_delivery(reactor: Any, store: OrderStore, operators: OperatorRegistry,
                   credential: ClientCredential | None, interval: float = INTERVAL,
                   observer: Report | None = None) -> Any:
    """Look at the queue every ``interval`` s in a pool thread, one round at a time.

    ``observer`` is told of each attempt in the reactor's thread (its observers are not
    made for threads)."""
    from twisted.internet import task, threads

    report = None
    if observer is not None:
        def report(outcome: CallOutcome) -> None:
            reactor.callFromThread(observer, outcome)

    running = [False]

    def tick() -> None:
        if running[0]:
            return
        running[0] = True

        def done(result: Any) -> None:
            running[0] = False
            if hasattr(result, "getTraceback"):
                log.error("notification delivery failed: %s", result.getTraceback()[-500:])

        threads.deferToThread(deliver_due, store, operators, credential, report).addBoth(done)

    loop = task.LoopingCall(tick)
    loop.clock = reactor
    loop.start(interval, now=True)
    return loop
