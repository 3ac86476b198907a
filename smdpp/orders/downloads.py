"""ES9+ against orders: the lookups and state changes the RSP engine asks of the order store.

The engine (:mod:`smdpp.rsp.engine`) stays ignorant of orders; at four
points of a download it calls this small interface, and everything about
profile states, Confirmation Codes and the operator's notifications is here:

* :meth:`OrderDownloads.find` (ES9+.AuthenticateClient, SGP.22 5.6.3, 3.1.3):
  the order of a matchingId (its EID must be the eUICC's where the order has
  one), or with an empty matchingId a ``Released`` order linked to the EID
  (the default SM-DP+ address case).  None when the matchingId is no order
  (the lab's ``upp/`` files are looked up next).  Notification point 1.
* :meth:`OrderDownloads.check_confirmation_code` (GetBoundProfilePackage,
  5.6.2): hashCc against the stored SHA-256(CC), with a retry limit after
  which the profile goes to ``Error``.  Point 2 on each failure.
* :meth:`OrderDownloads.bpp_delivered`: ``Released`` -> ``Downloaded`` as one
  compare-and-set, so of two eUICCs racing for one profile only one gets a
  Bound Profile Package (a retry of the same session is let through).  Point 3.
* :meth:`OrderDownloads.installation_result` (HandleNotification, 5.6.4):
  ``Installed`` or ``Error``, point 4 with the eUICC's signed result as
  received; :meth:`OrderDownloads.session_cancelled` (CancelSession, 5.6.5) and
  :meth:`OrderDownloads.session_expired` (the session's lifetime passed, 3.1.3),
  each told to the operator at the point the download had reached.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from smdpp.errors import SgpError
from smdpp.orders.identifiers import hash_cc_matches
from smdpp.orders.notify import NotificationPoint, Notifier
from smdpp.orders.states import Event, InvalidTransition, ProfileState, next_state
from smdpp.orders.store import OrderStore, ProfileRecord
from smdpp import status

log = logging.getLogger(__name__)

MAX_CC_ATTEMPTS = 3  # wrong Confirmation Codes before the order goes to Error
#: CancelSessionReason values after which the user may try again (SGP.22 5.6.5): postponed, timeout
RETRYABLE_CANCEL_REASONS = frozenset({1, 2})
_CAS_ATTEMPTS = 5


@dataclass(frozen=True)
class OrderedProfile:
    """What the engine needs of an ordered profile."""

    iccid: str
    upp: bytes
    cc_required: bool


class OrderDownloads:
    """The order side of ES9+ downloads over one :class:`OrderStore`."""

    def __init__(self, store: OrderStore, notifier: Notifier,
                 max_cc_attempts: int = MAX_CC_ATTEMPTS) -> None:
        self.store = store
        self.notifier = notifier
        self.max_cc_attempts = max_cc_attempts

    def _refuse(self, record: ProfileRecord, eid: str, point: NotificationPoint,
                error: SgpError) -> SgpError:
        self.notifier.notify(record, point, eid=eid, error=error)
        return error

    # -- ES9+.AuthenticateClient ------------------------------------------------

    def find(self, matching_id: str | None, eid: str) -> OrderedProfile | None:
        """The ordered profile for this activation code and eUICC; None if it is no order."""
        if matching_id:
            record = self.store.by_matching_id(matching_id)
            if record is None:
                return None
        else:
            record = self.store.released_for_eid(eid)
            if record is None:
                return None
        point = NotificationPoint.ELIGIBILITY
        if record.eid and record.eid != eid:
            raise self._refuse(record, eid, point, status.eid_refused(
                f"the order of ICCID {record.iccid} is for another EID"))
        if record.state in (ProfileState.ALLOCATED, ProfileState.LINKED,
                            ProfileState.CONFIRMED):
            raise self._refuse(record, eid, point, status.profile_not_released(
                f"ICCID {record.iccid} is {record.state.value}, not Released"))
        if record.state is not ProfileState.RELEASED:
            raise self._refuse(record, eid, point, status.profile_unavailable(
                f"ICCID {record.iccid} is {record.state.value}"))
        upp = self.store.upp(record.iccid)
        if upp is None:
            raise status.profile_unavailable(f"ICCID {record.iccid} is gone")
        self.notifier.notify(record, point, eid=eid)
        log.info("order ICCID %s (%s) found for EID %s", record.iccid, record.profile_type, eid)
        return OrderedProfile(record.iccid, upp, record.cc_hash is not None)

    # -- ES9+.GetBoundProfilePackage ---------------------------------------------

    def upp(self, iccid: str) -> bytes:
        """The ordered profile's package (unsealed from the store)."""
        upp = self.store.upp(iccid)
        if upp is None:
            raise status.profile_unavailable(f"ICCID {iccid} is gone")
        return upp

    def _released(self, iccid: str, eid: str, transaction_id: str) -> ProfileRecord:
        record = self.store.get(iccid)
        if record is None:
            raise status.profile_unavailable(f"ICCID {iccid} is gone")
        if record.state is ProfileState.DOWNLOADED and record.transaction_id == transaction_id:
            return record  # a retried getBoundProfilePackage of the same session
        if record.state is not ProfileState.RELEASED or (record.eid and record.eid != eid):
            raise status.profile_unavailable(f"ICCID {iccid} is {record.state.value}")
        return record

    def check_confirmation_code(self, iccid: str, eid: str, transaction_id: str,
                                hash_cc: bytes | None) -> None:
        """Verify hashCc (SGP.22 5.6.2) when the order has a Confirmation Code."""
        for _ in range(_CAS_ATTEMPTS):
            record = self._released(iccid, eid, transaction_id)
            if record.cc_hash is None:
                return
            if hash_cc is not None and hash_cc_matches(record.cc_hash,
                                                       bytes.fromhex(transaction_id), hash_cc):
                return
            attempts = record.cc_attempts + 1
            point = NotificationPoint.CONFIRMATION_FAILURE
            if attempts >= self.max_cc_attempts:
                error = status.confirmation_code_retries_exceeded(
                    f"{attempts} wrong Confirmation Codes for ICCID {iccid}")
                after = next_state(record.state, Event.CC_RETRIES_EXCEEDED)
                if self.store.update(record, after, cc_attempts=attempts, error=error.message):
                    log.info("ICCID %s: Confirmation Code retries exhausted -> Error", iccid)
                    raise self._refuse(record, eid, point, error)
                continue
            error = (status.confirmation_code_missing("the order needs a Confirmation Code")
                     if hash_cc is None else
                     status.confirmation_code_refused("the Confirmation Code is wrong"))
            if self.store.update(record, record.state, cc_attempts=attempts):
                raise self._refuse(record, eid, point, error)
        raise status.profile_unavailable(f"ICCID {iccid} changed during the call")

    def bpp_delivered(self, iccid: str, eid: str, transaction_id: str) -> None:
        """Record that the Bound Profile Package goes to this eUICC (``Released`` -> ``Downloaded``)."""
        for _ in range(_CAS_ATTEMPTS):
            record = self._released(iccid, eid, transaction_id)
            if record.state is ProfileState.DOWNLOADED:
                return
            if self.store.update(record, next_state(record.state, Event.BPP_DOWNLOADED),
                                 eid=eid, transaction_id=transaction_id, delivered=1):
                log.info("transactionId=%s: ICCID %s Released -> Downloaded", transaction_id,
                         iccid)
                self.notifier.notify(record, NotificationPoint.BPP_DOWNLOAD, eid=eid)
                return
        raise status.profile_unavailable(f"ICCID {iccid} changed during the call")

    # -- ES9+.HandleNotification / CancelSession ----------------------------------

    def _finish(self, iccid: str, transaction_id: str, event: Event, **fields: object
                ) -> ProfileRecord | None:
        for _ in range(_CAS_ATTEMPTS):
            record = self.store.get(iccid)
            if record is None or record.transaction_id not in (None, transaction_id):
                return None
            try:
                after = next_state(record.state, event)
            except InvalidTransition as exc:
                log.info("transactionId=%s: ICCID %s: %s", transaction_id, iccid, exc)
                return None
            if self.store.update(record, after, **fields):
                log.info("transactionId=%s: ICCID %s %s -> %s", transaction_id, iccid,
                         record.state.value, after.value)
                return record
        return None

    def installation_result(self, iccid: str, eid: str, transaction_id: str, success: bool,
                            result_data: bytes, reason: str | None) -> None:
        """ProfileInstallationResult (SGP.22 5.6.4): ``Installed`` or ``Error``, point 4."""
        event = Event.INSTALLED if success else Event.INSTALL_FAILED
        record = self._finish(iccid, transaction_id, event,
                              error=None if success else (reason or "installation failed")[:200])
        if record is None:
            return
        error = None if success else status.installation_failed(reason or "installation failed")
        self.notifier.notify(record, NotificationPoint.BPP_INSTALLATION, eid=eid, error=error,
                             result_data=result_data)

    @staticmethod
    def _point_reached(record: ProfileRecord) -> NotificationPoint:
        """The notification point (SGP.22 5.3.5) at which an unfinished download stopped:
        BPP installation once the Bound Profile Package went out, else BPP download."""
        return (NotificationPoint.BPP_INSTALLATION if record.delivered
                else NotificationPoint.BPP_DOWNLOAD)

    def session_cancelled(self, iccid: str, eid: str, transaction_id: str, reason: int) -> None:
        """CancelSession (SGP.22 5.6.5): postponed/timeout keep the order Released, else Error.

        Either way the operator hears it (HandleDownloadProgressInfo, 5.3.5) at the
        point the download had reached, ``Failed`` with the CancelSessionReason; the
        point and the code (:func:`smdpp.status.session_cancelled`) are our choice,
        the SGP.22 text naming them was not available to us.
        """
        record = self.store.get(iccid)
        if record is None or record.transaction_id not in (None, transaction_id):
            return
        error = status.session_cancelled(f"cancelSession reason {reason}")
        if reason in RETRYABLE_CANCEL_REASONS and record.state is ProfileState.RELEASED:
            log.info("transactionId=%s: ICCID %s stays Released (cancel reason %d)",
                     transaction_id, iccid, reason)
        else:
            finished = self._finish(iccid, transaction_id, Event.SESSION_CANCELLED,
                                    error=f"cancelSession reason {reason}")
            if finished is None:
                return
            record = finished
        self.notifier.notify(record, self._point_reached(record), eid=eid, error=error)

    def downloads_expired(self, session_lifetime: float) -> int:
        """``Downloaded`` profiles whose BPP went out more than ``session_lifetime`` seconds
        ago (by the order store's clock) and no result came: their session has certainly
        expired (it began before the BPP went out), so :meth:`session_expired` after
        delivery.  Several processes may sweep at once: the compare-and-set lets one win."""
        before = self.store.clock() - session_lifetime
        stale = [record for record in self.store.profiles(ProfileState.DOWNLOADED)
                 if record.updated < before and record.transaction_id]
        for record in stale:
            self.session_expired(record.iccid, record.eid or "", str(record.transaction_id),
                                 True)
        return len(stale)

    def session_expired(self, iccid: str, eid: str, transaction_id: str,
                        bpp_delivered: bool) -> None:
        """The session expired before its end (SGP.22 3.1.3; our reading, see
        :mod:`smdpp.orders.states`): before the BPP went out the profile stays
        ``Released`` for a new attempt; after it, ``Downloaded`` -> ``Error`` and the
        operator hears it at point 4 (5.3.5), ``Failed`` with 8.10.1 / 4.10."""
        if not bpp_delivered:
            log.info("transactionId=%s: session expired before the BPP; ICCID %s stays as it "
                     "was for a new attempt", transaction_id, iccid)
            return
        record = self._finish(iccid, transaction_id, Event.SESSION_EXPIRED,
                              error="the session expired with no installation result")
        if record is not None:
            self.notifier.notify(record, NotificationPoint.BPP_INSTALLATION, eid=eid,
                                 error=status.session_expired(
                                     "the session expired after the Bound Profile Package "
                                     "went out, with no installation result"))
