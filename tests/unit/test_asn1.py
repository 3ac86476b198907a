"""The ASN.1 layer: OID decoding fix, the RSP module against known encodings, TLV helpers."""
from __future__ import annotations

import json
import random
from typing import Any

import asn1tools
import pytest

from smdpp import asn1
from smdpp.asn1.tlv import TlvError, encode_length, encode_tlv, iter_tlvs, parse_single, read_tlv

OID_SPEC = asn1tools.compile_string(
    "T DEFINITIONS ::= BEGIN O ::= OBJECT IDENTIFIER END", "der")


@pytest.mark.parametrize("oid, der", [
    ("2.999.10", "060388370a"),  # SGP.26 SM-DP+ OID: first subidentifier 2*40+999 = 1079
    ("2.23.146.1.2.1.4", "060767811201020104"),  # id-rspRole-dp-auth
    ("1.2.840.10045.2.1", "06072a8648ce3d0201"),  # id-ecPublicKey
    ("0.39.1", "06022701"),
    ("1.39", "06014f"),
    ("2.40", "060178"),
    ("2.47", "06017f"),
    ("2.48", "06028100"),
])
def test_oid_round_trip_is_exact(oid: str, der: str) -> None:
    assert OID_SPEC.encode("O", oid).hex() == der
    assert OID_SPEC.decode("O", bytes.fromhex(der)) == oid


def test_oid_in_rsp_structure_round_trips() -> None:
    """smdpOid of EuiccCancelSessionSigned (SGP.22 5.7.14) keeps 2.999.10."""
    value = {"transactionId": b"\x01" * 16, "smdpOid": "2.999.10", "reason": 0}
    der = asn1.rsp().encode("EuiccCancelSessionSigned", value)
    assert bytes.fromhex("060388370a") in der
    assert asn1.rsp().decode("EuiccCancelSessionSigned", der) == value


def test_malformed_oid_is_a_decode_error() -> None:
    with pytest.raises(asn1tools.DecodeError):
        OID_SPEC.decode("O", bytes.fromhex("060288"))  # last subidentifier unterminated


def test_store_metadata_request_matches_third_party_trace(shared_testdata) -> None:
    """Our StoreMetadataRequest encoding equals the 'smr' of the BSP trace byte for byte."""
    trace = json.loads((shared_testdata / "bsp_third_party_trace.json").read_text())
    der = asn1.rsp().encode("StoreMetadataRequest", {
        "iccid": bytes.fromhex("98001032547698103214"),
        "serviceProviderName": "GSMA_TEST", "profileName": "GSMA_TEST_PROFILE",
        "profileClass": 0})
    assert der.hex() == trace["smr"]


def test_euicc_info2_keeps_universal_tags_where_sgp22_has_them() -> None:
    """ppVersion ('04') and sasAcreditationNumber ('0C') are not automatically tagged."""
    der = asn1.rsp().encode("EUICCInfo2", {
        "profileVersion": b"\x02\x01\x00", "svn": b"\x02\x02\x02",
        "euiccFirmwareVer": b"\x01\x00\x00", "extCardResource": b"",
        "uiccCapability": (b"\x00\x00\x00", 19), "rspCapability": (b"\x00", 4),
        "euiccCiPKIdListForVerification": [b"\xaa" * 20],
        "euiccCiPKIdListForSigning": [b"\xaa" * 20],
        "ppVersion": b"\x00\x00\x01", "sasAcreditationNumber": "SAS"})
    top = parse_single(der, b"\xbf\x22")
    tags = [c.tag.hex() for c in top.children()]
    assert tags == ["81", "82", "83", "84", "85", "88", "a9", "aa", "04", "0c"]


def test_server_signed1_known_encoding() -> None:
    der = asn1.rsp().encode("ServerSigned1", {
        "transactionId": bytes(range(16)), "euiccChallenge": b"\x11" * 16,
        "serverAddress": "a.b", "serverChallenge": b"\x22" * 16})
    assert der.hex() == ("303b" "8010" + bytes(range(16)).hex() + "8110" + "11" * 16
                         + "8303612e62" + "8410" + "22" * 16)


def test_tlv_reads_multibyte_tags_and_long_lengths() -> None:
    value = b"\x55" * 300
    data = encode_tlv(b"\xbf\x36", value) + encode_tlv(b"\x80", b"\x01")
    first, second = list(iter_tlvs(data))
    assert first.tag == b"\xbf\x36" and first.value == value
    assert data[:5].hex() == "bf3682012c"
    assert first.raw == data[:first.end]
    assert second.tag == b"\x80" and second.value == b"\x01"
    assert encode_length(127) == b"\x7f" and encode_length(128) == b"\x81\x80"


@pytest.mark.parametrize("bad", ["", "80", "8002aa", "bf", "bf8f", "8085ffffffffff", "80800000"])
def test_tlv_rejects_malformed_input(bad: str) -> None:
    with pytest.raises(TlvError):
        read_tlv(bytes.fromhex(bad))


def test_parse_single_rejects_trailing_bytes_and_wrong_tag() -> None:
    with pytest.raises(TlvError):
        parse_single(bytes.fromhex("800100" "00"))
    with pytest.raises(TlvError):
        parse_single(bytes.fromhex("800100"), b"\x81")


def test_tlv_fast_path_agrees_with_the_general_reader() -> None:
    """read_tlv's shortcut for short tags and lengths gives what the general reader gives,
    errors included, on random bytes rich in tag and length octets."""
    from smdpp.asn1.tlv import _read_tlv

    def outcome(reader: Any, data: bytes, offset: int, end: int) -> tuple[str, Any]:
        try:
            return "ok", tuple(reader(data, offset, end))
        except TlvError as exc:
            return "error", str(exc)

    rng = random.Random(20)
    interesting = [0x00, 0x01, 0x02, 0x1f, 0x30, 0x5f, 0x7f, 0x80, 0x81, 0x82, 0x83, 0x84,
                   0x9f, 0xa0, 0xbf, 0xff]
    for _ in range(20000):
        data = bytes(rng.choice(interesting) if rng.random() < 0.7 else rng.randrange(256)
                     for _ in range(rng.randint(0, 10)))
        offset = rng.randint(0, len(data))
        end = rng.randint(offset, len(data))
        assert outcome(read_tlv, data, offset, end) == outcome(_read_tlv, data, offset, end), \
            (data.hex(), offset, end)
    # and the forms the shortcut takes, against known offsets
    assert read_tlv(b"\x5f\x37\x81\x80" + bytes(128))[2:] == (0, 4, 132)
    assert read_tlv(b"\xbf\x36\x82\x01\x00" + bytes(256))[2:] == (0, 5, 261)
