"""Many hostile connections to one server, driven by one thread (for :mod:`bench.abuse`).

A :class:`Swarm` opens ``count`` TCP connections from a few loopback source
addresses (127.0.0.2 and up, so that the legitimate clients on 127.0.0.1
keep their own per-client allowance), sends each one a :class:`Plan` (bytes
at once, then bytes trickled at an interval), reads whatever the server
answers, and notes when the server closes it.  Everything is non-blocking
on one ``selectors`` loop, so a thousand connections cost the benchmark one
thread and no more than the given time.
"""
from __future__ import annotations

import selectors
import socket
import time
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["Plan", "Conn", "Swarm", "sources"]

#: Bytes of an answer kept per connection: enough for its status line.
KEEP = 256


@dataclass(frozen=True)
class Plan:
    """What every connection of a probe sends: ``first`` at once, then ``trickle`` one
    ``step`` bytes every ``interval`` seconds (empty: nothing more)."""

    first: bytes = b""
    trickle: bytes = b""
    step: int = 1
    interval: float = 1.0


@dataclass
class Conn:
    """One connection and what became of it."""

    sock: socket.socket
    opened: float
    sent: int = 0  # bytes of the trickle sent
    answer: bytes = b""
    answers: int = 0  # status lines seen ("HTTP/1.1 "), for pipelined requests
    _tail: bytes = b""
    closed: float | None = None  # seconds after opening, when the server closed it
    refused: bool = False  # the connect itself failed

    def outcome(self) -> str:
        """A short label: the answer's status code, 'closed' without one, or 'open'."""
        if self.refused:
            return "connect failed"
        status = ""
        if self.answer.startswith(b"HTTP/"):
            parts = self.answer.split(b" ", 2)
            status = parts[1].decode("ascii", "replace") if len(parts) > 1 else "?"
        elif self.answer:
            status = "bytes"
        if self.closed is None:
            return f"{status} open".strip()
        return status or "closed"


def sources(count: int, first: int = 2) -> list[str]:
    """``count`` loopback addresses 127.0.0.<first>, ... (the whole 127/8 is loopback)."""
    return [f"127.0.{(first + n) // 250}.{(first + n) % 250 + 1}" for n in range(count)]


@dataclass
class Swarm:
    """Open, feed and watch hostile connections to ``address``."""

    address: tuple[str, int]
    conns: list[Conn] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._selector = selectors.DefaultSelector()

    def open(self, count: int, source_addresses: list[str], plan: Plan,
             pace: int = 100) -> None:
        """Connect ``count`` times, spread over ``source_addresses``, and send ``plan.first``.

        ``pace`` connections at a time with a short pause, so that the listen
        backlog is not what refuses them.
        """
        for n in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((source_addresses[n % len(source_addresses)], 0))
            sock.settimeout(5.0)  # loopback: at once, unless the listen backlog is full
            conn = Conn(sock, time.monotonic())
            try:
                sock.connect(self.address)
            except OSError:
                conn.refused, conn.closed = True, 0.0
                sock.close()
            else:
                sock.setblocking(False)
                self._selector.register(sock, selectors.EVENT_READ, conn)
            self.conns.append(conn)
            if plan.first and not conn.refused:
                self._send(conn, plan.first)
            if n % pace == pace - 1:
                self.run(0.02, Plan())
        self.run(0.05, Plan())

    def run(self, seconds: float, plan: Plan) -> None:
        """Trickle ``plan`` and read answers for ``seconds`` (sooner if every connection closed)."""
        end = time.monotonic() + seconds
        next_step = time.monotonic() + plan.interval
        while (now := time.monotonic()) < end and self.open_count():
            if plan.trickle and now >= next_step:
                next_step = now + plan.interval
                for conn in self.conns:
                    if conn.closed is None and conn.sent < len(plan.trickle):
                        chunk = plan.trickle[conn.sent:conn.sent + plan.step]
                        conn.sent += len(chunk)
                        self._send(conn, chunk)
            timeout = max(0.0, min(end, next_step if plan.trickle else end) - now)
            for key, _ in self._selector.select(min(timeout, 0.2)):
                self._read(key.data)

    def open_count(self) -> int:
        return sum(1 for c in self.conns if c.closed is None)

    def outcomes(self) -> Counter[str]:
        return Counter(c.outcome() for c in self.conns)

    def answered(self) -> int:
        """Status lines received over all connections."""
        return sum(c.answers for c in self.conns)

    def close_times(self) -> list[float]:
        """Seconds from opening to the server's close, of the connections it closed."""
        return sorted(c.closed for c in self.conns if c.closed is not None and not c.refused)

    def close(self) -> None:
        """Close every connection still open (the benchmark's side)."""
        for conn in self.conns:
            if conn.closed is None:
                self._selector.unregister(conn.sock)
                conn.sock.close()
        self._selector.close()

    def _send(self, conn: Conn, data: bytes) -> None:
        try:
            conn.sock.send(data)  # what does not fit is dropped: a flood need not be exact
        except BlockingIOError:
            pass
        except OSError:
            self._closed(conn)

    def _read(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            if len(conn.answer) < KEEP:
                conn.answer += data[:KEEP - len(conn.answer)]
            seen = conn._tail + data
            conn.answers += seen.count(b"HTTP/1.1 ")
            conn._tail = data[-8:]  # a status line split between two reads counts once
            return
        self._closed(conn)

    def _closed(self, conn: Conn) -> None:
        if conn.closed is None:
            conn.closed = time.monotonic() - conn.opened
            self._selector.unregister(conn.sock)
            conn.sock.close()
