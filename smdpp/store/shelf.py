"""A ``shelve`` session store in ``smdpp-data``: sessions survive a restart.

The shelve file holds plain dicts (:meth:`Session.to_record`), never pickled
classes, and every field in :data:`Session.SECRET_FIELDS` is sealed with
:class:`~smdpp.store.sealer.Sealer` before it is written.  Files are created
with mode 0600.
"""
from __future__ import annotations

import logging
import os
import shelve
from pathlib import Path

from smdpp.rsp.session import Session
from smdpp.store.sealer import Sealer

log = logging.getLogger(__name__)


class ShelveStore:
    """Sessions in ``<data_dir>/sessions`` (a dbm file), secrets sealed."""

    def __init__(self, data_dir: Path) -> None:
        old_umask = os.umask(0o077)  # the dbm files and the key file: 0600
        try:
            self._sealer = Sealer.from_file(data_dir / "session-store.key")
            self._shelf = shelve.open(str(data_dir / "sessions"), flag="c", protocol=5)
        finally:
            os.umask(old_umask)

    def get(self, transaction_id: str) -> Session | None:
        record = self._shelf.get(transaction_id)
        if record is None:
            return None
        record = dict(record)
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

    def put(self, session: Session) -> None:
        record = session.to_record()
        context = session.transaction_id.encode()
        for name in Session.SECRET_FIELDS:
            if record.get(name) is not None:
                record[name] = self._sealer.seal(record[name], context)
        self._shelf[session.transaction_id] = record
        self._shelf.sync()

    def delete(self, transaction_id: str) -> None:
        try:
            del self._shelf[transaction_id]
        except KeyError:
            return
        self._shelf.sync()

    def expire(self, now: float) -> int:
        old = [tid for tid in self._shelf.keys() if self._shelf[tid]["expires"] < now]
        for tid in old:
            del self._shelf[tid]
        if old:
            self._shelf.sync()
        return len(old)

    def close(self) -> None:
        self._shelf.close()
