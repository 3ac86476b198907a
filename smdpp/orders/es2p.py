"""ES2+ of the SM-DP+ (SGP.22 5.3, 6.5), sans I/O: the operator's side of orders.

:class:`Es2pCore` takes the decoded JSON body of one ES2+ request and the
function requester that the transport authenticated (the operator bound to
the TLS client certificate), and answers the result fields or raises
:class:`~smdpp.errors.SgpError` with the SGP.22 codes of
:mod:`smdpp.status`.  Nothing here knows about HTTP or TLS.

Every request carries ``header.functionRequesterIdentifier`` and
``header.functionCallIdentifier`` (SGP.22 6.5.1.3): the identifier must be
the authenticated operator's, and a call identifier is accepted once per
operator (a replay changes nothing).  A request that fails changes nothing.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from smdpp.errors import SgpError
from smdpp.orders import identifiers
from smdpp.orders.states import CANCELLABLE, Event, InvalidTransition, ProfileState, next_state
from smdpp.orders.store import OrderStore, ProfileRecord
from smdpp.orders.templates import personalize_ordered
from smdpp import status

log = logging.getLogger(__name__)

MAX_ID = 128  # characters of functionRequesterIdentifier / functionCallIdentifier
_FINAL_STATUS = {"Available": Event.CANCEL_AVAILABLE, "Unavailable": Event.CANCEL_UNAVAILABLE}
#: attempts at a compare-and-set before a call gives up on a profile other calls keep changing
_CAS_ATTEMPTS = 5


def _text(value: Any, name: str, limit: int = MAX_ID) -> str:
    if not isinstance(value, str):
        raise status.missing(f"{name} is missing") if value is None else \
            status.malformed(f"{name} must be a string")
    if not 0 < len(value) <= limit or not value.isprintable():
        raise status.malformed(f"{name} must be 1 to {limit} printable characters")
    return value


def _optional(body: dict[str, Any], name: str, check: Callable[[Any], str]) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    try:
        return check(value)
    except ValueError as exc:
        raise status.malformed(str(exc)) from None


def _iccid(body: dict[str, Any]) -> str:
    if body.get("iccid") is None:
        raise status.missing("iccid is missing")
    return _optional(body, "iccid", identifiers.normalise_iccid) or ""


class Es2pCore:
    """DownloadOrder, ConfirmOrder, CancelOrder and ReleaseProfile over one :class:`OrderStore`."""

    def __init__(self, store: OrderStore, smdp_address: str) -> None:
        self.store = store
        self.smdp_address = smdp_address
        self.functions: dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]] = {
            "downloadOrder": self.download_order,
            "confirmOrder": self.confirm_order,
            "cancelOrder": self.cancel_order,
            "releaseProfile": self.release_profile,
        }

    def call(self, function: str, operator: str, body: dict[str, Any]) -> dict[str, Any]:
        """Run one ES2+ function for ``operator`` (the authenticated requester)."""
        header = body.get("header")
        if not isinstance(header, dict):
            raise status.missing("header is missing")
        requester = _text(header.get("functionRequesterIdentifier"),
                          "header.functionRequesterIdentifier")
        call_id = _text(header.get("functionCallIdentifier"), "header.functionCallIdentifier")
        if requester != operator:
            raise status.requester_not_allowed(
                f"functionRequesterIdentifier {requester[:64]!r} is not the one of this "
                f"client certificate ({operator})")
        handler = self.functions.get(function)
        if handler is None:
            raise status.malformed(f"unknown ES2+ function {function[:64]!r}")
        if not self.store.remember_call(operator, call_id):
            raise status.function_call_replayed(
                f"functionCallIdentifier {call_id[:64]!r} was used before")
        return handler(operator, body)

    # -- helpers ---------------------------------------------------------

    def _own(self, operator: str, iccid: str) -> ProfileRecord:
        record = self.store.get(iccid)
        if record is None:
            raise status.iccid_unknown(f"no profile with ICCID {iccid}")
        if record.operator is not None and record.operator != operator:
            raise status.iccid_not_allowed(f"ICCID {iccid} is ordered by another operator")
        return record

    def _step(self, operator: str, iccid: str, event: Event,
              check: Callable[[ProfileRecord], dict[str, Any]] | None = None) -> ProfileRecord:
        """Move the profile along ``event`` as one compare-and-set; re-read and retry on a race."""
        for _ in range(_CAS_ATTEMPTS):
            record = self._own(operator, iccid)
            try:
                after = next_state(record.state, event)
            except InvalidTransition as exc:
                raise status.invalid_transition(f"ICCID {iccid}: {exc}") from None
            fields = check(record) if check is not None else {}
            if self.store.update(record, after, **fields):
                log.info("ES2+ %s: ICCID %s %s -> %s", operator, iccid, record.state.value,
                         after.value)
                updated = self.store.get(iccid)
                assert updated is not None
                return updated
            if "matching_id" in fields and self.store.matching_id_in_use(fields["matching_id"]):
                raise status.matching_id_in_use(f"matchingId {fields['matching_id']} is "
                                                f"already in use")
        raise status.invalid_transition(f"ICCID {iccid} changed during the call; try again")

    # -- ES2+.DownloadOrder (SGP.22 5.3.1) -----------------------------------

    def download_order(self, operator: str, body: dict[str, Any]) -> dict[str, Any]:
        """Reserve a profile (the ICCID given, or one of the profileType) for an order."""
        eid = _optional(body, "eid", identifiers.check_eid)
        iccid = _optional(body, "iccid", identifiers.normalise_iccid)
        profile_type = _optional(body, "profileType", lambda v: _text(v, "profileType", 64))
        if iccid is None and profile_type is None:
            raise status.missing("iccid or profileType is required")
        event = Event.DOWNLOAD_ORDER_EID if eid else Event.DOWNLOAD_ORDER
        to = next_state(ProfileState.AVAILABLE, event)
        record = self.store.allocate(profile_type if iccid is None else None, iccid, to,
                                     eid=eid, operator=operator, ordered=self.store.clock())
        if record is None:
            if iccid is not None:
                known = self.store.get(iccid)
                if known is None:
                    raise status.iccid_unknown(f"no profile with ICCID {iccid}")
                raise status.iccid_in_use(f"ICCID {iccid} is {known.state.value}, "
                                          "not Available")
            if profile_type not in self.store.counts():
                raise status.profile_type_unknown(f"no profile of type {profile_type!r}")
            raise status.profile_type_unavailable(f"no Available profile of type "
                                                  f"{profile_type!r} is left")
        if record.template is not None:  # a CSV row: personalized now, at order time
            try:
                personalize_ordered(self.store, record)
            except ValueError as exc:
                self.store.update(record, next_state(record.state, Event.CANCEL_UNAVAILABLE),
                                  error=str(exc)[:200])
                log.error("ES2+ %s: downloadOrder: %s; the profile is now Unavailable",
                          operator, exc)
                raise status.internal_error(f"ICCID {record.iccid} could not be personalized")
        log.info("ES2+ %s: downloadOrder ICCID %s (%s) -> %s%s", operator, record.iccid,
                 record.profile_type, record.state.value, f", EID {eid}" if eid else "")
        return {"iccid": record.iccid}

    # -- ES2+.ConfirmOrder (SGP.22 5.3.2) ------------------------------------

    def confirm_order(self, operator: str, body: dict[str, Any]) -> dict[str, Any]:
        """Confirm an order: matchingId, optional EID and Confirmation Code, release or not."""
        iccid = _iccid(body)
        eid = _optional(body, "eid", identifiers.check_eid)
        release = body.get("releaseFlag")
        if release is None:
            raise status.missing("releaseFlag is missing")
        if not isinstance(release, bool):
            raise status.malformed("releaseFlag must be true or false")
        matching_id: str | None
        if "matchingId" in body and body["matchingId"] == "":
            matching_id = None  # the default SM-DP+ address case: found by EID (SGP.22 3.1.3)
        else:
            matching_id = (_optional(body, "matchingId", identifiers.check_matching_id)
                           or identifiers.new_matching_id())
        cc = body.get("confirmationCode")
        cc_hash = None
        if cc is not None:
            try:
                cc_hash = identifiers.confirmation_code_hash(cc)
            except ValueError as exc:
                raise status.malformed(str(exc)) from None
        if matching_id is not None and self.store.matching_id_in_use(matching_id):
            raise status.matching_id_in_use(f"matchingId {matching_id} is already in use")

        def check(record: ProfileRecord) -> dict[str, Any]:
            if eid and record.eid and eid != record.eid:
                raise status.eid_invalid_association(f"ICCID {iccid} is linked to another EID")
            linked = eid or record.eid
            if matching_id is None and not linked:
                raise status.malformed("an empty matchingId needs an EID")
            return {"eid": linked, "matching_id": matching_id, "cc_hash": cc_hash,
                    "cc_attempts": 0}

        event = Event.CONFIRM_RELEASE if release else Event.CONFIRM
        record = self._step(operator, iccid, event, check)
        result: dict[str, Any] = {"matchingId": record.matching_id or ""}
        if record.eid:
            result["eid"] = record.eid
        result["smdpAddress"] = self.smdp_address
        return result

    # -- ES2+.CancelOrder (SGP.22 5.3.3) -------------------------------------

    def cancel_order(self, operator: str, body: dict[str, Any]) -> dict[str, Any]:
        """End an order: the profile goes back to the pool or out of it."""
        iccid = _iccid(body)
        eid = _optional(body, "eid", identifiers.check_eid)
        matching_id = _optional(body, "matchingId", identifiers.check_matching_id)
        final = body.get("finalProfileStatusIndicator")
        if final is None:
            raise status.missing("finalProfileStatusIndicator is missing")
        event = _FINAL_STATUS.get(final) if isinstance(final, str) else None
        if event is None:
            raise status.malformed("finalProfileStatusIndicator must be Available or "
                                   "Unavailable")

        def check(record: ProfileRecord) -> dict[str, Any]:
            if record.state not in CANCELLABLE:
                raise status.invalid_transition(f"ICCID {iccid} is {record.state.value}: no "
                                                "order to cancel")
            if eid and record.eid != eid:
                raise status.eid_invalid_association(f"ICCID {iccid} is not linked to this EID")
            if matching_id and record.matching_id != matching_id:
                raise status.matching_id_invalid_association(
                    f"matchingId is not the one of ICCID {iccid}")
            if event is Event.CANCEL_AVAILABLE and record.delivered:
                # it may be on an eUICC: one profile goes to one eUICC only
                raise status.invalid_transition(f"ICCID {iccid} was downloaded; it can only "
                                                "become Unavailable")
            if event is Event.CANCEL_AVAILABLE:
                return {"eid": None, "matching_id": None, "cc_hash": None, "cc_attempts": 0,
                        "operator": None, "transaction_id": None, "error": None,
                        "ordered": None}
            return {}

        self._step(operator, iccid, event, check)
        return {}

    # -- ES2+.ReleaseProfile (SGP.22 5.3.4) ----------------------------------

    def release_profile(self, operator: str, body: dict[str, Any]) -> dict[str, Any]:
        """Release a Confirmed order for download."""
        self._step(operator, _iccid(body), Event.RELEASE)
        return {}
