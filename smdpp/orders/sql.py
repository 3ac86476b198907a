"""The two databases of the order store: sqlite in the data folder, or PostgreSQL.

Both run the same statements (written with ``?`` placeholders, which the
PostgreSQL side turns into ``%s``), in autocommit mode, each statement one
atomic step: that is all the compare-and-sets of :mod:`smdpp.orders.store`
need.  sqlite (the default) is shared by the processes of one host through
its file locks, in WAL mode; PostgreSQL (``postgresql://`` URL, the same
server as ``--store``) by every host of a deployment.  Under READ COMMITTED
a concurrent ``UPDATE ... WHERE version = ?`` waits for the first and
re-checks its WHERE clause, so only one succeeds there too.

One connection per process, shared by the reactor and the delivery thread
behind a lock.
"""
from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

FILE_NAME = "orders.sqlite"
BUSY_TIMEOUT = 10.0  # seconds a sqlite writer waits for another process's transaction
_SCHEMA_LOCK = 0x736D6470704F  # pg_advisory_xact_lock key: one schema creator at a time

_SCHEMA = """
CREATE TABLE IF NOT EXISTS order_profiles (
    iccid TEXT PRIMARY KEY,
    profile_type TEXT NOT NULL,
    state TEXT NOT NULL,
    eid TEXT,
    matching_id TEXT UNIQUE,
    cc_hash {blob},
    cc_attempts INTEGER NOT NULL DEFAULT 0,
    operator TEXT,
    transaction_id TEXT,
    delivered INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    source TEXT,
    upp {blob} NOT NULL,
    template TEXT,
    version INTEGER NOT NULL DEFAULT 0,
    updated {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS order_profiles_pool ON order_profiles (profile_type, state);
CREATE INDEX IF NOT EXISTS order_profiles_eid ON order_profiles (eid, state);
CREATE TABLE IF NOT EXISTS order_templates (
    digest TEXT PRIMARY KEY,
    der {blob} NOT NULL
);
CREATE TABLE IF NOT EXISTS order_calls (
    requester TEXT NOT NULL,
    call_id TEXT NOT NULL,
    at {real} NOT NULL,
    PRIMARY KEY (requester, call_id)
);
CREATE TABLE IF NOT EXISTS order_notifications (
    id {serial},
    operator TEXT NOT NULL,
    body {blob} NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at {real} NOT NULL,
    last_error TEXT
)
"""
#: Columns added since the first schema, for databases created before them: (name, type).
#: ``ordered``: when ES2+.DownloadOrder took the profile (the status page shows it).
_ADDED_COLUMNS = (("ordered", "{real}"),)


class Database:
    """One connection; :meth:`run` executes a statement and returns (rows, rowcount)."""

    integrity_error: type[Exception] = Exception

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[list[tuple[Any, ...]], int]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class SqliteDatabase(Database):
    """``<data_dir>/orders.sqlite`` (mode 0600), WAL."""

    integrity_error = sqlite3.IntegrityError

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / FILE_NAME
        old_umask = os.umask(0o077)
        try:
            self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None,
                                       check_same_thread=False)
        finally:
            os.umask(old_umask)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("BEGIN IMMEDIATE")  # one process adds a missing column
            try:
                for statement in _SCHEMA.format(blob="BLOB", real="REAL", serial="INTEGER "
                                                "PRIMARY KEY AUTOINCREMENT").split(";"):
                    self._db.execute(statement)
                present = {row[1] for row in self._db.execute(
                    "PRAGMA table_info(order_profiles)")}
                for name, kind in _ADDED_COLUMNS:
                    if name not in present:
                        self._db.execute(f"ALTER TABLE order_profiles ADD COLUMN {name} "
                                         f"{kind.format(real='REAL')}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[list[tuple[Any, ...]], int]:
        with self._lock:  # the fetch too: another thread shares the connection
            cursor = self._db.execute(sql, params)
            rows = cursor.fetchall()
            return rows, cursor.rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()


class PostgresDatabase(Database):
    """Tables ``order_*`` in a PostgreSQL database (created on first use), psycopg 3."""

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError as exc:
            raise ValueError("a postgresql:// order store needs the python package 'psycopg' "
                             "(pip install 'smdpp[postgresql]')") from exc
        self._psycopg: Any = psycopg
        self.integrity_error = psycopg.IntegrityError
        self._url = url
        self._lock = threading.Lock()
        try:
            self._conn = psycopg.connect(url, autocommit=True)
            with self._conn.transaction():  # CREATE ... IF NOT EXISTS races another creator
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                for statement in _SCHEMA.format(blob="BYTEA", real="DOUBLE PRECISION",
                                                serial="BIGSERIAL PRIMARY KEY").split(";"):
                    self._conn.execute(statement)
                for name, kind in _ADDED_COLUMNS:
                    self._conn.execute(f"ALTER TABLE order_profiles ADD COLUMN IF NOT EXISTS "
                                       f"{name} {kind.format(real='DOUBLE PRECISION')}")
        except psycopg.Error as exc:
            raise ValueError(f"cannot use the PostgreSQL order store: {exc}") from exc

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[list[tuple[Any, ...]], int]:
        with self._lock:
            if self._conn.closed:  # the server dropped it: reconnect once
                self._conn = self._psycopg.connect(self._url, autocommit=True)
            cursor = self._conn.execute(sql.replace("?", "%s"), params)
            rows = cursor.fetchall() if cursor.description is not None else []
            return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                    for row in rows], cursor.rowcount

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def open_database(data_dir: Path, url: str | None = None) -> Database:
    """PostgreSQL for a ``postgresql://`` URL, else sqlite in ``data_dir``."""
    if url and url.split(":", 1)[0].lower() in ("postgresql", "postgres"):
        return PostgresDatabase(url)
    return SqliteDatabase(data_dir)
