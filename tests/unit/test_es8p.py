"""Tests of smdpp.es8p: building and opening the Bound Profile Package (SGP.22 2.5.5, 5.5)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from smdpp.asn1.tlv import encode_tlv, parse_single
from smdpp.bsp import MAX_SEGMENT_VALUE, BspError
from smdpp.es8p import (
    bind_profile_package,
    encode_replace_session_keys,
    new_one_time_key,
    open_bound_profile_package,
    parse_initialise_secure_channel,
    parse_replace_session_keys,
    protect_profile_package,
)
from smdpp.pki.ecdsa import public_point, verify_plain

CURVES = [pytest.param(ec.SECP256R1(), id="P-256"), pytest.param(ec.BrainpoolP256R1(), id="brainpoolP256r1")]
EID = bytes.fromhex("89049032123451234512345678901235")
TRANSACTION_ID = bytes.fromhex("0102030405060708090a0b0c0d0e0f10")
HOST_ID = bytes.fromhex("8080808080808080")
CONFIGURE_ISDP = encode_tlv(b"\xbf\x24", encode_tlv(b"\x5a", bytes.fromhex("98001032547698103214")))
STORE_METADATA = encode_tlv(b"\xbf\x25", encode_tlv(b"\x5a", bytes.fromhex("98001032547698103214"))
                            + encode_tlv(b"\x91", b"Test SP") + encode_tlv(b"\x92", b"Test profile"))


class Parties:
    """One eUICC one-time key and one DPpb key on a curve."""

    def __init__(self, curve: ec.EllipticCurve) -> None:
        self.dppb = ec.generate_private_key(curve)
        self.euicc_ot = ec.generate_private_key(curve)
        self.euicc_otpk = public_point(self.euicc_ot)

    def bind(self, upp: bytes, *, use_ppk: bool = True, protected=None, smdp_ot_key=None, **kw):
        """Bind ``upp``: under fresh PPKs (``use_ppk``), the given Protected Profile Package,
        or the session keys; with a new one-time key unless ``smdp_ot_key`` is given."""
        profile = protected or (protect_profile_package(upp) if use_ppk else upp)
        args = dict(transaction_id=TRANSACTION_ID, eid=EID, euicc_otpk=self.euicc_otpk,
                    smdp_ot_key=smdp_ot_key or new_one_time_key(self.dppb), dppb_key=self.dppb,
                    configure_isdp=CONFIGURE_ISDP, store_metadata=STORE_METADATA,
                    profile=profile, host_id=HOST_ID) | kw
        return bind_profile_package(**args)

    def open(self, der: bytes, **kw):
        args = dict(euicc_ot_key=self.euicc_ot, euicc_otpk=self.euicc_otpk, eid=EID,
                    dppb_public_key=self.dppb.public_key()) | kw
        return open_bound_profile_package(der, **args)


@pytest.fixture(scope="module")
def p256() -> Parties:
    return Parties(ec.SECP256R1())


def _segments(der: bytes, container_tag: bytes) -> list:
    bpp = parse_single(der, b"\xbf\x36")
    container = bpp.child(container_tag)
    return container.children() if container is not None else []


@pytest.mark.parametrize("curve", CURVES)
@pytest.mark.parametrize("use_ppk", [True, False], ids=["ppk", "session-keys"])
def test_round_trip(curve: ec.EllipticCurve, use_ppk: bool) -> None:
    parties = Parties(curve)
    upp = os.urandom(5000)
    bpp = parties.bind(upp, use_ppk=use_ppk)
    opened = parties.open(bpp.der)
    assert opened.upp == upp
    assert opened.configure_isdp == CONFIGURE_ISDP
    assert opened.store_metadata == STORE_METADATA
    assert opened.transaction_id == TRANSACTION_ID
    assert opened.host_id == HOST_ID
    assert opened.smdp_otpk == bpp.smdp_otpk
    tags = [t.tag for t in parse_single(bpp.der, b"\xbf\x36").children()]
    expected = [b"\xbf\x23", b"\xa0", b"\xa1"] + ([b"\xa2"] if use_ppk else []) + [b"\xa3"]
    assert tags == expected


def test_round_trip_with_sgp26_dppb_and_ts48_profile(shared_testdata: Path) -> None:
    dppb = load_pem_private_key(
        (shared_testdata / "sgp26/DPpb/SK_S_SM_DPpb_ECDSA_NIST.pem").read_bytes(), None)
    cert = x509.load_der_x509_certificate(
        (shared_testdata / "sgp26/DPpb/CERT_S_SM_DPpb_ECDSA_NIST.der").read_bytes())
    upp = (shared_testdata / "upp/TS48V2-SAIP2-1-NOBERTLV-UNIQUE.der").read_bytes()
    parties = Parties(ec.SECP256R1())
    parties.dppb = dppb
    bpp = parties.bind(upp)
    assert parties.open(bpp.der, dppb_public_key=cert.public_key()).upp == upp


def test_initialise_secure_channel_content(p256: Parties) -> None:
    bpp = p256.bind(b"\x01" * 10)
    bf23 = parse_single(bpp.der, b"\xbf\x36").children()[0]
    parts = bf23.children()
    assert [p.tag for p in parts] == [b"\x82", b"\x80", b"\xa6", b"\x5f\x49", b"\x5f\x37"]
    assert parts[0].raw == bytes.fromhex("820101")
    assert parts[1].value == TRANSACTION_ID
    assert parts[2].raw == bytes.fromhex("a610" "800188" "810110" "8408") + HOST_ID
    assert parts[3].value == bpp.smdp_otpk and bpp.smdp_otpk[0] == 0x04 and len(bpp.smdp_otpk) == 65
    assert len(parts[4].value) == 64  # plain r||s, not DER
    signed = bf23.data[bf23.value_start:parts[4].start] + b"\x5f\x49\x41" + p256.euicc_otpk
    assert verify_plain(p256.dppb.public_key(), parts[4].value, signed)
    parsed = parse_initialise_secure_channel(bf23.raw)
    assert parsed.host_id == HOST_ID and parsed.smdp_sign == parts[4].value


def test_replace_session_keys_matches_trace(shared_testdata: Path) -> None:
    rsk = bytes.fromhex(json.loads((shared_testdata / "bsp_third_party_trace.json").read_text())["rsk"])
    keys = parse_replace_session_keys(rsk)
    assert keys.initial_mcv == bytes.fromhex("00" "0102030405060708090a0b0c0d0e0f")
    assert keys.s_enc == bytes.fromhex("01" "0102030405060708090a0b0c0d0e0f")
    assert keys.s_mac == bytes.fromhex("02" "0102030405060708090a0b0c0d0e0f")
    assert encode_replace_session_keys(keys) == rsk


@pytest.mark.parametrize("der", [
    bytes.fromhex("bf2636" "8110" + "00" * 16 + "8010" + "00" * 16 + "8210" + "00" * 16),  # order
    bytes.fromhex("bf2424" "8010" + "00" * 16 + "8110" + "00" * 16),  # wrong tag
    bytes.fromhex("bf2624" "8010" + "00" * 16 + "8110" + "00" * 16),  # missing ppkCmac
    bytes.fromhex("bf2633" "800d" + "00" * 13 + "8110" + "00" * 16 + "8210" + "00" * 16),  # short MCV
])
def test_replace_session_keys_strict(der: bytes) -> None:
    with pytest.raises(BspError):
        parse_replace_session_keys(der)


def test_100k_upp_segments_within_limit(p256: Parties) -> None:
    upp = os.urandom(100 * 1024)
    bpp = p256.bind(upp)
    segments = _segments(bpp.der, b"\xa3")
    assert len(segments) == -(-len(upp) // 1007)
    assert all(s.tag == b"\x86" and len(s.value) <= MAX_SEGMENT_VALUE for s in segments)
    assert p256.open(bpp.der).upp == upp


def test_large_store_metadata_is_split(p256: Parties) -> None:
    metadata = encode_tlv(b"\xbf\x25", encode_tlv(b"\x5a", bytes(10)) + encode_tlv(b"\x99", os.urandom(2500)))
    bpp = p256.bind(b"\x02" * 50, store_metadata=metadata)
    segments = _segments(bpp.der, b"\xa1")
    assert len(segments) == 3 and all(len(s.value) <= MAX_SEGMENT_VALUE for s in segments)
    assert p256.open(bpp.der).store_metadata == metadata


def test_bindings_differ(p256: Parties) -> None:
    upp = os.urandom(3000)
    first, second = p256.bind(upp), p256.bind(upp)
    assert first.smdp_otpk != second.smdp_otpk
    seg_1 = [s.value for s in _segments(first.der, b"\xa3")]
    seg_2 = [s.value for s in _segments(second.der, b"\xa3")]
    assert all(a != b for a, b in zip(seg_1, seg_2))
    assert _segments(first.der, b"\xa0")[0].value != _segments(second.der, b"\xa0")[0].value


def test_retry_with_same_one_time_key(p256: Parties) -> None:
    ot = ec.generate_private_key(ec.SECP256R1())
    upp = os.urandom(2000)
    first = p256.bind(upp, smdp_ot_key=ot, use_ppk=False)
    second = p256.bind(upp, smdp_ot_key=ot, use_ppk=False)
    assert first.smdp_otpk == second.smdp_otpk == public_point(ot)
    # Same ECDH, same session keys: the protected segments are identical; both open.
    assert _segments(first.der, b"\xa3")[0].raw == _segments(second.der, b"\xa3")[0].raw
    assert p256.open(second.der).upp == upp


def test_wrong_euicc_key_rejected(p256: Parties) -> None:
    bpp = p256.bind(b"\x03" * 100)
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(BspError, match="does not belong"):
        p256.open(bpp.der, euicc_ot_key=other)
    # With a consistent but different key pair, smdpSign (which covers euiccOtpk) fails.
    with pytest.raises(BspError, match="smdpSign verification failed"):
        p256.open(bpp.der, euicc_ot_key=other, euicc_otpk=public_point(other))


def test_wrong_eid_gives_other_keys(p256: Parties) -> None:
    bpp = p256.bind(b"\x03" * 100)
    with pytest.raises(BspError, match=r"MAC of segment 87 #1 \(firstSequenceOf87\) invalid"):
        p256.open(bpp.der, eid=EID[:-1] + b"\x36")


@pytest.mark.parametrize("use_ppk", [True, False])
def test_tampered_86_segment_rejected(p256: Parties, use_ppk: bool) -> None:
    bpp = p256.bind(os.urandom(4000), use_ppk=use_ppk)
    third = _segments(bpp.der, b"\xa3")[2]
    der = bytearray(bpp.der)
    der[third.value_start + 5] ^= 0x01
    with pytest.raises(BspError, match=r"MAC of segment 86 #3 \(sequenceOf86\) invalid"):
        p256.open(bytes(der))


def test_tampered_smdp_sign_rejected(p256: Parties) -> None:
    bpp = p256.bind(b"\x04" * 100)
    sign = parse_single(bpp.der).children()[0].child(b"\x5f\x37")
    der = bytearray(bpp.der)
    der[sign.value_start + 10] ^= 0x01
    with pytest.raises(BspError, match="smdpSign verification failed"):
        p256.open(bytes(der))


def test_tampered_smdp_otpk_rejected(p256: Parties) -> None:
    # smdpOtpk is covered by smdpSign: swapping it for another key is caught before ECDH.
    bpp = p256.bind(b"\x04" * 100)
    otpk = parse_single(bpp.der).children()[0].child(b"\x5f\x49")
    der = bpp.der[:otpk.value_start] + public_point(ec.generate_private_key(ec.SECP256R1())) + bpp.der[otpk.end:]
    with pytest.raises(BspError, match="smdpSign verification failed"):
        p256.open(der)


def test_wrong_dppb_key_rejected(p256: Parties) -> None:
    bpp = p256.bind(b"\x05" * 100)
    with pytest.raises(BspError, match="smdpSign verification failed"):
        p256.open(bpp.der, dppb_public_key=ec.generate_private_key(ec.SECP256R1()).public_key())


def test_removed_ppk_sequence_rejected(p256: Parties) -> None:
    # Dropping secondSequenceOf87 leaves '86' segments under keys the eUICC does not have.
    bpp = p256.bind(b"\x06" * 100)
    parts = parse_single(bpp.der).children()
    der = encode_tlv(b"\xbf\x36", b"".join(p.raw for i, p in enumerate(parts) if i != 3))
    with pytest.raises(BspError, match=r"MAC of segment 86 #1"):
        p256.open(der)


def test_structure_is_strict(p256: Parties) -> None:
    bpp = p256.bind(b"\x07" * 100)
    parts = parse_single(bpp.der).children()
    swapped = encode_tlv(b"\xbf\x36", parts[0].raw + parts[2].raw + parts[1].raw
                         + b"".join(p.raw for p in parts[3:]))
    empty_86 = encode_tlv(b"\xbf\x36", b"".join(p.raw for p in parts[:-1]) + b"\xa3\x00")
    for der in (bpp.der[:-1], bpp.der + b"\x00", b"\xbf\x37" + bpp.der[2:], swapped, empty_86):
        with pytest.raises(BspError):
            p256.open(der)


def test_segment_with_wrong_tag_in_sequence_rejected(p256: Parties) -> None:
    bpp = p256.bind(b"\x08" * 100, use_ppk=False)
    seg = _segments(bpp.der, b"\xa0")[0]
    der = bpp.der[:seg.start] + b"\x86" + bpp.der[seg.start + 1:]
    with pytest.raises(BspError, match="firstSequenceOf87 malformed"):
        p256.open(der)


def test_bind_rejects_bad_input(p256: Parties) -> None:
    bp = Parties(ec.BrainpoolP256R1())
    cases = [
        dict(euicc_otpk=bp.euicc_otpk),  # eUICC key on another curve than DPpb
        dict(smdp_ot_key=ec.generate_private_key(ec.BrainpoolP256R1())),
        dict(eid=EID[:15]),
        dict(host_id=bytes(17)),
        dict(transaction_id=b""),
        dict(configure_isdp=STORE_METADATA),
        dict(store_metadata=STORE_METADATA + b"\x00"),
        dict(upp=b""),
    ]
    for case in cases:
        with pytest.raises(BspError):
            p256.bind(case.pop("upp", b"\x09" * 10), **case)


def test_ppk_keys_are_fresh(p256: Parties) -> None:
    # The PPK differs per binding, so the '86' segments differ even with the same session keys.
    ot = ec.generate_private_key(ec.SECP256R1())
    upp = os.urandom(500)
    first = p256.bind(upp, smdp_ot_key=ot)
    second = p256.bind(upp, smdp_ot_key=ot)
    assert _segments(first.der, b"\xa3")[0].raw != _segments(second.der, b"\xa3")[0].raw
    assert p256.open(first.der).upp == p256.open(second.der).upp == upp


@pytest.mark.parametrize("curve", CURVES)
def test_protected_profile_package_binds_to_several_euiccs(curve: ec.EllipticCurve) -> None:
    """One Protected Profile Package (per-profile PPKs) serves two eUICCs; each opens it."""
    upp = os.urandom(9000)
    protected = protect_profile_package(upp)
    first, second = Parties(curve), Parties(curve)
    first.dppb = second.dppb
    bpp_1, bpp_2 = first.bind(upp, protected=protected), second.bind(upp, protected=protected)
    assert first.open(bpp_1.der).upp == upp
    assert second.open(bpp_2.der).upp == upp
    # the '86' segments are the protected ones, as they are; the PPKs travel per session
    assert parse_single(bpp_1.der).child(b"\xa3").raw == protected.sequence_of_86
    assert parse_single(bpp_2.der).child(b"\xa3").raw == protected.sequence_of_86
    assert parse_single(bpp_1.der).child(b"\xa2").raw != parse_single(bpp_2.der).child(b"\xa2").raw
    with pytest.raises(BspError):  # the eUICC of one session cannot open the other's BPP
        first.open(bpp_2.der)


def test_protected_profile_packages_have_their_own_ppks() -> None:
    upp = os.urandom(2000)
    one, two = protect_profile_package(upp), protect_profile_package(upp)
    assert one.ppk.s_enc != two.ppk.s_enc and one.ppk.s_mac != two.ppk.s_mac
    assert one.sequence_of_86 != two.sequence_of_86
    assert "s_enc" not in repr(one) and one.ppk.s_enc.hex() not in repr(one)


def test_one_time_key_is_new_each_time_on_the_dppb_curve() -> None:
    dppb = ec.generate_private_key(ec.BrainpoolP256R1())
    one, two = new_one_time_key(dppb), new_one_time_key(dppb)
    assert one.curve.name == two.curve.name == dppb.curve.name
    assert public_point(one) != public_point(two)


def test_one_time_key_on_another_curve_rejected(p256: Parties) -> None:
    with pytest.raises(BspError):
        p256.bind(b"\x01" * 100, smdp_ot_key=ec.generate_private_key(ec.BrainpoolP256R1()))
