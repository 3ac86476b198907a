"""A session store in PostgreSQL, shared by every SM-DP+ process and host
(``--store postgresql://user@host/db``).

One table ``smdpp_sessions`` (created on first use) with the session's
``state`` and ``expires`` as columns beside the pickled, sealed record of
:mod:`smdpp.store.record`; ``expires`` is indexed so that
:meth:`PostgresStore.expire` is one ``DELETE`` over the index.
:meth:`PostgresStore.put_if` is ``UPDATE ... WHERE state = %s``: under READ
COMMITTED a second, concurrent UPDATE waits for the first and then re-checks
the WHERE clause against the committed row, so only one can succeed.  The
seal key is ``session-store.key`` in the data folder, the same file on every
host.  A connection the server dropped is reopened on the next call.
"""
from __future__ import annotations

from typing import Any

from smdpp.rsp.session import Session, SessionState
from smdpp.store.record import RecordCodec

TABLE = "smdpp_sessions"
_SCHEMA_LOCK = 0x736D64707000  # pg_advisory_xact_lock key: one schema creator at a time

_SCHEMA = [
    f"CREATE TABLE IF NOT EXISTS {TABLE} ("
    " transaction_id text PRIMARY KEY,"
    " state text NOT NULL,"
    " expires double precision NOT NULL,"
    " record bytea NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_expires ON {TABLE} (expires)",
]


class PostgresStore:
    """Sessions in PostgreSQL through psycopg 3, one autocommit connection per process."""

    def __init__(self, url: str, codec: RecordCodec) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise ValueError("--store postgresql:// needs the python package 'psycopg' "
                             "(pip install 'smdpp[postgresql]')") from exc
        self._psycopg: Any = psycopg
        self._url = url
        self._codec = codec
        self._conn: Any = None
        try:
            conn = self._connection()
            # CREATE ... IF NOT EXISTS is not safe against a concurrent creator
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                for statement in _SCHEMA:
                    conn.execute(statement)
        except psycopg.Error as exc:
            self.close()
            raise ValueError(f"cannot use the PostgreSQL session store: {exc}") from exc

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = self._psycopg.connect(self._url, autocommit=True)
        return self._conn

    def _execute(self, query: str, params: tuple[Any, ...]) -> Any:
        return self._connection().execute(query, params)

    def get(self, transaction_id: str) -> Session | None:
        row = self._execute(f"SELECT record FROM {TABLE} WHERE transaction_id = %s",
                            (transaction_id,)).fetchone()
        return None if row is None else self._codec.loads(transaction_id, bytes(row[0]))

    def put(self, session: Session) -> None:
        self._execute(
            f"INSERT INTO {TABLE} (transaction_id, state, expires, record) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (transaction_id) DO UPDATE SET "
            "state = excluded.state, expires = excluded.expires, record = excluded.record",
            self._row(session))

    def put_if(self, session: Session, expected_state: SessionState | None) -> bool:
        if expected_state is None:
            cursor = self._execute(
                f"INSERT INTO {TABLE} (transaction_id, state, expires, record) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (transaction_id) DO NOTHING",
                self._row(session))
        else:
            tid, state, expires, record = self._row(session)
            cursor = self._execute(
                f"UPDATE {TABLE} SET state = %s, expires = %s, record = %s "
                "WHERE transaction_id = %s AND state = %s",
                (state, expires, record, tid, expected_state.value))
        return cursor.rowcount == 1

    def delete(self, transaction_id: str) -> None:
        self._execute(f"DELETE FROM {TABLE} WHERE transaction_id = %s", (transaction_id,))

    def expire(self, now: float) -> int:
        return self._execute(f"DELETE FROM {TABLE} WHERE expires < %s", (now,)).rowcount

    def count_by_state(self, now: float) -> dict[str, int]:
        """Unexpired sessions by state (for the metrics)."""
        rows = self._execute(f"SELECT state, count(*) FROM {TABLE} WHERE expires >= %s "
                             "GROUP BY state", (now,)).fetchall()
        return {state: int(number) for state, number in rows}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _row(self, session: Session) -> tuple[str, str, float, bytes]:
        return (session.transaction_id, session.state.value, session.expires,
                self._codec.dumps(session))
