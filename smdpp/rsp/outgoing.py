"""The data objects the SM-DP+ sends over ES9+, encoded (SGP.22 5.6.1, 5.6.3, 5.5.3).

The counterpart of :mod:`smdpp.rsp.messages`, which parses what the eUICC
sends.  ServerSigned1 and SmdpSigned2 are on every download and tiny, so they
are built directly as DER TLVs rather than through the ASN.1 compiler; the
StoreMetadataRequest goes through asn1tools (the engine encodes it once per
profile, see :mod:`smdpp.rsp.caches`).  The bytes returned are the bytes
signed and sent: nobody re-encodes them.
"""
from __future__ import annotations

from typing import Any

from smdpp import asn1
from smdpp.asn1.tlv import encode_tlv
from smdpp.profiles.inventory import Profile
from smdpp.rsp.messages import SIGNATURE_TAG

__all__ = ["SIGNATURE_TAG", "PROFILE_CLASSES", "server_signed1", "smdp_signed2",
           "signature", "ci_pkid", "store_metadata_request"]

# ProfileClass of SGP.22 2.4.x / StoreMetadataRequest
PROFILE_CLASSES = {"test": 0, "provisioning": 1, "operational": 2}
_DEFAULT_PROFILE_CLASS = PROFILE_CLASSES["operational"]
# ccRequiredFlag BOOLEAN as DER TLVs (TRUE is FF), ready made: it is on every download
_CC_REQUIRED_FLAG = {False: b"\x01\x01\x00", True: b"\x01\x01\xff"}


def server_signed1(transaction_id: bytes, euicc_challenge: bytes, server_address: str,
                   server_challenge: bytes) -> bytes:
    """ServerSigned1 (SGP.22 5.6.1): [0] transactionId, [1] euiccChallenge,
    [3] serverAddress, [4] serverChallenge."""
    return encode_tlv(b"\x30", encode_tlv(b"\x80", transaction_id)
                      + encode_tlv(b"\x81", euicc_challenge)
                      + encode_tlv(b"\x83", server_address.encode())
                      + encode_tlv(b"\x84", server_challenge))


def smdp_signed2(transaction_id: bytes, cc_required: bool = False) -> bytes:
    """SmdpSigned2 (SGP.22 5.6.3): [0] transactionId, ccRequiredFlag BOOLEAN (DER: FF / 00)."""
    return encode_tlv(b"\x30", encode_tlv(b"\x80", transaction_id)
                      + _CC_REQUIRED_FLAG[bool(cc_required)])


def signature(value: bytes) -> bytes:
    """A '5F37' signature data object around a plain r||s ECDSA signature."""
    return encode_tlv(SIGNATURE_TAG, value)


def ci_pkid(pkid: bytes) -> bytes:
    """euiccCiPKIdToBeUsed (SGP.22 5.6.1): SubjectKeyIdentifier, an OCTET STRING."""
    return encode_tlv(b"\x04", pkid)


def store_metadata_request(profile: Profile) -> bytes:
    """StoreMetadataRequest ('BF25', SGP.22 5.5.3) announcing ``profile``."""
    metadata: dict[str, Any] = {
        "iccid": profile.iccid_ef,
        "serviceProviderName": profile.service_provider_name[:32],
        "profileName": profile.profile_name[:64],
    }
    profile_class = PROFILE_CLASSES.get(profile.profile_class, _DEFAULT_PROFILE_CLASS)
    if profile_class != _DEFAULT_PROFILE_CLASS:  # DER leaves out a DEFAULT value
        metadata["profileClass"] = profile_class
    return asn1.rsp().encode("StoreMetadataRequest", metadata)
