"""The session store interface used by the RSP engine."""
from __future__ import annotations

from typing import Protocol

from smdpp.rsp.session import Session


class SessionStore(Protocol):
    """Where sessions live between ES9+ calls."""

    def get(self, transaction_id: str) -> Session | None:
        """The session with this TransactionId (upper-case hex), or None."""

    def put(self, session: Session) -> None:
        """Create or replace a session; durable once this returns."""

    def delete(self, transaction_id: str) -> None:
        """Forget a session (no error if unknown)."""

    def expire(self, now: float) -> int:
        """Delete every session whose ``expires`` is before ``now``; return how many."""

    def close(self) -> None:
        """Flush and release resources."""
