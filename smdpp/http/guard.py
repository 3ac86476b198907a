"""What an exposed ES9+ server needs around HTTP: deadlines, connection caps, file descriptors.

SGP.22 2.6.6 has the LPA reach the SM-DP+ over the internet, so smdpp may
face it without a proxy in front.  A client that keeps a connection for
nothing costs a file descriptor and some memory; this module bounds both,
for every front end (:mod:`smdpp.http.server`, :mod:`smdpp.http.klein_routes`,
and the TLS layer of :mod:`smdpp.http.tls`):

- :class:`Limits`: deadlines that a trickle of bytes cannot stretch (the
  request head within seconds of its first byte, the body within a time
  derived from its announced size and a minimum rate, a keep-alive idle
  limit between requests, the TLS handshake); the defaults are far beyond
  what a real LPA on a slow mobile link needs (an ES9+ request is a few KiB);
- :class:`ConnectionGuard`: at most ``max_connections`` open connections per
  process and ``max_per_client`` per client address; beyond them a new
  connection is closed at once, counted, and logged at most once per interval;
  with ``--workers N`` each worker process has its own guard (no counter is
  shared between processes), so N times either cap holds in all: the kernel
  spreads a client's connections over the workers' ``SO_REUSEPORT`` sockets
  by their addresses and ports, and each worker also has its own open files limit;
- :class:`GuardedFactory`: puts a :class:`ConnectionGuard` in front of any
  Twisted server factory;
- :func:`raise_fd_limit`: the soft limit of open files raised to the hard one;
- :func:`log_twisted_warnings`: Twisted's own warnings (accept() failing with
  EMFILE, a failure inside the reactor) reach the server's log, the accept
  failures at most once per interval;
- :func:`trim_memory`: the heap a burst of connections grew given back once
  they are gone (run every :data:`TRIM_INTERVAL` seconds).
"""
from __future__ import annotations

import ctypes
import logging
import resource
from dataclasses import dataclass
from typing import Any, Callable

from twisted.internet import protocol

from smdpp.logs import Throttle

log = logging.getLogger(__name__)

#: Seconds between two log lines about refused connections or failing accept() calls.
LOG_INTERVAL = 60.0
#: File descriptors kept free of connections: the store, logs, CRL reloads, TLS files.
FD_RESERVE = 64
#: Connections the kernel may hold complete but not yet accepted.  Twisted's default
#: of 50 let a burst of connections overflow it: the kernel then drops handshakes and
#: clients retry after 1, 2, 4... s, legitimate ones included (Linux caps it at somaxconn).
LISTEN_BACKLOG = 1024
#: Connections accepted in one reactor turn at most (:func:`fair_accepts`).
ACCEPTS_PER_TURN = 16
#: Seconds between two calls of :func:`trim_memory`.
TRIM_INTERVAL = 30.0


#: The Limits fields that the command line sets (``--head-timeout`` ...).
_OPTIONS = ("head_timeout", "body_timeout", "body_min_rate", "idle_timeout",
            "tls_handshake_timeout", "max_connections", "max_per_client")


@dataclass(frozen=True)
class Limits:
    """Deadlines and caps of one server (the command line's ``--*-timeout``, ``--max-*``)."""

    head_timeout: float = 10.0  # the request line and headers, from their first byte
    body_timeout: float = 60.0  # the whole body, whatever its size, from the end of the head
    body_min_rate: float = 1024.0  # bytes/s: a body of N bytes gets body_grace + N/rate seconds
    body_grace: float = 10.0
    idle_timeout: float = 60.0  # keep-alive: silence before a request's first byte
    tls_handshake_timeout: float = 10.0
    close_timeout: float = 10.0  # after a final answer, for the client to read it
    max_connections: int = 4096  # per process (lowered to fit the file limit at start)
    max_per_client: int = 256  # per client address (a carrier NAT shares one among many)

    def body_deadline(self, length: int | None) -> float:
        """Seconds the body of a request may take after its head.

        With a Content-Length the minimum rate applies (a 3 KiB ES9+ request
        at 1 KiB/s: 13 s); a chunked body, of unknown size, gets the total.
        """
        if length is None:
            return self.body_timeout
        return min(self.body_timeout, self.body_grace + length / self.body_min_rate)

    @classmethod
    def from_namespace(cls, args: Any) -> "Limits":
        """The limits of a parsed command line (its attributes of the same names), defaults
        for those it lacks."""
        return cls(**{name: getattr(args, name) for name in _OPTIONS
                      if getattr(args, name, None) is not None})

    def fitted(self, soft_fd_limit: int) -> "Limits":
        """These limits with ``max_connections`` lowered to what ``soft_fd_limit`` allows."""
        room = max(1, soft_fd_limit - FD_RESERVE)
        if self.max_connections <= room:
            return self
        return Limits(**{**self.__dict__, "max_connections": room})

    def fitted_or_warned(self, soft_fd_limit: int, given: bool) -> "Limits":
        """:meth:`fitted` for the default cap; a cap the operator ``given`` is kept as given,
        with a warning if the open files limit is lower (accept() then fails with EMFILE
        first: Twisted closes those connections at once, and it is logged)."""
        if not given:
            return self.fitted(soft_fd_limit)
        room = max(1, soft_fd_limit - FD_RESERVE)
        if self.max_connections > room:
            log.warning("--max-connections %d kept as given, but the open files limit (%d) "
                        "leaves room for about %d: past that accept() fails (EMFILE)",
                        self.max_connections, soft_fd_limit, room)
        return self


class ConnectionGuard:
    """Counts open connections per process and per client address (no I/O).

    :meth:`admit` says whether a new connection may stay; every admitted one
    is given back with :meth:`release` when it ends.
    """

    def __init__(self, max_connections: int, max_per_client: int,
                 log_interval: float = LOG_INTERVAL,
                 clock: Callable[[], float] | None = None, *, listener: str = "ES9+",
                 options: tuple[str, str] = ("--max-connections",
                                             "--max-connections-per-client")) -> None:
        self.max_connections = max_connections
        #: the listener's name and the options that set its two caps, for the log line
        self.listener = listener
        self.options = options
        self.max_per_client = max_per_client
        self.open = 0
        self.refused = 0  # since start
        self._per_client: dict[str, int] = {}
        # one line per interval for each cap, so that one does not hide the other
        self._throttles = tuple(Throttle(log_interval) if clock is None
                                else Throttle(log_interval, clock) for _cap in range(2))

    def admit(self, host: str) -> bool:
        """Count a new connection from ``host``; False (and logged, throttled) past a cap."""
        count = self._per_client.get(host, 0)
        if self.open >= self.max_connections:
            why = f"{self.open} connections open, the most per process ({self.options[0]})"
            throttle = self._throttles[0]
        elif count >= self.max_per_client:
            why = f"{count} connections open from it, the most per client ({self.options[1]})"
            throttle = self._throttles[1]
        else:
            self.open += 1
            self._per_client[host] = count + 1
            return True
        self.refused += 1
        unlogged = throttle.due()
        if unlogged is not None:
            log.warning("%s connection from %s closed at once: %s; %d refused since start%s",
                        self.listener, host[:64], why, self.refused,
                        f", {unlogged} not logged since the last line" if unlogged else "")
        return False

    def release(self, host: str) -> None:
        """A connection admitted for ``host`` has ended."""
        count = self._per_client.get(host, 0)
        if count <= 1:
            self._per_client.pop(host, None)
        else:
            self._per_client[host] = count - 1
        if self.open > 0:
            self.open -= 1

    def clients(self) -> int:
        """How many client addresses have a connection open."""
        return len(self._per_client)


class GuardedFactory(protocol.Factory):
    """A server factory that admits a connection through a :class:`ConnectionGuard` first.

    A refused connection gets no protocol, so Twisted closes its socket at
    once.  The slot is given back when the protocol's ``connectionLost``
    runs: the guard hooks that one method of each admitted protocol instead
    of wrapping the protocol, which would add a layer to every read and
    write (and hide the TCP transport that :mod:`smdpp.http.server` writes
    to directly).
    """

    noisy = False

    def __init__(self, wrapped: Any, guard: ConnectionGuard) -> None:
        self.wrapped = wrapped
        self.guard = guard

    def doStart(self) -> None:
        self.wrapped.doStart()

    def doStop(self) -> None:
        self.wrapped.doStop()

    def buildProtocol(self, addr: Any) -> Any:
        host = str(getattr(addr, "host", "?"))
        if not self.guard.admit(host):
            return None
        try:
            built = self.wrapped.buildProtocol(addr)
        except BaseException:
            self.guard.release(host)
            raise
        if built is None:
            self.guard.release(host)
            return None
        lost = built.connectionLost
        released = False

        def connection_lost(reason: Any = None) -> None:
            nonlocal released
            if not released:
                released = True
                self.guard.release(host)
            lost(reason)

        built.connectionLost = connection_lost
        return built


def fair_accepts(port: Any, most: int = ACCEPTS_PER_TURN) -> Any:
    """Have the listening ``port`` (a Twisted ``tcp.Port``) accept ``most`` connections a turn.

    Twisted accepts as many as are pending in one turn, and 20 more each time
    it accepted all it tried (``Port.numberAccepts`` grows without bound): a
    burst of a thousand connections was accepted in a few long turns, each
    connection built at once (a TLS one about 0.3 ms under ``--http klein``),
    and requests on connections already open waited for all of them.  With a
    bound, the reactor polls between batches; the kernel's listen backlog
    (:data:`LISTEN_BACKLOG`) holds the rest meanwhile.  Returns ``port``.
    """
    read = port.doRead

    def do_read() -> Any:
        port.numberAccepts = min(port.numberAccepts, most)
        return read()

    port.doRead = do_read
    return port


def set_deadline(protocol: Any, seconds: float) -> None:
    """Give ``protocol`` (a Twisted ``TimeoutMixin``) a deadline ``seconds`` from now, a new timer.

    ``TimeoutMixin.setTimeout`` moves the running timer (``DelayedCall.reset``),
    and moving one sooner is a linear search of the reactor's heap of every
    pending timer: with a thousand connections open, each with its timer, that
    cost 0.4 ms per request (``bench.abuse`` slow-head under ``--http klein``).
    Cancelling is O(1) (Twisted drops cancelled timers from the heap in bulk)
    and a new timer O(log n).
    """
    protocol.setTimeout(None)
    protocol.setTimeout(seconds)


def raise_fd_limit() -> int:
    """Raise the soft limit of open files to the hard limit, log it, and return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            log.info("open files: soft limit raised from %d to %d (the hard limit)", soft, target)
            soft = target
        except (OSError, ValueError) as exc:
            log.warning("open files: soft limit %d could not be raised to %d: %s",
                        soft, target, exc)
    else:
        log.info("open files: limit %d", soft)
    return soft


def log_twisted_warnings(interval: float = LOG_INTERVAL) -> Callable[[dict[str, Any]], None]:
    """Send Twisted's warnings and errors (and accept() failures) to the server's log.

    Twisted logs to its own log system, which nobody reads in smdpp: an
    accept() failing with EMFILE (out of file descriptors) went unseen.
    Twisted (17.1 and later) does not spin on it: it keeps one descriptor in
    reserve (``/dev/null``), closes it to accept and close every pending
    connection, and reserves it again, logging each step; each new
    connection does that again while the process is out of descriptors, so
    those lines are throttled to one per ``interval`` (tests/e2e/test_fd_limits.py
    measures the CPU of a flood meanwhile).  The observer is returned for tests.
    """
    from twisted.logger import LogLevel, formatEvent, globalLogPublisher

    throttle = Throttle(interval)
    twisted_log = logging.getLogger("smdpp.twisted")

    def observe(event: dict[str, Any]) -> None:
        text = formatEvent(event)
        level = event.get("log_level")
        if "EMFILE" in text or "Could not accept new connection" in text:
            unlogged = throttle.due()
            if unlogged is not None:
                twisted_log.error("accept() failed, out of file descriptors (the open files "
                                  "limit): new connections are closed at once until some "
                                  "end, those open are served: %s%s", text[:200],
                                  f"; {unlogged} more since the last line" if unlogged else "")
            return
        if level is None or level < LogLevel.warn:
            return
        failure = event.get("log_failure")
        if failure is not None:
            twisted_log.error("%s", text[:500],
                              exc_info=(failure.type, failure.value, failure.getTracebackObject()))
        else:
            twisted_log.warning("%s", text[:500])

    globalLogPublisher.addObserver(observe)
    return observe


_malloc_trim: Any = False  # not looked up yet


def trim_memory() -> bool:
    """Give the free pages of the heap back to the system (glibc's ``malloc_trim``).

    OpenSSL takes about 50 KiB per TLS connection (its state and the
    handshake's buffers); after a thousand connections have come and gone
    glibc keeps those pages, so the process stays 50 MiB larger for nothing.
    False, doing nothing, where the C library has no ``malloc_trim``.
    """
    global _malloc_trim
    if _malloc_trim is False:
        try:
            _malloc_trim = ctypes.CDLL(None).malloc_trim
            _malloc_trim.argtypes, _malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
        except (OSError, AttributeError):
            _malloc_trim = None
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True
