"""The RSP session state machine in one table (SGP.22 3.1.2 / 3.1.3).

One session covers one Common Mutual Authentication followed by one profile
download, identified by the SM-DP+-generated TransactionId.  Each ES9+
function may run only in the states listed for it below; anything else (a
replay, an out-of-order call, a finished or expired session) is refused with
8.10.1 / 3.9 (SGP.22 5.6.2 to 5.6.5).  The whole machine:

=========================================  ==============  ==================
function                                   in state        next state
=========================================  ==============  ==================
initiateAuthentication (5.6.1)             (none)          initiated
authenticateClient (5.6.3)                 initiated       authenticated
getBoundProfilePackage (5.6.2)             authenticated   bpp_delivered
getBoundProfilePackage, a retry            bpp_delivered   bpp_delivered
handleNotification (5.6.4)                 bpp_delivered   done
handleNotification, a repeat               done            done
cancelSession (5.6.5)                      authenticated   cancelled
cancelSession (5.6.5)                      bpp_delivered   cancelled
authenticateClient: the eUICC's error      initiated       cancelled (FAILED)
getBoundProfilePackage: the eUICC's        authenticated,  cancelled (FAILED)
error, or the profile is gone              bpp_delivered
any call after ``expires``                 any live one    expired (EXPIRED)
=========================================  ==============  ==================

``done``, ``cancelled`` and ``expired`` are the end states: only the
recorded result remains (:meth:`~smdpp.rsp.session.Session.finish`).
"""
from __future__ import annotations

import enum


class Es9Function(str, enum.Enum):
    """The ES9+ functions of the SM-DP+ (SGP.22 5.6), by their JSON path names."""

    INITIATE_AUTHENTICATION = "initiateAuthentication"
    AUTHENTICATE_CLIENT = "authenticateClient"
    GET_BOUND_PROFILE_PACKAGE = "getBoundProfilePackage"
    HANDLE_NOTIFICATION = "handleNotification"
    CANCEL_SESSION = "cancelSession"


class SessionState(str, enum.Enum):
    """Named states of an RSP session (the values are what the stores keep)."""

    INITIATED = "initiated"
    AUTHENTICATED = "authenticated"
    BPP_DELIVERED = "bpp_delivered"
    DONE = "done"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def finished(self) -> bool:
        """True once nothing but the recorded result remains."""
        return self in END_STATES


_F, _S = Es9Function, SessionState

#: (function, state the session is in) -> the state after the function succeeds;
#: None for the function that creates the session.
TRANSITIONS: dict[tuple[Es9Function, SessionState | None], SessionState] = {
    (_F.INITIATE_AUTHENTICATION, None): _S.INITIATED,
    (_F.AUTHENTICATE_CLIENT, _S.INITIATED): _S.AUTHENTICATED,
    (_F.GET_BOUND_PROFILE_PACKAGE, _S.AUTHENTICATED): _S.BPP_DELIVERED,
    # SGP.22 3.1.3.2: the LPA may ask again (same or new otPK.EUICC.ECKA)
    (_F.GET_BOUND_PROFILE_PACKAGE, _S.BPP_DELIVERED): _S.BPP_DELIVERED,
    (_F.HANDLE_NOTIFICATION, _S.BPP_DELIVERED): _S.DONE,
    # an LPA may send a notification again until it is acknowledged
    (_F.HANDLE_NOTIFICATION, _S.DONE): _S.DONE,
    (_F.CANCEL_SESSION, _S.AUTHENTICATED): _S.CANCELLED,
    (_F.CANCEL_SESSION, _S.BPP_DELIVERED): _S.CANCELLED,
}

#: The states in which a session has ended.
END_STATES = frozenset({_S.DONE, _S.CANCELLED, _S.EXPIRED})

#: How a live session ends other than by its last function: the eUICC reported
#: an error (or its profile went away) -> FAILED; its lifetime passed -> EXPIRED.
FAILED = _S.CANCELLED
EXPIRED = _S.EXPIRED

#: function -> the states it may run in (derived from TRANSITIONS)
ALLOWED: dict[Es9Function, frozenset[SessionState]] = {
    function: frozenset(state for (f, state) in TRANSITIONS if f is function and state)
    for function in Es9Function
}


def next_state(function: Es9Function, state: SessionState | None) -> SessionState | None:
    """The state after ``function`` succeeds in ``state``; None if it may not run there."""
    return TRANSITIONS.get((function, state))
