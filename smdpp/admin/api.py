"""The admin listener's requests: ``/`` (status page), ``/health``, ``/ready``, ``/metrics``.

Read-only, GET (and HEAD) only, sans-I/O like :class:`~smdpp.http.es9p.Es9pApi`:
:meth:`AdminApi.handle` maps an :class:`HttpRequest` to an
:class:`HttpResponse`, served by the same HTTP/1.1 server as ES9+ on a port
of its own (``--admin-port``).

The status page and ``/metrics`` show EIDs and traffic: when a token is set
(required when the listener is not on a loopback address) they need it, as
``Authorization: Bearer <token>`` (Prometheus' ``authorization``) or as the
password of HTTP Basic (a browser asks for it).  ``/health`` and ``/ready``
say only "ok" or what is missing, and need none.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from smdpp.activation import ActivationCode, qr_png_data_uri
from smdpp.admin.orders import read_orders
from smdpp.admin.page import CertificateRow, CrlRow, ProfileRow, StatusData, render
from smdpp.admin.recent import RecentSessions
from smdpp.http.es9p import HttpRequest, HttpResponse
from smdpp.observe import bounded

if TYPE_CHECKING:
    from smdpp.admin.metrics import Metrics
    from smdpp.rsp.engine import RspEngine

log = logging.getLogger(__name__)

__all__ = ["AdminApi", "AdminInfo"]

_TEXT = ((b"Content-Type", b"text/plain; charset=utf-8"), (b"Cache-Control", b"no-store"))
_HTML = ((b"Content-Type", b"text/html; charset=utf-8"), (b"Cache-Control", b"no-store"),
         # no script, no frame, nothing from elsewhere: the page is HTML and inline CSS only
         (b"Content-Security-Policy",
          b"default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"),
         (b"X-Content-Type-Options", b"nosniff"))
MAX_BODY = 1024  # the admin listener takes no request bodies


@dataclass(frozen=True)
class AdminInfo:
    """What the page says about the server itself."""

    version: str
    es9_url: str
    workers: int = 1


class AdminApi:
    """The admin listener of one server process."""

    max_body = MAX_BODY

    def __init__(self, engine: RspEngine, recent: RecentSessions, metrics: Metrics | None,
                 info: AdminInfo, token: str | None = None,
                 clock: Callable[[], float] = time.time, orders: Any = None) -> None:
        self.engine = engine
        self.orders = orders  # the OrderStore with --es2-port (smdpp.admin.orders reads it)
        #: --workers: every worker's sessions (smdpp.admin.worker_sessions); None: this one's
        self.session_files: Any = None
        self.recent = recent
        self.metrics = metrics
        self.info = info
        self._token = token.encode() if token else None
        self.started = clock()
        self._qr: dict[str, str] = {}  # activation code -> PNG data URI, made once
        self.routes: dict[str, Callable[[], HttpResponse]] = {
            "/": self.status_page, "/health": self.health, "/ready": self.ready,
            "/metrics": self.metrics_text}
        self._protected = {"/", "/metrics"}

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Answer one request to the admin listener."""
        path = request.path.split("?", 1)[0]
        route = self.routes.get(path)
        if route is None:
            log.info("admin: %s %s: not found (404)", bounded(request.method, 10), bounded(path))
            return _text(404, f"not found: the admin listener serves {', '.join(self.routes)}\n")
        if request.method not in ("GET", "HEAD"):
            return HttpResponse(405, _TEXT + ((b"Allow", b"GET, HEAD"),), b"GET or HEAD only\n")
        if path in self._protected and not self._authorized(request):
            log.info("admin: %s without a valid token (401)", path)
            return HttpResponse(401, _TEXT + ((b"WWW-Authenticate", b'Basic realm="smdpp admin"'),),
                                b"a token is needed: Authorization: Bearer <token>, or the "
                                b"password of HTTP Basic\n")
        response = route()
        if request.method == "HEAD":
            return HttpResponse(response.status, response.headers, b"")
        return response

    def _authorized(self, request: HttpRequest) -> bool:
        if self._token is None:
            return True
        value = request.headers.get(b"authorization", b"")
        scheme, _, credentials = value.partition(b" ")
        if scheme.lower() == b"bearer":
            offered = credentials.strip()
        elif scheme.lower() == b"basic":
            try:
                offered = base64.b64decode(credentials.strip(), validate=True).partition(b":")[2]
            except (binascii.Error, ValueError):
                return False
        else:
            return False
        return hmac.compare_digest(offered, self._token)

    # -- routes ------------------------------------------------------------

    def health(self) -> HttpResponse:
        """Liveness: the process answers."""
        return _text(200, "ok\n")

    def ready(self) -> HttpResponse:
        """Readiness: the session store answers and credentials and profiles are loaded."""
        problems = []
        if not self.engine.certs.credential_pkids:
            problems.append("no DPauth/DPpb credentials loaded")
        if not len(self.engine.profiles):
            problems.append("no profile loaded")
        try:
            self.engine.store.get("00")  # a read of a transactionId that is never issued
        except Exception as exc:  # noqa: BLE001 - any failure of the store means not ready
            problems.append(f"session store unreachable: {type(exc).__name__}: {bounded(str(exc), 200)}")
        if problems:
            log.warning("admin: not ready: %s", "; ".join(problems))
            return _text(503, "not ready: " + "; ".join(problems) + "\n")
        return _text(200, "ready\n")

    def metrics_text(self) -> HttpResponse:
        """Prometheus text format."""
        if self.metrics is None:
            return _text(404, "metrics are off\n")
        from smdpp.admin.metrics import CONTENT_TYPE
        return HttpResponse(200, ((b"Content-Type", CONTENT_TYPE.encode()),), self.metrics.exposition())

    def status_page(self) -> HttpResponse:
        """The status page."""
        return HttpResponse(200, _HTML, render(self.snapshot()).encode())

    # -- the page's data ---------------------------------------------------------

    def snapshot(self) -> StatusData:
        """What the page shows now."""
        from smdpp.admin.metrics import certificates, days_left

        engine = self.engine
        profiles = []
        for profile in sorted(engine.profiles, key=lambda p: p.matching_id):
            try:
                code = ActivationCode(engine.config.hostname, profile.matching_id)
                text = code.uri()
            except ValueError as exc:  # a file name no LPA can take as a matchingId
                text, code = f"(none: {exc})", None
            qr = None
            if code is not None:
                qr = self._qr.get(text)
                if qr is None:
                    qr = self._qr[text] = qr_png_data_uri(code)
            profiles.append(ProfileRow(profile.matching_id, profile.iccid, profile.profile_name,
                                       profile.profile_class, text, qr))
        certs = [CertificateRow(role, cert.subject.rfc4514_string(), cert.not_valid_after_utc,
                                days_left(cert.not_valid_after_utc))
                 for role, cert in certificates(engine.certs)]
        crls = [CrlRow(str(loaded.path), loaded.issuer.subject.rfc4514_string(),
                       loaded.crl.last_update_utc, loaded.crl.next_update_utc, loaded.number,
                       len(loaded.crl)) for loaded in engine.certs.crls]
        notes = []
        sessions = self.recent.newest_first()
        if self.session_files is not None:
            sessions, notes = self.session_files.sessions(self.recent.limit)
            notes.insert(0, f"The sessions of all {self.info.workers} workers: this one's as "
                            "they are, the others' as of a moment ago (each worker writes its "
                            "own a few times a second).")
        return StatusData(hostname=engine.config.hostname, version=self.info.version,
                          es9_url=self.info.es9_url, pid=os.getpid(), started=self.started,
                          workers=self.info.workers, sessions=sessions,
                          profiles=profiles, certificates=certs, crls=crls, notes=notes,
                          orders=read_orders(self.orders) if self.orders is not None else None)


def _text(status: int, text: str) -> HttpResponse:
    return HttpResponse(status, _TEXT, text.encode())


def is_loopback(host: str) -> bool:
    """True for an address only this host can reach (127.0.0.0/8, ::1, localhost)."""
    import ipaddress
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def read_token(path: Any) -> str:
    """The admin token from a file (first line, stripped); ValueError naming the file."""
    from pathlib import Path
    try:
        token = Path(path).read_text(encoding="utf-8").splitlines()[0].strip() \
            if Path(path).stat().st_size else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the admin token: {exc}") from None
    if len(token) < 16:
        raise ValueError(f"{path}: the admin token must be at least 16 characters")
    return token
