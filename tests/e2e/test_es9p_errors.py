"""Every ES9+ verification step refuses bad input with its SGP.22 code, over real HTTP.

Each test breaks exactly one thing that a check of SGP.22 5.6 is there to
catch, so removing that check from the server makes its test fail.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from smdpp.asn1 import rsp
from smdpp.asn1.tlv import encode_tlv, parse_single
from smdpp.euicc.card import SoftEuicc
from smdpp.euicc.es9 import Es9Client, b64d, b64e
from smdpp.euicc.identity import EuiccIdentity, load_identity
from smdpp.pki import oids
from smdpp.pki.issue import issue_euicc_identity, issue_eum

from .conftest import RunningServer
from .flow import (ADDRESS, Flow, assert_failed, assert_ok, rebuild_authenticate_response,
                   replace_field)

NOW = datetime.now(timezone.utc)


@pytest.fixture
def card(shared_server: RunningServer) -> SoftEuicc:
    return SoftEuicc.from_identity_dir(shared_server.data_dir / "euicc")


@pytest.fixture
def client(shared_server: RunningServer):
    with Es9Client(shared_server.url) as c:
        yield c


@pytest.fixture
def flow(client: Es9Client, card: SoftEuicc) -> Flow:
    return Flow(client, card)


def _eum_key(server: RunningServer):
    return serialization.load_pem_private_key(
        (server.data_dir / "euicc" / "eum_key.pem").read_bytes(), None)


def _ci(server: RunningServer):
    folder = server.data_dir / "certs" / "CertificateIssuer"
    cert = x509.load_der_x509_certificate(next(folder.glob("CERT_CI_*.der")).read_bytes())
    key = serialization.load_pem_private_key(next(folder.glob("SK_CI_*.pem")).read_bytes(),
                                             None)
    return cert, key


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _card_with(server: RunningServer, *, eid: str | None = None, eum=None,
               **euicc_kwargs) -> SoftEuicc:
    """A software eUICC whose certificate (and optionally EUM) is made for one test."""
    base = load_identity(server.data_dir / "euicc")
    if eum is None:
        eum_cert = x509.load_der_x509_certificate(base.eum_cert_der)
        eum_key = _eum_key(server)
    else:
        eum_cert, eum_key = eum
    cert, key = issue_euicc_identity(eum_cert, eum_key, eid or base.eid, **euicc_kwargs)
    return SoftEuicc(EuiccIdentity(base.ci_cert, _der(eum_cert), _der(cert), key,
                                   eid or base.eid))


# -- HTTP and JSON framing ----------------------------------------------------------


def test_malformed_json_is_400(client: Es9Client) -> None:
    reply = client.post("initiateAuthentication", b"{not json")
    assert_failed(reply, "1.2", "2.1", http_status=400)


def test_json_that_is_not_an_object_is_400(client: Es9Client) -> None:
    assert_failed(client.post("initiateAuthentication", b"[1, 2]"), "1.2", "2.1", 400)


def test_deeply_nested_json_is_400_not_an_internal_error(client: Es9Client) -> None:
    """20,000 nested arrays fit in 64 KiB and exceed the JSON decoder's recursion limit."""
    reply = client.post("initiateAuthentication", b"[" * 20_000 + b"]" * 20_000)
    assert_failed(reply, "1.2", "2.1", http_status=400)
    assert_failed(client.post("initiateAuthentication", b'{"a":' * 10_000), "1.2", "2.1", 400)


def test_wrong_content_type_is_415(client: Es9Client) -> None:
    reply = client.post("initiateAuthentication", b"{}", headers={"Content-Type": "text/plain"})
    assert_failed(reply, "1.2", "2.1", http_status=415)


def test_missing_admin_protocol_is_400(client: Es9Client) -> None:
    reply = client.post("initiateAuthentication", b"{}", headers={"X-Admin-Protocol": None})
    assert_failed(reply, "1.2", "2.1", http_status=400)


def test_lpac_headers_are_accepted(flow: Flow) -> None:
    """lpac: Content-Type without charset, X-Admin-Protocol v2.2.2, User-Agent gsma-rsp-lpad."""
    body = json.dumps({"euiccChallenge": b64e(flow.card.get_euicc_challenge()),
                       "euiccInfo1": b64e(flow.card.get_euicc_info1()),
                       "smdpAddress": ADDRESS}).encode()
    reply = flow.client.post("initiateAuthentication", body, headers={
        "Content-Type": "application/json", "X-Admin-Protocol": "gsma/rsp/v2.2.2",
        "User-Agent": "gsma-rsp-lpad"})
    assert_ok(reply)
    assert reply.headers["x-admin-protocol"].startswith("gsma/rsp/v2")
    assert reply.headers["content-type"].startswith("application/json")


def test_oversized_body_is_413(client: Es9Client) -> None:
    body = json.dumps({"pendingNotification": "A" * 100_000}).encode()
    assert_failed(client.post("handleNotification", body), "1.2", "2.1", http_status=413)


def test_unknown_function_is_404(client: Es9Client) -> None:
    assert_failed(client.call("getProfile", {}), "1.2", "2.1", http_status=404)


def test_missing_field_is_reported(client: Es9Client) -> None:
    reply = client.call("initiateAuthentication", {"euiccChallenge": b64e(b"\x00" * 16)})
    assert_failed(reply, "1.2", "2.2")


@pytest.mark.parametrize("value", ["not base64!", "QUJD=", 12, None])
def test_bad_base64_or_type_is_refused(flow: Flow, value) -> None:
    reply = flow.initiate(euiccChallenge=value)
    assert_failed(reply, "1.2", "2.2" if value is None else "2.1")


# -- initiateAuthentication (SGP.22 5.6.1) --------------------------------------------


@pytest.mark.parametrize("address", ["TESTSMDPPLUS1.Example.COM", "testsmdpplus1.example.com:8443"])
def test_smdp_address_case_and_port_are_accepted(flow: Flow, address: str) -> None:
    flow.address = address
    body = assert_ok(flow.initiate())
    assert rsp().decode("ServerSigned1", b64d(body["serverSigned1"]))["serverAddress"] == address


@pytest.mark.parametrize("address", ["other.example.com", "testsmdpplus1.example.com.evil",
                                     "testsmdpplus1.example.com:x", ""])
def test_wrong_smdp_address_is_refused(flow: Flow, address: str) -> None:
    flow.address = address
    assert_failed(flow.initiate(), "8.8.1", "3.8")


def test_an_smdp_address_longer_than_an_fqdn_is_refused_first_and_not_echoed(
        flow: Flow, shared_server: RunningServer) -> None:
    """60,000 characters: 8.8.1/3.8 before anything else (the broken euiccChallenge is not
    looked at), in a small answer and a short log line."""
    flow.address = "a" * 60_000
    reply = flow.initiate(euiccChallenge="not base64!")
    assert_failed(reply, "8.8.1", "3.8")
    assert len(reply.body) < 1000 and "60000 characters" in reply.body.decode()
    time.sleep(0.2)  # the log line is written by the server process
    assert "smdpAddress of 60000 characters" in shared_server.log()
    assert max(len(line) for line in shared_server.lines) < 1000


def test_an_smdp_address_of_255_characters_gets_the_usual_check(flow: Flow) -> None:
    flow.address = "a" * 255
    reply = flow.initiate()
    assert_failed(reply, "8.8.1", "3.8")
    assert "characters is longer than an FQDN" not in reply.body.decode()


def test_duplicate_json_keys_are_a_malformed_request(client: Es9Client) -> None:
    body = (b'{"transactionId":"00","transactionId":"01",'
            b'"authenticateServerResponse":"AA=="}')
    reply = client.post("authenticateClient", body)
    assert_failed(reply, "1.2", "2.1", http_status=400)
    assert "duplicate JSON key" in reply.body.decode()
    nested = b'{"smdpAddress":"x","euiccChallenge":"AA==","euiccInfo1":{"a":1,"a":2}}'
    assert_failed(client.post("initiateAuthentication", nested), "1.2", "2.1", http_status=400)


@pytest.mark.parametrize("length", [0, 15, 17])
def test_euicc_challenge_length_is_checked(flow: Flow, length: int) -> None:
    assert_failed(flow.initiate(euiccChallenge=b64e(b"\x01" * length)), "1.2", "2.1")


def test_unknown_ci_is_refused(flow: Flow) -> None:
    info1 = rsp().encode("EUICCInfo1", {"svn": b"\x02\x02\x00",
                                        "euiccCiPKIdListForVerification": [b"\x99" * 20],
                                        "euiccCiPKIdListForSigning": [b"\x99" * 20]})
    assert_failed(flow.initiate(euiccInfo1=b64e(info1)), "8.8.2", "3.1")


def test_ci_must_be_usable_for_signing_too(flow: Flow) -> None:
    ours = flow.card.ci_pkid
    info1 = rsp().encode("EUICCInfo1", {"svn": b"\x02\x02\x00",
                                        "euiccCiPKIdListForVerification": [ours],
                                        "euiccCiPKIdListForSigning": [b"\x99" * 20]})
    assert_failed(flow.initiate(euiccInfo1=b64e(info1)), "8.8.2", "3.1")


def test_unsupported_svn_is_refused(flow: Flow) -> None:
    ours = flow.card.ci_pkid
    info1 = rsp().encode("EUICCInfo1", {"svn": b"\x01\x00\x00",
                                        "euiccCiPKIdListForVerification": [ours],
                                        "euiccCiPKIdListForSigning": [ours]})
    assert_failed(flow.initiate(euiccInfo1=b64e(info1)), "8.8.3", "3.1")


@pytest.mark.parametrize("info1", ["", "bf2000", "bf2003820102", "30030201" "00",
                                   "bf2005820302020200"])
def test_malformed_euicc_info1_is_refused(flow: Flow, info1: str) -> None:
    assert_failed(flow.initiate(euiccInfo1=b64e(bytes.fromhex(info1))), "1.2", "2.1")


# -- authenticateClient (SGP.22 5.6.3) -----------------------------------------------


def test_unknown_transaction_id(flow: Flow) -> None:
    assert_ok(flow.initiate())
    asr = flow.authenticate_server()
    assert_failed(flow.authenticate(asr, tid="00" * 16), "8.10.1", "3.9")
    assert_failed(flow.authenticate(asr, tid="zz"), "8.10.1", "3.9")
    assert_ok(flow.authenticate(asr))  # the real session was not disturbed


def test_transaction_id_inside_euicc_signed1_must_match(flow: Flow) -> None:
    assert_ok(flow.initiate())
    asr = flow.authenticate_server()
    signed1 = parse_single(asr).children()[0].children()[0].raw
    forged = rebuild_authenticate_response(
        asr, flow.card, signed1=replace_field(signed1, b"\x80", b"\x01" * 16))
    assert_failed(flow.authenticate(forged), "8.10.1", "3.9")


def test_euicc_signature1_over_raw_bytes_is_checked(flow: Flow) -> None:
    assert_ok(flow.initiate())
    asr = flow.authenticate_server()
    signed1 = parse_single(asr).children()[0].children()[0].raw
    # same content, signature no longer matching
    forged = rebuild_authenticate_response(asr, flow.card, signed1=signed1,
                                           signature=bytes(64))
    assert_failed(flow.authenticate(forged), "8.1", "6.1")


def test_server_challenge_is_checked(flow: Flow) -> None:
    assert_ok(flow.initiate())
    asr = flow.authenticate_server()
    signed1 = parse_single(asr).children()[0].children()[0].raw
    forged = rebuild_authenticate_response(
        asr, flow.card, signed1=replace_field(signed1, b"\x84", b"\x5a" * 16))
    assert_failed(flow.authenticate(forged), "8.1", "6.1")


def test_server_address_in_euicc_signed1_is_checked(flow: Flow) -> None:
    assert_ok(flow.initiate())
    asr = flow.authenticate_server()
    signed1 = parse_single(asr).children()[0].children()[0].raw
    forged = rebuild_authenticate_response(
        asr, flow.card, signed1=replace_field(signed1, b"\x83", b"evil.example.com"))
    assert_failed(flow.authenticate(forged), "8.8.1", "3.8")


def test_euicc_signed1_signed_by_another_key_is_refused(flow: Flow,
                                                        shared_server: RunningServer) -> None:
    """A valid signature, but not by the key of the presented eUICC certificate."""
    assert_ok(flow.initiate())
    asr = flow.authenticate_server()
    signed1 = parse_single(asr).children()[0].children()[0].raw
    other = _card_with(shared_server)
    forged = rebuild_authenticate_response(asr, flow.card, signed1=signed1,
                                           signature=other.sign(signed1))
    assert_failed(flow.authenticate(forged), "8.1", "6.1")


@pytest.mark.parametrize("kwargs, codes", [
    ({"not_before": NOW - timedelta(days=30), "not_after": NOW - timedelta(days=1)},
     ("8.1.3", "6.3")),
    ({"not_before": NOW + timedelta(days=1), "not_after": NOW + timedelta(days=300)},
     ("8.1.3", "6.3")),
    ({"policy": oids.ID_RSP_ROLE_EUM}, ("8.1.3", "6.1")),
])
def test_euicc_certificate_checks(shared_server: RunningServer, client: Es9Client,
                                  kwargs, codes) -> None:
    flow = Flow(client, _card_with(shared_server, **kwargs))
    assert_ok(flow.initiate())
    assert_failed(flow.authenticate(), *codes)


def test_eid_outside_the_eum_range_is_refused(shared_server: RunningServer,
                                              client: Es9Client) -> None:
    # a valid EID (check digits right) whose prefix the EUM is not permitted to use
    from smdpp.pki.eid import make_eid
    flow = Flow(client, _card_with(shared_server, eid=make_eid("89049011", 42)))
    assert_ok(flow.initiate())
    assert_failed(flow.authenticate(), "8.1.3", "6.1")


@pytest.mark.parametrize("kwargs, codes", [
    ({"not_before": NOW - timedelta(days=30), "not_after": NOW - timedelta(days=1)},
     ("8.1.2", "6.3")),
    ({"policy": oids.ID_RSP_ROLE_EUICC}, ("8.1.2", "6.1")),
])
def test_eum_certificate_checks(shared_server: RunningServer, client: Es9Client,
                                kwargs, codes) -> None:
    ci_cert, ci_key = _ci(shared_server)
    base = load_identity(shared_server.data_dir / "euicc")
    eum = issue_eum(ci_cert, ci_key, eins=[base.eid[:8]], **kwargs)
    flow = Flow(client, _card_with(shared_server, eum=eum,
                                   not_before=NOW - timedelta(days=1),
                                   not_after=NOW + timedelta(days=300)))
    assert_ok(flow.initiate())
    assert_failed(flow.authenticate(), *codes)


def test_eum_from_another_ci_is_refused(shared_server: RunningServer, client: Es9Client) -> None:
    from smdpp.pki.issue import issue_ci
    other_ci, other_key = issue_ci()
    base = load_identity(shared_server.data_dir / "euicc")
    eum = issue_eum(other_ci, other_key, eins=[base.eid[:8]])
    flow = Flow(client, _card_with(shared_server, eum=eum))
    assert_ok(flow.initiate())
    reply = flow.authenticate()
    assert reply.function_status == "Failed"
    assert reply.status_code_data["subjectCode"] in ("8.1.2", "8.11.1"), reply.describe()


def test_unknown_matching_id(client: Es9Client, card: SoftEuicc) -> None:
    flow = Flow(client, card, matching_id="NOT-THERE")
    assert_ok(flow.initiate())
    assert_failed(flow.authenticate(), "8.2.6", "3.8")


def test_no_matching_id_and_no_order(client: Es9Client, card: SoftEuicc) -> None:
    flow = Flow(client, card, matching_id=None)
    assert_ok(flow.initiate())
    assert_failed(flow.authenticate(), "8.2.5", "4.3")


def test_authenticate_client_replay_is_refused(flow: Flow) -> None:
    assert_ok(flow.initiate())
    asr = flow.authenticate_server()
    assert_ok(flow.authenticate(asr))
    assert_failed(flow.authenticate(asr), "8.10.1", "3.9")


@pytest.mark.parametrize("asr", ["", "bf3800", "bf380430020500", "bf3803a10100",
                                 "bf3806a0043002800000"])
def test_malformed_authenticate_server_response(flow: Flow, asr: str) -> None:
    assert_ok(flow.initiate())
    reply = flow.authenticate(bytes.fromhex(asr))
    assert reply.function_status == "Failed"
    assert reply.status_code_data["subjectCode"] in ("1.2", "8.1"), reply.describe()


def test_euicc_reported_error_ends_the_session(flow: Flow) -> None:
    assert_ok(flow.initiate())
    tid = bytes.fromhex(flow.tid)
    error = rsp().encode("AuthenticateServerResponse", (
        "authenticateResponseError", {"transactionId": tid, "authenticateErrorCode": 2}))
    assert_failed(flow.authenticate(error), "8.1", "6.1")
    assert_failed(flow.authenticate(), "8.10.1", "3.9")


# -- getBoundProfilePackage (SGP.22 5.6.2) ---------------------------------------------


def test_get_bpp_before_authenticate_client_is_refused(flow: Flow) -> None:
    assert_ok(flow.initiate())
    pdr = rsp().encode("PrepareDownloadResponse", ("downloadResponseOk", {
        "euiccSigned2": {"transactionId": bytes.fromhex(flow.tid),
                         "euiccOtpk": b"\x04" + b"\x01" * 64},
        "euiccSignature2": bytes(64)}))
    assert_failed(flow.get_bpp(pdr), "8.10.1", "3.9")


def test_euicc_signature2_is_checked(flow: Flow) -> None:
    assert_ok(flow.initiate())
    assert_ok(flow.authenticate())
    pdr = flow.prepare_download()
    ok = parse_single(pdr).children()[0]
    signed2 = ok.children()[0].raw
    forged = encode_tlv(b"\xbf\x21", encode_tlv(b"\xa0", signed2 + encode_tlv(
        b"\x5f\x37", bytes(64))))
    assert_failed(flow.get_bpp(forged), "8.1", "6.1")
    assert_ok(flow.get_bpp(pdr))  # the session still works with the genuine one


def test_euicc_signature2_must_cover_smdp_signature2(flow: Flow) -> None:
    """A signature over euiccSigned2 alone (without smdpSignature2) is refused."""
    assert_ok(flow.initiate())
    assert_ok(flow.authenticate())
    pdr = flow.prepare_download()
    signed2 = parse_single(pdr).children()[0].children()[0].raw
    forged = encode_tlv(b"\xbf\x21", encode_tlv(b"\xa0", signed2 + encode_tlv(
        b"\x5f\x37", flow.card.sign(signed2))))
    assert_failed(flow.get_bpp(forged), "8.1", "6.1")


def test_transaction_id_inside_euicc_signed2_must_match(flow: Flow) -> None:
    assert_ok(flow.initiate())
    assert_ok(flow.authenticate())
    pdr = flow.prepare_download()
    signed2 = parse_single(pdr).children()[0].children()[0].raw
    forged_signed2 = replace_field(signed2, b"\x80", b"\x02" * 16)
    smdp_signature2 = b64d(flow.auth["smdpSignature2"])
    forged = encode_tlv(b"\xbf\x21", encode_tlv(b"\xa0", forged_signed2 + encode_tlv(
        b"\x5f\x37", flow.card.sign(forged_signed2 + smdp_signature2))))
    assert_failed(flow.get_bpp(forged), "8.10.1", "3.9")


def test_euicc_otpk_must_be_a_curve_point(flow: Flow) -> None:
    assert_ok(flow.initiate())
    assert_ok(flow.authenticate())
    flow.prepare_download()
    smdp_signature2 = b64d(flow.auth["smdpSignature2"])
    signed2 = rsp().encode("EUICCSigned2", {"transactionId": bytes.fromhex(flow.tid),
                                            "euiccOtpk": b"\x04" + b"\x01" * 64})
    forged = encode_tlv(b"\xbf\x21", encode_tlv(b"\xa0", signed2 + encode_tlv(
        b"\x5f\x37", flow.card.sign(signed2 + smdp_signature2))))
    assert_failed(flow.get_bpp(forged), "1.2", "2.1")


def test_download_error_from_the_euicc_ends_the_session(flow: Flow) -> None:
    assert_ok(flow.initiate())
    assert_ok(flow.authenticate())
    error = rsp().encode("PrepareDownloadResponse", ("downloadResponseError", {
        "transactionId": bytes.fromhex(flow.tid), "downloadErrorCode": 2}))
    assert_failed(flow.get_bpp(error), "8.1", "6.1")
    assert_failed(flow.get_bpp(), "8.10.1", "3.9")


# -- handleNotification (SGP.22 5.6.4) -------------------------------------------------


def test_forged_profile_installation_result_is_refused(flow: Flow) -> None:
    flow.until_bpp()
    pir = flow.install()
    parts = parse_single(pir).children()
    forged = encode_tlv(b"\xbf\x37", parts[0].raw + encode_tlv(b"\x5f\x37", bytes(64)))
    assert_failed(flow.notify(forged), "8.1", "6.1")
    assert flow.notify(pir).http_status == 204
    assert flow.notify(pir).http_status == 204  # a repeated notification is harmless


def test_notification_before_bpp_is_refused(flow: Flow) -> None:
    assert_ok(flow.initiate())
    assert_ok(flow.authenticate())
    data = rsp().encode("ProfileInstallationResultData", {
        "transactionId": bytes.fromhex(flow.tid),
        "notificationMetadata": {"seqNumber": 1, "profileManagementOperation": (b"\x80", 1),
                                 "notificationAddress": ADDRESS},
        "finalResult": ("successResult", {"aid": b"\xa0" * 16, "simaResponse": b""})})
    pir = encode_tlv(b"\xbf\x37", data + encode_tlv(b"\x5f\x37", flow.card.sign(data)))
    assert_failed(flow.notify(pir), "8.10.1", "3.9")


def test_notification_for_unknown_session(flow: Flow) -> None:
    data = rsp().encode("ProfileInstallationResultData", {
        "transactionId": b"\x07" * 16,
        "notificationMetadata": {"seqNumber": 1, "profileManagementOperation": (b"\x80", 1),
                                 "notificationAddress": ADDRESS},
        "finalResult": ("errorResult", {"bppCommandId": 1, "errorReason": 8})})
    pir = encode_tlv(b"\xbf\x37", data + encode_tlv(b"\x5f\x37", flow.card.sign(data)))
    assert_failed(flow.notify(pir), "8.10.1", "3.9")


def test_other_signed_notification(flow: Flow) -> None:
    meta = rsp().encode("NotificationMetadata", {
        "seqNumber": 9, "profileManagementOperation": (b"\x40", 2),
        "notificationAddress": ADDRESS, "iccid": bytes.fromhex("98001032547698103214")})
    good = encode_tlv(b"\x30", meta + encode_tlv(b"\x5f\x37", flow.card.sign(meta))
                      + flow.card.euicc_certificate + flow.card.eum_certificate)
    assert flow.notify(good).http_status == 204
    bad = encode_tlv(b"\x30", meta + encode_tlv(b"\x5f\x37", bytes(64))
                     + flow.card.euicc_certificate + flow.card.eum_certificate)
    assert_failed(flow.notify(bad), "8.1", "6.1")


@pytest.mark.parametrize("note", ["", "bf3700", "300100", "bf3703bf2700"])
def test_malformed_notification(flow: Flow, note: str) -> None:
    assert_failed(flow.notify(bytes.fromhex(note)), "1.2", "2.1")


# -- cancelSession (SGP.22 5.6.5) ------------------------------------------------------


def _smdp_oid() -> str:
    return "2.999.10"


def test_cancel_session(flow: Flow) -> None:
    assert_ok(flow.initiate())
    assert_ok(flow.authenticate())
    response = flow.card.cancel_session(bytes.fromhex(flow.tid), 0, _smdp_oid())
    assert_ok(flow.cancel(response))
    assert_failed(flow.get_bpp(), "8.10.1", "3.9")  # the session is over
    assert_failed(flow.cancel(response), "8.10.1", "3.9")  # and cannot be cancelled again


def test_cancel_session_signature_is_checked(flow: Flow) -> None:
    assert_ok(flow.initiate())
    assert_ok(flow.authenticate())
    signed = rsp().encode("EuiccCancelSessionSigned", {
        "transactionId": bytes.fromhex(flow.tid), "smdpOid": _smdp_oid(), "reason": 0})
    forged = rsp().encode("CancelSessionResponse", ("cancelSessionResponseOk", {
        "euiccCancelSessionSigned": {"transactionId": bytes.fromhex(flow.tid),
                                     "smdpOid": _smdp_oid(), "reason": 0},
        "euiccCancelSessionSignature": flow.card.sign(signed + b"x")}))
    assert_failed(flow.cancel(forged), "8.1", "6.1")
    assert_ok(flow.get_bpp())  # a refused cancellation leaves the session alive


def test_cancel_session_smdp_oid_is_checked(flow: Flow) -> None:
    assert_ok(flow.initiate())
    assert_ok(flow.authenticate())
    response = flow.card.cancel_session(bytes.fromhex(flow.tid), 1, "2.999.11")
    assert_failed(flow.cancel(response), "8.8", "3.10")


def test_unsigned_cancel_session_error_is_refused(flow: Flow) -> None:
    assert_ok(flow.initiate())
    assert_ok(flow.authenticate())
    error = rsp().encode("CancelSessionResponse", ("cancelSessionResponseError", 5))
    assert_failed(flow.cancel(error), "1.2", "2.1")


def test_cancel_before_authentication_is_refused(flow: Flow) -> None:
    assert_ok(flow.initiate())
    response = flow.card.cancel_session(bytes.fromhex(flow.tid), 0, _smdp_oid())
    assert_failed(flow.cancel(response), "8.10.1", "3.9")


# -- sessions -------------------------------------------------------------------------


def test_interleaved_sessions_do_not_disturb_each_other(client: Es9Client,
                                                        shared_server: RunningServer) -> None:
    a = Flow(client, SoftEuicc.from_identity_dir(shared_server.data_dir / "euicc"))
    b = Flow(client, SoftEuicc.from_identity_dir(shared_server.data_dir / "euicc"))
    assert_ok(a.initiate())
    assert_ok(b.initiate())
    # b's eUICC answers with a's transactionId: refused, a unaffected
    assert_ok(a.authenticate())
    b_asr = b.authenticate_server()
    assert_failed(b.authenticate(b_asr, tid=a.tid), "8.10.1", "3.9")
    assert_ok(b.authenticate(b_asr))
    assert_ok(a.get_bpp())
    assert_ok(b.get_bpp())
    assert a.notify(a.install()).http_status == 204
    assert b.notify(b.install()).http_status == 204


def test_oversized_chunked_body_is_413(shared_server: RunningServer, flow: Flow) -> None:
    """A body sent in chunks without Content-Length is cut at the limit too."""
    import http.client
    from urllib.parse import urlsplit
    url = urlsplit(shared_server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    chunks = (b"A" * 65536 for _ in range(32))  # 2 MiB
    conn.request("POST", "/gsma/rsp2/es9plus/handleNotification", body=chunks,
                 headers={"Content-Type": "application/json",
                          "X-Admin-Protocol": "gsma/rsp/v2.2.0"}, encode_chunked=True)
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    assert response.status == 413
    assert body["header"]["functionExecutionStatus"]["statusCodeData"]["reasonCode"] == "2.1"
    assert_ok(flow.initiate())  # the server carries on


# -- mutated messages ---------------------------------------------------------------


def _mutate(data: bytes, rnd: "random.Random") -> bytes:
    """Flip, drop or insert a few bytes, or cut the message short."""
    out = bytearray(data)
    for _ in range(rnd.randint(1, 3)):
        choice = rnd.random()
        if choice < 0.5 and out:
            out[rnd.randrange(len(out))] = rnd.randrange(256)
        elif choice < 0.65 and out:
            del out[rnd.randrange(len(out))]
        elif choice < 0.8:
            out.insert(rnd.randrange(len(out) + 1), rnd.randrange(256))
        else:
            del out[rnd.randrange(len(out) + 1):]
    return bytes(out)


def test_mutated_messages_get_an_sgp22_refusal_never_an_internal_error(
        shared_server: RunningServer, client: Es9Client, card: SoftEuicc) -> None:
    """Real messages of each step with a few bytes changed (seeded): every answer is a
    function failure with an SGP.22 code (or a success, if the change was harmless),
    never HTTP 5xx or the generic 1.2/4.2 of an escaped exception."""
    import random

    rnd = random.Random(20261127)
    answers = []
    for step in [0, 1, 2, 3] * 25:
        flow = Flow(client, card)
        if step == 0:
            answers.append(client.call("initiateAuthentication", {
                "euiccChallenge": b64e(_mutate(card.get_euicc_challenge(), rnd)),
                "euiccInfo1": b64e(_mutate(card.get_euicc_info1(), rnd)), "smdpAddress": ADDRESS}))
            continue
        assert_ok(flow.initiate())
        asr = flow.authenticate_server()
        if step == 1:
            answers.append(flow.authenticate(_mutate(asr, rnd)))
            continue
        assert_ok(flow.authenticate(asr))
        pdr = flow.prepare_download()
        if step == 2:
            answers.append(flow.get_bpp(_mutate(pdr, rnd)))
            answers.append(flow.cancel(_mutate(pdr, rnd)))
            continue
        assert_ok(flow.get_bpp(pdr))
        answers.append(flow.notify(_mutate(flow.install(), rnd)))
    for reply in answers:
        codes = reply.status_code_data
        assert reply.http_status in (200, 204), reply.describe()
        assert (codes.get("subjectCode"), codes.get("reasonCode")) != ("1.2", "4.2"), reply.describe()
    assert sum(reply.function_status == "Failed" for reply in answers) > len(answers) // 2
    assert "Traceback" not in shared_server.log()
