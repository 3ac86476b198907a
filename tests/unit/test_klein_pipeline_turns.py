"""PipelineTurns: one pipelined request per reactor turn for the whole site, first come first
served (smdpp/http/klein_routes.py)."""
from __future__ import annotations

from typing import Any, Callable

from smdpp.http.klein_routes import PipelineTurns


class Turns:
    """Calls made with ``call_later(0, ...)`` run in the next turn, as Twisted's reactor does
    (a call made while a turn runs waits for the one after: ``runUntilCurrent``)."""

    def __init__(self) -> None:
        self.pending: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> object:
        self.pending.append((fn, args))
        return object()

    def turn(self) -> None:
        now, self.pending = self.pending, []
        for fn, args in now:
            fn(*args)


class Channel:
    def __init__(self, name: str, reactor: Turns, seen: list[str]) -> None:
        self.name, self.callLater, self.seen = name, reactor.call_later, seen

    def _next_pipelined(self, extra: bytes) -> None:
        self.seen.append(f"{self.name}:{extra.decode()}")


def test_one_pipelined_request_per_turn_in_arrival_order() -> None:
    reactor, seen = Turns(), []
    turns = PipelineTurns()
    a, b, c = (Channel(n, reactor, seen) for n in "abc")
    for channel in (a, b, c):
        turns.add(channel, b"1")
    assert seen == [] and len(reactor.pending) == 1  # one turn scheduled, not one per channel
    reactor.turn()
    assert seen == ["a:1"]
    turns.add(a, b"2")  # a's next request, queued behind b and c
    turns.discard(c)  # c's connection is lost
    for _ in range(3):
        reactor.turn()
    assert seen == ["a:1", "b:1", "a:2"]
    assert reactor.pending == []  # nothing left: no turn scheduled


def test_a_failing_channel_does_not_stop_the_others() -> None:
    reactor, seen = Turns(), []
    turns = PipelineTurns()
    bad, good = Channel("bad", reactor, seen), Channel("good", reactor, seen)

    def fail(extra: bytes) -> None:
        raise RuntimeError("boom")

    bad._next_pipelined = fail  # type: ignore[method-assign]
    turns.add(bad, b"1")
    turns.add(good, b"1")
    try:
        reactor.turn()
    except RuntimeError:
        pass
    reactor.turn()
    assert seen == ["good:1"]
