"""What the RSP engine asks of operator orders (SGP.22 ES2+), as one small interface.

The engine knows nothing of profile states, Confirmation Codes or operators:
where a download touches an order it calls an :class:`OrderLookup`
(implemented by :class:`smdpp.orders.downloads.OrderDownloads`), which
raises :class:`~smdpp.errors.SgpError` with the SGP.22 codes when the order
refuses.  Without one (no ``--es2-port``) the engine serves the lab's
``upp/`` files only.
"""
from __future__ import annotations

from typing import Protocol


class OrderedProfile(Protocol):
    """An ordered profile as :meth:`OrderLookup.find` hands it to the engine."""

    iccid: str
    upp: bytes
    cc_required: bool


class OrderLookup(Protocol):
    """The order side of ES9+ (see :mod:`smdpp.orders.downloads` for the rules)."""

    def find(self, matching_id: str | None, eid: str) -> OrderedProfile | None:
        """authenticateClient (SGP.22 5.6.3): the order for this activation code and eUICC,
        None if the matchingId is no order."""

    def upp(self, iccid: str) -> bytes:
        """The ordered profile's package, for getBoundProfilePackage."""

    def check_confirmation_code(self, iccid: str, eid: str, transaction_id: str,
                                hash_cc: bytes | None) -> None:
        """getBoundProfilePackage (SGP.22 5.6.2): hashCc, when the order has a code."""

    def bpp_delivered(self, iccid: str, eid: str, transaction_id: str) -> None:
        """The Bound Profile Package goes to this eUICC: one eUICC, once."""

    def installation_result(self, iccid: str, eid: str, transaction_id: str, success: bool,
                            result_data: bytes, reason: str | None) -> None:
        """handleNotification (SGP.22 5.6.4): the eUICC's ProfileInstallationResult."""

    def session_cancelled(self, iccid: str, eid: str, transaction_id: str,
                          reason: int) -> None:
        """cancelSession (SGP.22 5.6.5)."""

    def session_expired(self, iccid: str, eid: str, transaction_id: str,
                        bpp_delivered: bool) -> None:
        """The session's lifetime passed before its end (SGP.22 3.1.3); ``bpp_delivered``:
        a Bound Profile Package of it went out."""

    def downloads_expired(self, session_lifetime: float) -> int:
        """The housekeeping sweep (sessions past their lifetime are dropped unseen): every
        order whose Bound Profile Package went out longer than ``session_lifetime`` ago with
        no result is treated as :meth:`session_expired` after delivery; return how many."""
