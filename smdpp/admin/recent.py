"""The recent sessions of this process with each of their steps, for the status page.

An observer of :mod:`smdpp.observe`: every ES9+ call that named a session
adds a :class:`Step` to that session's :class:`SessionView` (SGP.22 3.1.3: a
download is initiateAuthentication, authenticateClient,
getBoundProfilePackage, handleNotification, or cancelSession).  A failed
initiateAuthentication has no session yet and is kept as a session of its
own, without a transactionId.  Bounded: the oldest sessions are dropped past
``limit``, and a session keeps at most :data:`MAX_STEPS` steps (a retrying
LPA cannot grow it).
"""
from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field

from smdpp.observe import CallOutcome, bounded

__all__ = ["RecentSessions", "SessionView", "Step"]

DEFAULT_LIMIT = 200
MAX_STEPS = 16


@dataclass(frozen=True)
class Step:
    """One call of a session: when, which function, how long, and its outcome."""

    function: str
    started: float
    duration: float
    code: str  # 'ok' or 'subjectCode/reasonCode'
    message: str | None  # the failure's message (ours, bounded)


@dataclass
class SessionView:
    """What the status page shows of one session."""

    key: str  # the transactionId, or a local number for a session-less failure
    transaction_id: str | None
    started: float
    eid: str | None = None
    matching_id: str | None = None
    iccid: str | None = None
    state: str | None = None
    installed: bool | None = None
    steps: list[Step] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        """The session's result so far in words: installed, failed at ..., cancelled, or the state."""
        if self.installed is True:
            return "installed"
        if self.installed is False:
            return "installation failed on the eUICC"
        last = self.steps[-1] if self.steps else None
        if last is not None and last.code != "ok":
            return f"failed at {last.function}: {last.code}"
        return self.state or "-"


class RecentSessions:
    """The last ``limit`` sessions this process took part in, newest last."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self._sessions: OrderedDict[str, SessionView] = OrderedDict()
        self._numbers = itertools.count(1)
        self.changes = 0  # counts recorded calls: a writer of the ring sees whether it changed

    def __call__(self, outcome: CallOutcome) -> None:
        """Record one call (the :data:`~smdpp.observe.Observer` interface); ES9+ calls only."""
        if outcome.interface != "ES9+":  # ES2+ calls belong to orders, not to sessions
            return
        key = outcome.transaction_id or f"-{next(self._numbers)}"
        view = self._sessions.get(key)
        if view is None:
            view = self._sessions[key] = SessionView(key, outcome.transaction_id, outcome.started)
            while len(self._sessions) > self.limit:
                self._sessions.popitem(last=False)
        else:
            self._sessions.move_to_end(key)
        view.eid = outcome.eid or view.eid
        view.matching_id = bounded(outcome.matching_id) or view.matching_id
        view.iccid = outcome.iccid or view.iccid
        view.state = outcome.state or view.state
        if outcome.installed is not None:
            view.installed = outcome.installed
        if len(view.steps) < MAX_STEPS:
            view.steps.append(Step(outcome.function, outcome.started, outcome.duration,
                                   outcome.code, bounded(outcome.message, 160)))
        self.changes += 1

    def newest_first(self) -> list[SessionView]:
        """The sessions, most recently active first."""
        return list(reversed(self._sessions.values()))

    def __len__(self) -> int:
        return len(self._sessions)
