"""The software eUICC (smdpp.euicc.card) and the LPA (smdpp.euicc.client / es9 / cli).

Card tests drive SoftEuicc with SM-DP+ messages signed here with the DPauth /
DPpb keys of a test PKI.  The LPA tests run the whole download against a
small stand-in SM-DP+ over real HTTP on 127.0.0.1 (it only signs and binds;
the real server is tested end to end elsewhere).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from smdpp.asn1 import rsp
from smdpp.asn1.tlv import encode_tlv, parse_single
from smdpp.es8p import bind_profile_package, new_one_time_key, protect_profile_package
from smdpp.euicc.card import CardError, SoftEuicc
from smdpp.euicc.cli import main as lpa_main
from smdpp.euicc.cli import parse_activation_code
from smdpp.euicc.client import (
    DownloadError,
    authenticate_server_request,
    bpp_store_metadata,
    confirmation_code_hash,
    download,
    encode_ctx_params1,
    prepare_download_request,
)
from smdpp.euicc.es9 import Es9Client, Es9TransportError, b64d, b64e
from smdpp.euicc.info import named_bits
from smdpp.euicc.installation import classify_bpp_error, iccid_from_bcd, iccid_from_ef, upp_header_iccid
from smdpp.pki.ecdsa import sign_plain, verify_plain
from smdpp.pki.issue import create_test_pki

ADDRESS = "testsmdpplus1.example.com"
SMDP_OID = "2.999.10"
ICCID = "8949449999999990007"  # 19 digits, the ICCID of the TS.48 v2 test profile
ICCID_BCD = bytes.fromhex("8949449999999990007f")  # PE-Header coding
ICCID_EF = bytes.fromhex("989444999999990900f7")  # EF.ICCID coding (StoreMetadata '5A')


# --- a test PKI and a stand-in SM-DP+ ------------------------------------------------


def _credential(folder: Path) -> tuple[bytes, Any]:
    cert = next(folder.glob("CERT_*.der")).read_bytes()
    key = serialization.load_pem_private_key(next(folder.glob("SK_*.pem")).read_bytes(), None)
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("pki")
    create_test_pki(base / "certs", base / "euicc", hostname=ADDRESS, smdp_oid=SMDP_OID)
    # A second, unrelated PKI: its DP certificates are not chained to the eUICC's CI.
    create_test_pki(base / "other", base / "other_euicc", hostname=ADDRESS, smdp_oid=SMDP_OID)
    return {"certs": base / "certs", "euicc": base / "euicc", "other": base / "other"}


@pytest.fixture
def card(pki: dict[str, Path]) -> SoftEuicc:
    return SoftEuicc.from_identity_dir(pki["euicc"])


def make_upp(iccid_bcd: bytes = ICCID_BCD, filler: int = 2500) -> bytes:
    """A minimal profile package: PE-Header (version 2.1, iccid) and one large opaque element."""
    header = encode_tlv(b"\xa0", encode_tlv(b"\x80", b"\x02") + encode_tlv(b"\x81", b"\x01")
                        + encode_tlv(b"\x83", iccid_bcd))
    return header + encode_tlv(b"\xb0", os.urandom(filler))


def store_metadata(iccid_ef: bytes = ICCID_EF, name: str = "Test profile") -> bytes:
    return rsp().encode("StoreMetadataRequest", {
        "iccid": iccid_ef, "serviceProviderName": "smdpp", "profileName": name})


class Smdp:
    """Signs SM-DP+ messages with the DPauth / DPpb credentials of ``certs_dir``."""

    def __init__(self, certs_dir: Path, ci_pkid: bytes | None = None) -> None:
        self.auth_cert, self.auth_key = _credential(certs_dir / "DPauth")
        self.pb_cert, self.pb_key = _credential(certs_dir / "DPpb")
        ci_der = next((certs_dir / "CertificateIssuer").glob("*.der")).read_bytes()
        extensions = x509.load_der_x509_certificate(ci_der).extensions
        self.ci_pkid = ci_pkid or extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest

    def initiate(self, euicc_challenge: bytes, *, tid: bytes | None = None,
                 address: str = ADDRESS) -> dict[str, bytes]:
        """The raw InitiateAuthentication fields."""
        signed1 = rsp().encode("ServerSigned1", {
            "transactionId": tid or os.urandom(16), "euiccChallenge": euicc_challenge,
            "serverAddress": address, "serverChallenge": os.urandom(16)})
        return {"serverSigned1": signed1,
                "serverSignature1": encode_tlv(b"\x5f\x37", sign_plain(self.auth_key, signed1)),
                "euiccCiPKIdToBeUsed": encode_tlv(b"\x04", self.ci_pkid),
                "serverCertificate": self.auth_cert}

    def authenticate_request(self, euicc_challenge: bytes, matching_id: str = "MATCH-1",
                             **kw: Any) -> bytes:
        f = self.initiate(euicc_challenge, **kw)
        return authenticate_server_request(f["serverSigned1"], f["serverSignature1"],
                                           f["euiccCiPKIdToBeUsed"], f["serverCertificate"],
                                           encode_ctx_params1(matching_id))

    def signed2(self, tid: bytes, euicc_signature1: bytes, *, cc_required: bool = False,
                otpk: bytes | None = None) -> dict[str, bytes]:
        """The raw AuthenticateClient fields (smdpSignature2 over smdpSigned2 || euiccSignature1)."""
        value: dict[str, Any] = {"transactionId": tid, "ccRequiredFlag": cc_required}
        if otpk is not None:
            value["bppEuiccOtpk"] = otpk
        signed2 = rsp().encode("SmdpSigned2", value)
        signature = sign_plain(self.pb_key, signed2 + encode_tlv(b"\x5f\x37", euicc_signature1))
        return {"smdpSigned2": signed2, "smdpSignature2": encode_tlv(b"\x5f\x37", signature),
                "smdpCertificate": self.pb_cert}

    def prepare_request(self, tid: bytes, euicc_signature1: bytes, hash_cc: bytes | None = None,
                        **kw: Any) -> bytes:
        f = self.signed2(tid, euicc_signature1, **kw)
        return prepare_download_request(f["smdpSigned2"], f["smdpSignature2"], f["smdpCertificate"], hash_cc)

    def bpp(self, tid: bytes, euicc_otpk: bytes, eid: bytes, *, metadata: bytes | None = None,
            upp: bytes | None = None) -> bytes:
        configure = rsp().encode("ConfigureISDPRequest", {"dpProprietaryData": {"dpOid": SMDP_OID}})
        return bind_profile_package(
            transaction_id=tid, eid=eid, euicc_otpk=euicc_otpk,
            smdp_ot_key=new_one_time_key(self.pb_key), dppb_key=self.pb_key,
            configure_isdp=configure, store_metadata=metadata or store_metadata(),
            profile=protect_profile_package(upp or make_upp()), host_id=b"smdpp-host").der


def decode_auth_response(response: bytes) -> tuple[str, dict[str, Any]]:
    """AuthenticateServerResponse (BF38) read part by part (certificates kept raw)."""
    choice = parse_single(response, b"\xbf\x38").children()
    assert len(choice) == 1
    if choice[0].tag == b"\xa1":
        return "authenticateResponseError", rsp().decode("AuthenticateResponseError",
                                                         encode_tlv(b"\x30", choice[0].value))
    assert choice[0].tag == b"\xa0"
    signed1, signature, euicc_cert, eum_cert = choice[0].children()
    tags = (signed1.tag, signature.tag, euicc_cert.tag, eum_cert.tag)
    assert tags == (b"\x30", b"\x5f\x37", b"\x30", b"\x30")
    return "authenticateResponseOk", {
        "euiccSigned1": rsp().decode("EuiccSigned1", signed1.raw), "raw_signed1": signed1.raw,
        "euiccSignature1": signature.value, "euiccCertificate": euicc_cert.raw,
        "eumCertificate": eum_cert.raw}


def authenticated(card: SoftEuicc, smdp: Smdp) -> tuple[bytes, dict[str, Any], bytes]:
    """Run AuthenticateServer; (transactionId, authenticateResponseOk, raw euiccSigned1)."""
    response = card.authenticate_server(smdp.authenticate_request(card.get_euicc_challenge()),
                                        expected_address=ADDRESS)
    choice, ok = decode_auth_response(response)
    assert choice == "authenticateResponseOk", card.last_error
    raw_signed1 = parse_single(response).child(b"\xa0").children()[0].raw
    return ok["euiccSigned1"]["transactionId"], ok, raw_signed1


def prepared(card: SoftEuicc, smdp: Smdp, hash_cc: bytes | None = None, **kw: Any) -> tuple[bytes, bytes]:
    """AuthenticateServer + PrepareDownload; (transactionId, euiccOtpk)."""
    tid, ok, _ = authenticated(card, smdp)
    response = card.prepare_download(smdp.prepare_request(tid, ok["euiccSignature1"], hash_cc, **kw))
    choice, value = rsp().decode("PrepareDownloadResponse", response)
    assert choice == "downloadResponseOk", card.last_error
    return tid, value["euiccSigned2"]["euiccOtpk"]


# --- identity, EUICCInfo ------------------------------------------------------------


def test_identity_and_euicc_info(card: SoftEuicc, pki: dict[str, Path]) -> None:
    assert card.eid == "89049032123451234512345678901235"
    assert card.eid_bytes == bytes.fromhex("89049032123451234512345678901235")
    smdp = Smdp(pki["certs"])
    assert card.ci_pkid == smdp.ci_pkid and len(card.ci_pkid) == 20
    info1 = card.get_euicc_info1()
    assert info1[:2] == b"\xbf\x20"
    decoded = rsp().decode("EUICCInfo1", info1)
    assert decoded["euiccCiPKIdListForVerification"] == [card.ci_pkid]
    assert decoded["euiccCiPKIdListForSigning"] == [card.ci_pkid]
    info2 = rsp().decode("EUICCInfo2", card.get_euicc_info2())
    assert info2["svn"] == b"\x02\x02\x00"
    assert info2["euiccCiPKIdListForSigning"] == [card.ci_pkid]
    challenge = card.get_euicc_challenge()
    assert len(challenge) == 16 and challenge != card.get_euicc_challenge()


def test_named_bits_der_form() -> None:
    # X.690 11.2.2: trailing zero bits dropped; bits 1, 2, 4 -> '0110 1' + 3 unused bits.
    assert named_bits(1, 2, 4) == (b"\x68", 5)
    assert named_bits(0) == (b"\x80", 1)
    assert named_bits() == (b"", 0)
    assert rsp().encode("RspCapability", named_bits(0, 3)) == bytes.fromhex("03020490")


# --- ES10b.AuthenticateServer -----------------------------------------------------------


def test_authenticate_server_accepts_good_request(card: SoftEuicc, pki: dict[str, Path]) -> None:
    smdp = Smdp(pki["certs"])
    challenge = card.get_euicc_challenge()
    fields = smdp.initiate(challenge)
    request = authenticate_server_request(fields["serverSigned1"], fields["serverSignature1"],
                                          fields["euiccCiPKIdToBeUsed"], fields["serverCertificate"],
                                          encode_ctx_params1("MATCH-1"))
    response = card.authenticate_server(request, expected_address=ADDRESS)
    choice, ok = decode_auth_response(response)
    assert choice == "authenticateResponseOk"
    server_signed1 = rsp().decode("ServerSigned1", fields["serverSigned1"])
    signed1 = ok["euiccSigned1"]
    assert signed1["transactionId"] == server_signed1["transactionId"]
    assert signed1["serverChallenge"] == server_signed1["serverChallenge"]
    assert signed1["serverAddress"] == ADDRESS
    assert signed1["ctxParams1"][1]["matchingId"] == "MATCH-1"
    assert signed1["euiccInfo2"]["euiccCiPKIdListForVerification"] == [card.ci_pkid]
    # euiccSignature1 verifies over the raw euiccSigned1 with PK.EUICC from the certificate sent.
    raw_signed1 = parse_single(response).child(b"\xa0").children()[0].raw
    euicc_cert = x509.load_der_x509_certificate(card.euicc_certificate)
    assert verify_plain(euicc_cert.public_key(), ok["euiccSignature1"], raw_signed1)
    assert not verify_plain(euicc_cert.public_key(), ok["euiccSignature1"], raw_signed1 + b"\x00")
    assert card.transaction_id == server_signed1["transactionId"]
    # The challenge is spent: the same request a second time is refused.
    again = decode_auth_response(card.authenticate_server(request))
    assert again == ("authenticateResponseError", {
        "transactionId": server_signed1["transactionId"], "authenticateErrorCode": 6})


def _auth_error(card: SoftEuicc, request: bytes, **kw: Any) -> int:
    choice, value = decode_auth_response(card.authenticate_server(request, **kw))
    assert choice == "authenticateResponseError"
    return value["authenticateErrorCode"]


def test_authenticate_server_rejects_bad_server_signature1(card: SoftEuicc, pki: dict[str, Path]) -> None:
    fields = Smdp(pki["certs"]).initiate(card.get_euicc_challenge())
    sig = bytearray(fields["serverSignature1"])
    sig[-1] ^= 0x01
    request = authenticate_server_request(fields["serverSigned1"], bytes(sig), fields["euiccCiPKIdToBeUsed"],
                                          fields["serverCertificate"], encode_ctx_params1("X"))
    assert _auth_error(card, request) == 2  # invalidSignature
    assert "serverSignature1" in card.last_error
    assert card.transaction_id is None


def test_authenticate_server_rejects_wrong_challenge(card: SoftEuicc, pki: dict[str, Path]) -> None:
    card.get_euicc_challenge()
    request = Smdp(pki["certs"]).authenticate_request(os.urandom(16))
    assert _auth_error(card, request) == 6  # euiccChallengeMismatch


def test_authenticate_server_rejects_dpauth_of_another_ci(card: SoftEuicc, pki: dict[str, Path]) -> None:
    # The other PKI's DPauth, claiming the eUICC's CI as euiccCiPKIdToBeUsed.
    forger = Smdp(pki["other"], ci_pkid=card.ci_pkid)
    request = forger.authenticate_request(card.get_euicc_challenge())
    assert _auth_error(card, request) == 1  # invalidCertificate
    # Honest about its CI: the eUICC does not know it.
    honest = Smdp(pki["other"])
    assert _auth_error(card, honest.authenticate_request(card.get_euicc_challenge())) == 7  # ciPKUnknown


def test_authenticate_server_rejects_dppb_as_server_certificate(card: SoftEuicc,
                                                                 pki: dict[str, Path]) -> None:
    smdp = Smdp(pki["certs"])
    smdp.auth_cert, smdp.auth_key = smdp.pb_cert, smdp.pb_key  # right CI, wrong role
    assert _auth_error(card, smdp.authenticate_request(card.get_euicc_challenge())) == 1
    assert "policy" in card.last_error


def test_authenticate_server_checks_server_address(card: SoftEuicc, pki: dict[str, Path]) -> None:
    request = Smdp(pki["certs"]).authenticate_request(card.get_euicc_challenge(), address="evil.example.com")
    assert _auth_error(card, request, expected_address=ADDRESS) == 127
    assert "evil.example.com" in card.last_error


def test_authenticate_server_refuses_garbage(card: SoftEuicc) -> None:
    with pytest.raises(CardError):
        card.authenticate_server(b"\xbf\x38\x03\x01\x02\x03")
    with pytest.raises(CardError):
        card.authenticate_server(b"\x30\x00")


# --- ES10b.PrepareDownload ------------------------------------------------------------------


def test_prepare_download_accepts_good_request(card: SoftEuicc, pki: dict[str, Path]) -> None:
    smdp = Smdp(pki["certs"])
    tid, ok, _ = authenticated(card, smdp)
    hash_cc = confirmation_code_hash("12345678", tid)
    request = smdp.prepare_request(tid, ok["euiccSignature1"], hash_cc, cc_required=True)
    response = card.prepare_download(request)
    choice, value = rsp().decode("PrepareDownloadResponse", response)
    assert choice == "downloadResponseOk"
    signed2 = value["euiccSigned2"]
    assert signed2["transactionId"] == tid and signed2["hashCc"] == hash_cc
    assert len(signed2["euiccOtpk"]) == 65 and signed2["euiccOtpk"][0] == 4
    # euiccSignature2 covers euiccSigned2 as sent followed by smdpSignature2 as its '5F37' object.
    raw_signed2 = parse_single(response).child(b"\xa0").children()[0].raw
    smdp_signature2 = parse_single(request).children()[1].raw
    assert verify_plain(card.public_key, value["euiccSignature2"], raw_signed2 + smdp_signature2)
    assert not verify_plain(card.public_key, value["euiccSignature2"], raw_signed2)


def _download_error(card: SoftEuicc, request: bytes) -> int:
    choice, value = rsp().decode("PrepareDownloadResponse", card.prepare_download(request))
    assert choice == "downloadResponseError"
    return value["downloadErrorCode"]


def test_prepare_download_rejects_bad_smdp_signature2(card: SoftEuicc, pki: dict[str, Path]) -> None:
    smdp = Smdp(pki["certs"])
    tid, ok, _ = authenticated(card, smdp)
    # Signed over smdpSigned2 with some other euiccSignature1: the binding to this session fails.
    assert _download_error(card, smdp.prepare_request(tid, os.urandom(64))) == 2  # invalidSignature
    assert "smdpSignature2" in card.last_error
    # The session is still there: the right signature is then accepted.
    assert rsp().decode("PrepareDownloadResponse", card.prepare_download(
        smdp.prepare_request(tid, ok["euiccSignature1"])))[0] == "downloadResponseOk"


def test_prepare_download_rejects_other_transaction_and_no_session(card: SoftEuicc,
                                                                   pki: dict[str, Path]) -> None:
    smdp = Smdp(pki["certs"])
    request = smdp.prepare_request(os.urandom(16), os.urandom(64))
    assert _download_error(card, request) == 4  # noSessionContext
    _, ok, _ = authenticated(card, smdp)
    assert _download_error(card, smdp.prepare_request(os.urandom(16), ok["euiccSignature1"])) == 5


def test_prepare_download_rejects_dpauth_as_smdp_certificate(card: SoftEuicc, pki: dict[str, Path]) -> None:
    smdp = Smdp(pki["certs"])
    tid, ok, _ = authenticated(card, smdp)
    smdp.pb_cert, smdp.pb_key = smdp.auth_cert, smdp.auth_key
    assert _download_error(card, smdp.prepare_request(tid, ok["euiccSignature1"])) == 1  # invalidCertificate


def test_prepare_download_requires_hash_cc_when_flagged(card: SoftEuicc, pki: dict[str, Path]) -> None:
    smdp = Smdp(pki["certs"])
    tid, ok, _ = authenticated(card, smdp)
    assert _download_error(card, smdp.prepare_request(tid, ok["euiccSignature1"], cc_required=True)) == 127


def test_prepare_download_reuses_otpk_on_retry(card: SoftEuicc, pki: dict[str, Path]) -> None:
    smdp = Smdp(pki["certs"])
    tid, ok, _ = authenticated(card, smdp)
    first = rsp().decode("PrepareDownloadResponse", card.prepare_download(
        smdp.prepare_request(tid, ok["euiccSignature1"])))[1]["euiccSigned2"]["euiccOtpk"]
    retry = rsp().decode("PrepareDownloadResponse", card.prepare_download(
        smdp.prepare_request(tid, ok["euiccSignature1"], otpk=first)))[1]["euiccSigned2"]["euiccOtpk"]
    fresh = rsp().decode("PrepareDownloadResponse", card.prepare_download(
        smdp.prepare_request(tid, ok["euiccSignature1"])))[1]["euiccSigned2"]["euiccOtpk"]
    assert retry == first and fresh != first


def test_confirmation_code_hash_known_answer() -> None:
    # SHA-256(SHA-256("12345678") || 00 01 .. 0f), computed step by step.
    inner = bytes.fromhex("ef797c8118f02dfb649607dd5d3f8c7623048c9c063d532cc95c5ed7a898a64f")
    assert hashlib.sha256(b"12345678").digest() == inner
    tid = bytes(range(16))
    assert confirmation_code_hash("12345678", tid) == hashlib.sha256(inner + tid).digest()
    assert confirmation_code_hash("12345678", tid) != confirmation_code_hash("12345679", tid)


# --- ES10b.LoadBoundProfilePackage ---------------------------------------------------------


def _pir(pir: bytes, card: SoftEuicc) -> dict[str, Any]:
    """Check euiccSignPIR over the raw BF27 and return the decoded data."""
    outer = parse_single(pir, b"\xbf\x37")
    data_tlv, sig_tlv = outer.children()
    assert data_tlv.tag == b"\xbf\x27" and sig_tlv.tag == b"\x5f\x37"
    euicc_cert = x509.load_der_x509_certificate(card.euicc_certificate)
    assert verify_plain(euicc_cert.public_key(), sig_tlv.value, data_tlv.raw)
    decoded = rsp().decode("ProfileInstallationResult", pir)
    assert rsp().decode("PendingNotification", pir)[0] == "profileInstallationResult"
    return decoded["profileInstallationResultData"]


def test_load_bpp_installs_and_signs_result(card: SoftEuicc, pki: dict[str, Path]) -> None:
    smdp = Smdp(pki["certs"])
    tid, otpk = prepared(card, smdp)
    upp = make_upp()
    data = _pir(card.load_bound_profile_package(smdp.bpp(tid, otpk, card.eid_bytes, upp=upp)), card)
    assert data["transactionId"] == tid
    assert data["smdpOid"] == SMDP_OID
    meta = data["notificationMetadata"]
    assert meta["seqNumber"] == 1 and meta["iccid"] == ICCID_EF
    assert meta["profileManagementOperation"] == (b"\x80", 1)
    assert meta["notificationAddress"] == ADDRESS
    kind, result = data["finalResult"]
    assert kind == "successResult" and 5 <= len(result["aid"]) <= 16
    assert card.installed == {ICCID: upp}
    assert list(card.pending_notifications) == [1]
    assert card.remove_notification(1) and not card.pending_notifications
    assert card.transaction_id is None  # the session ended
    with pytest.raises(CardError):
        card.load_bound_profile_package(smdp.bpp(tid, otpk, card.eid_bytes))


def test_load_bpp_of_ts48_profile(card: SoftEuicc, pki: dict[str, Path], shared_testdata: Path) -> None:
    upp = (shared_testdata / "upp" / "TS48V2-SAIP2-1-NOBERTLV-UNIQUE.der").read_bytes()
    assert iccid_from_bcd(upp_header_iccid(upp)) == ICCID
    smdp = Smdp(pki["certs"])
    tid, otpk = prepared(card, smdp)
    data = _pir(card.load_bound_profile_package(smdp.bpp(tid, otpk, card.eid_bytes, upp=upp)), card)
    assert data["finalResult"][0] == "successResult"
    assert card.installed[ICCID] == upp


def _error_result(card: SoftEuicc, bpp: bytes) -> tuple[int, int]:
    kind, result = _pir(card.load_bound_profile_package(bpp), card)["finalResult"]
    assert kind == "errorResult"
    assert not card.installed
    return result["bppCommandId"], result["errorReason"]


def test_load_bpp_tampered_profile_segment(card: SoftEuicc, pki: dict[str, Path]) -> None:
    smdp = Smdp(pki["certs"])
    tid, otpk = prepared(card, smdp)
    bpp = bytearray(smdp.bpp(tid, otpk, card.eid_bytes))
    bpp[-20] ^= 0x01  # inside the last '86' segment
    assert _error_result(card, bytes(bpp)) == (5, 8)  # loadProfileElements, scp03tSecurityError
    assert "MAC" in card.last_error


def test_load_bpp_tampered_smdp_sign(card: SoftEuicc, pki: dict[str, Path]) -> None:
    smdp = Smdp(pki["certs"])
    tid, otpk = prepared(card, smdp)
    bpp = smdp.bpp(tid, otpk, card.eid_bytes)
    sign = parse_single(bpp).children()[0].child(b"\x5f\x37")
    tampered = bytearray(bpp)
    tampered[sign.end - 1] ^= 0x01
    assert _error_result(card, bytes(tampered)) == (0, 2)  # initialiseSecureChannel, invalidSignature


def test_load_bpp_other_transaction(card: SoftEuicc, pki: dict[str, Path]) -> None:
    smdp = Smdp(pki["certs"])
    _, otpk = prepared(card, smdp)
    assert _error_result(card, smdp.bpp(os.urandom(16), otpk, card.eid_bytes)) == (0, 3)


def test_load_bpp_iccid_mismatch(card: SoftEuicc, pki: dict[str, Path]) -> None:
    smdp = Smdp(pki["certs"])
    tid, otpk = prepared(card, smdp)
    other = store_metadata(bytes.fromhex("989444999999990900f8"))
    assert _error_result(card, smdp.bpp(tid, otpk, card.eid_bytes, metadata=other)) == (5, 13)


def test_load_bpp_iccid_already_installed(card: SoftEuicc, pki: dict[str, Path]) -> None:
    smdp = Smdp(pki["certs"])
    for expected in ("successResult", "errorResult"):
        tid, otpk = prepared(card, smdp)
        pir = card.load_bound_profile_package(smdp.bpp(tid, otpk, card.eid_bytes))
        kind, result = _pir(pir, card)["finalResult"]
        assert kind == expected
    assert (result["bppCommandId"], result["errorReason"]) == (2, 9)


def test_classify_bpp_error() -> None:
    assert classify_bpp_error("smdpSign verification failed") == (0, 2)
    assert classify_bpp_error("InitialiseSecureChannelRequest: controlRefTemplate is not AES-128") == (0, 4)
    assert classify_bpp_error("MAC of segment 87 #1 (firstSequenceOf87) invalid") == (1, 8)
    assert classify_bpp_error("MAC of segment 88 #1 (sequenceOf88) invalid") == (2, 8)
    assert classify_bpp_error("segment 87 #1 (secondSequenceOf87): invalid padding") == (4, 8)
    assert classify_bpp_error("sequenceOf86 malformed: truncated tag") == (5, 7)


def test_iccid_codings() -> None:
    assert iccid_from_ef(ICCID_EF) == ICCID
    assert iccid_from_bcd(ICCID_BCD) == ICCID
    with pytest.raises(ValueError):
        upp_header_iccid(encode_tlv(b"\xa1", b""))


# --- ES10b.CancelSession ---------------------------------------------------------------------


def test_cancel_session(card: SoftEuicc, pki: dict[str, Path]) -> None:
    tid, _, _ = authenticated(card, Smdp(pki["certs"]))
    assert rsp().decode("CancelSessionResponse", card.cancel_session(os.urandom(16), 0)) == (
        "cancelSessionResponseError", 5)
    response = card.cancel_session(tid, 4)
    choice, ok = rsp().decode("CancelSessionResponse", response)
    assert choice == "cancelSessionResponseOk"
    assert ok["euiccCancelSessionSigned"] == {"transactionId": tid, "smdpOid": SMDP_OID, "reason": 4}
    signed = parse_single(response).child(b"\xa0").children()[0].raw
    assert verify_plain(card.public_key, ok["euiccCancelSessionSignature"], signed)
    assert card.transaction_id is None


# --- the LPA against a stand-in SM-DP+ over HTTP ----------------------------------------------


class StandInSmdp:
    """Answers the five ES9+ functions with the Smdp signer; records what it received."""

    def __init__(self, smdp: Smdp, euicc_cert: bytes) -> None:
        self.smdp = smdp
        self.euicc_key = x509.load_der_x509_certificate(euicc_cert).public_key()
        self.cc: str | None = None
        self.sign_address: str | None = None  # serverAddress to sign instead of the one sent
        self.bpp_metadata: bytes | None = None  # StoreMetadata in the BPP, if not profileMetadata
        self.fail: dict[str, tuple[str, str]] = {}  # function -> (subjectCode, reasonCode)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.signature1: dict[str, bytes] = {}
        self.connections = 0

    def handle(self, function: str, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        self.received.append((function, body))
        if function in self.fail:
            subject, reason = self.fail[function]
            return 200, {"header": {"functionExecutionStatus": {"status": "Failed", "statusCodeData": {
                "subjectCode": subject, "reasonCode": reason, "message": "refused by the test"}}}}
        ok = {"header": {"functionExecutionStatus": {"status": "Executed-Success"}}}
        if function == "initiateAuthentication":
            fields = self.smdp.initiate(b64d(body["euiccChallenge"]),
                                        address=self.sign_address or body["smdpAddress"])
            tid = rsp().decode("ServerSigned1", fields["serverSigned1"])["transactionId"]
            return 200, {**ok, "transactionId": tid.hex().upper(), **{k: b64e(v) for k, v in fields.items()}}
        tid_hex = body.get("transactionId", "")
        if function == "authenticateClient":
            response = b64d(body["authenticateServerResponse"])
            choice, value = decode_auth_response(response)
            if choice != "authenticateResponseOk":
                return 200, {"header": {"functionExecutionStatus": {"status": "Failed", "statusCodeData": {
                    "subjectCode": "8.1", "reasonCode": "6.1", "message": "eUICC error"}}}}
            raw_signed1 = parse_single(response).child(b"\xa0").children()[0].raw
            assert verify_plain(self.euicc_key, value["euiccSignature1"], raw_signed1)
            self.signature1[tid_hex] = value["euiccSignature1"]
            fields = self.smdp.signed2(bytes.fromhex(tid_hex), value["euiccSignature1"],
                                       cc_required=self.cc is not None)
            return 200, {**ok, "transactionId": tid_hex, "profileMetadata": b64e(store_metadata()),
                         **{k: b64e(v) for k, v in fields.items()}}
        if function == "getBoundProfilePackage":
            choice, value = rsp().decode("PrepareDownloadResponse", b64d(body["prepareDownloadResponse"]))
            if choice != "downloadResponseOk":
                return 200, {"header": {"functionExecutionStatus": {"status": "Failed", "statusCodeData": {
                    "subjectCode": "8.1", "reasonCode": "6.1", "message": "eUICC error"}}}}
            signed2 = value["euiccSigned2"]
            tid = bytes.fromhex(tid_hex)
            if self.cc is not None:
                assert signed2["hashCc"] == confirmation_code_hash(self.cc, tid)
            eid = bytes.fromhex("89049032123451234512345678901235")
            bpp = self.smdp.bpp(tid, signed2["euiccOtpk"], eid, metadata=self.bpp_metadata)
            return 200, {**ok, "transactionId": tid_hex, "boundProfilePackage": b64e(bpp)}
        if function == "handleNotification":
            return 204, None
        if function == "cancelSession":
            return 200, ok
        return 404, None


@contextlib.contextmanager
def serving(state: StandInSmdp, tls: ssl.SSLContext | None = None) -> Iterator[str]:
    """Serve ``state`` over HTTP/1.1 (keep-alive) on 127.0.0.1; yields the base URL."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        drop_after_response = False

        def setup(self) -> None:
            state.connections += 1
            super().setup()

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            prefix = "/gsma/rsp2/es9plus/"
            assert self.headers["X-Admin-Protocol"] == "gsma/rsp/v2.2.0"
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            status, answer = state.handle(self.path.removeprefix(prefix), body)
            self.send_response(status)
            self.send_header("X-Admin-Protocol", "gsma/rsp/v2.2.0")
            if answer is None:
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                data = json.dumps(answer).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            # Close without announcing it, like a server dropping an idle keep-alive connection.
            self.close_connection = Handler.drop_after_response

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    state.handler = Handler  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def stand_in(pki: dict[str, Path], card: SoftEuicc) -> Iterator[tuple[StandInSmdp, str]]:
    state = StandInSmdp(Smdp(pki["certs"]), card.euicc_certificate)
    with serving(state) as url:
        yield state, url


def _functions(state: StandInSmdp) -> list[str]:
    return [f for f, _ in state.received]


def test_download_end_to_end(stand_in: tuple[StandInSmdp, str], card: SoftEuicc) -> None:
    state, url = stand_in
    with Es9Client(url) as client:
        result = download(client, card, smdp_address=ADDRESS, matching_id="MATCH-1")
    assert result.iccid == ICCID and result.notification_sent and result.notification_error is None
    assert result.upp == card.installed[ICCID]
    assert result.metadata["profileName"] == "Test profile"
    assert _functions(state) == ["initiateAuthentication", "authenticateClient", "getBoundProfilePackage",
                                 "handleNotification"]
    assert state.connections == 1  # one kept-alive connection for all calls
    assert not card.pending_notifications  # removed after the 204
    pir = b64d(state.received[-1][1]["pendingNotification"])
    data = rsp().decode("ProfileInstallationResult", pir)["profileInstallationResultData"]
    assert data["transactionId"].hex() == result.transaction_id.lower()


def test_download_with_confirmation_code(stand_in: tuple[StandInSmdp, str], card: SoftEuicc) -> None:
    state, url = stand_in
    state.cc = "12345678"
    with Es9Client(url) as client:
        assert download(client, card, smdp_address=ADDRESS, matching_id="M",
                        confirmation_code="12345678").iccid == ICCID


def test_download_cancels_without_confirmation_code(stand_in: tuple[StandInSmdp, str],
                                                    card: SoftEuicc) -> None:
    state, url = stand_in
    state.cc = "12345678"
    with Es9Client(url) as client, pytest.raises(DownloadError) as err:
        download(client, card, smdp_address=ADDRESS, matching_id="M")
    assert err.value.step == "LPA confirmation code"
    function, body = state.received[-1]
    assert function == "cancelSession"
    choice, ok = rsp().decode("CancelSessionResponse", b64d(body["cancelSessionResponse"]))
    assert choice == "cancelSessionResponseOk" and ok["euiccCancelSessionSigned"]["reason"] == 0


def test_download_cancels_on_metadata_mismatch(stand_in: tuple[StandInSmdp, str], card: SoftEuicc) -> None:
    state, url = stand_in
    state.bpp_metadata = store_metadata(name="Another profile")
    with Es9Client(url) as client, pytest.raises(DownloadError) as err:
        download(client, card, smdp_address=ADDRESS, matching_id="M")
    assert err.value.step == "LPA BPP metadata check" and "profileName" in err.value.message
    function, body = state.received[-1]
    assert function == "cancelSession"
    reason = rsp().decode("CancelSessionResponse", b64d(body["cancelSessionResponse"]))[1][
        "euiccCancelSessionSigned"]["reason"]
    assert reason == 4  # metadataMismatch
    assert not card.installed


def test_download_reports_server_failure_codes(stand_in: tuple[StandInSmdp, str], card: SoftEuicc) -> None:
    state, url = stand_in
    state.fail["authenticateClient"] = ("8.2.6", "3.8")
    with Es9Client(url) as client, pytest.raises(DownloadError) as err:
        download(client, card, smdp_address=ADDRESS, matching_id="UNKNOWN")
    assert (err.value.step, err.value.subject_code, err.value.reason_code) == (
        "ES9+.AuthenticateClient", "8.2.6", "3.8")
    assert "refused by the test" in str(err.value)


def test_download_passes_euicc_refusal_to_smdp(stand_in: tuple[StandInSmdp, str], card: SoftEuicc) -> None:
    state, url = stand_in
    state.sign_address = "evil.example.com"  # serverSigned1 names another SM-DP+
    with Es9Client(url) as client, pytest.raises(DownloadError) as err:
        download(client, card, smdp_address=ADDRESS, matching_id="M")
    assert err.value.step == "ES10b.AuthenticateServer"
    assert "undefinedError(127)" in err.value.message and "evil.example.com" in err.value.message
    function, body = state.received[-1]
    assert function == "authenticateClient"
    assert decode_auth_response(b64d(body["authenticateServerResponse"]))[0] == \
        "authenticateResponseError"
    assert card.transaction_id is None


def test_es9_client_reconnects_after_drop(stand_in: tuple[StandInSmdp, str]) -> None:
    state, url = stand_in
    state.handler.drop_after_response = True  # type: ignore[attr-defined]
    with Es9Client(url) as client:
        first = client.call("cancelSession", {"transactionId": "00"})
        second = client.call("cancelSession", {"transactionId": "01"})
    assert first.function_status == second.function_status == "Executed-Success"
    assert state.connections == 2
    assert [b["transactionId"] for _, b in state.received] == ["00", "01"]


def test_es9_client_https(pki: dict[str, Path], card: SoftEuicc) -> None:
    state = StandInSmdp(Smdp(pki["certs"]), card.euicc_certificate)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(next((pki["certs"] / "DPtls").glob("CERT_*.pem")),
                        next((pki["certs"] / "DPtls").glob("SK_*.pem")))
    ca_file = str(next((pki["certs"] / "CertificateIssuer").glob("CERT_*.pem")))
    with serving(state, tls) as url:
        # The DPtls certificate names the SM-DP+ FQDN, not 127.0.0.1.
        with Es9Client(url, ca_file=ca_file) as client, pytest.raises(Es9TransportError):
            client.call("cancelSession", {"transactionId": "00"})
        with Es9Client(url, ca_file=ca_file, tls_server_name=ADDRESS) as client:
            result = download(client, card, smdp_address=ADDRESS, matching_id="M")
    assert result.iccid == ICCID and result.notification_sent


def test_cli_download(stand_in: tuple[StandInSmdp, str], pki: dict[str, Path], tmp_path: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    state, url = stand_in
    out = tmp_path / "profile.der"
    code = lpa_main(["download", "--smdp", url, "--address", ADDRESS, "--matching-id", "M",
                     "--identity", str(pki["euicc"]), "--save-upp", str(out)])
    assert code == 0
    assert ICCID in capsys.readouterr().out
    assert upp_header_iccid(out.read_bytes()) == ICCID_BCD
    state.fail["initiateAuthentication"] = ("8.8.1", "3.8")
    code = lpa_main(["download", "--smdp", url, "--activation-code", f"LPA:1${ADDRESS}$M",
                     "--identity", str(pki["euicc"])])
    err = capsys.readouterr().err
    assert code == 1
    assert "ES9+.InitiateAuthentication" in err and "8.8.1" in err and "3.8" in err


def test_parse_activation_code() -> None:
    ac = parse_activation_code("LPA:1$smdp.example.com$ABC-123$2.999.10$1")
    assert (ac.smdp_address, ac.matching_id, ac.smdp_oid, ac.confirmation_code_required) == (
        "smdp.example.com", "ABC-123", "2.999.10", True)
    assert parse_activation_code("1$h:8443$X").smdp_oid is None
    for bad in ("LPA:2$h$X", "LPA:1$h", "LPA:1$$X", "LPA:1$h$X$o$2"):
        with pytest.raises(ValueError):
            parse_activation_code(bad)


def test_bpp_store_metadata(card: SoftEuicc, pki: dict[str, Path]) -> None:
    smdp = Smdp(pki["certs"])
    # With a 1 KiB icon the metadata needs two '88' segments (at most 1012 bytes each).
    metadata = rsp().encode("StoreMetadataRequest", {
        "iccid": ICCID_EF, "serviceProviderName": "smdpp", "profileName": "Icon",
        "iconType": 1, "icon": os.urandom(1024)})
    tid, otpk = prepared(card, smdp)
    bpp = smdp.bpp(tid, otpk, card.eid_bytes, metadata=metadata)
    assert len(parse_single(bpp).child(b"\xa1").children()) == 2
    assert bpp_store_metadata(bpp) == metadata
    with pytest.raises(ValueError):
        bpp_store_metadata(encode_tlv(b"\xbf\x36", b""))
