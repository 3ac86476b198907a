"""What the eUICC reports after ES10b.LoadBoundProfilePackage (SGP.22 5.7.6).

- the ICCID codings: StoreMetadata carries it as in EF.ICCID (tag '5A', each
  byte's nibbles swapped, SGP.22 2.2 ``Iccid``), the PE-Header of the profile
  package in plain BCD (SAIP ProfileHeader ``iccid`` '83');
- the mapping of a failed BPP step to ``bppCommandId`` and ``errorReason``;
- the ProfileInstallationResultData (BF27) the eUICC signs.
"""
from __future__ import annotations

from smdpp.asn1 import rsp
from smdpp.asn1.tlv import TlvError, encode_tlv, read_tlv

__all__ = [
    "BPP_COMMAND",
    "ERROR_REASON",
    "iccid_from_ef",
    "iccid_from_bcd",
    "upp_header_iccid",
    "classify_bpp_error",
    "SIMA_RESPONSE_OK",
    "encode_pir_data",
    "encode_pir",
]

#: BppCommandId (SGP.22 5.7.6).
BPP_COMMAND = {
    "initialiseSecureChannel": 0, "configureISDP": 1, "storeMetadata": 2,
    "storeMetadata2": 3, "replaceSessionKeys": 4, "loadProfileElements": 5,
}
#: ErrorReason (SGP.22 5.7.6).
ERROR_REASON = {
    "incorrectInputValues": 1, "invalidSignature": 2, "invalidTransactionId": 3,
    "unsupportedCrtValues": 4, "unsupportedRemoteOperationType": 5,
    "unsupportedProfileClass": 6, "scp03tStructureError": 7, "scp03tSecurityError": 8,
    "installFailedDueToIccidAlreadyExistsOnEuicc": 9,
    "installFailedDueToInsufficientMemoryForProfile": 10,
    "installFailedDueToInterruption": 11, "installFailedDueToPEProcessingError": 12,
    "installFailedDueToDataMismatch": 13, "testProfileInstallFailedDueToInvalidNaaKey": 14,
    "pprNotAllowed": 15, "installFailedDueToUnknownError": 127,
}

#: SAIP EUICCResponse for a package processed without error: peStatus holding one
#: PEStatus with status ok(0):  30 { A0 { 30 { 80 01 00 } } }.
SIMA_RESPONSE_OK = bytes.fromhex("3007a0053003800100")


def iccid_from_ef(value: bytes) -> str:
    """The ICCID digits of an EF.ICCID coded value (nibble-swapped BCD, 'F' filler)."""
    swapped = bytes(((b & 0x0F) << 4) | (b >> 4) for b in value)
    return swapped.hex().rstrip("f")


def iccid_from_bcd(value: bytes) -> str:
    """The ICCID digits of a plain BCD value ('F' filler), as in the SAIP PE-Header."""
    return value.hex().rstrip("f")


def upp_header_iccid(upp: bytes) -> bytes:
    """The ``iccid`` ('83') of the PE-Header, the first element of a profile package.

    ValueError if the package does not start with a ProfileHeader ('A0') holding
    a 10-byte iccid.
    """
    try:
        header = read_tlv(upp)
        if header.tag != b"\xa0":
            raise ValueError(f"first profile element has tag {header.tag.hex()}, not a PE-Header (a0)")
        iccid = header.child(b"\x83")
    except TlvError as exc:
        raise ValueError(f"profile package does not start with a PE-Header: {exc}") from None
    if iccid is None or len(iccid.value) != 10:
        raise ValueError("PE-Header carries no 10-byte iccid")
    return iccid.value


# Which BPP part a BspError message names -> bppCommandId.  The ES8+ opener names
# the failed step in its message (smdpp.es8p.opening); the longest match wins,
# so "secondSequenceOf87" is not taken for "Sequence..." of another part.
_PARTS = (
    ("InitialiseSecureChannelRequest", "initialiseSecureChannel"),
    ("smdpSign", "initialiseSecureChannel"),
    ("one-time", "initialiseSecureChannel"),
    ("euiccOtpk", "initialiseSecureChannel"),
    ("BoundProfilePackage", "initialiseSecureChannel"),
    ("firstSequenceOf87", "configureISDP"),
    ("ConfigureISDPRequest", "configureISDP"),
    ("sequenceOf88", "storeMetadata"),
    ("StoreMetadataRequest", "storeMetadata"),
    ("secondSequenceOf87", "replaceSessionKeys"),
    ("ReplaceSessionKeys", "replaceSessionKeys"),
    ("sequenceOf86", "loadProfileElements"),
)


def classify_bpp_error(message: str) -> tuple[int, int]:
    """``(bppCommandId, errorReason)`` for a failure of the BPP opener (SGP.22 5.7.6).

    A wrong smdpSign is ``invalidSignature`` of initialiseSecureChannel; a wrong
    controlRefTemplate ``unsupportedCrtValues``; a wrong remoteOpId
    ``unsupportedRemoteOperationType``; a MAC or padding failure in any segment
    is ``scp03tSecurityError`` and any other malformed segment
    ``scp03tStructureError``.
    """
    matches = [(len(key), part) for key, part in _PARTS if key in message]
    part = max(matches)[1] if matches else "initialiseSecureChannel"
    if part == "initialiseSecureChannel":
        if "smdpSign" in message:
            reason = "invalidSignature"
        elif "controlRefTemplate" in message:
            reason = "unsupportedCrtValues"
        elif "remoteOpId" in message:
            reason = "unsupportedRemoteOperationType"
        else:
            reason = "incorrectInputValues"
    elif "MAC" in message or "padding" in message:
        reason = "scp03tSecurityError"
    else:
        reason = "scp03tStructureError"
    return BPP_COMMAND[part], ERROR_REASON[reason]


def encode_pir_data(*, transaction_id: bytes, seq_number: int, notification_address: str,
                    iccid_ef: bytes | None, smdp_oid: str | None,
                    success_aid: bytes | None = None, sima_response: bytes = SIMA_RESPONSE_OK,
                    error: tuple[int, int] | None = None) -> bytes:
    """DER of ProfileInstallationResultData (BF27, SGP.22 5.7.6).

    Exactly one of ``success_aid`` (the ISD-P AID) and ``error``
    (``(bppCommandId, errorReason)``) is given.
    """
    if (success_aid is None) == (error is None):
        raise ValueError("give either success_aid or error")
    metadata: dict[str, object] = {
        "seqNumber": seq_number,
        "profileManagementOperation": (b"\x80", 1),  # notificationInstall(0)
        "notificationAddress": notification_address,
    }
    if iccid_ef is not None:
        metadata["iccid"] = iccid_ef
    if success_aid is not None:
        final = ("successResult", {"aid": success_aid, "simaResponse": sima_response})
    else:
        final = ("errorResult", {"bppCommandId": error[0], "errorReason": error[1]})
    data: dict[str, object] = {
        "transactionId": transaction_id,
        "notificationMetadata": metadata,
        "finalResult": final,
    }
    if smdp_oid is not None:
        data["smdpOid"] = smdp_oid
    return rsp().encode("ProfileInstallationResultData", data)


def encode_pir(pir_data: bytes, signature: bytes) -> bytes:
    """ProfileInstallationResult (BF37): the BF27 as signed, then euiccSignPIR ('5F37')."""
    return encode_tlv(b"\xbf\x37", pir_data + encode_tlv(b"\x5f\x37", signature))
