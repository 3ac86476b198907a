"""Strict parsing of the eUICC-produced data objects an SM-DP+ receives over ES9+.

Each parser checks tags, order and lengths with the raw TLV helpers and keeps
the signed parts as the exact bytes received (SGP.22 signatures are computed
over the DER as sent: euiccSigned1 in 5.6.3, euiccSigned2 in 5.6.2,
profileInstallationResultData in 5.6.4, euiccCancelSessionSigned in 5.6.5).
Anything malformed raises :class:`~smdpp.errors.SgpError` (1.2 / 2.1).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smdpp import asn1
from smdpp.asn1.tlv import Tlv, TlvError, parse_single
from smdpp.status import euicc_reported_error, malformed

SIGNATURE_TAG = b"\x5f\x37"  # [APPLICATION 55]
OTPK_TAG = b"\x5f\x49"  # [APPLICATION 73]


def _top(data: bytes, tag: bytes, what: str) -> Tlv:
    try:
        return parse_single(data, tag)
    except TlvError as exc:
        raise malformed(f"{what}: {exc}") from None


def _children(tlv: Tlv, what: str) -> list[Tlv]:
    try:
        return tlv.children()
    except TlvError as exc:
        raise malformed(f"{what}: {exc}") from None


def _expect(children: list[Tlv], tags: list[bytes], what: str, optional_tail: int = 0) -> None:
    """Check ``children`` carry ``tags`` in order; the last ``optional_tail`` may be absent."""
    got = [c.tag for c in children]
    if not (len(tags) - optional_tail <= len(got) <= len(tags)) or got != tags[:len(got)]:
        raise malformed(f"{what}: unexpected structure "
                        f"({' '.join(t.hex() for t in got) or 'empty'})")


def _choice(tlv: Tlv, allowed: tuple[bytes, ...], what: str) -> Tlv:
    """The single alternative of a CHOICE wrapper, which must have one of ``allowed`` tags."""
    children = _children(tlv, what)
    if len(children) != 1 or children[0].tag not in allowed:
        raise malformed(f"{what}: expected exactly one of "
                        f"{', '.join(t.hex() for t in allowed)}")
    return children[0]


def _decode(type_name: str, raw: bytes, what: str) -> Any:
    try:
        return asn1.rsp().decode(type_name, raw)
    except Exception as exc:  # asn1tools raises several types for bad input
        raise malformed(f"{what}: {exc}") from None


@dataclass(frozen=True)
class EuiccInfo1:
    """EUICCInfo1 (SGP.22 5.7.8): version and the CI key ids the eUICC holds."""

    svn: bytes
    ci_pkids_for_verification: list[bytes]
    ci_pkids_for_signing: list[bytes]


def parse_euicc_info1(data: bytes) -> EuiccInfo1:
    """Parse EUICCInfo1 ('BF20': svn '82', key id lists 'A9' and 'AA' of '04' items).

    Read with the TLV helpers (this runs on every initiateAuthentication);
    data objects added by later SGP.22 versions after 'AA' are tolerated.
    """
    top = _top(data, b"\xbf\x20", "euiccInfo1")
    fields = _children(top, "euiccInfo1")
    _expect(fields[:3], [b"\x82", b"\xa9", b"\xaa"], "euiccInfo1")
    lists = []
    for field in fields[1:3]:
        items = _children(field, "euiccCiPKIdList")
        if any(item.tag != b"\x04" for item in items):
            raise malformed("euiccInfo1: a CI key id list holds something other than "
                            "OCTET STRINGs")
        lists.append([item.value for item in items])
    return EuiccInfo1(fields[0].value, lists[0], lists[1])


@dataclass(frozen=True)
class AuthenticateServerResponse:
    """authenticateResponseOk of AuthenticateServerResponse (SGP.22 5.7.13)."""

    euicc_signed1: bytes  # raw '30' TLV as received
    euicc_signature1: bytes  # signature value (r||s)
    euicc_signature1_tlv: bytes  # raw '5F37' TLV, signed again by the SM-DP+ in smdpSignature2
    euicc_certificate: bytes
    eum_certificate: bytes
    transaction_id: bytes
    server_address: str
    server_challenge: bytes
    matching_id: str | None
    # v3 otherCertsInChain: the rest of the eUICC's chain (EUM, CI SubCA) when
    # eum_certificate (v3 nextCertInChain) is an EUM SubCA; raw DER each.
    other_certs_in_chain: tuple[bytes, ...] = ()


def _certificate_chain(tlv: Tlv, what: str) -> tuple[bytes, ...]:
    """``CertificateChain ::= SEQUENCE OF Certificate`` under a context tag: the raw certificates."""
    certs = _children(tlv, what)
    if not certs or any(c.tag != b"\x30" for c in certs):
        raise malformed(f"{what}: expected one or more certificates")
    return tuple(c.raw for c in certs)


def parse_authenticate_server_response(data: bytes) -> AuthenticateServerResponse:
    """Parse 'BF38'; an authenticateResponseError is reported as an SgpError."""
    top = _top(data, b"\xbf\x38", "authenticateServerResponse")
    choice = _choice(top, (b"\xa0", b"\xa1"), "authenticateServerResponse")
    if choice.tag == b"\xa1":
        error = _decode("AuthenticateServerResponse", data, "authenticateResponseError")[1]
        raise euicc_reported_error("eUICC reported authenticateResponseError "
                                   f"{error['authenticateErrorCode']}")
    parts = _children(choice, "authenticateResponseOk")
    _expect(parts, [b"\x30", SIGNATURE_TAG, b"\x30", b"\x30", b"\xa0"], "authenticateResponseOk",
            optional_tail=1)
    signed1, signature1, euicc_cert, eum_cert = parts[:4]
    # SGP.22 v3: otherCertsInChain [0] CertificateChain OPTIONAL
    other_certs = _certificate_chain(parts[4], "otherCertsInChain") if len(parts) == 5 else ()
    fields = _children(signed1, "euiccSigned1")
    _expect(fields, [b"\x80", b"\x83", b"\x84", b"\xbf\x22", b"\xa0"], "euiccSigned1")
    tid, address, challenge, _info2, ctx = fields
    if len(challenge.value) != 16:
        raise malformed("euiccSigned1: serverChallenge must be 16 bytes")
    # ctxParams1 is an untagged CHOICE: 'A0' is ctxParamsForCommonAuthentication itself
    ctx_fields = _children(ctx, "ctxParamsForCommonAuthentication")
    matching_id = None
    if ctx_fields and ctx_fields[0].tag == b"\x80":
        matching_id = _utf8(ctx_fields[0].value, "matchingId")
        ctx_fields = ctx_fields[1:]
    _expect(ctx_fields, [b"\xa1"], "ctxParamsForCommonAuthentication")
    return AuthenticateServerResponse(
        euicc_signed1=signed1.raw, euicc_signature1=signature1.value,
        euicc_signature1_tlv=signature1.raw, euicc_certificate=euicc_cert.raw,
        eum_certificate=eum_cert.raw, transaction_id=tid.value,
        server_address=_utf8(address.value, "serverAddress"),
        server_challenge=challenge.value, matching_id=matching_id, other_certs_in_chain=other_certs)


@dataclass(frozen=True)
class PrepareDownloadResponse:
    """downloadResponseOk of PrepareDownloadResponse (SGP.22 5.7.5)."""

    euicc_signed2: bytes  # raw '30' TLV as received
    euicc_signature2: bytes
    transaction_id: bytes
    euicc_otpk: bytes
    hash_cc: bytes | None


def parse_prepare_download_response(data: bytes) -> PrepareDownloadResponse:
    """Parse 'BF21'; a downloadResponseError is reported as an SgpError."""
    top = _top(data, b"\xbf\x21", "prepareDownloadResponse")
    choice = _choice(top, (b"\xa0", b"\xa1"), "prepareDownloadResponse")
    if choice.tag == b"\xa1":
        error = _decode("PrepareDownloadResponse", data, "downloadResponseError")[1]
        raise euicc_reported_error("eUICC reported downloadResponseError "
                                   f"{error['downloadErrorCode']}")
    parts = _children(choice, "downloadResponseOk")
    _expect(parts, [b"\x30", SIGNATURE_TAG], "downloadResponseOk")
    signed2, signature2 = parts
    fields = _children(signed2, "euiccSigned2")
    _expect(fields, [b"\x80", OTPK_TAG, b"\x04"], "euiccSigned2", optional_tail=1)
    hash_cc = fields[2].value if len(fields) == 3 else None
    if hash_cc is not None and len(hash_cc) != 32:
        raise malformed("euiccSigned2: hashCc must be 32 bytes")
    return PrepareDownloadResponse(signed2.raw, signature2.value, fields[0].value,
                                   fields[1].value, hash_cc)


@dataclass(frozen=True)
class ProfileInstallationResult:
    """ProfileInstallationResult (SGP.22 5.7.7): the signed outcome of a download."""

    data: bytes  # raw 'BF27' profileInstallationResultData as received
    signature: bytes
    transaction_id: bytes
    seq_number: int
    notification_address: str
    iccid: bytes | None
    smdp_oid: str | None
    success: bool
    details: dict[str, Any]


@dataclass(frozen=True)
class OtherSignedNotification:
    """otherSignedNotification (SGP.22 5.7.7): enable/disable/delete notifications."""

    data: bytes  # raw 'BF2F' tbsOtherNotification as received
    signature: bytes
    euicc_certificate: bytes
    eum_certificate: bytes
    seq_number: int
    operation: str
    notification_address: str
    iccid: bytes | None
    other_certs_in_chain: tuple[bytes, ...] = ()  # v3 otherCertsInChain [1]


_EVENTS = ("notificationInstall", "notificationEnable", "notificationDisable",
           "notificationDelete")


def _event_name(bits: tuple[bytes, int]) -> str:
    value, length = bits
    for i, name in enumerate(_EVENTS):
        if i < length and value[i // 8] & (0x80 >> (i % 8)):
            return name
    return "unknown"


def _integer(tlv: Tlv, what: str) -> int:
    """An INTEGER's value (X.690 8.3); malformed if it has no contents octets."""
    if tlv.end == tlv.value_start:
        raise malformed(f"{what}: empty INTEGER")
    return int.from_bytes(tlv.value, "big", signed=True)


def _bit_string(tlv: Tlv, what: str) -> tuple[bytes, int]:
    """A BIT STRING as (bits, number of bits) (X.690 8.6), the form asn1tools gives."""
    value = tlv.value
    if not value or value[0] > 7 or (len(value) == 1 and value[0]):
        raise malformed(f"{what}: malformed BIT STRING")
    return value[1:], (len(value) - 1) * 8 - value[0]


@dataclass(frozen=True)
class _NotificationMetadata:
    seq_number: int
    operation: tuple[bytes, int]  # NotificationEvent bits
    notification_address: str
    iccid: bytes | None


def _notification_metadata(tlv: Tlv, what: str) -> _NotificationMetadata:
    """NotificationMetadata ('BF2F', SGP.22 5.7.7): seqNumber '80', profileManagementOperation
    '81', notificationAddress '0C', iccid '5A' OPTIONAL, then extensions (skipped)."""
    fields = _children(tlv, what)
    _expect(fields[:3], [b"\x80", b"\x81", b"\x0c"], what)
    iccid = fields[3].value if len(fields) > 3 and fields[3].tag == b"\x5a" else None
    return _NotificationMetadata(_integer(fields[0], f"{what} seqNumber"),
                                 _bit_string(fields[1], f"{what} profileManagementOperation"),
                                 _utf8(fields[2].value, "notificationAddress"), iccid)


def _final_result(tlv: Tlv) -> tuple[bool, dict[str, Any]]:
    """finalResult [2] CHOICE (SGP.22 5.7.7): (success, its fields; bytes as hex).

    successResult 'A0': aid '4F', simaResponse '04'; errorResult 'A1':
    bppCommandId '80', errorReason '81', simaResponse '82' OPTIONAL.
    """
    choice = _choice(tlv, (b"\xa0", b"\xa1"), "finalResult")
    fields = _children(choice, "finalResult")
    if choice.tag == b"\xa0":
        _expect(fields[:2], [b"\x4f", b"\x04"], "successResult")
        return True, {"aid": fields[0].value.hex(), "simaResponse": fields[1].value.hex()}
    _expect(fields[:2], [b"\x80", b"\x81"], "errorResult")
    details: dict[str, Any] = {"bppCommandId": _integer(fields[0], "bppCommandId"),
                               "errorReason": _integer(fields[1], "errorReason")}
    if len(fields) > 2 and fields[2].tag == b"\x82":
        details["simaResponse"] = fields[2].value.hex()
    return False, details


def _profile_installation_result(data: bytes) -> ProfileInstallationResult:
    """ProfileInstallationResult ('BF37', SGP.22 5.7.7), read with the TLV helpers.

    ProfileInstallationResultData 'BF27': transactionId '80',
    notificationMetadata 'BF2F', smdpOid '06' OPTIONAL, finalResult 'A2'; data
    objects after finalResult are tolerated, as the ASN.1 decoder did.
    """
    top = _top(data, b"\xbf\x37", "profileInstallationResult")
    parts = _children(top, "profileInstallationResult")
    _expect(parts, [b"\xbf\x27", SIGNATURE_TAG], "profileInstallationResult")
    what = "profileInstallationResultData"
    fields = _children(parts[0], what)
    smdp_oid = None
    if len(fields) > 2 and fields[2].tag == b"\x06":
        try:
            smdp_oid = asn1.decode_oid(fields[2].value, 0, fields[2].end - fields[2].value_start)
        except Exception as exc:  # asn1tools' DecodeError
            raise malformed(f"{what}: smdpOid: {exc}") from None
        fields = fields[:2] + fields[3:]
    _expect(fields[:3], [b"\x80", b"\xbf\x2f", b"\xa2"], what)
    meta = _notification_metadata(fields[1], "notificationMetadata")
    success, details = _final_result(fields[2])
    return ProfileInstallationResult(
        data=parts[0].raw, signature=parts[1].value, transaction_id=fields[0].value,
        seq_number=meta.seq_number, notification_address=meta.notification_address,
        iccid=meta.iccid, smdp_oid=smdp_oid, success=success, details=details)


def parse_pending_notification(data: bytes) -> ProfileInstallationResult | OtherSignedNotification:
    """Parse a PendingNotification: 'BF37' or an otherSignedNotification '30'.

    Read with the TLV helpers (a ProfileInstallationResult ends every download).
    """
    if data[:2] == b"\xbf\x37":
        return _profile_installation_result(data)
    top = _top(data, b"\x30", "pendingNotification")
    parts = _children(top, "otherSignedNotification")
    _expect(parts, [b"\xbf\x2f", SIGNATURE_TAG, b"\x30", b"\x30", b"\xa1"], "otherSignedNotification",
            optional_tail=1)
    # SGP.22 v3: otherCertsInChain [1] CertificateChain OPTIONAL
    other_certs = _certificate_chain(parts[4], "otherCertsInChain") if len(parts) == 5 else ()
    meta = _notification_metadata(parts[0], "tbsOtherNotification")
    return OtherSignedNotification(
        data=parts[0].raw, signature=parts[1].value, euicc_certificate=parts[2].raw,
        eum_certificate=parts[3].raw, seq_number=meta.seq_number,
        operation=_event_name(meta.operation),
        notification_address=meta.notification_address, iccid=meta.iccid,
        other_certs_in_chain=other_certs)


@dataclass(frozen=True)
class CancelSessionResponse:
    """cancelSessionResponseOk (SGP.22 5.7.14)."""

    signed: bytes  # raw '30' euiccCancelSessionSigned as received
    signature: bytes
    transaction_id: bytes
    smdp_oid: str
    reason: int


def parse_cancel_session_response(data: bytes) -> CancelSessionResponse:
    """Parse 'BF41'; an unsigned cancelSessionResponseError is refused."""
    top = _top(data, b"\xbf\x41", "cancelSessionResponse")
    choice = _choice(top, (b"\xa0",), "cancelSessionResponse (only a signed "
                     "cancelSessionResponseOk can cancel a session)")
    parts = _children(choice, "cancelSessionResponseOk")
    _expect(parts, [b"\x30", SIGNATURE_TAG], "cancelSessionResponseOk")
    signed = _decode("EuiccCancelSessionSigned", parts[0].raw, "euiccCancelSessionSigned")
    return CancelSessionResponse(parts[0].raw, parts[1].value, signed["transactionId"],
                                 signed["smdpOid"], signed["reason"])


def _utf8(value: bytes, what: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise malformed(f"{what}: not UTF-8") from None
