"""Tests of smdpp.bsp: key derivation and segment protection (SGP.22 2.6.4).

Known-answer values come from /work/shared/testdata/bsp_third_party_trace.json;
the other tests use fresh keys.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from smdpp.asn1.tlv import encode_tlv, iter_tlvs, parse_single
from smdpp.bsp import (
    MAX_ENCRYPTED_DATA,
    MAX_MAC_ONLY_DATA,
    MAX_SEGMENT_VALUE,
    TAG_MAC_AND_ENC,
    TAG_MAC_ONLY,
    TAG_PROFILE_SEGMENT,
    BspError,
    BspSession,
    SessionKeys,
    bsp_shared_info,
    derive_session_keys,
    ecka_shared_secret,
    protect_segmented,
    split_data,
)
from smdpp.es8p.replace_session_keys import parse_replace_session_keys
from smdpp.pki.ecdsa import public_point

CONFIGURE_ISDP_EMPTY = bytes.fromhex("bf2400")


@pytest.fixture(scope="module")
def trace(shared_testdata: Path) -> dict[str, bytes | int]:
    raw = json.loads((shared_testdata / "bsp_third_party_trace.json").read_text())
    return {k: (v if isinstance(v, int) else bytes.fromhex(v)) for k, v in raw.items() if k != "about"}


def _trace_keys(trace: dict) -> SessionKeys:
    return SessionKeys(s_enc=trace["s_enc"], s_mac=trace["s_mac"], initial_mcv=trace["mcv"])


def _random_keys() -> SessionKeys:
    return SessionKeys(s_enc=os.urandom(16), s_mac=os.urandom(16), initial_mcv=os.urandom(16))


# --- key derivation -------------------------------------------------------------------------

def test_kdf_matches_trace(trace: dict) -> None:
    assert trace["key_type"] == b"\x88" and trace["key_len"] == 16
    keys = derive_session_keys(trace["shs"], host_id=trace["host_id"], eid=trace["eid"])
    assert keys.s_enc == trace["s_enc"]
    assert keys.s_mac == trace["s_mac"]
    assert keys.initial_mcv == trace["mcv"]


def test_kdf_depends_on_host_id_and_eid(trace: dict) -> None:
    base = derive_session_keys(trace["shs"], host_id=trace["host_id"], eid=trace["eid"])
    other_host = derive_session_keys(trace["shs"], host_id=b"\x80" * 7, eid=trace["eid"])
    other_eid = derive_session_keys(trace["shs"], host_id=trace["host_id"],
                                    eid=trace["eid"][:-1] + b"\x00")
    assert other_host.s_enc != base.s_enc and other_eid.s_enc != base.s_enc


def test_shared_info_layout() -> None:
    info = bsp_shared_info(b"\x01\x02", bytes(range(16)))
    assert info == bytes.fromhex("8810" "02" "0102" "10") + bytes(range(16))


@pytest.mark.parametrize("bad", [{"host_id": b""}, {"host_id": bytes(17)}, {"eid": bytes(15)}])
def test_shared_info_rejects_bad_sizes(bad: dict) -> None:
    args = {"host_id": b"\x01", "eid": bytes(16)} | bad
    with pytest.raises(BspError):
        bsp_shared_info(**args)


def test_kdf_rejects_other_key_types() -> None:
    with pytest.raises(BspError):
        derive_session_keys(bytes(32), host_id=b"\x01", eid=bytes(16), key_type=0x80)


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.BrainpoolP256R1()], ids=["P-256", "brainpoolP256r1"])
def test_ecka_both_sides_agree(curve: ec.EllipticCurve) -> None:
    a = ec.generate_private_key(curve)
    b = ec.generate_private_key(curve)
    shs = ecka_shared_secret(a, public_point(b))
    assert len(shs) == 32
    assert shs == ecka_shared_secret(b, public_point(a))
    assert shs != ecka_shared_secret(a, public_point(ec.generate_private_key(curve)))


def test_ecka_rejects_bad_points() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    peer = public_point(ec.generate_private_key(ec.SECP256R1()))
    compressed = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        Encoding.X962, PublicFormat.CompressedPoint)
    not_on_curve = peer[:-1] + bytes([peer[-1] ^ 1])
    other_curve = public_point(ec.generate_private_key(ec.BrainpoolP256R1()))
    for point in (compressed, not_on_curve, peer[:-1], b"", other_curve):
        with pytest.raises(BspError):
            ecka_shared_secret(key, point)


def test_session_keys_hidden_and_sized() -> None:
    keys = SessionKeys(s_enc=b"\xaa" * 16, s_mac=b"\xbb" * 16, initial_mcv=b"\xcc" * 16)
    assert "aa" not in repr(keys) and "bb" not in repr(keys) and "cc" not in repr(keys)
    with pytest.raises(BspError):
        SessionKeys(s_enc=bytes(24), s_mac=bytes(16), initial_mcv=bytes(16))


# --- known-answer segments -----------------------------------------------------------------

def test_protect_reproduces_trace(trace: dict) -> None:
    session = BspSession(_trace_keys(trace))
    assert session.protect(TAG_MAC_AND_ENC, CONFIGURE_ISDP_EMPTY) == trace["seg_87_conf"]
    assert session.protect(TAG_MAC_ONLY, trace["smr"]) == trace["seg_88"]
    assert session.protect(TAG_MAC_AND_ENC, trace["rsk"]) == trace["seg_87_rsk"]
    session.replace_session_keys(parse_replace_session_keys(trace["rsk"]))
    assert session.protect(TAG_PROFILE_SEGMENT, trace["seg0_plain"]) == trace["seg0_86"]


def test_unprotect_reproduces_trace(trace: dict) -> None:
    session = BspSession(_trace_keys(trace))
    assert session.unprotect(trace["seg_87_conf"], TAG_MAC_AND_ENC) == CONFIGURE_ISDP_EMPTY
    assert session.unprotect(trace["seg_88"], TAG_MAC_ONLY) == trace["smr"]
    rsk = session.unprotect(trace["seg_87_rsk"], TAG_MAC_AND_ENC)
    assert rsk == trace["rsk"]
    session.replace_session_keys(parse_replace_session_keys(rsk))
    assert session.unprotect(trace["seg0_86"], TAG_PROFILE_SEGMENT) == trace["seg0_plain"]


def test_trace_first_86_is_a_full_chunk(trace: dict) -> None:
    # The third party cut the UPP into 1007-byte chunks: a full segment of 1016 value bytes.
    assert len(trace["seg0_plain"]) == MAX_ENCRYPTED_DATA == 1007
    assert len(parse_single(trace["seg0_86"]).value) == 1016


def test_trace_segments_need_the_ppk(trace: dict) -> None:
    # Without ReplaceSessionKeys the first '86' does not verify under the session keys.
    session = BspSession(_trace_keys(trace))
    for seg in ("seg_87_conf", "seg_88", "seg_87_rsk"):
        session.unprotect(trace[seg])
    with pytest.raises(BspError, match="MAC of segment 86 invalid"):
        session.unprotect(trace["seg0_86"])


def test_trace_chain_order_matters(trace: dict) -> None:
    # Skipping ConfigureISDP breaks the MAC chain of the following StoreMetadata segment.
    with pytest.raises(BspError, match="MAC"):
        BspSession(_trace_keys(trace)).unprotect(trace["seg_88"])


# --- own tests --------------------------------------------------------------------------------

def test_tampered_mac_rejected_and_state_kept() -> None:
    keys = _random_keys()
    seg = BspSession(keys).protect(TAG_MAC_AND_ENC, b"hello")
    receiver = BspSession(keys)
    with pytest.raises(BspError, match="MAC of segment 87 invalid"):
        receiver.unprotect(seg[:-1] + bytes([seg[-1] ^ 0x01]))
    assert receiver.unprotect(seg) == b"hello"


@pytest.mark.parametrize("tag", [TAG_MAC_AND_ENC, TAG_MAC_ONLY, TAG_PROFILE_SEGMENT])
def test_tampered_data_rejected(tag: bytes) -> None:
    keys = _random_keys()
    seg = bytearray(BspSession(keys).protect(tag, b"some profile data bytes"))
    seg[3] ^= 0x80
    with pytest.raises(BspError, match="MAC"):
        BspSession(keys).unprotect(bytes(seg))


def test_wrong_key_rejected() -> None:
    keys = _random_keys()
    seg = BspSession(keys).protect(TAG_PROFILE_SEGMENT, b"x" * 100)
    wrong_mac = SessionKeys(s_enc=keys.s_enc, s_mac=os.urandom(16), initial_mcv=keys.initial_mcv)
    wrong_mcv = SessionKeys(s_enc=keys.s_enc, s_mac=keys.s_mac, initial_mcv=os.urandom(16))
    for other in (_random_keys(), wrong_mac, wrong_mcv):
        with pytest.raises(BspError, match="MAC"):
            BspSession(other).unprotect(seg)


def test_encryption_hides_data_and_mac_only_does_not() -> None:
    keys = _random_keys()
    session = BspSession(keys)
    data = b"A" * 48
    enc = session.protect(TAG_MAC_AND_ENC, data)
    mac_only = session.protect(TAG_MAC_ONLY, data)
    assert data not in enc and len(parse_single(enc).value) == 64 + 8
    assert mac_only[2:50] == data and len(parse_single(mac_only).value) == 56


def test_icv_uses_block_counter() -> None:
    # Same plaintext in two consecutive segments encrypts differently (counter 1, then 2).
    keys = _random_keys()
    session = BspSession(keys)
    first = session.protect(TAG_PROFILE_SEGMENT, b"same")
    second = session.protect(TAG_PROFILE_SEGMENT, b"same")
    assert first[2:18] != second[2:18]


def test_multi_segment_round_trip() -> None:
    keys = _random_keys()
    data = os.urandom(10 * MAX_ENCRYPTED_DATA + 123)
    segments = protect_segmented(BspSession(keys), TAG_PROFILE_SEGMENT, data)
    assert len(segments) == 11
    for seg in segments:
        assert parse_single(seg, TAG_PROFILE_SEGMENT).end - parse_single(seg).value_start <= MAX_SEGMENT_VALUE
    receiver = BspSession(keys)
    assert b"".join(receiver.unprotect(s, TAG_PROFILE_SEGMENT) for s in segments) == data
    # Reordering two segments is detected.
    receiver = BspSession(keys)
    receiver.unprotect(segments[0])
    with pytest.raises(BspError):
        receiver.unprotect(segments[2])


def test_replace_session_keys_switches_keys_and_restarts_counter() -> None:
    keys, ppk = _random_keys(), _random_keys()
    sender = BspSession(keys)
    sender.protect(TAG_MAC_AND_ENC, b"first")
    sender.protect(TAG_MAC_ONLY, b"second")
    sender.replace_session_keys(ppk)
    seg = sender.protect(TAG_PROFILE_SEGMENT, b"profile")
    # A fresh session under the PPK alone (counter 1, PPK MCV) opens it.
    assert BspSession(ppk).unprotect(seg) == b"profile"


def test_segment_size_limits() -> None:
    session = BspSession(_random_keys())
    full = session.protect(TAG_PROFILE_SEGMENT, bytes(MAX_ENCRYPTED_DATA))
    assert len(parse_single(full).value) == 1016
    with pytest.raises(BspError, match="exceeds"):
        session.protect(TAG_PROFILE_SEGMENT, bytes(MAX_ENCRYPTED_DATA + 1))
    mac_only = session.protect(TAG_MAC_ONLY, bytes(MAX_MAC_ONLY_DATA))
    assert len(parse_single(mac_only).value) == MAX_SEGMENT_VALUE
    with pytest.raises(BspError, match="exceeds"):
        session.protect(TAG_MAC_ONLY, bytes(MAX_MAC_ONLY_DATA + 1))
    assert [len(c) for c in split_data(bytes(2 * MAX_ENCRYPTED_DATA + 1), TAG_PROFILE_SEGMENT)] == [1007, 1007, 1]
    assert [len(c) for c in split_data(bytes(1013), TAG_MAC_ONLY)] == [1012, 1]
    with pytest.raises(BspError):
        split_data(b"", TAG_PROFILE_SEGMENT)


def test_oversized_segment_rejected_on_receipt() -> None:
    seg = encode_tlv(TAG_MAC_ONLY, bytes(MAX_SEGMENT_VALUE + 1))
    with pytest.raises(BspError, match="exceeds"):
        BspSession(_random_keys()).unprotect(seg)


@pytest.mark.parametrize("segment, message", [
    (b"\x87", "malformed"),
    (bytes.fromhex("8705") + bytes(4), "malformed"),  # value runs past the end
    (encode_tlv(b"\x87", bytes(24)) + b"\x00", "malformed"),  # trailing byte
    (encode_tlv(b"\x89", bytes(24)), "not a BSP segment"),
    (encode_tlv(b"\x87", bytes(20)), "invalid length"),  # not a whole number of blocks
    (encode_tlv(b"\x87", bytes(8)), "invalid length"),  # MAC only, no ciphertext
    (encode_tlv(b"\x88", bytes(7)), "invalid length"),  # shorter than the MAC
    (b"\x87\x81\x18" + bytes(24), "minimal"),  # non-DER length
])
def test_malformed_segments_rejected(segment: bytes, message: str) -> None:
    with pytest.raises(BspError, match=message):
        BspSession(_random_keys()).unprotect(segment)


def test_unexpected_tag_rejected() -> None:
    keys = _random_keys()
    seg = BspSession(keys).protect(TAG_MAC_ONLY, b"metadata")
    with pytest.raises(BspError, match="expected tag 87"):
        BspSession(keys).unprotect(seg, TAG_MAC_AND_ENC)


def test_bad_padding_rejected() -> None:
    # A segment with a valid MAC whose plaintext lacks the '80' padding marker,
    # built here with the primitives directly (counter 1, ICV = AES(S-ENC, 1)).
    keys = _random_keys()
    ecb = Cipher(algorithms.AES(keys.s_enc), modes.ECB()).encryptor()
    icv = ecb.update((1).to_bytes(16, "big")) + ecb.finalize()
    enc = Cipher(algorithms.AES(keys.s_enc), modes.CBC(icv)).encryptor()
    body = enc.update(b"\x01" * 16) + enc.finalize()
    header = b"\x87" + bytes([len(body) + 8])
    mac = cmac.CMAC(algorithms.AES(keys.s_mac))
    mac.update(keys.initial_mcv + header + body)
    seg = header + body + mac.finalize()[:8]
    with pytest.raises(BspError, match="padding"):
        BspSession(keys).unprotect(seg)


def test_replace_session_keys_rejects_other_lengths() -> None:
    session = BspSession(_random_keys())

    class _Long:  # a key set with a different key length than the session's
        s_enc = bytes(32)
        s_mac = bytes(32)
        initial_mcv = bytes(16)

    with pytest.raises(BspError, match="lengths"):
        session.replace_session_keys(_Long())  # type: ignore[arg-type]


def test_segments_are_consecutive_tlvs() -> None:
    keys = _random_keys()
    joined = b"".join(protect_segmented(BspSession(keys), TAG_MAC_ONLY, os.urandom(3000)))
    tags = [t.tag for t in iter_tlvs(joined)]
    assert tags == [TAG_MAC_ONLY] * 3
