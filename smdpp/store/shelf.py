"""The store several processes of one host share: a shelve-like sqlite file in ``smdpp-data``.

The default with ``--workers`` (one process alone uses the cheaper
:mod:`smdpp.store.journal`).  Sessions survive a restart, and several server
processes on one host (``--workers``, or separate ``osmo-smdpp.py --store
shelve:`` runs on one data folder) can share it safely.  Like a python
``shelve``, each session is one pickled value under its key (see
:mod:`smdpp.store.record`: plain dicts, secrets sealed), but the file is a
small sqlite table rather than a ``shelve.Shelf``, because the store
needs what a key/value mapping cannot give:

- the session's ``state`` and ``expires`` as indexed columns, so that
  :meth:`ShelveStore.put_if` is an ``UPDATE ... WHERE state = ?`` (atomic
  across processes) and :meth:`ShelveStore.expire` a ``DELETE`` over the
  ``expires`` index instead of unpickling every record;
- a B-tree, so get and put cost O(log n) as sessions pile up (``dbm.dumb``,
  the only dbm this Python has, rewrote its whole index on every sync).

The database runs in WAL mode (readers never block the one writer, writers
queue on a busy timeout) with ``synchronous=NORMAL``: a committed put survives
a crash of the process, not necessarily a power cut of the host, which is
acceptable for sessions that live minutes.  WAL needs shared memory between
the processes, so the data folder must be on a local file system.  One
connection per process; files are created with mode 0600.

Every ES9+ call reads the session that the previous call wrote, usually in
the same process.  The store keeps the last record it wrote for the most
recent sessions (:data:`MAX_RECENT`) and answers :meth:`ShelveStore.get`
from it as long as ``PRAGMA data_version`` says no other connection has
committed since: a cheaper statement than the SELECT, and no unpickling or
unsealing.  Any commit by another process empties it, so a read never sees
less than the file holds.  Those records stay in this process's memory as
the engine had them, a session's one-time key (otSK.DP.ECKA) included until
the session finishes or drops out; nothing more reaches the disk.
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from smdpp.rsp.session import Session, SessionState
from smdpp.store.record import RecordCodec, keep_recent
from smdpp.store.sealer import KEY_FILE_NAME, Sealer

FILE_NAME = "sessions.sqlite"
BUSY_TIMEOUT = 10.0  # seconds a writer waits for another process's transaction
MAX_RECENT = 1024  # sessions whose last written record is kept for the next get

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    transaction_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    expires REAL NOT NULL,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_expires ON sessions (expires);
"""


class ShelveStore:
    """Sessions in ``<data_dir>/sessions.sqlite``, secrets sealed."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME
        old_umask = os.umask(0o077)  # the database, its -wal/-shm files and the key: 0600
        try:
            self._codec = RecordCodec(Sealer.from_file(data_dir / KEY_FILE_NAME))
            # autocommit (isolation_level=None): every statement below is its own
            # transaction, which is all a single-row check-and-write needs
            self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        finally:
            os.umask(old_umask)
        # transactionId -> the record (secrets in clear) this connection last wrote
        self._recent: dict[str, dict[str, Any]] = {}
        self._data_version = self._read_data_version()

    def get(self, transaction_id: str) -> Session | None:
        record = self._recent.get(transaction_id)
        if record is not None and self._unchanged_elsewhere():
            return Session.from_record(record)
        row = self._db.execute("SELECT record FROM sessions WHERE transaction_id = ?",
                               (transaction_id,)).fetchone()
        return None if row is None else self._codec.loads(transaction_id, row[0])

    def put(self, session: Session) -> None:
        record = session.to_record()
        self._db.execute(
            "INSERT INTO sessions (transaction_id, state, expires, record) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (transaction_id) DO UPDATE SET state = excluded.state, "
            "expires = excluded.expires, record = excluded.record", self._row(session, record))
        self._remember(session.transaction_id, record)

    def put_if(self, session: Session, expected_state: SessionState | None) -> bool:
        record = session.to_record()
        if expected_state is None:
            cursor = self._db.execute(
                "INSERT INTO sessions (transaction_id, state, expires, record) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (transaction_id) DO NOTHING",
                self._row(session, record))
        else:
            tid, state, expires, blob = self._row(session, record)
            # Sessions keep the expiry they were created with, so the usual update
            # leaves ``expires`` out of SET: sqlite then skips the expires index
            # (one WAL frame, ~30% of the statement's CPU, fewer).  The guard
            # ``expires = ?`` sends a changed expiry to the full update instead.
            # Each statement is a whole compare-and-set on ``state``, so trying
            # two in turn is as atomic as one.
            cursor = self._db.execute(
                "UPDATE sessions SET state = ?, record = ? "
                "WHERE transaction_id = ? AND state = ? AND expires = ?",
                (state, blob, tid, expected_state.value, expires))
            if cursor.rowcount == 0:  # expiry changed, or not in expected_state (rare)
                cursor = self._db.execute(
                    "UPDATE sessions SET state = ?, expires = ?, record = ? "
                    "WHERE transaction_id = ? AND state = ?",
                    (state, expires, blob, tid, expected_state.value))
        if cursor.rowcount == 1:
            self._remember(session.transaction_id, record)
            return True
        self._recent.pop(session.transaction_id, None)  # someone else's record is newer
        return False

    def delete(self, transaction_id: str) -> None:
        self._db.execute("DELETE FROM sessions WHERE transaction_id = ?", (transaction_id,))
        self._recent.pop(transaction_id, None)

    def expire(self, now: float) -> int:
        count = self._db.execute("DELETE FROM sessions WHERE expires < ?", (now,)).rowcount
        for tid in [t for t, record in self._recent.items() if record["expires"] < now]:
            del self._recent[tid]
        return count

    def count_by_state(self, now: float) -> dict[str, int]:
        """Unexpired sessions by state (for the metrics)."""
        rows = self._db.execute("SELECT state, count(*) FROM sessions WHERE expires >= ? "
                                "GROUP BY state", (now,)).fetchall()
        return {state: int(number) for state, number in rows}

    def close(self) -> None:
        self._recent.clear()
        self._db.close()

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM sessions").fetchone()[0]

    def _row(self, session: Session, record: dict[str, Any]) -> tuple[str, str, float, bytes]:
        return (session.transaction_id, session.state.value, session.expires,
                self._codec.dumps_record(session.transaction_id, record))

    def _remember(self, transaction_id: str, record: dict[str, Any]) -> None:
        """Keep the record just committed; the least recently written goes first."""
        keep_recent(self._recent, transaction_id, record, MAX_RECENT)

    def _read_data_version(self) -> int:
        return self._db.execute("PRAGMA data_version").fetchone()[0]

    def _unchanged_elsewhere(self) -> bool:
        """True if no other connection has committed since the last check; else forget
        every kept record (any of them may be stale now) and return False.

        SQLite changes ``data_version`` for commits of other connections only,
        never for this connection's own (see "PRAGMA data_version").
        """
        version = self._read_data_version()
        if version == self._data_version:
            return True
        self._data_version = version
        self._recent.clear()
        return False
