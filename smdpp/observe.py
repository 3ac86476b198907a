"""One report per ES9+ or ES2+ function call, for whoever watches: metrics, the status page, JSON logs.

The ES9+ adapter (:class:`smdpp.http.es9p.Es9pApi`) builds one
:class:`CallOutcome` per request that names a known function, after the
engine has answered, and hands it to every observer of an
:class:`Observers` list.  The ES2+ adapter (:class:`smdpp.http.es2p.Es2pApi`,
SGP.22 5.3) does the same for each operator call, and the delivery of
HandleDownloadProgressInfo (:mod:`smdpp.orders.delivery`, SGP.22 5.3.5) for
each notification the server sends out.  The outcome carries what SGP.22 says about the call
(the function of SGP.22 5.6, its functionExecutionStatus of 6.5.1.4 with
subjectCode/reasonCode on failure) and what the session tells about the
download (EID, matchingId, ICCID, the state it moved to), never key material.

Nothing here knows about HTTP or Prometheus; an observer that raises is
logged once and dropped from nothing else: the ES9+ answer is not affected.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)

__all__ = ["CallOutcome", "Observer", "Observers", "bounded", "masked"]

# client-supplied strings (matchingId) are cut to this length wherever they are shown
MAX_SHOWN = 64


@dataclass(frozen=True)
class CallOutcome:
    """What one ES9+ (or ES2+) function call did."""

    interface: str  # 'ES9+' (SGP.22 5.6) or 'ES2+' (SGP.22 5.3)
    function: str  # e.g. 'authenticateClient'
    started: float  # wall clock (time.time()) when the request was handed to the engine
    duration: float  # seconds the engine took
    transaction_id: str | None  # upper-case hex, None when the call named none (or a bad one)
    subject_code: str | None = None  # None: Executed-Success
    reason_code: str | None = None
    message: str | None = None
    eid: str | None = None
    matching_id: str | None = None
    iccid: str | None = None
    state_before: str | None = None  # the session's state when the call started (None: new)
    state: str | None = None  # the session's state after the call (None: no session)
    # handleNotification with a ProfileInstallationResult: True/False, else None
    installed: bool | None = None
    # ES2+ (SGP.22 6.5.1.3): the request header's functionCallIdentifier and
    # functionRequesterIdentifier (bounded), and for a notification sent out the operator
    call_id: str | None = None
    requester: str | None = None
    operator: str | None = None
    # a failure without SGP.22 codes: the operator unreachable, an HTTP error ("http 503")
    failure: str | None = None

    @property
    def ok(self) -> bool:
        """True for functionExecutionStatus Executed-Success."""
        return self.subject_code is None and self.failure is None

    @property
    def code(self) -> str:
        """``subjectCode/reasonCode`` of a failure, ``ok`` for a success."""
        if self.subject_code is not None:
            return f"{self.subject_code}/{self.reason_code}"
        return self.failure or "ok"


Observer = Callable[[CallOutcome], None]


class Observers:
    """The observers of one server process, told of every call in the order they were added."""

    def __init__(self, *observers: Observer) -> None:
        self._observers: list[Observer] = list(observers)
        self._failed: set[int] = set()

    def add(self, observer: Observer) -> None:
        """Tell ``observer`` of every later call."""
        self._observers.append(observer)

    def __bool__(self) -> bool:
        return bool(self._observers)

    def __call__(self, outcome: CallOutcome) -> None:
        for observer in self._observers:
            try:
                observer(outcome)
            except Exception:  # a bug in an observer must not fail the ES9+ answer
                if id(observer) not in self._failed:  # once, not on every call
                    self._failed.add(id(observer))
                    log.exception("observer %r failed (logged once)", observer)


def bounded(text: str | None, limit: int = MAX_SHOWN) -> str | None:
    """A client string for a log line or page: printable, at most ``limit`` characters."""
    if text is None:
        return None
    cleaned = "".join(c if c.isprintable() else "?" for c in text[:limit])
    return cleaned + ("..." if len(text) > limit else "")


def masked(matching_id: str | None) -> str | None:
    """An order's matchingId as pages and logs show it: its first 4 characters, then "...".

    The matchingId of an ES2+ order lets whoever knows it download the profile
    (SGP.22 3.1.3, with the SM-DP+ address): it works like a password."""
    if matching_id is None or matching_id == "":
        return matching_id
    return bounded(matching_id[:4], 4) + "..."
