"""Every SGP.22 status code smdpp answers, built in this one place.

A failed function carries a ``subjectCode`` (what the error is about) and a
``reasonCode`` (why) in its functionExecutionStatus (SGP.22 6.5.1.4).  The
function-specific pairs come from the ES9+ function descriptions of SGP.22
v2.x: 5.6.1 initiateAuthentication, 5.6.2 getBoundProfilePackage, 5.6.3
authenticateClient, 5.6.4 handleNotification, 5.6.5 cancelSession.  Where
SGP.22 names no code (a malformed request, the server's own failure) the
generic codes of the common status code tables SGP.22 shares with SGP.02 are
used: subject 1.2 with reason 2.1 (Invalid), 2.2 (Mandatory Element Missing)
or 4.2 (Execution Error).  In that table reason 4 is Processing Error and
its Execution Error is 4.2; there is no reason 4.1 (smdpp answered 1.2/4.1 before).

This module imports nothing of smdpp but :mod:`smdpp.errors`, so that
:mod:`smdpp.pki` can raise these codes without importing the RSP core.  No
other module writes a subject or reason code as a literal.
"""
from __future__ import annotations

from smdpp.errors import EuiccReportedError, SgpError

__all__ = [
    "SgpError", "EuiccReportedError", "CODES", "ORDER_ENDED",
    "malformed", "missing", "internal_error",
    "invalid_smdp_address", "svn_not_supported", "ci_not_supported", "unknown_ci",
    "unknown_transaction", "euicc_signature_invalid", "euicc_reported_error",
    "eum_certificate_invalid", "eum_certificate_expired",
    "euicc_certificate_invalid", "euicc_certificate_expired",
    "matching_id_refused", "no_eligible_profile", "invalid_smdp_oid",
    # ES2+ (SGP.22 5.3) and the order checks of ES9+
    "requester_unknown", "requester_not_allowed", "function_call_replayed",
    "iccid_unknown", "iccid_in_use", "iccid_not_allowed", "invalid_transition",
    "profile_type_unknown", "profile_type_unavailable", "eid_invalid_association",
    "matching_id_in_use", "matching_id_invalid_association", "eid_refused",
    "profile_not_released", "profile_unavailable", "confirmation_code_missing",
    "confirmation_code_refused", "confirmation_code_retries_exceeded",
    "installation_failed", "session_expired", "session_cancelled",
]

# (subjectCode, reasonCode) -> (meaning, SGP.22 section): the README's table
# of codes is this one, and tests check that every code raised is listed here.
CODES: dict[tuple[str, str], tuple[str, str]] = {
    ("1.2", "2.1"): ("a request element is present but invalid (malformed JSON, base64, "
                     "DER, wrong length, wrong path/method/headers)", "6.5.1.4, common codes"),
    ("1.2", "2.2"): ("a mandatory request element is missing", "6.5.1.4, common codes"),
    ("1.2", "4.2"): ("execution error: the server failed (its own I/O, or a bug)",
                     "6.5.1.4, common codes"),
    ("8.8.1", "3.8"): ("SM-DP+ address refused: not this server", "5.6.1, 5.6.3"),
    ("8.8.2", "3.1"): ("security configuration: none of the eUICC's CI keys is supported",
                       "5.6.1"),
    ("8.8.3", "3.1"): ("specification version number not supported", "5.6.1"),
    ("8.8", "3.10"): ("SM-DP+ OID in the eUICC's data is not ours (invalid association)",
                      "5.6.5"),
    ("8.11.1", "3.9"): ("CI public key unknown", "5.6.1, 5.6.3"),
    ("8.10.1", "3.9"): ("TransactionId unknown, expired, finished or in another state",
                        "5.6.2 to 5.6.5"),
    ("8.1", "6.1"): ("eUICC signature invalid, or the eUICC reported an error",
                     "5.6.2, 5.6.3, 5.6.4, 5.6.5"),
    ("8.1.2", "6.1"): ("EUM (or sub-CA) certificate invalid or revoked", "5.6.3"),
    ("8.1.2", "6.3"): ("EUM (or sub-CA) certificate expired or not yet valid", "5.6.3"),
    ("8.1.3", "6.1"): ("eUICC certificate invalid or revoked", "5.6.3"),
    ("8.1.3", "6.3"): ("eUICC certificate expired or not yet valid", "5.6.3"),
    ("8.2.6", "3.8"): ("MatchingID refused: no profile for it", "5.6.2, 5.6.3"),
    ("8.2.5", "4.3"): ("no eligible profile for this eUICC", "5.6.3"),
    # ES2+ (the operator's side) and ES9+ against orders
    ("1.1", "1.1"): ("function requester unknown: no registered operator's client "
                     "certificate", "5.3, 6.5.1.4, common codes"),
    ("1.1", "1.2"): ("function requester not allowed: functionRequesterIdentifier is not the "
                     "certificate's operator", "5.3, 6.5.1.4, common codes"),
    ("1.1", "3.3"): ("functionCallIdentifier already used by this requester (our choice)",
                     "5.3, 6.5.1.3"),
    ("8.2.1", "3.9"): ("Profile ICCID unknown", "5.3.1 to 5.3.4"),
    ("8.2.1", "3.3"): ("Profile ICCID already in use (ordered)", "5.3.1"),
    ("8.2.1", "1.2"): ("Profile ICCID belongs to another operator's order", "5.3.1 to 5.3.4"),
    ("8.2.1", "3.5"): ("Profile ICCID: invalid state transition", "5.3.2 to 5.3.4"),
    ("8.2.5", "3.9"): ("Profile Type unknown", "5.3.1"),
    ("8.2.5", "3.7"): ("Profile Type: no Available profile left", "5.3.1"),
    ("8.1.1", "3.10"): ("EID differs from the order's (invalid association)", "5.3.2, 5.3.3"),
    ("8.2.6", "3.3"): ("MatchingID already in use", "5.3.2"),
    ("8.2.6", "3.10"): ("MatchingID is not the order's (invalid association)", "5.3.3"),
    ("8.1.1", "3.8"): ("EID refused: the order is for another eUICC", "5.6.3"),
    ("8.2", "1.2"): ("Profile not released for download yet", "5.6.3"),
    ("8.2", "3.7"): ("Profile unavailable: downloaded already, or in Error", "5.6.2, 5.6.3"),
    ("8.2", "4.2"): ("Profile installation failed on the eUICC (to the operator)", "5.3.5"),
    ("8.10.1", "4.10"): ("the download session expired before its end (to the operator; "
                         "our choice of code)", "5.3.5, 3.1.3"),
    ("8.1", "3.8"): ("the eUICC cancelled the download (cancelSession; to the operator; our "
                     "choice of code)", "5.3.5, 5.6.5"),
    ("8.2.7", "2.2"): ("Confirmation Code missing", "5.6.2"),
    ("8.2.7", "3.8"): ("Confirmation Code refused (wrong)", "5.6.2"),
    ("8.2.7", "6.4"): ("Confirmation Code: maximum number of retries exceeded", "5.6.2"),
}


def _error(subject: str, reason: str, message: str) -> SgpError:
    assert (subject, reason) in CODES, (subject, reason)
    return SgpError(subject, reason, message)


# -- generic (common status codes) ---------------------------------------------

def malformed(message: str) -> SgpError:
    """1.2 / 2.1: a request element is present but not valid (SGP.22 6.5.1.4)."""
    return _error("1.2", "2.1", message)


def missing(message: str) -> SgpError:
    """1.2 / 2.2: a mandatory request element is missing (SGP.22 6.5.1.4)."""
    return _error("1.2", "2.2", message)


def internal_error(message: str = "internal error") -> SgpError:
    """1.2 / 4.2: execution error on the server's side (SGP.22 6.5.1.4)."""
    return _error("1.2", "4.2", message)


# -- the SM-DP+ and its credentials ---------------------------------------------

def invalid_smdp_address(message: str) -> SgpError:
    """8.8.1 / 3.8: the smdpAddress is not this SM-DP+ (SGP.22 5.6.1, 5.6.3)."""
    return _error("8.8.1", "3.8", message)


def svn_not_supported(message: str) -> SgpError:
    """8.8.3 / 3.1: specification version number not supported (SGP.22 5.6.1)."""
    return _error("8.8.3", "3.1", message)


def ci_not_supported(message: str) -> SgpError:
    """8.8.2 / 3.1: no CI public key both sides support (SGP.22 5.6.1)."""
    return _error("8.8.2", "3.1", message)


def unknown_ci(message: str) -> SgpError:
    """8.11.1 / 3.9: unknown CI public key (SGP.22 5.6.1, 5.6.3)."""
    return _error("8.11.1", "3.9", message)


def invalid_smdp_oid(message: str) -> SgpError:
    """8.8 / 3.10: the SM-DP+ OID in the eUICC's data is not ours (SGP.22 5.6.5)."""
    return _error("8.8", "3.10", message)


# -- the session ------------------------------------------------------------------

def unknown_transaction(message: str) -> SgpError:
    """8.10.1 / 3.9: unknown (or no longer usable) TransactionId (SGP.22 5.6.2-5.6.5)."""
    return _error("8.10.1", "3.9", message)


# -- the eUICC and its certificates ----------------------------------------------

def euicc_signature_invalid(message: str) -> SgpError:
    """8.1 / 6.1: eUICC signature or signed content invalid (SGP.22 5.6.2-5.6.5)."""
    return _error("8.1", "6.1", message)


def euicc_reported_error(message: str) -> EuiccReportedError:
    """8.1 / 6.1 as :class:`EuiccReportedError`: the eUICC answered with an error
    (authenticateResponseError, SGP.22 5.6.3; downloadResponseError, 5.6.2)."""
    return EuiccReportedError("8.1", "6.1", message)


def eum_certificate_invalid(message: str) -> SgpError:
    """8.1.2 / 6.1: EUM certificate (or a sub-CA) invalid (SGP.22 5.6.3).

    SGP.22 has no reason of its own for a revoked certificate: revocation is
    "verification failed" (6.1)."""
    return _error("8.1.2", "6.1", message)


def eum_certificate_expired(message: str) -> SgpError:
    """8.1.2 / 6.3: EUM certificate (or a sub-CA) expired (SGP.22 5.6.3)."""
    return _error("8.1.2", "6.3", message)


def euicc_certificate_invalid(message: str) -> SgpError:
    """8.1.3 / 6.1: eUICC certificate invalid or revoked (SGP.22 5.6.3)."""
    return _error("8.1.3", "6.1", message)


def euicc_certificate_expired(message: str) -> SgpError:
    """8.1.3 / 6.3: eUICC certificate expired (SGP.22 5.6.3)."""
    return _error("8.1.3", "6.3", message)


# -- the profile ------------------------------------------------------------------

def matching_id_refused(message: str) -> SgpError:
    """8.2.6 / 3.8: no profile for this MatchingID (SGP.22 5.6.3)."""
    return _error("8.2.6", "3.8", message)


def no_eligible_profile(message: str) -> SgpError:
    """8.2.5 / 4.3: no profile can be offered to this eUICC (SGP.22 5.6.3)."""
    return _error("8.2.5", "4.3", message)


# -- ES2+ (SGP.22 5.3) and the order checks of ES9+ ---------------------------------

#: order refusals at getBoundProfilePackage after which its session cannot go on
ORDER_ENDED = frozenset({("8.2.7", "6.4"), ("8.2", "3.7")})

# Subject 1.1 is the function requester; SGP.22 names no pair for a replayed
# functionCallIdentifier, 1.1 / 3.3 (already in use) is ours.

def requester_unknown(message: str) -> SgpError:
    """1.1 / 1.1: the caller is not a known function requester (security)."""
    return _error("1.1", "1.1", message)


def requester_not_allowed(message: str) -> SgpError:
    """1.1 / 1.2: the function requester is not allowed to do this (authorisation)."""
    return _error("1.1", "1.2", message)


def function_call_replayed(message: str) -> SgpError:
    """1.1 / 3.3: this functionCallIdentifier was used before by the requester."""
    return _error("1.1", "3.3", message)


def iccid_unknown(message: str) -> SgpError:
    """8.2.1 / 3.9: no profile with this ICCID (SGP.22 5.3.1 - 5.3.4)."""
    return _error("8.2.1", "3.9", message)


def iccid_in_use(message: str) -> SgpError:
    """8.2.1 / 3.3: the profile is already ordered (SGP.22 5.3.1)."""
    return _error("8.2.1", "3.3", message)


def iccid_not_allowed(message: str) -> SgpError:
    """8.2.1 / 1.2: the profile belongs to another operator's order."""
    return _error("8.2.1", "1.2", message)


def invalid_transition(message: str) -> SgpError:
    """8.2.1 / 3.5: the profile's state does not allow the function (SGP.22 5.3.2 - 5.3.4)."""
    return _error("8.2.1", "3.5", message)


def profile_type_unknown(message: str) -> SgpError:
    """8.2.5 / 3.9: no profile of this profileType in the pool (SGP.22 5.3.1)."""
    return _error("8.2.5", "3.9", message)


def profile_type_unavailable(message: str) -> SgpError:
    """8.2.5 / 3.7: no Available profile of this profileType is left (SGP.22 5.3.1)."""
    return _error("8.2.5", "3.7", message)


def eid_invalid_association(message: str) -> SgpError:
    """8.1.1 / 3.10: the EID differs from the one the order is linked to (SGP.22 5.3.2, 5.3.3)."""
    return _error("8.1.1", "3.10", message)


def matching_id_in_use(message: str) -> SgpError:
    """8.2.6 / 3.3: the matchingId is already another order's (SGP.22 5.3.2)."""
    return _error("8.2.6", "3.3", message)


def matching_id_invalid_association(message: str) -> SgpError:
    """8.2.6 / 3.10: the matchingId is not the order's (SGP.22 5.3.3)."""
    return _error("8.2.6", "3.10", message)


def eid_refused(message: str) -> SgpError:
    """8.1.1 / 3.8: the eUICC is not the one the order is for (SGP.22 5.6.3)."""
    return _error("8.1.1", "3.8", message)


def profile_not_released(message: str) -> SgpError:
    """8.2 / 1.2: the ordered profile is not released for download yet (SGP.22 5.6.3)."""
    return _error("8.2", "1.2", message)


def profile_unavailable(message: str) -> SgpError:
    """8.2 / 3.7: the profile was downloaded already or is no longer available (SGP.22 5.6.2, 5.6.3)."""
    return _error("8.2", "3.7", message)


def installation_failed(message: str) -> SgpError:
    """8.2 / 4.2: the eUICC reported a failed installation (to the operator, SGP.22 5.3.5)."""
    return _error("8.2", "4.2", message)


def session_expired(message: str) -> SgpError:
    """8.10.1 / 4.10: the download session (TransactionId) reached its time to live before
    the eUICC's result came; told to the operator (SGP.22 5.3.5).  Our choice of pair: the
    spec text naming one was not available; 4.10 is "Time to Live Expired" of the common
    reason codes."""
    return _error("8.10.1", "4.10", message)


def session_cancelled(message: str) -> SgpError:
    """8.1 / 3.8: the eUICC (LPA, user) cancelled the download with ES9+.CancelSession
    (SGP.22 5.6.5); told to the operator (5.3.5), the CancelSessionReason in the message.
    Our choice of pair (subject eUICC, reason Refused): the spec text was not available."""
    return _error("8.1", "3.8", message)


def confirmation_code_missing(message: str) -> SgpError:
    """8.2.7 / 2.2: the order needs a Confirmation Code and none came (SGP.22 5.6.2)."""
    return _error("8.2.7", "2.2", message)


def confirmation_code_refused(message: str) -> SgpError:
    """8.2.7 / 3.8: the Confirmation Code is wrong (SGP.22 5.6.2)."""
    return _error("8.2.7", "3.8", message)


def confirmation_code_retries_exceeded(message: str) -> SgpError:
    """8.2.7 / 6.4: too many wrong Confirmation Codes; the order is in Error (SGP.22 5.6.2)."""
    return _error("8.2.7", "6.4", message)
