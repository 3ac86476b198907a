"""The session store interface the RSP engine needs (SGP.22 3.1.3: sessions between calls).

It belongs to the core that uses it: the backends in :mod:`smdpp.store`
implement it and import :mod:`smdpp.rsp`, never the reverse.
"""
from __future__ import annotations

from typing import Protocol

from smdpp.rsp.session import Session, SessionState


class SessionStore(Protocol):
    """Where sessions live between ES9+ calls.

    Several server processes (``--workers``, or several hosts) may share one
    store, so a download may reach a different process at each call:
    :meth:`put_if` is the compare-and-set that lets exactly one of them move a
    session on from a given state (SGP.22 3.1.3: a replayed call must fail).
    """

    def get(self, transaction_id: str) -> Session | None:
        """The session with this TransactionId (upper-case hex), or None."""

    def put(self, session: Session) -> None:
        """Create or replace a session; durable once this returns."""

    def put_if(self, session: Session, expected_state: SessionState | None) -> bool:
        """Write ``session`` only if the stored record is still in ``expected_state``.

        With ``expected_state`` None the write happens only if no record with
        this TransactionId exists.  The check and the write are one atomic step
        for every process sharing the store; False means nothing was written.
        """

    def delete(self, transaction_id: str) -> None:
        """Forget a session (no error if unknown)."""

    def expire(self, now: float) -> int:
        """Delete every session whose ``expires`` is before ``now``; return how many.

        A backend that expires records by itself (Redis) may return 0.
        """

    def close(self) -> None:
        """Flush and release resources."""
