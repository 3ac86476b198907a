"""Session storage behind one small interface (see ``ARCHITECTURE.md``).

:class:`SessionStore` is what the RSP engine needs: get, put, put_if (an
atomic compare-and-set on the session state), delete and expire.
:func:`open_store` picks the backend from the ``--store`` URL:

``journal:`` (default for one process)
    :class:`~smdpp.store.journal.JournalStore`, sessions in memory and every
    change appended to ``smdpp-data/sessions/``: survives a restart, one
    process per data folder (the cheapest durable store).
``shelve:`` (default with ``--workers``)
    :class:`ShelveStore`, a shelve-like sqlite file in ``smdpp-data``: survives a
    restart, shared safely by the processes of one host.
``memory:``
    :class:`MemoryStore`, a dict in one process (tests, ``--in-memory``).
``redis://host:port/db``, ``rediss://...``
    :class:`~smdpp.store.redis_store.RedisStore`, shared by several hosts.
``postgresql://user@host/db``, ``postgres://...``
    :class:`~smdpp.store.postgres_store.PostgresStore`, shared by several hosts.

Every store except memory seals secret fields with the key in
``smdpp-data/session-store.key`` (:class:`~smdpp.store.sealer.Sealer`).
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from smdpp.rsp.session_store import SessionStore
from smdpp.store.journal import JournalStore, StoreInUseError
from smdpp.store.memory import MemoryStore
from smdpp.store.record import RecordCodec
from smdpp.store.sealer import KEY_FILE_NAME, Sealer
from smdpp.store.shelf import ShelveStore

__all__ = ["SessionStore", "JournalStore", "MemoryStore", "ShelveStore", "StoreInUseError",
           "default_url", "open_store", "is_shared", "redact_url"]

_ONE_PROCESS = ("memory", "journal")
_REDIS_SCHEMES = ("redis", "rediss")
_POSTGRES_SCHEMES = ("postgresql", "postgres")


def _scheme(url: str) -> str:
    scheme, sep, _ = url.partition(":")
    if not sep:
        raise ValueError(f"session store {url!r} is not a URL (journal:, shelve:, memory:, "
                         "redis://host:port/db or postgresql://user@host/db)")
    return scheme.lower()


def default_url(workers: int = 1) -> str:
    """The store used without ``--store``: the journal for one process, else the sqlite shelve."""
    return "journal:" if workers <= 1 else "shelve:"


def is_shared(url: str) -> bool:
    """True if several processes can use the store at ``url`` together."""
    return _scheme(url) not in _ONE_PROCESS


def redact_url(url: str) -> str:
    """``url`` fit for a log line: any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _codec(data_dir: Path) -> RecordCodec:
    old_umask = os.umask(0o077)
    try:
        return RecordCodec(Sealer.from_file(data_dir / KEY_FILE_NAME))
    finally:
        os.umask(old_umask)


def open_store(url: str, data_dir: Path) -> SessionStore:
    """The session store named by ``url`` (see the module docstring).

    ValueError for an unknown scheme, a missing client package or a server
    that cannot be reached (:class:`StoreInUseError`: a journal folder held by
    another process).
    """
    scheme = _scheme(url)
    rest = url.partition(":")[2]
    if scheme in ("journal", "shelve", "memory"):
        if rest:
            raise ValueError(f"session store {scheme}: takes no argument, got {url!r}")
        if scheme == "journal":
            return JournalStore(data_dir)
        return ShelveStore(data_dir) if scheme == "shelve" else MemoryStore()
    if scheme in _REDIS_SCHEMES:
        from smdpp.store.redis_store import RedisStore
        return RedisStore(url, _codec(data_dir))
    if scheme in _POSTGRES_SCHEMES:
        from smdpp.store.postgres_store import PostgresStore
        return PostgresStore(url, _codec(data_dir))
    raise ValueError(f"unknown session store {redact_url(url)!r}: use journal:, shelve:, memory:, "
                     "redis://host:port/db or postgresql://user@host/db")
