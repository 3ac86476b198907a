"""Session storage behind one small interface (see ``../shared/ARCHITECTURE.md``).

:class:`SessionStore` is what the RSP engine needs: get, put, delete and
expire.  :class:`MemoryStore` keeps sessions in a dict (tests, ``--in-memory``);
:class:`ShelveStore` keeps them in a python ``shelve`` in ``smdpp-data`` so a
session survives a server restart, with secret fields sealed by
:class:`~smdpp.store.sealer.Sealer`.
"""
from __future__ import annotations

from smdpp.store.base import SessionStore
from smdpp.store.memory import MemoryStore
from smdpp.store.shelf import ShelveStore

__all__ = ["SessionStore", "MemoryStore", "ShelveStore"]
