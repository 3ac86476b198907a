"""``GET /metrics``: the server's figures in the Prometheus text format, by prometheus-client.

An observer of :mod:`smdpp.observe` counts downloads and times each ES9+
function (SGP.22 5.6) and each ES2+ function (5.3: the operators' calls and
the HandleDownloadProgressInfo sent out), with its outcome; :class:`TimedStore` times the session store; the
connection guard of :mod:`smdpp.http.guard` reports connections (both
fronts, TLS or not); collectors read, at each scrape, the
sessions by state from the store and the days left on each certificate.

With ``--workers N`` every worker counts in prometheus-client's
multiprocess mode: the parent sets ``PROMETHEUS_MULTIPROC_DIR`` to an empty
folder before it forks (prometheus-client picks its mode when it is first
imported, so the parent never imports it), each worker writes its own
memory-mapped files there, and whichever worker answers ``/metrics`` sums
all of them (gauges of live connections over the live workers only).
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import disable_created_metrics, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from smdpp.admin.multiproc import multiprocess_dir
from smdpp.observe import CallOutcome

if TYPE_CHECKING:
    from smdpp.pki.store import CertificateStore

__all__ = ["Metrics", "TimedStore", "CONTENT_TYPE", "certificates"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
disable_created_metrics()  # no *_created series: a start time per series is noise here
# an ES9+ call takes about 1 to 10 ms of CPU here (Brainpool, large profiles: more)
CALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# an ES2+ call is a few store statements; a notification sent out is an HTTPS exchange
ES2_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
STORE_BUCKETS = (0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.05, 0.25)


def certificates(certs: CertificateStore) -> Iterator[tuple[str, Any]]:
    """(role, certificate) of every certificate the server uses: CIs, DPauth, DPpb, DPtls
    (of every identity served, side by side ones too)."""
    from cryptography import x509

    for pkid in certs.ci_pkids:
        yield "CI", certs.ci_certificate(pkid)
    # the default identity's credential sets, then those of identities served side by side
    served = [certs.credentials(pkid) for pkid in certs.credential_pkids]
    served += [creds for side in certs.side_by_side.values() for creds in side]
    for creds in served:
        yield "DPauth", x509.load_der_x509_certificate(creds.auth_cert_der)
        yield "DPpb", x509.load_der_x509_certificate(creds.pb_cert_der)
    for tls in certs.tls_served:
        yield "DPtls", tls.certificate


def days_left(not_after: datetime, now: datetime | None = None) -> float:
    """Days from ``now`` to ``not_after`` (negative once expired)."""
    moment = now or datetime.now(timezone.utc)
    return (not_after - moment).total_seconds() / 86400.0


class _StateCollector:
    """``smdpp_sessions{state}``: sessions in the store by state, read at each scrape."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        count = getattr(self.store, "count_by_state", None)
        if count is None:  # a store that cannot count (Redis): no figure rather than a wrong one
            return
        family = GaugeMetricFamily("smdpp_sessions", "Sessions in the session store by state "
                                   "(finished ones until they expire)", labels=["state"])
        for state, number in sorted(count(time.time()).items()):
            family.add_metric([state], number)
        yield family


class _CertificateCollector:
    """``smdpp_certificate_expiry_days{role,subject}``: days until each certificate expires."""

    def __init__(self, certs: CertificateStore) -> None:
        self.certs = certs

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("smdpp_certificate_expiry_days",
                                   "Days until the certificate's notAfter (negative: expired)",
                                   labels=["role", "subject", "serial"])
        now = datetime.now(timezone.utc)
        for role, cert in certificates(self.certs):
            family.add_metric([role, cert.subject.rfc4514_string()[:200], f"{cert.serial_number:x}"],
                              round(days_left(cert.not_valid_after_utc, now), 3))
        yield family


class Metrics:
    """The metrics of one server process; call it with each :class:`CallOutcome`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        own = None if multiprocess_dir() else self.registry  # multiprocess: files, not a registry
        kwargs: dict[str, Any] = {"registry": own}
        self.started = Counter("smdpp_downloads_started", "Downloads started: "
                               "initiateAuthentication answered with success", **kwargs)
        self.completed = Counter("smdpp_downloads_completed", "Downloads completed: a "
                                 "ProfileInstallationResult reporting success", **kwargs)
        self.failed = Counter("smdpp_downloads_failed", "Failed ES9+ calls by SGP.22 "
                              "subjectCode/reasonCode, and ProfileInstallationResults reporting an "
                              "error (code 'installation')", ["function", "code"], **kwargs)
        self.latency = Histogram("smdpp_es9_function_seconds", "Time the server took for each "
                                 "ES9+ function call", ["function"], buckets=CALL_BUCKETS, **kwargs)
        self.es2_latency = Histogram("smdpp_es2_function_seconds", "Time of each ES2+ function "
                                     "call: operators' calls and the HandleDownloadProgressInfo "
                                     "the server sends", ["function"], buckets=ES2_BUCKETS,
                                     **kwargs)
        self.es2_calls = Counter("smdpp_es2_calls", "ES2+ calls by function and outcome: 'ok', "
                                 "SGP.22 subjectCode/reasonCode, or a failure without codes "
                                 "('unreachable', 'http 503') of a notification sent out",
                                 ["function", "code"], **kwargs)
        self.store_latency = Histogram("smdpp_store_seconds", "Time of each session store "
                                       "operation", ["operation"], buckets=STORE_BUCKETS, **kwargs)
        self.connections_open = Gauge("smdpp_connections_open", "ES9+ connections open",
                                      multiprocess_mode="livesum", **kwargs)
        self.connections_refused = Counter("smdpp_connections_refused", "ES9+ connections "
                                           "closed at once by a server limit", **kwargs)
        self._functions: dict[str, Any] = {}

    def watch(self, certs: CertificateStore, store: Any) -> None:
        """Add the certificate and session figures, read from ``certs`` and ``store`` at scrape."""
        self.registry.register(_CertificateCollector(certs))
        self.registry.register(_StateCollector(store))

    def __call__(self, outcome: CallOutcome) -> None:
        """Count one call (the :data:`~smdpp.observe.Observer` interface)."""
        if outcome.interface == "ES2+":
            self.es2_latency.labels(outcome.function).observe(outcome.duration)
            self.es2_calls.labels(outcome.function, outcome.code).inc()
            return
        latency = self._functions.get(outcome.function)
        if latency is None:  # the labelled child, looked up once per function
            latency = self._functions[outcome.function] = self.latency.labels(outcome.function)
        latency.observe(outcome.duration)
        if not outcome.ok:
            self.failed.labels(outcome.function, outcome.code).inc()
        elif outcome.function == "initiateAuthentication":
            self.started.inc()
        elif outcome.installed is True:
            self.completed.inc()
        elif outcome.installed is False:
            self.failed.labels(outcome.function, "installation").inc()

    def watch_connections(self, guard: Any) -> None:
        """Count what ``guard`` (:class:`smdpp.http.guard.ConnectionGuard`) admits, releases, refuses.

        Its two methods are wrapped on this one object, as the guard itself
        hooks a protocol's connectionLost: no layer on every read and write.
        """
        admit, release = guard.admit, guard.release
        opened, refused = self.connections_open, self.connections_refused

        def counted_admit(host: str) -> bool:
            admitted = admit(host)
            if admitted:
                opened.inc()
            else:
                refused.inc()
            return admitted

        def counted_release(host: str) -> None:
            release(host)
            opened.dec()

        guard.admit, guard.release = counted_admit, counted_release

    def exposition(self) -> bytes:
        """The text format of every metric (of every worker, in multiprocess mode)."""
        folder = multiprocess_dir()
        if folder is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=folder)
        text = generate_latest(registry)
        return text + generate_latest(self.registry)  # this worker's collectors: store, certs


class TimedStore:
    """A session store whose every operation is timed into ``smdpp_store_seconds``."""

    def __init__(self, store: Any, histogram: Histogram) -> None:
        self._store = store
        self._timers: dict[str, Any] = {op: histogram.labels(op) for op in
                                        ("get", "put", "put_if", "delete", "expire")}

    def _timed(self, operation: str, call: Callable[..., Any], *args: Any) -> Any:
        clock = time.perf_counter()
        try:
            return call(*args)
        finally:
            self._timers[operation].observe(time.perf_counter() - clock)

    def get(self, transaction_id: str) -> Any:
        return self._timed("get", self._store.get, transaction_id)

    def put(self, session: Any) -> None:
        self._timed("put", self._store.put, session)

    def put_if(self, session: Any, expected_state: Any) -> bool:
        return self._timed("put_if", self._store.put_if, session, expected_state)

    def delete(self, transaction_id: str) -> None:
        self._timed("delete", self._store.delete, transaction_id)

    def expire(self, now: float) -> int:
        return self._timed("expire", self._store.expire, now)

    def __getattr__(self, name: str) -> Any:  # close, count_by_state, __len__-less extras
        return getattr(self._store, name)
