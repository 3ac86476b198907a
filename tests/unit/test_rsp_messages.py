"""Parsing of the notifications the SM-DP+ receives (smdpp.rsp.messages, SGP.22 5.6.4 / 5.7.7).

The parsers read with the TLV helpers; the compiled ASN.1 module is the
reference they are checked against.
"""
from __future__ import annotations

from typing import Any

import pytest

from smdpp.asn1 import rsp
from smdpp.asn1.tlv import encode_tlv, parse_single
from smdpp.errors import SgpError
from smdpp.rsp.messages import (
    OtherSignedNotification,
    ProfileInstallationResult,
    parse_pending_notification,
)

SIGNATURE = encode_tlv(b"\x5f\x37", bytes(range(64)))
TID = bytes(range(1, 17))


def _metadata(**extra: Any) -> dict[str, Any]:
    return {"seqNumber": 7, "profileManagementOperation": (b"\x80", 1),
            "notificationAddress": "smdp.example.com", **extra}


def _pir(data: dict[str, Any]) -> bytes:
    """A ProfileInstallationResult around the DER of ``data`` and a dummy signature."""
    signed = rsp().encode("ProfileInstallationResultData", data)
    return encode_tlv(b"\xbf\x37", signed + SIGNATURE)


def _pir_raw(signed_value: bytes) -> bytes:
    return encode_tlv(b"\xbf\x37", encode_tlv(b"\xbf\x27", signed_value) + SIGNATURE)


CASES = [
    {"transactionId": TID, "notificationMetadata": _metadata(iccid=bytes.fromhex("98001032547698103214")),
     "smdpOid": "2.999.10",
     "finalResult": ("successResult", {"aid": bytes.fromhex("a0000005591010ffffffff8900001000"),
                                       "simaResponse": bytes.fromhex("3007a0053003800100")})},
    {"transactionId": TID[:5], "notificationMetadata": _metadata(seqNumber=300),
     "finalResult": ("errorResult", {"bppCommandId": 2, "errorReason": 127})},
    {"transactionId": TID, "notificationMetadata": _metadata(seqNumber=0),
     "smdpOid": "1.3.6.1.4.1.31746.1",
     "finalResult": ("errorResult", {"bppCommandId": 5, "errorReason": 9,
                                     "simaResponse": b"\x01\x02"})},
]


@pytest.mark.parametrize("data", CASES)
def test_profile_installation_result_matches_the_asn1_decoding(data: dict[str, Any]) -> None:
    der = _pir(data)
    note = parse_pending_notification(der)
    reference = rsp().decode("ProfileInstallationResult", der)["profileInstallationResultData"]
    meta = reference["notificationMetadata"]
    kind, outcome = reference["finalResult"]
    assert isinstance(note, ProfileInstallationResult)
    assert note.data == parse_single(der).children()[0].raw  # the signed bytes, as received
    assert note.signature == bytes(range(64))
    assert note.transaction_id == reference["transactionId"]
    assert note.seq_number == meta["seqNumber"]
    assert note.notification_address == meta["notificationAddress"]
    assert note.iccid == meta.get("iccid")
    assert note.smdp_oid == reference.get("smdpOid")
    assert note.success is (kind == "successResult")
    assert note.details == {k: (v.hex() if isinstance(v, bytes) else v) for k, v in outcome.items()}


def test_profile_installation_result_known_values() -> None:
    note = parse_pending_notification(_pir(CASES[1]))
    assert isinstance(note, ProfileInstallationResult)
    assert (note.transaction_id, note.seq_number, note.iccid, note.smdp_oid, note.success) == \
        (TID[:5], 300, None, None, False)
    assert note.details == {"bppCommandId": 2, "errorReason": 127}


def test_negative_integer_and_extension_in_metadata() -> None:
    """INTEGER is two's complement; a later SGP.22 data object after iccid is skipped."""
    meta = (encode_tlv(b"\x80", b"\xff") + encode_tlv(b"\x81", b"\x04\x10")
            + encode_tlv(b"\x0c", b"a.b") + encode_tlv(b"\x5a", b"\x98" * 10)
            + encode_tlv(b"\x9f\x20", b"\x00"))
    value = (encode_tlv(b"\x80", TID) + encode_tlv(b"\xbf\x2f", meta)
             + encode_tlv(b"\xa2", encode_tlv(b"\xa1", encode_tlv(b"\x80", b"\x01")
                                              + encode_tlv(b"\x81", b"\x02"))))
    note = parse_pending_notification(_pir_raw(value))
    assert isinstance(note, ProfileInstallationResult)
    assert note.seq_number == -1 and note.iccid == b"\x98" * 10
    assert note.details == {"bppCommandId": 1, "errorReason": 2}


def _replace_first(der: bytes, old: bytes, new: bytes) -> bytes:
    assert der.count(old) >= 1
    return der.replace(old, new, 1)


@pytest.mark.parametrize("mutate", [
    lambda d: d[:-1],  # truncated
    lambda d: _replace_first(d, b"\xbf\x2f", b"\xbf\x2e"),  # notificationMetadata tag
    lambda d: _replace_first(d, b"\xa2", b"\xa3"),  # finalResult tag
    lambda d: _replace_first(d, b"\x0c\x10smdp", b"\x0d\x10smdp"),  # notificationAddress tag
    lambda d: _replace_first(d, b"\x0c\x10smdp", b"\x0c\x10\xff\xfemdp"),  # not UTF-8
    lambda d: _replace_first(d, b"\x81\x02\x07\x80", b"\x81\x02\x08\x80"),  # unused bits > 7
])
def test_malformed_profile_installation_result_is_refused(mutate: Any) -> None:
    der = _pir(CASES[0])
    with pytest.raises(SgpError) as info:
        parse_pending_notification(mutate(der))
    assert (info.value.subject_code, info.value.reason_code) == ("1.2", "2.1")


@pytest.mark.parametrize("value", [
    encode_tlv(b"\x80", TID) + encode_tlv(b"\xbf\x2f", b""),  # no finalResult, empty metadata
    encode_tlv(b"\x80", TID),
    encode_tlv(b"\x80", TID) + encode_tlv(b"\xbf\x2f", encode_tlv(b"\x80", b"") + encode_tlv(
        b"\x81", b"\x07\x80") + encode_tlv(b"\x0c", b"a")) + encode_tlv(b"\xa2", encode_tlv(
            b"\xa1", encode_tlv(b"\x80", b"\x01") + encode_tlv(b"\x81", b"\x02"))),  # empty INTEGER
    encode_tlv(b"\x80", TID) + encode_tlv(b"\xbf\x2f", encode_tlv(b"\x80", b"\x01") + encode_tlv(
        b"\x81", b"\x07\x80") + encode_tlv(b"\x0c", b"a")) + encode_tlv(b"\x06", b"\x80")
    + encode_tlv(b"\xa2", encode_tlv(b"\xa1", encode_tlv(b"\x80", b"\x01") + encode_tlv(
        b"\x81", b"\x02"))),  # smdpOid with a dangling subidentifier
    encode_tlv(b"\x80", TID) + encode_tlv(b"\xbf\x2f", encode_tlv(b"\x80", b"\x01") + encode_tlv(
        b"\x81", b"\x07\x80") + encode_tlv(b"\x0c", b"a")) + encode_tlv(b"\xa2", encode_tlv(
            b"\xa0", encode_tlv(b"\x4f", b"\xa0" * 5) + encode_tlv(b"\x04", b"")) + encode_tlv(
            b"\xa1", b"")),  # two finalResult alternatives
])
def test_structurally_wrong_profile_installation_result_is_refused(value: bytes) -> None:
    with pytest.raises(SgpError) as info:
        parse_pending_notification(_pir_raw(value))
    assert (info.value.subject_code, info.value.reason_code) == ("1.2", "2.1")


def test_other_signed_notification_metadata() -> None:
    tbs = rsp().encode("NotificationMetadata", _metadata(
        profileManagementOperation=(b"\x20", 3), iccid=b"\x98" * 10))
    cert = encode_tlv(b"\x30", b"\x01\x01\x00")
    der = encode_tlv(b"\x30", tbs + SIGNATURE + cert + cert)
    note = parse_pending_notification(der)
    assert isinstance(note, OtherSignedNotification)
    assert note.data == tbs and note.operation == "notificationDisable"
    assert (note.seq_number, note.notification_address, note.iccid) == \
        (7, "smdp.example.com", b"\x98" * 10)
    assert note.euicc_certificate == cert and note.other_certs_in_chain == ()
