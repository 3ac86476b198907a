"""Identifiers of ES2+ orders: ICCID, EID, matchingId and the Confirmation Code hash.

* ICCIDs arrive in ES2+ with 19 or 20 digits, and a 19-digit one possibly
  padded to 20 with ``F`` (SGP.22 6.5.2 ``iccid``; pySim's client always
  pads): :func:`normalise_iccid` gives the digits alone, the store's key.
* A matchingId the SM-DP+ generates (SGP.22 5.3.2) must be unguessable and
  go into every LPA: :func:`new_matching_id` draws 120 bits and writes them
  in upper-case base32 groups (letters, digits and '-', SGP.22 4.1).
* The Confirmation Code is never kept in clear: the order holds
  SHA-256(CC), exactly what SGP.22 3.1.3 / 5.6.2 hash on, and
  :func:`hash_cc_matches` checks the eUICC's hashCc =
  SHA-256(SHA-256(CC) | TransactionID) against it.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from smdpp.pki.eid import eid_is_valid

MATCHING_ID_BITS = 120
_ICCID = re.compile(r"[0-9]{19,20}|[0-9]{19}[Ff]")
_MATCHING_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
MAX_CONFIRMATION_CODE = 256  # characters; SGP.22 sets no length, an operator's code is short


def normalise_iccid(value: object) -> str:
    """The ICCID digits without padding; ValueError naming the problem.

    Accepts 19 or 20 digits, and 19 digits followed by the padding ``F``.
    """
    if not isinstance(value, str) or not _ICCID.fullmatch(value):
        raise ValueError("iccid must be 19 or 20 digits (19 digits may be padded with F)")
    return value[:19] if value[19:].upper() == "F" else value


def padded_iccid(iccid: str) -> str:
    """The ICCID as 20 characters, a 19-digit one padded with ``F`` (what older clients expect)."""
    return iccid + "F" if len(iccid) == 19 else iccid


def check_eid(value: object) -> str:
    """The EID if it is 32 digits with valid check digits; else ValueError."""
    if not isinstance(value, str) or not eid_is_valid(value):
        raise ValueError("eid must be 32 digits with valid check digits")
    return value


def check_matching_id(value: object) -> str:
    """A matchingId an operator gives: 1 to 64 letters, digits or '-' (what LPAs accept)."""
    if not isinstance(value, str) or not _MATCHING_ID.fullmatch(value):
        raise ValueError("matchingId must be 1 to 64 letters, digits or '-'")
    return value


def new_matching_id() -> str:
    """A fresh matchingId: 120 random bits as six groups of four base32 characters."""
    text = base64.b32encode(secrets.token_bytes(MATCHING_ID_BITS // 8)).decode("ascii")
    return "-".join(text[i:i + 4] for i in range(0, len(text), 4))


def confirmation_code_hash(code: str) -> bytes:
    """SHA-256 of the Confirmation Code's UTF-8 bytes (SGP.22 3.1.3), the only form stored."""
    if not isinstance(code, str) or not 0 < len(code) <= MAX_CONFIRMATION_CODE:
        raise ValueError(f"confirmationCode must be 1 to {MAX_CONFIRMATION_CODE} characters")
    return hashlib.sha256(code.encode("utf-8")).digest()


def expected_hash_cc(cc_hash: bytes, transaction_id: bytes) -> bytes:
    """hashCc of SGP.22 3.1.3 / 5.6.2: SHA-256(SHA-256(CC) | TransactionID)."""
    return hashlib.sha256(cc_hash + transaction_id).digest()


def hash_cc_matches(cc_hash: bytes, transaction_id: bytes, hash_cc: bytes) -> bool:
    """True if the eUICC's ``hash_cc`` fits the stored SHA-256(CC) in this session."""
    return hmac.compare_digest(expected_hash_cc(cc_hash, transaction_id), hash_cc)
