"""smdpp.rsp.outgoing: what the SM-DP+ sends, against the ASN.1 of SGP.22 (5.6.1, 5.6.3, 5.5.3)."""
from __future__ import annotations

import os

import pytest

from smdpp.asn1 import rsp
from smdpp.asn1.tlv import parse_single
from smdpp.profiles.inventory import Profile
from smdpp.rsp import outgoing


def test_server_signed1_is_the_der_of_its_asn1() -> None:
    tid, challenge, server_challenge = os.urandom(16), os.urandom(16), os.urandom(16)
    der = outgoing.server_signed1(tid, challenge, "smdp.example.com", server_challenge)
    assert der == rsp().encode("ServerSigned1", {
        "transactionId": tid, "euiccChallenge": challenge, "serverAddress": "smdp.example.com",
        "serverChallenge": server_challenge})


@pytest.mark.parametrize("cc_required", [False, True])
def test_smdp_signed2_is_the_der_of_its_asn1(cc_required: bool) -> None:
    tid = bytes(range(1, 17))
    der = outgoing.smdp_signed2(tid, cc_required=cc_required)
    assert der == rsp().encode("SmdpSigned2", {"transactionId": tid, "ccRequiredFlag": cc_required})
    assert rsp().decode("SmdpSigned2", der)["ccRequiredFlag"] is cc_required


def test_signature_and_ci_pkid_data_objects() -> None:
    assert parse_single(outgoing.signature(b"\x01" * 64), b"\x5f\x37").value == b"\x01" * 64
    assert outgoing.ci_pkid(b"\xaa" * 20) == b"\x04\x14" + b"\xaa" * 20


@pytest.mark.parametrize(("profile_class", "encoded"), [
    ("test", 0), ("provisioning", 1), ("operational", 2), ("unknown", 2)])
def test_store_metadata_request(profile_class: str, encoded: int) -> None:
    profile = Profile(matching_id="M", upp=b"", iccid="8949449999999990023",
                      profile_name="P" * 70, service_provider_name="S" * 40,
                      profile_class=profile_class)
    der = outgoing.store_metadata_request(profile)
    decoded = rsp().decode("StoreMetadataRequest", der)
    assert decoded["iccid"] == profile.iccid_ef
    assert decoded["serviceProviderName"] == "S" * 32 and decoded["profileName"] == "P" * 64
    if encoded == 2:  # operational is the DEFAULT, which DER leaves out: no [21] '95'
        assert b"\x95\x01" not in der
    else:  # ProfileClass ::= INTEGER {test(0), provisioning(1), operational(2)}
        assert decoded["profileClass"] == encoded and der.endswith(b"\x95\x01" + bytes([encoded]))
