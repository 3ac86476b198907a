"""The durable order store: profiles, their SGP.22 states, ES2+ call ids and the notification queue.

One sqlite file in the data folder (``orders.sqlite``), in WAL mode, shared
by every process of one host (``--workers``, ``smdpp-order`` beside the
server), or PostgreSQL for several hosts (:mod:`smdpp.orders.sql`).  Every state change is one ``UPDATE ... WHERE iccid = ? AND
version = ?``: a compare-and-set on the record as the caller read it, so of
two processes taking the same step on the same profile exactly one succeeds
and the other sees False and reads again (SGP.22: one profile goes to one
eUICC).  Allocating a pool profile is one ``UPDATE`` over an ``Available``
row, atomic in the same way.

The Unprotected Profile Package of a pool profile holds its secrets (Ki,
OPc, PINs): it is sealed with AES-256-GCM under the data folder's
``session-store.key`` (:class:`~smdpp.store.sealer.Sealer`, the ICCID as
associated data) before it is written.  Confirmation Codes are kept as
SHA-256 only (:mod:`smdpp.orders.identifiers`).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from smdpp.orders.sql import Database, open_database
from smdpp.orders.states import ProfileState
from smdpp.store.sealer import KEY_FILE_NAME, Sealer

CALL_ID_LIFETIME = 7 * 86400.0  # seconds a functionCallIdentifier is remembered
_ALLOCATE_ATTEMPTS = 20

_COLUMNS = ("iccid", "profile_type", "state", "eid", "matching_id", "cc_hash", "cc_attempts",
            "operator", "transaction_id", "delivered", "error", "template", "version", "updated",
            "ordered")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM order_profiles"
#: Columns :meth:`OrderStore.update` may set besides the state.
_UPDATABLE = frozenset(_COLUMNS) - {"iccid", "profile_type", "state", "version", "updated",
                                    "template"}


@dataclass(frozen=True)
class ProfileRecord:
    """One profile of the order store as last read (its UPP is read separately)."""

    iccid: str  # digits, no padding
    profile_type: str
    state: ProfileState
    eid: str | None
    matching_id: str | None
    cc_hash: bytes | None  # SHA-256 of the Confirmation Code, None when none is required
    cc_attempts: int  # wrong Confirmation Codes so far
    operator: str | None  # functionRequesterIdentifier of the order
    transaction_id: str | None  # the ES9+ session that took the profile
    delivered: bool  # a Bound Profile Package of it went out
    error: str | None
    template: str | None  # not personalized yet: the digest of its template (smdpp.orders.templates)
    version: int
    updated: float
    ordered: float | None = None  # when ES2+.DownloadOrder took it (None: in the pool)

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> "ProfileRecord":
        values = dict(zip(_COLUMNS, row))
        values["state"] = ProfileState(values["state"])
        values["delivered"] = bool(values["delivered"])
        if values["cc_hash"] is not None:
            values["cc_hash"] = bytes(values["cc_hash"])
        return cls(**values)


@dataclass(frozen=True)
class QueuedNotification:
    """One HandleDownloadProgressInfo waiting for delivery."""

    id: int
    operator: str
    body: bytes
    attempts: int


class OrderStore:
    """Profiles and orders in the order database (see the module docstring).

    ``url``: a ``postgresql://`` URL for PostgreSQL, else sqlite in ``data_dir``.
    """

    def __init__(self, data_dir: Path, sealer: Sealer | None = None,
                 clock: Any = time.time, url: str | None = None) -> None:
        data_dir = Path(data_dir)
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.clock = clock
        old_umask = os.umask(0o077)
        try:
            self._sealer = sealer or Sealer.from_file(data_dir / KEY_FILE_NAME)
        finally:
            os.umask(old_umask)
        self._db: Database = open_database(data_dir, url)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """Run a statement; its rowcount."""
        return self._db.run(sql, params)[1]

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        rows = self._db.run(sql, params)[0]
        return rows[0] if rows else None

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._db.run(sql, params)[0]

    # -- the pool --------------------------------------------------------

    def add_profile(self, iccid: str, profile_type: str, upp: bytes, source: str) -> bool:
        """Put a UPP into the pool as ``Available``; False if the ICCID is already known.

        A known ICCID keeps its state and order; while it is still
        ``Available`` its UPP is replaced by ``upp`` (a file rewritten in the pool folder).
        """
        sealed = self._sealer.seal(upp, b"upp:" + iccid.encode())
        if self._execute(
                "INSERT INTO order_profiles (iccid, profile_type, state, upp, source, updated) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (iccid, profile_type, ProfileState.AVAILABLE.value, sealed, source,
                 self.clock())) == 1:
            return True
        self._execute("UPDATE order_profiles SET upp = ?, profile_type = ?, source = ? "
                      "WHERE iccid = ? AND state = ? AND source <> ? AND template IS NULL",
                      (sealed, profile_type, source, iccid, ProfileState.AVAILABLE.value, source))
        return False

    def upp(self, iccid: str) -> bytes | None:
        """The unsealed UPP of a profile; ValueError if the stored value was altered
        or the profile is not personalized yet."""
        row = self._one("SELECT upp, template FROM order_profiles WHERE iccid = ?", (iccid,))
        if row is None:
            return None
        if row[1] is not None:
            raise ValueError(f"ICCID {iccid} is not personalized yet")
        return self._sealer.unseal(bytes(row[0]), b"upp:" + iccid.encode())

    # -- templates personalized at order time (smdpp.orders.templates) ------------

    def add_template(self, digest: str, der: bytes) -> None:
        """Keep a profile template (sealed: it may hold default keys) under its SHA-256."""
        self._execute("INSERT INTO order_templates (digest, der) VALUES (?, ?) "
                      "ON CONFLICT DO NOTHING",
                      (digest, self._sealer.seal(der, b"template:" + digest.encode())))

    def template_der(self, digest: str) -> bytes | None:
        """A template kept by :meth:`add_template`."""
        row = self._one("SELECT der FROM order_templates WHERE digest = ?", (digest,))
        if row is None:
            return None
        return self._sealer.unseal(bytes(row[0]), b"template:" + digest.encode())

    def add_subscription(self, iccid: str, profile_type: str, digest: str, subscription: bytes,
                         source: str) -> bool:
        """Put a subscription (a CSV row, encoded) into the pool as ``Available``, to be
        personalized from template ``digest`` when ordered; False if the ICCID is known."""
        return self._execute(
            "INSERT INTO order_profiles (iccid, profile_type, state, upp, template, source, "
            "updated) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (iccid, profile_type, ProfileState.AVAILABLE.value,
             self._sealer.seal(subscription, b"subscription:" + iccid.encode()), digest,
             source, self.clock())) == 1

    def subscription(self, iccid: str) -> tuple[str, bytes] | None:
        """(template digest, encoded subscription) of a profile not personalized yet."""
        row = self._one("SELECT template, upp FROM order_profiles WHERE iccid = ?", (iccid,))
        if row is None or row[0] is None:
            return None
        return row[0], self._sealer.unseal(bytes(row[1]), b"subscription:" + iccid.encode())

    def fill_upp(self, record: "ProfileRecord", upp: bytes) -> bool:
        """Replace the subscription of a profile by its personalized UPP (compare-and-set)."""
        return self._execute(
            "UPDATE order_profiles SET upp = ?, template = NULL, version = version + 1 "
            "WHERE iccid = ? AND version = ? AND template IS NOT NULL",
            (self._sealer.seal(upp, b"upp:" + record.iccid.encode()), record.iccid,
             record.version)) == 1

    def allocate(self, profile_type: str | None, iccid: str | None, to: ProfileState,
                 **fields: Any) -> ProfileRecord | None:
        """Take one ``Available`` profile (this ICCID, or any of ``profile_type``) into state ``to``.

        One atomic UPDATE: of several callers at once each gets another
        profile or None.  (PostgreSQL: a caller whose chosen row was taken
        meanwhile updates nothing and tries the next one.)
        """
        if iccid is not None:
            where, params = "iccid = ?", (iccid,)
        else:
            where = ("iccid = (SELECT iccid FROM order_profiles WHERE profile_type = ? "
                     "AND state = ? ORDER BY iccid LIMIT 1)")
            params = (profile_type, ProfileState.AVAILABLE.value)
        for _ in range(_ALLOCATE_ATTEMPTS):
            sets, values = self._sets(to, fields)
            row = self._one(f"UPDATE order_profiles SET {sets} WHERE {where} AND state = ? "
                            f"RETURNING {', '.join(_COLUMNS)}",
                            (*values, *params, ProfileState.AVAILABLE.value))
            if row is not None:
                return ProfileRecord.from_row(row)
            if iccid is not None or self._one(
                    "SELECT 1 FROM order_profiles WHERE profile_type = ? AND state = ?",
                    params) is None:
                return None
        return None

    # -- reading -----------------------------------------------------------

    def get(self, iccid: str) -> ProfileRecord | None:
        """The profile with this ICCID (digits), or None."""
        row = self._one(f"{_SELECT} WHERE iccid = ?", (iccid,))
        return ProfileRecord.from_row(row) if row is not None else None

    def by_matching_id(self, matching_id: str) -> ProfileRecord | None:
        """The profile ordered under this matchingId, or None."""
        row = self._one(f"{_SELECT} WHERE matching_id = ?", (matching_id,))
        return ProfileRecord.from_row(row) if row is not None else None

    def released_for_eid(self, eid: str) -> ProfileRecord | None:
        """The oldest ``Released`` order linked to this EID (SGP.22 3.1.3, empty matchingId)."""
        row = self._one(f"{_SELECT} WHERE eid = ? AND state = ? ORDER BY updated LIMIT 1",
                        (eid, ProfileState.RELEASED.value))
        return ProfileRecord.from_row(row) if row is not None else None

    def profiles(self, state: ProfileState | None = None) -> Iterator[ProfileRecord]:
        """Every profile (of one state), by ICCID."""
        if state is None:
            rows = self._all(f"{_SELECT} ORDER BY iccid")
        else:
            rows = self._all(f"{_SELECT} WHERE state = ? ORDER BY iccid", (state.value,))
        return (ProfileRecord.from_row(row) for row in rows)

    def recent_orders(self, limit: int) -> list[ProfileRecord]:
        """The ``limit`` orders changed last (every profile not ``Available``), newest first."""
        rows = self._all(f"{_SELECT} WHERE state <> ? ORDER BY updated DESC, iccid LIMIT ?",
                         (ProfileState.AVAILABLE.value, limit))
        return [ProfileRecord.from_row(row) for row in rows]

    def released(self, limit: int) -> list[ProfileRecord]:
        """The ``limit`` orders released longest ago, waiting for their download."""
        rows = self._all(f"{_SELECT} WHERE state = ? ORDER BY updated, iccid LIMIT ?",
                         (ProfileState.RELEASED.value, limit))
        return [ProfileRecord.from_row(row) for row in rows]

    def inventory(self) -> list[tuple[str, bool, str, int]]:
        """(profile type, from a CSV + template?, state, number of profiles), sorted."""
        rows = self._all("SELECT profile_type, (template IS NOT NULL OR "
                         "COALESCE(source, '') LIKE '%.csv:%'), state, COUNT(*) "
                         "FROM order_profiles GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
        return [(ptype, bool(csv), state, int(count)) for ptype, csv, state, count in rows]

    def counts(self) -> dict[str, dict[str, int]]:
        """profile type -> state -> number of profiles."""
        result: dict[str, dict[str, int]] = {}
        for ptype, state, count in self._all("SELECT profile_type, state, COUNT(*) FROM "
                                             "order_profiles GROUP BY profile_type, state"):
            result.setdefault(ptype, {})[state] = int(count)
        return result

    # -- compare-and-set -----------------------------------------------------

    def _sets(self, state: ProfileState, fields: dict[str, Any]) -> tuple[str, list[Any]]:
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"not an updatable profile field: {', '.join(sorted(unknown))}")
        sets = ", ".join(["state = ?", "version = version + 1", "updated = ?",
                          *(f"{name} = ?" for name in fields)])
        return sets, [state.value, self.clock(), *fields.values()]

    def update(self, record: ProfileRecord, state: ProfileState, **fields: Any) -> bool:
        """Write ``state`` and ``fields`` only if the profile is still as ``record`` read it.

        False (nothing written) when another call changed it meanwhile, or
        when a matchingId is already another profile's.
        """
        sets, values = self._sets(state, fields)
        try:
            return self._execute(f"UPDATE order_profiles SET {sets} "
                                 "WHERE iccid = ? AND version = ?",
                                 (*values, record.iccid, record.version)) == 1
        except self._db.integrity_error:  # UNIQUE matching_id
            return False

    def matching_id_in_use(self, matching_id: str) -> bool:
        """True if some profile already has this matchingId."""
        return self._one("SELECT 1 FROM order_profiles WHERE matching_id = ?",
                         (matching_id,)) is not None

    # -- ES2+ functionCallIdentifier ----------------------------------------

    def remember_call(self, requester: str, call_id: str) -> bool:
        """Record an ES2+ functionCallIdentifier; False if this requester used it before."""
        now = self.clock()
        self._execute("DELETE FROM order_calls WHERE at < ?", (now - CALL_ID_LIFETIME,))
        return self._execute("INSERT INTO order_calls (requester, call_id, at) "
                             "VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                             (requester, call_id, now)) == 1

    # -- the HandleDownloadProgressInfo queue -----------------------------------

    def enqueue(self, operator: str, body: bytes) -> int:
        """Queue a notification for ``operator``, due now; its id."""
        row = self._one("INSERT INTO order_notifications (operator, body, next_at) "
                        "VALUES (?, ?, ?) RETURNING id", (operator, body, self.clock()))
        assert row is not None
        return int(row[0])

    def due(self, limit: int = 20) -> list[QueuedNotification]:
        """Notifications whose time has come, oldest first."""
        rows = self._all("SELECT id, operator, body, attempts FROM order_notifications "
                         "WHERE next_at <= ? ORDER BY id LIMIT ?", (self.clock(), limit))
        return [QueuedNotification(int(i), op, bytes(body), int(n)) for i, op, body, n in rows]

    def claim(self, item: QueuedNotification, lease: float) -> bool:
        """Take ``item`` for one delivery attempt (no other process sends it for ``lease`` s)."""
        return self._execute("UPDATE order_notifications SET next_at = ?, "
                             "attempts = attempts + 1 WHERE id = ? AND attempts = ?",
                             (self.clock() + lease, item.id, item.attempts)) == 1

    def delivered(self, notification_id: int) -> None:
        """Forget a notification the operator took."""
        self._execute("DELETE FROM order_notifications WHERE id = ?", (notification_id,))

    def retry_later(self, notification_id: int, delay: float, error: str) -> None:
        """Try a notification again after ``delay`` seconds."""
        self._execute("UPDATE order_notifications SET next_at = ?, last_error = ? WHERE id = ?",
                      (self.clock() + delay, error[:200], notification_id))

    def queued(self) -> int:
        """How many notifications wait."""
        row = self._one("SELECT COUNT(*) FROM order_notifications")
        return int(row[0]) if row else 0
