"""The SGP.22 profile state machine of the SM-DP+, as one explicit table.

SGP.22 3.1 and 5.3 give each profile of the SM-DP+ a state seen by the
operator: ``Available`` in the pool; ``Allocated`` (ES2+.DownloadOrder
without EID) or ``Linked`` (with EID); ``Confirmed`` (ES2+.ConfirmOrder) or
``Released`` (ConfirmOrder with releaseFlag, or ES2+.ReleaseProfile), when
an LPA may download it; ``Downloaded`` once the Bound Profile Package went
out (ES9+.GetBoundProfilePackage, 5.6.2); ``Installed`` or ``Error`` after
the eUICC's ProfileInstallationResult (ES9+.HandleNotification, 5.6.4);
``Unavailable`` for good.  ES2+.CancelOrder (5.3.3) puts an order's profile
back to ``Available`` or takes it out as ``Unavailable``, as the operator's
finalProfileStatusIndicator says.

Our reading where SGP.22 leaves the SM-DP+ a choice:

* ES9+.CancelSession (5.6.5) with the reasons ``postponed`` or ``timeout``
  keeps the profile ``Released`` so that the user can try again; the other
  reasons (rejection by the user, PPR not allowed, metadata mismatch, a
  failed BPP load, undefined) put it in ``Error``.
* Too many wrong Confirmation Codes (3.1.3, 5.6.2) put it in ``Error``.
* A session that expires (3.1.3: an RSP session has a limited lifetime)
  before the Bound Profile Package went out leaves the profile ``Released``
  so that the subscriber can try again; one that expires after it went out,
  with no ProfileInstallationResult, puts it in ``Error`` (the BPP may be on
  the eUICC) and the operator hears it (5.3.5).  The SGP.22 text on expiry
  was not available to us: this is our choice.
* A profile that was ``Downloaded`` never goes back to ``Available``: it may
  be on an eUICC, and one profile goes to one eUICC only.

Every change is a compare-and-set in the order store, so two processes can
never both take the same step (:mod:`smdpp.orders.store`).
"""
from __future__ import annotations

import enum


class ProfileState(str, enum.Enum):
    """Profile states of SGP.22 (the ES2+ names)."""

    AVAILABLE = "Available"
    ALLOCATED = "Allocated"
    LINKED = "Linked"
    CONFIRMED = "Confirmed"
    RELEASED = "Released"
    DOWNLOADED = "Downloaded"
    INSTALLED = "Installed"
    ERROR = "Error"
    UNAVAILABLE = "Unavailable"


class Event(str, enum.Enum):
    """What moves a profile: an ES2+ call of the operator or an ES9+ step of the eUICC."""

    DOWNLOAD_ORDER = "downloadOrder"  # ES2+ 5.3.1, no EID
    DOWNLOAD_ORDER_EID = "downloadOrder+eid"  # ES2+ 5.3.1, with EID
    CONFIRM = "confirmOrder"  # ES2+ 5.3.2, releaseFlag false
    CONFIRM_RELEASE = "confirmOrder+release"  # ES2+ 5.3.2, releaseFlag true
    RELEASE = "releaseProfile"  # ES2+ 5.3.4
    CANCEL_AVAILABLE = "cancelOrder:Available"  # ES2+ 5.3.3
    CANCEL_UNAVAILABLE = "cancelOrder:Unavailable"  # ES2+ 5.3.3
    BPP_DOWNLOADED = "getBoundProfilePackage"  # ES9+ 5.6.2
    CC_RETRIES_EXCEEDED = "confirmationCode:retriesExceeded"  # ES9+ 5.6.2
    INSTALLED = "profileInstallationResult:success"  # ES9+ 5.6.4
    INSTALL_FAILED = "profileInstallationResult:error"  # ES9+ 5.6.4
    SESSION_CANCELLED = "cancelSession"  # ES9+ 5.6.5, a reason that ends the order
    SESSION_EXPIRED = "session:expired"  # 3.1.3, after the BPP went out, no result


S = ProfileState
_ORDERED = (S.ALLOCATED, S.LINKED, S.CONFIRMED, S.RELEASED)

#: event -> {state before: state after}; a pair missing here is an invalid transition.
TRANSITIONS: dict[Event, dict[ProfileState, ProfileState]] = {
    Event.DOWNLOAD_ORDER: {S.AVAILABLE: S.ALLOCATED},
    Event.DOWNLOAD_ORDER_EID: {S.AVAILABLE: S.LINKED},
    Event.CONFIRM: {S.ALLOCATED: S.CONFIRMED, S.LINKED: S.CONFIRMED},
    Event.CONFIRM_RELEASE: {S.ALLOCATED: S.RELEASED, S.LINKED: S.RELEASED},
    Event.RELEASE: {S.CONFIRMED: S.RELEASED},
    Event.CANCEL_AVAILABLE: {**{s: S.AVAILABLE for s in _ORDERED}, S.ERROR: S.AVAILABLE},
    Event.CANCEL_UNAVAILABLE: {**{s: S.UNAVAILABLE for s in _ORDERED},
                               S.ERROR: S.UNAVAILABLE, S.DOWNLOADED: S.UNAVAILABLE},
    Event.BPP_DOWNLOADED: {S.RELEASED: S.DOWNLOADED},
    Event.CC_RETRIES_EXCEEDED: {S.RELEASED: S.ERROR},
    Event.INSTALLED: {S.DOWNLOADED: S.INSTALLED},
    Event.INSTALL_FAILED: {S.DOWNLOADED: S.ERROR},
    Event.SESSION_CANCELLED: {S.RELEASED: S.ERROR, S.DOWNLOADED: S.ERROR},
    Event.SESSION_EXPIRED: {S.DOWNLOADED: S.ERROR},
}

#: States in which a profile belongs to an order that CancelOrder may end.
CANCELLABLE = frozenset(TRANSITIONS[Event.CANCEL_UNAVAILABLE])


class InvalidTransition(ValueError):
    """The event is not allowed in the profile's state."""

    def __init__(self, state: ProfileState, event: Event) -> None:
        super().__init__(f"{event.value} is not allowed in state {state.value}")
        self.state = state
        self.event = event


def next_state(state: ProfileState, event: Event) -> ProfileState:
    """The state after ``event`` in ``state``; :class:`InvalidTransition` if not allowed."""
    after = TRANSITIONS[event].get(state)
    if after is None:
        raise InvalidTransition(state, event)
    return after
