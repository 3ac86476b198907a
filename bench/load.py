"""The load generator: N complete profile downloads (SGP.22 3.1.3), C at a time.

Each of the C threads keeps its own :class:`~smdpp.euicc.es9.Es9Client`
(one kept-alive HTTP connection) and runs downloads with
:func:`smdpp.euicc.client.download` until N have been started or the time
limit is reached.  Every download uses a fresh
:class:`~smdpp.euicc.card.SoftEuicc` (a card refuses to install an ICCID it
already holds), personalised in turn with one of several eUICC identities,
and checks everything a real eUICC checks.  The time of each ES9+ call (HTTP
round trip and JSON parsing) and of each whole download is recorded.

The threads share one interpreter, so with C > 1 the client's own work
(signatures, decryption of the BPP) can delay the next request of another
thread: latencies are those seen by this client, CPU per download is measured
on the server side.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from smdpp.euicc.card import SoftEuicc
from smdpp.euicc.client import DownloadError, download
from smdpp.euicc.es9 import Es9Client, Es9Reply
from smdpp.euicc.identity import EuiccIdentity

__all__ = ["ES9_FUNCTIONS", "TimedEs9Client", "Outcome", "LoadResult", "error_reason", "run_load"]

#: The ES9+ functions of a download, in order.
ES9_FUNCTIONS = ("initiateAuthentication", "authenticateClient", "getBoundProfilePackage",
                 "handleNotification")


class TimedEs9Client(Es9Client):
    """An :class:`Es9Client` that records (function, seconds) of every request."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self.timings: list[tuple[str, float]] = []

    def post(self, function: str, payload: bytes, *,
             headers: Mapping[str, str | None] | None = None) -> Es9Reply:
        start = time.perf_counter()
        try:
            return super().post(function, payload, headers=headers)
        finally:
            self.timings.append((function, time.perf_counter() - start))


@dataclass(frozen=True)
class Outcome:
    """One download."""

    ok: bool
    seconds: float
    calls: tuple[tuple[str, float], ...]
    error: str | None = None


@dataclass
class LoadResult:
    """All downloads of one run."""

    outcomes: list[Outcome] = field(default_factory=list)
    wall_seconds: float = 0.0
    stopped_by_time: bool = False


def error_reason(exc: BaseException) -> str:
    """A short key to count failures by: the step and the SGP.22 codes, or the message."""
    if isinstance(exc, DownloadError):
        if exc.subject_code is not None or exc.reason_code is not None:
            return f"{exc.step}: {exc.subject_code}/{exc.reason_code}"
        return f"{exc.step}: {exc.message[:100]}"
    return f"{type(exc).__name__}: {str(exc)[:100]}"


def _one_download(client: TimedEs9Client, identity: EuiccIdentity, smdp_address: str,
                  matching_id: str) -> Outcome:
    client.timings = []
    start = time.perf_counter()
    try:
        result = download(client, SoftEuicc(identity), smdp_address=smdp_address,
                          matching_id=matching_id)
        error = None if result.notification_sent else \
            f"ES9+.HandleNotification: {(result.notification_error or '')[:100]}"
    except Exception as exc:  # every failure is a result to count, not a crash
        error = error_reason(exc)
    return Outcome(ok=error is None, seconds=time.perf_counter() - start,
                   calls=tuple(client.timings), error=error)


def run_load(url: str, identities: list[EuiccIdentity], *, smdp_address: str, matching_id: str,
             count: int, concurrency: int, max_seconds: float | None = None,
             on_done: Callable[[int], None] | None = None,
             client_options: Mapping[str, Any] | None = None) -> LoadResult:
    """Run ``count`` downloads with ``concurrency`` in flight; stop starting new ones after
    ``max_seconds``.  ``on_done(n)`` is called (from a worker thread) after the n-th
    finished download.  ``client_options`` go to each :class:`TimedEs9Client` (for
    HTTPS: ``ca_file``, ``tls_server_name``).
    """
    if count < 0 or concurrency < 1 or not identities:
        raise ValueError("count >= 0, concurrency >= 1 and one eUICC identity at least")
    result = LoadResult()
    lock = threading.Lock()
    started = 0
    start = time.perf_counter()
    deadline = None if max_seconds is None else start + max_seconds

    def next_index() -> int | None:
        nonlocal started
        with lock:
            if started >= count:
                return None
            if deadline is not None and time.perf_counter() >= deadline:
                result.stopped_by_time = True
                return None
            started += 1
            return started - 1

    def worker() -> None:
        with TimedEs9Client(url, **(client_options or {})) as client:
            while (index := next_index()) is not None:
                outcome = _one_download(client, identities[index % len(identities)],
                                        smdp_address, matching_id)
                with lock:
                    result.outcomes.append(outcome)
                    done = len(result.outcomes)
                if on_done is not None:
                    on_done(done)

    threads = [threading.Thread(target=worker, name=f"bench-{i}", daemon=True)
               for i in range(min(concurrency, max(count, 1)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.wall_seconds = time.perf_counter() - start
    return result
