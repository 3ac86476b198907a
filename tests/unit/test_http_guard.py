"""Connection caps, limits fitted to the open files limit, and throttled log lines
(smdpp/http/guard.py, smdpp/logs.py), without sockets."""
from __future__ import annotations

import logging

import pytest

from smdpp.http.guard import FD_RESERVE, ConnectionGuard, GuardedFactory, Limits
from smdpp.logs import Throttle


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_throttle_lets_one_line_through_per_interval_and_counts_the_rest() -> None:
    clock = FakeClock()
    throttle = Throttle(60, clock)
    assert throttle.due() == 0
    assert [throttle.due() for _ in range(5)] == [None] * 5
    clock.now = 59.9
    assert throttle.due() is None
    clock.now = 60.0
    assert throttle.due() == 6
    assert throttle.due() is None


def test_caps_per_client_and_per_process(caplog: pytest.LogCaptureFixture) -> None:
    guard = ConnectionGuard(max_connections=5, max_per_client=2, clock=FakeClock())
    with caplog.at_level(logging.WARNING, logger="smdpp.http.guard"):
        assert [guard.admit("a") for _ in range(3)] == [True, True, False]
        assert [guard.admit(h) for h in "bcd"] == [True, True, True]
        assert guard.admit("e") is False  # 5 open
        assert guard.admit("f") is False
    assert (guard.open, guard.refused, guard.clients()) == (5, 3, 4)
    # one line per cap and interval: the client cap's, then the process cap's
    assert len(caplog.records) == 2
    assert "most per client" in caplog.records[0].message
    assert "most per process" in caplog.records[1].message
    guard.release("a")
    assert guard.admit("e") is True
    for host in "aabcde":
        guard.release(host)
    assert (guard.open, guard.clients()) == (0, 0)
    guard.release("z")  # never admitted: no negative counts
    assert guard.open == 0


def test_limits_fit_the_open_files_limit() -> None:
    limits = Limits(max_connections=4096)
    assert limits.fitted(1 << 20) is limits
    assert limits.fitted(128).max_connections == 128 - FD_RESERVE
    assert limits.fitted(10).max_connections == 1


def test_a_cap_given_by_the_operator_is_kept_and_warned_about(
        caplog: pytest.LogCaptureFixture) -> None:
    limits = Limits(max_connections=1000)
    with caplog.at_level(logging.WARNING, logger="smdpp.http.guard"):
        assert limits.fitted_or_warned(128, given=False).max_connections == 128 - FD_RESERVE
        assert not caplog.records
        assert limits.fitted_or_warned(128, given=True) is limits
        assert limits.fitted_or_warned(1 << 20, given=True) is limits
    assert [r.getMessage() for r in caplog.records] == [
        "--max-connections 1000 kept as given, but the open files limit (128) leaves room "
        "for about 64: past that accept() fails (EMFILE)"]


def test_the_body_deadline_follows_the_announced_size() -> None:
    limits = Limits(body_timeout=60, body_min_rate=1024, body_grace=10)
    assert limits.body_deadline(3 * 1024) == pytest.approx(13.0)
    assert limits.body_deadline(0) == 10
    assert limits.body_deadline(10 << 20) == 60
    assert limits.body_deadline(None) == 60  # chunked: no size known


class Proto:
    def __init__(self) -> None:
        self.lost = 0

    def connectionLost(self, reason: object = None) -> None:
        self.lost += 1


class Inner:
    def __init__(self) -> None:
        self.built: list[Proto] = []

    def buildProtocol(self, addr: object) -> Proto:
        self.built.append(Proto())
        return self.built[-1]


class Addr:
    host = "192.0.2.1"


def test_guarded_factory_frees_the_slot_once_when_the_connection_ends() -> None:
    inner = Inner()
    guard = ConnectionGuard(max_connections=10, max_per_client=1)
    factory = GuardedFactory(inner, guard)
    first = factory.buildProtocol(Addr())
    assert first is inner.built[0] and factory.buildProtocol(Addr()) is None
    first.connectionLost(None)
    first.connectionLost(None)  # twice: counted once
    assert first.lost == 2 and guard.open == 0
    assert factory.buildProtocol(Addr()) is not None


def test_twisted_accept_failures_reach_the_log_once_per_interval(
        caplog: pytest.LogCaptureFixture) -> None:
    """Twisted's tcp.Port logs EMFILE to its own log system, which nobody read."""
    from twisted.logger import Logger, globalLogPublisher

    from smdpp.http.guard import log_twisted_warnings

    observer = log_twisted_warnings(interval=60)
    try:
        port_log = Logger(namespace="twisted.internet.tcp.Port")
        with caplog.at_level(logging.INFO, logger="smdpp.twisted"):
            for _ in range(5):  # the text of twisted.internet.tcp._accept
                port_log.info("EMFILE encountered; releasing reserved file descriptor.")
            port_log.info("Timing out client: {peer}", peer="x")  # info: not forwarded
            port_log.warn("something odd: {what}", what="y")
    finally:
        globalLogPublisher.removeObserver(observer)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith("accept() failed, out of file descriptors")
    assert messages[1] == "something odd: y"


def test_memory_freed_after_many_tls_connections_goes_back_to_the_system() -> None:
    """1000 OpenSSL server connections made and dropped, then trim_memory()."""
    import gc

    from OpenSSL import SSL

    from smdpp.http.guard import trim_memory

    def rss_mib() -> float:
        with open("/proc/self/status") as status:
            return int(status.read().split("VmRSS:")[1].split()[0]) / 1024

    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    before = rss_mib()
    connections = []
    for _ in range(1000):
        connection = SSL.Connection(context, None)
        connection.set_accept_state()
        try:
            connection.do_handshake()  # no certificate: fails or waits, after its allocations
        except SSL.Error:
            pass
        connections.append(connection)
    grown = rss_mib()
    del connections
    gc.collect()
    if not trim_memory():
        pytest.skip("this C library has no malloc_trim")
    after = rss_mib()
    assert grown - before > 10  # the premise: OpenSSL's state takes room
    assert after - before < (grown - before) / 2, (before, grown, after)


def test_a_deadline_is_a_new_timer_never_one_moved_sooner(monkeypatch: pytest.MonkeyPatch) -> None:
    """Moving a Twisted timer sooner searches the reactor's whole heap (set_deadline)."""
    from twisted.internet import base
    from twisted.internet.task import Clock
    from twisted.protocols.policies import TimeoutMixin

    from smdpp.http.guard import set_deadline

    def no_reset(self: object, seconds: float) -> None:
        raise AssertionError("DelayedCall.reset: a linear search for a sooner time")

    monkeypatch.setattr(base.DelayedCall, "reset", no_reset)
    clock = Clock()

    class Conn(TimeoutMixin):
        timed_out = 0.0
        callLater = clock.callLater

        def timeoutConnection(self) -> None:
            self.timed_out = clock.seconds()

    conn = Conn()
    set_deadline(conn, 60)  # idle
    clock.advance(1)
    set_deadline(conn, 10)  # a request began: sooner
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(9.5)
    assert conn.timed_out == 0.0  # not at the idle deadline's 61 s, but at 11 s
    clock.advance(0.5)
    assert conn.timed_out == pytest.approx(11.0)


def test_a_listening_port_accepts_a_bounded_batch_per_turn() -> None:
    """Twisted's tcp.Port grows numberAccepts by 20 after every full batch (fair_accepts)."""
    from smdpp.http.guard import ACCEPTS_PER_TURN, fair_accepts

    class Port:  # what tcp.Port.doRead does with numberAccepts under a burst
        numberAccepts = 100
        batches: list[int] = []

        def doRead(self) -> None:
            self.batches.append(self.numberAccepts)
            self.numberAccepts += 20  # every one it tried was accepted

    port = Port()
    assert fair_accepts(port) is port
    for _ in range(3):
        port.doRead()
    assert port.batches == [ACCEPTS_PER_TURN] * 3
