"""The default session store: a shelve-like sqlite file in ``smdpp-data``.

Sessions survive a restart, and several server processes on one host
(``--workers``, or separate ``osmo-smdpp.py`` runs on one data folder) can share
it safely.  Like a python ``shelve``, each session is one pickled value under
its key (see :mod:`smdpp.store.record`: plain dicts, secrets sealed), but the
file is a small sqlite table rather than a ``shelve.Shelf``, because the store
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
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from smdpp.rsp.session import Session, SessionState
from smdpp.store.record import RecordCodec
from smdpp.store.sealer import Sealer

FILE_NAME = "sessions.sqlite"
KEY_FILE_NAME = "session-store.key"
BUSY_TIMEOUT = 10.0  # seconds a writer waits for another process's transaction

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

    def get(self, transaction_id: str) -> Session | None:
        row = self._db.execute("SELECT record FROM sessions WHERE transaction_id = ?",
                               (transaction_id,)).fetchone()
        return None if row is None else self._codec.loads(transaction_id, row[0])

    def put(self, session: Session) -> None:
        self._db.execute(
            "INSERT INTO sessions (transaction_id, state, expires, record) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (transaction_id) DO UPDATE SET state = excluded.state, "
            "expires = excluded.expires, record = excluded.record", self._row(session))

    def put_if(self, session: Session, expected_state: SessionState | None) -> bool:
        if expected_state is None:
            cursor = self._db.execute(
                "INSERT INTO sessions (transaction_id, state, expires, record) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (transaction_id) DO NOTHING",
                self._row(session))
        else:
            tid, state, expires, record = self._row(session)
            # Sessions keep the expiry they were created with, so the usual update
            # leaves ``expires`` out of SET: sqlite then skips the expires index
            # (one WAL frame, ~30% of the statement's CPU, fewer).  The guard
            # ``expires = ?`` sends a changed expiry to the full update instead.
            # Each statement is a whole compare-and-set on ``state``, so trying
            # two in turn is as atomic as one.
            cursor = self._db.execute(
                "UPDATE sessions SET state = ?, record = ? "
                "WHERE transaction_id = ? AND state = ? AND expires = ?",
                (state, record, tid, expected_state.value, expires))
            if cursor.rowcount == 0:  # expiry changed, or not in expected_state (rare)
                cursor = self._db.execute(
                    "UPDATE sessions SET state = ?, expires = ?, record = ? "
                    "WHERE transaction_id = ? AND state = ?",
                    (state, expires, record, tid, expected_state.value))
        return cursor.rowcount == 1

    def delete(self, transaction_id: str) -> None:
        self._db.execute("DELETE FROM sessions WHERE transaction_id = ?", (transaction_id,))

    def expire(self, now: float) -> int:
        return self._db.execute("DELETE FROM sessions WHERE expires < ?", (now,)).rowcount

    def close(self) -> None:
        self._db.close()

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM sessions").fetchone()[0]

    def _row(self, session: Session) -> tuple[str, str, float, bytes]:
        return (session.transaction_id, session.state.value, session.expires,
                self._codec.dumps(session))
