"""The LPA side of a profile download (SGP.22 3.1.3) over ES9+ and ES10b.

:func:`download` runs the whole procedure between an SM-DP+ (through an
:class:`~smdpp.euicc.es9.Es9Client`) and a :class:`~smdpp.euicc.card.SoftEuicc`:

1. ES10b.GetEUICCChallenge / GetEUICCInfo1, ES9+.InitiateAuthentication;
2. ES10b.AuthenticateServer, ES9+.AuthenticateClient;
3. (confirmation code) ES10b.PrepareDownload, ES9+.GetBoundProfilePackage;
4. the LPA's check of the BPP metadata, ES10b.LoadBoundProfilePackage;
5. ES9+.HandleNotification with the ProfileInstallationResult.

What an LPA does when something goes wrong follows SGP.22: an error answer
of the eUICC to AuthenticateServer or PrepareDownload is passed on to the
SM-DP+ in the next ES9+ call (whose input is the eUICC's response, either
choice); when the LPA itself stops a session that both sides hold (no
confirmation code, metadata mismatch, unusable BPP) it asks the eUICC for a
signed CancelSession and sends it with ES9+.CancelSession; a failed
installation is reported through the notification.  Every failure raises
:class:`DownloadError` naming the step.

The message builders are public so that tests can run the steps one by one
and tamper with what they send.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import asn1tools
from cryptography import x509

from smdpp.asn1 import rsp
from smdpp.asn1.tlv import TlvError, encode_tlv, parse_single
from smdpp.euicc.card import (
    AUTHENTICATE_ERROR,
    CANCEL_SESSION_REASON,
    DOWNLOAD_ERROR,
    CardError,
    SoftEuicc,
)
from smdpp.euicc.es9 import Es9Client, Es9Reply, Es9TransportError, b64d, b64e
from smdpp.euicc.installation import BPP_COMMAND, ERROR_REASON, iccid_from_ef
from smdpp.pki.chain import registered_ids

__all__ = [
    "Es9Client",
    "DownloadError",
    "DownloadResult",
    "download",
    "DEFAULT_DEVICE_INFO",
    "encode_ctx_params1",
    "authenticate_server_request",
    "prepare_download_request",
    "confirmation_code_hash",
    "bpp_store_metadata",
    "authenticate_error_code",
]

STEP_INITIATE = "ES9+.InitiateAuthentication"
STEP_AUTHENTICATE_SERVER = "ES10b.AuthenticateServer"
STEP_AUTHENTICATE_CLIENT = "ES9+.AuthenticateClient"
STEP_CONFIRMATION_CODE = "LPA confirmation code"
STEP_PREPARE = "ES10b.PrepareDownload"
STEP_GET_BPP = "ES9+.GetBoundProfilePackage"
STEP_METADATA = "LPA BPP metadata check"
STEP_LOAD = "ES10b.LoadBoundProfilePackage"

#: DeviceInfo of a generic LTE handset (SGP.22 5.7.13 ctxParams1): a TAC and the releases it supports.
DEFAULT_DEVICE_INFO: dict[str, Any] = {
    "tac": bytes.fromhex("35290611"),
    "deviceCapabilities": {
        "gsmSupportedRelease": b"\x0f\x00\x00",
        "utranSupportedRelease": b"\x0f\x00\x00",
        "eutranSupportedRelease": b"\x0f\x00\x00",
    },
}


class DownloadError(Exception):
    """A download failed at ``step``; SGP.22 subject/reason codes when the SM-DP+ sent them."""

    def __init__(self, step: str, message: str, subject_code: str | None = None,
                 reason_code: str | None = None) -> None:
        self.step = step
        self.message = message
        self.subject_code = subject_code
        self.reason_code = reason_code
        super().__init__(str(self))

    def __str__(self) -> str:
        codes = ""
        if self.subject_code is not None or self.reason_code is not None:
            codes = f" (subjectCode {self.subject_code}, reasonCode {self.reason_code})"
        return f"{self.step} failed: {self.message}{codes}"


@dataclass(frozen=True)
class DownloadResult:
    """A profile installed on the eUICC."""

    iccid: str
    transaction_id: str  # as the SM-DP+ wrote it (hex)
    upp: bytes = field(repr=False)
    notification_sent: bool  # handleNotification answered 204
    notification_error: str | None = None  # why not, otherwise None
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)  # decoded StoreMetadataRequest


# --- message builders (SGP.22 5.7.13, 5.7.5, 3.1.3) ---------------------------


def encode_ctx_params1(matching_id: str | None, device_info: dict[str, Any] | None = None) -> bytes:
    """DER of ctxParams1 (CtxParamsForCommonAuthentication) for AuthenticateServer."""
    params: dict[str, Any] = {"deviceInfo": device_info or DEFAULT_DEVICE_INFO}
    if matching_id is not None:
        params["matchingId"] = matching_id
    return rsp().encode("CtxParams1", ("ctxParamsForCommonAuthentication", params))


def authenticate_server_request(server_signed1: bytes, server_signature1: bytes,
                                euicc_ci_pkid_to_be_used: bytes, server_certificate: bytes,
                                ctx_params1: bytes) -> bytes:
    """AuthenticateServerRequest (BF38) from the ES9+ InitiateAuthentication fields, kept raw.

    ``server_signature1`` is the '5F37' data object and
    ``euicc_ci_pkid_to_be_used`` the '04' data object, both as the SM-DP+ sent them.
    """
    return encode_tlv(b"\xbf\x38", server_signed1 + server_signature1 + euicc_ci_pkid_to_be_used
                      + server_certificate + ctx_params1)


def prepare_download_request(smdp_signed2: bytes, smdp_signature2: bytes, smdp_certificate: bytes,
                             hash_cc: bytes | None = None) -> bytes:
    """PrepareDownloadRequest (BF21) from the ES9+ AuthenticateClient fields, kept raw."""
    cc = encode_tlv(b"\x04", hash_cc) if hash_cc is not None else b""
    return encode_tlv(b"\xbf\x21", smdp_signed2 + smdp_signature2 + cc + smdp_certificate)


def confirmation_code_hash(confirmation_code: str, transaction_id: bytes) -> bytes:
    """hashCc = SHA-256(SHA-256(confirmationCode) || transactionId) (SGP.22 3.1.3, 5.7.5)."""
    inner = hashlib.sha256(confirmation_code.encode("utf-8")).digest()
    return hashlib.sha256(inner + transaction_id).digest()


def bpp_store_metadata(bpp: bytes) -> bytes:
    """The StoreMetadataRequest (BF25) an LPA can read in a BPP: the '88' segments minus their MACs.

    sequenceOf88 is protected by MAC only (SGP.22 2.5.5), so the LPA can show
    and check the metadata before loading.  ValueError if it is not there.
    """
    try:
        container = parse_single(bpp, b"\xbf\x36").child(b"\xa1")
        if container is None:
            raise ValueError("BPP has no sequenceOf88")
        segments = container.children()
        if not segments or any(s.tag != b"\x88" or len(s.value) <= 8 for s in segments):
            raise ValueError("sequenceOf88 holds no valid '88' segments")
        metadata = b"".join(s.value[:-8] for s in segments)
        parse_single(metadata, b"\xbf\x25")
    except TlvError as exc:
        raise ValueError(f"BPP metadata unreadable: {exc}") from None
    return metadata


def authenticate_error_code(response: bytes) -> int | None:
    """The authenticateErrorCode of an AuthenticateServerResponse (BF38), None for authenticateResponseOk.

    Read with the TLV helpers: only the error alternative is decoded, so the
    certificates in the ok alternative are never re-interpreted.
    """
    try:
        choice = parse_single(response, b"\xbf\x38").children()
        if len(choice) != 1 or choice[0].tag not in (b"\xa0", b"\xa1"):
            raise ValueError("AuthenticateServerResponse is neither authenticateResponseOk nor ...Error")
        if choice[0].tag == b"\xa0":
            return None
        error = rsp().decode("AuthenticateResponseError", encode_tlv(b"\x30", choice[0].value))
    except (TlvError, asn1tools.Error) as exc:
        raise ValueError(f"AuthenticateServerResponse malformed: {exc}") from None
    return error["authenticateErrorCode"]


# --- ES9+ answers -------------------------------------------------------------


def _call(client: Es9Client, function: str, body: dict[str, Any], step: str) -> Es9Reply:
    try:
        return client.call(function, body)
    except Es9TransportError as exc:
        raise DownloadError(step, f"no answer from the SM-DP+: {exc}") from None


def _expect_success(reply: Es9Reply, step: str) -> dict[str, Any]:
    """The JSON body of an executed ES9+ function (SGP.22 6.5.1); DownloadError otherwise."""
    codes = reply.status_code_data
    if reply.function_status == "Failed":
        raise DownloadError(step, str(codes.get("message") or "function execution failed"),
                            _str_or_none(codes.get("subjectCode")), _str_or_none(codes.get("reasonCode")))
    if reply.http_status != 200:
        raise DownloadError(step, f"unexpected answer: {reply.describe()}")
    if "json" not in reply.headers.get("content-type", ""):
        raise DownloadError(step, f"answer is not JSON (Content-Type {reply.headers.get('content-type')!r})")
    if not reply.headers.get("x-admin-protocol", "").startswith("gsma/rsp/v"):
        raise DownloadError(step, "answer lacks the X-Admin-Protocol header (SGP.22 6.5.1)")
    if reply.function_status not in ("Executed-Success", "Executed-WithWarning"):
        raise DownloadError(step, f"unexpected function status: {reply.describe()}")
    return reply.json


def _name(names: dict[str, int], code: Any) -> str:
    """``name(code)`` for an SGP.22 named number, or the bare value if unknown."""
    for name, value in names.items():
        if value == code:
            return f"{name}({code})"
    return str(code)


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _field(body: dict[str, Any], name: str, step: str) -> Any:
    if name not in body:
        raise DownloadError(step, f"answer lacks {name}")
    return body[name]


def _tlv_field(body: dict[str, Any], name: str, tag: bytes, step: str) -> bytes:
    """A base64 field holding exactly one data object with ``tag``."""
    try:
        data = b64d(_field(body, name, step))
        parse_single(data, tag)
    except (ValueError, TlvError) as exc:
        raise DownloadError(step, f"{name} is not one '{tag.hex()}' data object in base64: {exc}") from None
    return data


def _check_transaction_id(body: dict[str, Any], expected: str, step: str) -> None:
    got = _field(body, "transactionId", step)
    if not isinstance(got, str) or got.upper() != expected.upper():
        raise DownloadError(step, f"transactionId {got!r} is not the session's {expected}")


def _decode(type_name: str, data: bytes, step: str) -> Any:
    try:
        return rsp().decode(type_name, data)
    except asn1tools.Error as exc:
        raise DownloadError(step, f"{type_name} undecodable: {exc}") from None


def _cancel(client: Es9Client, euicc: SoftEuicc, tid_hex: str, reason: str) -> str:
    """ES10b.CancelSession then ES9+.CancelSession (SGP.22 5.7.14, 5.6.5); a note on the outcome."""
    response = euicc.cancel_session(bytes.fromhex(tid_hex), CANCEL_SESSION_REASON[reason])
    if rsp().decode("CancelSessionResponse", response)[0] != "cancelSessionResponseOk":
        return f"the eUICC would not cancel the session ({euicc.last_error})"
    try:
        reply = client.call("cancelSession", {"transactionId": tid_hex,
                                              "cancelSessionResponse": b64e(response)})
    except Es9TransportError as exc:
        return f"session cancelled with reason {reason}, but ES9+.CancelSession got no answer: {exc}"
    return f"session cancelled with reason {reason}; ES9+.CancelSession: {reply.describe()}"


# --- the procedure --------------------------------------------------------------


def download(client: Es9Client, euicc: SoftEuicc, *, smdp_address: str, matching_id: str | None,
             confirmation_code: str | None = None, smdp_oid: str | None = None,
             device_info: dict[str, Any] | None = None) -> DownloadResult:
    """Download and install one profile (SGP.22 3.1.3); DownloadError names the failed step.

    ``smdp_address`` is the SM-DP+ address of the activation code (sent in
    InitiateAuthentication and required in serverSigned1); ``smdp_oid``, if
    the activation code has one, must be the OID in CERT.DPauth.
    """
    # Common Mutual Authentication: InitiateAuthentication (SGP.22 5.6.1).
    challenge = euicc.get_euicc_challenge()
    reply = _call(client, "initiateAuthentication", {
        "euiccChallenge": b64e(challenge), "euiccInfo1": b64e(euicc.get_euicc_info1()),
        "smdpAddress": smdp_address}, STEP_INITIATE)
    body = _expect_success(reply, STEP_INITIATE)
    tid_hex = _field(body, "transactionId", STEP_INITIATE)
    server_signed1 = _tlv_field(body, "serverSigned1", b"\x30", STEP_INITIATE)
    server_signature1 = _tlv_field(body, "serverSignature1", b"\x5f\x37", STEP_INITIATE)
    ci_to_use = _tlv_field(body, "euiccCiPKIdToBeUsed", b"\x04", STEP_INITIATE)
    server_certificate = _tlv_field(body, "serverCertificate", b"\x30", STEP_INITIATE)
    signed1 = _decode("ServerSigned1", server_signed1, STEP_INITIATE)
    if not isinstance(tid_hex, str) or tid_hex.upper() != signed1["transactionId"].hex().upper():
        raise DownloadError(STEP_INITIATE, f"transactionId {tid_hex!r} differs from the one in serverSigned1")
    if smdp_oid is not None:
        _check_smdp_oid(server_certificate, smdp_oid)

    # AuthenticateServer on the eUICC (5.7.13), AuthenticateClient at the SM-DP+ (5.6.3).
    request = authenticate_server_request(server_signed1, server_signature1, ci_to_use, server_certificate,
                                          encode_ctx_params1(matching_id, device_info))
    try:
        auth_response = euicc.authenticate_server(request, expected_address=smdp_address)
    except CardError as exc:
        raise DownloadError(STEP_AUTHENTICATE_SERVER, f"the eUICC rejected the request: {exc}") from None
    try:
        refusal = authenticate_error_code(auth_response)
    except ValueError as exc:
        raise DownloadError(STEP_AUTHENTICATE_SERVER, str(exc)) from None
    reply = _call(client, "authenticateClient", {
        "transactionId": tid_hex, "authenticateServerResponse": b64e(auth_response)},
        STEP_AUTHENTICATE_CLIENT)
    if refusal is not None:
        raise DownloadError(STEP_AUTHENTICATE_SERVER,
                            f"the eUICC refused the SM-DP+ (authenticateErrorCode "
                            f"{_name(AUTHENTICATE_ERROR, refusal)}): {euicc.last_error}; "
                            f"SM-DP+ told with authenticateClient: {reply.describe()}")
    body = _expect_success(reply, STEP_AUTHENTICATE_CLIENT)
    _check_transaction_id(body, tid_hex, STEP_AUTHENTICATE_CLIENT)
    profile_metadata = _tlv_field(body, "profileMetadata", b"\xbf\x25", STEP_AUTHENTICATE_CLIENT)
    smdp_signed2 = _tlv_field(body, "smdpSigned2", b"\x30", STEP_AUTHENTICATE_CLIENT)
    smdp_signature2 = _tlv_field(body, "smdpSignature2", b"\x5f\x37", STEP_AUTHENTICATE_CLIENT)
    smdp_certificate = _tlv_field(body, "smdpCertificate", b"\x30", STEP_AUTHENTICATE_CLIENT)
    metadata = _decode("StoreMetadataRequest", profile_metadata, STEP_AUTHENTICATE_CLIENT)
    signed2 = _decode("SmdpSigned2", smdp_signed2, STEP_AUTHENTICATE_CLIENT)

    # Download confirmation: the end user confirms, with the confirmation code if the SM-DP+ asks for one.
    hash_cc = None
    if signed2["ccRequiredFlag"]:
        if confirmation_code is None:
            note = _cancel(client, euicc, tid_hex, "endUserRejection")
            raise DownloadError(STEP_CONFIRMATION_CODE,
                                f"the SM-DP+ requires a confirmation code and none was given; {note}")
        hash_cc = confirmation_code_hash(confirmation_code, bytes.fromhex(tid_hex))

    # PrepareDownload on the eUICC (5.7.5), GetBoundProfilePackage at the SM-DP+ (5.6.2).
    try:
        prep_response = euicc.prepare_download(
            prepare_download_request(smdp_signed2, smdp_signature2, smdp_certificate, hash_cc))
    except CardError as exc:
        raise DownloadError(STEP_PREPARE, f"the eUICC rejected the request: {exc}") from None
    choice, value = _decode("PrepareDownloadResponse", prep_response, STEP_PREPARE)
    reply = _call(client, "getBoundProfilePackage", {
        "transactionId": tid_hex, "prepareDownloadResponse": b64e(prep_response)}, STEP_GET_BPP)
    if choice == "downloadResponseError":
        raise DownloadError(STEP_PREPARE,
                            f"the eUICC refused smdpSigned2 (downloadErrorCode "
                            f"{_name(DOWNLOAD_ERROR, value['downloadErrorCode'])}): "
                            f"{euicc.last_error}; SM-DP+ told with getBoundProfilePackage: "
                            f"{reply.describe()}")
    body = _expect_success(reply, STEP_GET_BPP)
    try:
        _check_transaction_id(body, tid_hex, STEP_GET_BPP)
        bpp = _tlv_field(body, "boundProfilePackage", b"\xbf\x36", STEP_GET_BPP)
    except DownloadError as exc:
        raise DownloadError(exc.step, f"{exc.message}; "
                            f"{_cancel(client, euicc, tid_hex, 'loadBppExecutionError')}") from None

    # Installation: the LPA checks the metadata in the BPP against profileMetadata, then loads it.
    try:
        bpp_metadata = rsp().decode("StoreMetadataRequest", bpp_store_metadata(bpp))
    except (ValueError, asn1tools.Error):
        bpp_metadata = None  # unreadable metadata: the eUICC's checks will report it
    if bpp_metadata is not None and bpp_metadata != metadata:
        differing = sorted(k for k in set(metadata) | set(bpp_metadata)
                           if metadata.get(k) != bpp_metadata.get(k))
        note = _cancel(client, euicc, tid_hex, "metadataMismatch")
        raise DownloadError(STEP_METADATA, f"StoreMetadata in the BPP differs from profileMetadata in "
                                           f"{', '.join(differing)}; {note}")
    try:
        pir = euicc.load_bound_profile_package(bpp)
    except CardError as exc:
        note = _cancel(client, euicc, tid_hex, "loadBppExecutionError")
        raise DownloadError(STEP_LOAD, f"the eUICC rejected the BPP: {exc}; {note}") from None
    pir_value = rsp().decode("ProfileInstallationResult", pir)["profileInstallationResultData"]
    seq_number = pir_value["notificationMetadata"]["seqNumber"]

    # The installation result goes to the SM-DP+ as a notification (5.6.4).
    notification_error = None
    try:
        reply = client.call("handleNotification", {"pendingNotification": b64e(pir)})
    except Es9TransportError as exc:
        notification_error = f"no answer: {exc}"
    else:
        if reply.http_status == 204:
            euicc.remove_notification(seq_number)
        else:
            notification_error = f"expected HTTP 204, got {reply.describe()}"

    kind, result = pir_value["finalResult"]
    if kind == "errorResult":
        sent = "sent" if notification_error is None else f"not delivered ({notification_error})"
        raise DownloadError(STEP_LOAD, f"installation failed (bppCommandId "
                                       f"{_name(BPP_COMMAND, result['bppCommandId'])}, "
                                       f"errorReason {_name(ERROR_REASON, result['errorReason'])}): "
                                       f"{euicc.last_error}; "
                                       f"result notification {sent}")
    iccid = iccid_from_ef(pir_value["notificationMetadata"]["iccid"])
    return DownloadResult(iccid=iccid, transaction_id=tid_hex, upp=euicc.installed[iccid],
                          notification_sent=notification_error is None,
                          notification_error=notification_error, metadata=metadata)


def _check_smdp_oid(server_certificate: bytes, smdp_oid: str) -> None:
    """The activation code's SM-DP+ OID must be the one in CERT.DPauth (SGP.22 4.1)."""
    try:
        oids = registered_ids(x509.load_der_x509_certificate(server_certificate))
    except ValueError as exc:
        raise DownloadError(STEP_INITIATE, f"serverCertificate unreadable: {exc}") from None
    if smdp_oid not in oids:
        raise DownloadError(STEP_INITIATE, f"serverCertificate names SM-DP+ OID {', '.join(oids) or 'none'}, "
                                           f"the activation code {smdp_oid}")
