"""smdpp.logs: the same lines as logging.basicConfig wrote, each written out at once."""
from __future__ import annotations

import io
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from smdpp import logs

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    """The root logger, with its handlers, level and logging's module switches restored after."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging._srcfile, logging.logThreads,  # noqa: SLF001
             logging.logProcesses, logging.logMultiprocessing)
    yield root
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    handlers, level, srcfile, threads, processes, multiprocessing = saved
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logging._srcfile = srcfile  # noqa: SLF001
    logging.logThreads, logging.logProcesses = threads, processes
    logging.logMultiprocessing = multiprocessing


class _Stream(io.StringIO):
    """A stream that remembers what had been written at each flush."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed: list[str] = []

    def flush(self) -> None:
        self.flushed.append(self.getvalue())


def test_lines_are_those_basic_config_wrote(root: logging.Logger) -> None:
    reference = logging.Formatter(logs.FORMAT)
    records = []
    for created in (1_700_000_000.123, 1_700_000_000.999, 1_700_000_001.0, 1_700_000_061.5):
        record = logging.LogRecord("smdpp.rsp.engine", logging.INFO, __file__, 1,
                                   "transactionId=%s: done", ("0A",), None)
        record.created, record.msecs = created, (created - int(created)) * 1000
        records.append(record)
    formatter = logs.LineFormatter()
    for record in records:  # the cached date must follow each change of second
        assert formatter.format(record) == reference.format(record)
    assert formatter.formatTime(records[0], "%H") == reference.formatTime(records[0], "%H")


def test_each_line_arrives_in_order_and_flushed(root: logging.Logger) -> None:
    stream = _Stream()
    handler = logs.configure(verbose=False, stream=stream)
    assert root.handlers == [handler] and root.level == logging.INFO
    log = logging.getLogger("smdpp.test")
    log.debug("not shown")
    log.info("first %d", 1)
    log.warning("second")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("third")
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith(" INFO smdpp.test: first 1")
    assert lines[1].endswith(" WARNING smdpp.test: second")
    assert lines[2].endswith(" ERROR smdpp.test: third")
    assert "ValueError: boom" in stream.getvalue()
    time.strptime(lines[0][:19], "%Y-%m-%d %H:%M:%S")
    # written out line by line: at each flush, the stream ends with the line just logged
    assert stream.flushed[:2] == [lines[0] + "\n", lines[0] + "\n" + lines[1] + "\n"]


def test_verbose_logs_debug_and_formatter_stays_replaceable(root: logging.Logger) -> None:
    stream = _Stream()
    handler = logs.configure(verbose=True, stream=stream)
    logging.getLogger("smdpp.test").debug("detail")
    assert stream.getvalue().endswith(" DEBUG smdpp.test: detail\n")
    # smdpp.workers tags each worker's lines by rewriting the handler's format
    assert handler.formatter is not None and handler.formatter._fmt == logs.FORMAT  # noqa: SLF001


def test_a_line_reaches_a_pipe_while_the_process_runs() -> None:
    """As the end-to-end tests wait for "serving ES9+": the line comes before the process ends."""
    code = ("import logging, sys; from smdpp import logs; logs.configure(); "
            "logging.getLogger('smdpp.cli').info('serving ES9+ for test'); sys.stdin.read()")
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().endswith(" INFO smdpp.cli: serving ES9+ for test\n")
    finally:
        child.communicate("", timeout=30)
    assert child.returncode == 0


def test_es2p_reports_in_json_lines_and_delivery_outcomes() -> None:
    """ES2+ reports: a delivery's outcome from the queued body; the JSON line masks the
    matchingId and carries the ES2+ ids, never a transactionId."""
    import io
    import json as json_module

    from smdpp import logs
    from smdpp.observe import CallOutcome
    from smdpp.orders.delivery import OperatorFailed, outcome
    from smdpp.orders.store import QueuedNotification

    body = json_module.dumps({"header": {"functionRequesterIdentifier": "smdp.example",
                                         "functionCallIdentifier": "c1"},
                              "iccid": "8999000000000000013F", "eid": "8904",
                              "resultData": "vzc="}).encode()
    item = QueuedNotification(1, "op1", body, 0)
    sent = outcome(item, 1.0, 0.01, None)
    assert (sent.ok, sent.code, sent.operator, sent.call_id) == (True, "ok", "op1", "c1")
    down = outcome(item, 1.0, 0.01, OSError("connection refused"))
    assert (down.ok, down.code) == (False, "unreachable")
    assert outcome(item, 1.0, 0.0, OperatorFailed("x", 503, None)).code == "http 503"
    assert outcome(item, 1.0, 0.0, OperatorFailed("x", 200, ("8.1", "1.1"))).code == "8.1/1.1"

    stream = io.StringIO()
    logs.configure(stream=stream, log_format="json")
    try:
        logs.call_logger(CallOutcome("ES2+", "confirmOrder", 1.0, 0.002, None,
                                     matching_id="ABCD-EFGH-IJKL", iccid="8999",
                                     call_id="c2", requester="op1"))
        logs.call_logger(sent)
    finally:
        logs.configure()
    confirm, delivered = map(json_module.loads, stream.getvalue().splitlines())
    assert confirm["matchingId"] == "ABCD..." and "transactionId" not in confirm
    assert (confirm["functionCallIdentifier"], confirm["functionRequesterIdentifier"]) == (
        "c2", "op1")
    assert delivered["operator"] == "op1" and "vzc=" not in json_module.dumps(delivered)


def test_budget_logs_a_burst_then_a_rate_and_counts_what_it_left_out() -> None:
    from smdpp.logs import Budget, left_out
    now = [100.0]
    budget = Budget(rate=10.0, burst=5, clock=lambda: now[0])
    assert [budget.due() for _ in range(5)] == [0, 0, 0, 0, 0]  # the burst
    assert [budget.due() for _ in range(7)] == [None] * 7  # left out, counted
    now[0] += 0.15  # a line and a half's worth of time
    assert budget.due() == 7 and budget.due() is None
    now[0] += 60.0  # refilled, never beyond the burst
    assert [budget.due() for _ in range(6)] == [1, 0, 0, 0, 0, None]
    assert left_out(0) == "" and "3 such line(s) left out" in left_out(3)
