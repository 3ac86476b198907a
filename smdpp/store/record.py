"""How a :class:`~smdpp.rsp.session.Session` is written to a store that is not memory.

Every persistent store (the sqlite shelve, Redis, PostgreSQL) keeps one value
per session: the plain dict of :meth:`Session.to_record` pickled, as
:mod:`shelve` does, with each field of :data:`Session.SECRET_FIELDS` first
sealed by :class:`~smdpp.store.sealer.Sealer` under the TransactionId.

Reading uses an unpickler that refuses every global: a record is only
builtins (str, bytes, int, float, bool, None, dict, list), so a value planted
in a shared store by someone else can at worst fail to load, never run code.
"""
from __future__ import annotations

import io
import logging
import pickle
from typing import Any

from smdpp.rsp.session import Session
from smdpp.store.sealer import Sealer

log = logging.getLogger(__name__)

PICKLE_PROTOCOL = 5


def keep_recent(records: dict[str, Any], key: str, value: Any, limit: int) -> None:
    """Put ``value`` last in ``records``; past ``limit`` entries the least recent goes."""
    records.pop(key, None)  # re-inserted last: dicts keep insertion order
    if len(records) >= limit:
        del records[next(iter(records))]
    records[key] = value


class _BuiltinsOnly(pickle.Unpickler):
    """An unpickler for plain data: any class or function reference is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"session record refers to {module}.{name}")


class RecordCodec:
    """Session <-> bytes, with the secret fields sealed."""

    def __init__(self, sealer: Sealer) -> None:
        self._sealer = sealer

    def dumps(self, session: Session) -> bytes:
        """The stored form of ``session``."""
        return self.dumps_record(session.transaction_id, session.to_record())

    def dumps_record(self, transaction_id: str, record: dict[str, Any]) -> bytes:
        """The stored form of a session's :meth:`~Session.to_record` (left unchanged)."""
        context = transaction_id.encode()
        sealed = record
        for name in Session.SECRET_FIELDS:
            if record.get(name) is not None:
                if sealed is record:
                    sealed = dict(record)
                sealed[name] = self._sealer.seal(record[name], context)
        return pickle.dumps(sealed, protocol=PICKLE_PROTOCOL)

    def loads(self, transaction_id: str, data: bytes) -> Session:
        """Inverse of :meth:`dumps`.

        A secret that does not unseal (another store key, or a value moved
        from another session) is dropped with a warning: the session stays
        readable, only a retried getBoundProfilePackage then fails.
        """
        record = _BuiltinsOnly(io.BytesIO(data)).load()
        if not isinstance(record, dict):
            raise ValueError(f"transactionId={transaction_id}: stored record is not a dict")
        context = transaction_id.encode()
        for name in Session.SECRET_FIELDS:
            if record.get(name) is not None:
                try:
                    record[name] = self._sealer.unseal(record[name], context)
                except ValueError:
                    log.warning("transactionId=%s: sealed field %s unreadable, dropped",
                                transaction_id, name)
                    record[name] = None
        return Session.from_record(record)
