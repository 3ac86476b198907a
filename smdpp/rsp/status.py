"""SGP.22 status codes (subjectCode / reasonCode) raised by the RSP engine.

The pairs come from the ES9+ function descriptions of SGP.22 v2.x
(5.6.1 initiateAuthentication, 5.6.2 getBoundProfilePackage, 5.6.3
authenticateClient, 5.6.4 handleNotification, 5.6.5 cancelSession).  Format
errors in a request that SGP.22 leaves unnamed use subject 1.2 with reason 2.1
(invalid) or 2.2 (mandatory element missing).
"""
from __future__ import annotations

from smdpp.errors import SgpError


def invalid_smdp_address(message: str) -> SgpError:
    """8.8.1 / 3.8: the smdpAddress is not this SM-DP+ (5.6.1)."""
    return SgpError("8.8.1", "3.8", message)


def svn_not_supported(message: str) -> SgpError:
    """8.8.3 / 3.1: specification version number not supported (5.6.1)."""
    return SgpError("8.8.3", "3.1", message)


def unknown_transaction(message: str) -> SgpError:
    """8.10.1 / 3.9: unknown (or no longer usable) TransactionId."""
    return SgpError("8.10.1", "3.9", message)


def euicc_signature_invalid(message: str) -> SgpError:
    """8.1 / 6.1: eUICC signature or signed content invalid (5.6.2, 5.6.3, 5.6.5)."""
    return SgpError("8.1", "6.1", message)


def matching_id_refused(message: str) -> SgpError:
    """8.2.6 / 3.8: no profile for this MatchingID (5.6.3)."""
    return SgpError("8.2.6", "3.8", message)


def no_eligible_profile(message: str) -> SgpError:
    """8.2.5 / 4.3: no profile can be offered to this eUICC (5.6.3)."""
    return SgpError("8.2.5", "4.3", message)


def invalid_smdp_oid(message: str) -> SgpError:
    """8.8 / 3.10: the SM-DP+ OID in the eUICC's data is not ours (5.6.5)."""
    return SgpError("8.8", "3.10", message)


def malformed(message: str) -> SgpError:
    """1.2 / 2.1: a request element is present but not valid."""
    return SgpError("1.2", "2.1", message)


def missing(message: str) -> SgpError:
    """1.2 / 2.2: a mandatory request element is missing."""
    return SgpError("1.2", "2.2", message)
