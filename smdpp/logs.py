"""The server's log: one line per event on standard output, cheap enough to keep at INFO.

:func:`configure` sets up the root logger as ``logging.basicConfig`` did in
:mod:`smdpp.cli` (same stream, level and format, e.g.
``2024-05-01 12:00:00,123 INFO smdpp.rsp.engine: ...``, each line flushed as
it is written), at about two thirds of the CPU per line.  Every ES9+ call
logs a line or two (SGP.22 3.1.3: one download is four calls); the saving
comes from two places, neither of which changes a byte of the output:

- no caller lookup (a walk up the stack), thread or process names in the
  ``LogRecord``: the format shows none of them (see "Optimization" in the
  logging HOWTO);
- the date is formatted once per second, not once per line.

Lines are not buffered: measured, one ``write()`` per line costs about 1 µs
of the ~25 µs a line takes, not worth a line arriving late.

``--log-format json`` writes each line as one JSON object instead
(:class:`JsonFormatter`: time, level, logger, message, pid), and
:func:`call_logger`, an observer of :mod:`smdpp.observe`, adds one object per
ES9+/ES2+ call with its transactionId, EID, matchingId, function, outcome,
SGP.22 code and duration: what a log collector indexes.  Neither ever holds
key material (the engine logs none, and a call's report carries none).
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Callable, TextIO

if TYPE_CHECKING:
    from smdpp.observe import CallOutcome

__all__ = ["FORMAT", "FORMATS", "LineFormatter", "JsonFormatter", "Throttle", "call_logger",
           "configure"]

FORMATS = ("text", "json")

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LineFormatter(logging.Formatter):
    """:class:`logging.Formatter` whose default date is computed once per second."""

    def __init__(self, fmt: str = FORMAT) -> None:
        super().__init__(fmt)
        self._second = -1
        self._second_text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """``YYYY-mm-dd HH:MM:SS,mmm``, as :meth:`logging.Formatter.formatTime` writes it."""
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second:  # localtime + strftime: a quarter of a line's cost
            self._second_text = time.strftime(self.default_time_format, self.converter(second))
            self._second = second
        return self.default_msec_format % (self._second_text, record.msecs)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message, pid [, call]."""

    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self.worker = worker
        self._encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                    + f".{int(record.msecs):03d}Z",
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
            "pid": os.getpid()}
        if self.worker is not None:
            entry["worker"] = self.worker
        call = getattr(record, "call", None)
        if isinstance(call, dict):
            entry.update(call)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self._encoder.encode(entry)


_calls = logging.getLogger("smdpp.calls")


def call_logger(outcome: CallOutcome) -> None:
    """Log one call as its own JSON line (an :data:`~smdpp.observe.Observer`).

    ES2+ calls (SGP.22 5.3) carry the request header's identifiers instead of a
    transactionId, and their matchingId masked: an order's matchingId is what
    an LPA downloads with (the Confirmation Code never reaches the report)."""
    from smdpp.observe import bounded, masked

    call: dict[str, object] = {
        "event": "call", "interface": outcome.interface, "function": outcome.function}
    if outcome.interface == "ES2+":
        call.update({"functionCallIdentifier": outcome.call_id,
                     "functionRequesterIdentifier": outcome.requester})
        if outcome.operator is not None:  # a notification the server sent to this operator
            call["operator"] = outcome.operator
        matching_id = masked(outcome.matching_id)
    else:
        call["transactionId"] = outcome.transaction_id
        matching_id = bounded(outcome.matching_id)
    call.update({
        "eid": outcome.eid, "matchingId": matching_id, "iccid": outcome.iccid,
        "outcome": "success" if outcome.ok else "failed", "code": outcome.code,
        "reason": bounded(outcome.message, 160), "durationMs": round(outcome.duration * 1000, 3)})
    if outcome.interface != "ES2+":
        call.update({"state": outcome.state, "installed": outcome.installed})
    _calls.info("%s %s %s", outcome.interface, outcome.function, outcome.code,
                extra={"call": call})


def configure(verbose: bool = False, stream: TextIO | None = None,
              log_format: str = "text") -> logging.Handler:
    """Log to ``stream`` (default standard output) at INFO, or DEBUG if ``verbose``.

    ``log_format`` is ``text`` (:data:`FORMAT`) or ``json`` (:class:`JsonFormatter`).
    Replaces any handler already on the root logger, and returns the new one.
    """
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r} is not one of {', '.join(FORMATS)}")
    # Nothing in FORMAT needs the caller (file, line, function), thread or process.
    logging._srcfile = None  # noqa: SLF001 - documented in the logging HOWTO, "Optimization"
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stdout if stream is None else stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else LineFormatter())
    root = logging.getLogger()
    for old in root.handlers[:]:  # as basicConfig(force=True)
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    return handler


class Throttle:
    """At most one log line per ``interval`` seconds for one kind of event; the rest counted.

    For events a client can cause at will (refused connections, a full disk
    failing every request): the first is logged at once, then one line per
    interval says how many were not.  ``clock`` is for tests.
    """

    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._next = float("-inf")
        self._suppressed = 0

    def due(self) -> int | None:
        """None while this event must not be logged; else how many went unlogged since the
        last line (and the caller logs one now)."""
        now = self._clock()
        if now < self._next:
            self._suppressed += 1
            return None
        self._next = now + self.interval
        count, self._suppressed = self._suppressed, 0
        return count


class Budget:
    """A token bucket of log lines for requests a client can repeat at will (refused ES9+ calls).

    Up to ``burst`` lines at once, then ``rate`` a second: a lab's failing
    download still logs every step, while a flood of refused requests (10,000
    pipelined in one connection) writes at most ``rate`` lines a second
    instead of filling the disk; the first line logged after some were left
    out says how many.  ``clock`` is for tests.
    """

    def __init__(self, rate: float = 50.0, burst: int = 500,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self._left_out = 0

    def due(self) -> int | None:
        """None when this line must be left out; else how many were left out since the last
        line logged (and the caller logs one now, saying so when it is not 0)."""
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1.0:
            self._left_out += 1
            return None
        self._tokens -= 1.0
        count, self._left_out = self._left_out, 0
        return count


def left_out(count: int) -> str:
    """The suffix of a line logged after ``count`` were left out by a :class:`Budget`."""
    return f" ({count} such line(s) left out before this one: a flood of refused requests?)" \
        if count else ""

