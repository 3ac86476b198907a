"""An in-memory session store: nothing written anywhere (``--in-memory``, tests)."""
from __future__ import annotations

from collections import Counter

from smdpp.rsp.session import Session, SessionState


class MemoryStore:
    """Sessions in a dict, copied in and out so callers never share a live object."""

    def __init__(self) -> None:
        self._records: dict[str, dict] = {}

    def get(self, transaction_id: str) -> Session | None:
        record = self._records.get(transaction_id)
        return None if record is None else Session.from_record(record)

    def put(self, session: Session) -> None:
        self._records[session.transaction_id] = session.to_record()

    def put_if(self, session: Session, expected_state: SessionState | None) -> bool:
        # one process, one thread (the reactor): check-then-write cannot interleave
        current = self._records.get(session.transaction_id)
        if expected_state is None:
            if current is not None:
                return False
        elif current is None or current["state"] != expected_state.value:
            return False
        self.put(session)
        return True

    def delete(self, transaction_id: str) -> None:
        self._records.pop(transaction_id, None)

    def expire(self, now: float) -> int:
        old = [tid for tid, rec in self._records.items() if rec["expires"] < now]
        for tid in old:
            del self._records[tid]
        return len(old)

    def count_by_state(self, now: float) -> dict[str, int]:
        """Unexpired sessions by state (for the metrics)."""
        return dict(Counter(r["state"] for r in self._records.values() if r["expires"] >= now))

    def close(self) -> None:
        self._records.clear()

    def __len__(self) -> int:
        return len(self._records)
