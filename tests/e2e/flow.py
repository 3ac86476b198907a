"""Step-by-step ES9+ calls with the software eUICC, for tests that tamper with one step."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from smdpp.asn1 import rsp
from smdpp.asn1.tlv import encode_tlv, parse_single
from smdpp.pki.ecdsa import verify_plain
from smdpp.euicc.card import SoftEuicc
from smdpp.euicc.client import (
    authenticate_server_request,
    encode_ctx_params1,
    prepare_download_request,
)
from smdpp.euicc.es9 import Es9Client, Es9Reply, b64d, b64e

ADDRESS = "testsmdpplus1.example.com"


def ci_pkid(ci: x509.Certificate) -> bytes:
    """The CI PKID of a CI certificate (its subjectKeyIdentifier, SGP.22 2.6.7.1)."""
    return ci.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def initiate_for_cis(client: Es9Client, pkids: list[bytes], challenge: bytes = b"\x42" * 16,
                     address: str = ADDRESS) -> Es9Reply:
    """initiateAuthentication of an eUICC that trusts (verifies and signs with) the CIs ``pkids``."""
    info1 = rsp().encode("EUICCInfo1", {"svn": b"\x02\x02\x02",
                                        "euiccCiPKIdListForVerification": pkids,
                                        "euiccCiPKIdListForSigning": pkids})
    return client.call("initiateAuthentication", {
        "euiccChallenge": b64e(challenge), "euiccInfo1": b64e(info1), "smdpAddress": address})


def check_server_signed1(body: dict[str, Any], dpauth_der: bytes, challenge: bytes = b"\x42" * 16,
                         address: str = ADDRESS) -> None:
    """The initiateAuthentication answer is signed by ``dpauth_der`` over our challenge and address."""
    assert b64d(body["serverCertificate"]) == dpauth_der
    signature = parse_single(b64d(body["serverSignature1"]), b"\x5f\x37").value
    public_key = x509.load_der_x509_certificate(dpauth_der).public_key()
    assert verify_plain(public_key, signature, b64d(body["serverSigned1"]))
    signed1 = rsp().decode("ServerSigned1", b64d(body["serverSigned1"]))
    assert signed1["euiccChallenge"] == challenge and signed1["serverAddress"] == address


def codes(reply: Es9Reply) -> tuple[str | None, str | None]:
    """(subjectCode, reasonCode) of a Failed reply."""
    data = reply.status_code_data
    return data.get("subjectCode"), data.get("reasonCode")


def assert_failed(reply: Es9Reply, subject: str, reason: str, http_status: int = 200) -> None:
    """The reply is an SGP.22 function failure with exactly these codes."""
    assert reply.http_status == http_status, reply.describe()
    assert reply.function_status == "Failed", reply.describe()
    assert codes(reply) == (subject, reason), reply.describe()


def assert_ok(reply: Es9Reply) -> dict[str, Any]:
    assert reply.http_status == 200 and reply.function_status == "Executed-Success", \
        reply.describe()
    return reply.json


@dataclass
class Flow:
    """One RSP session driven call by call; each step returns the raw ES9+ reply."""

    client: Es9Client
    card: SoftEuicc
    address: str = ADDRESS
    matching_id: str | None = "SMDPP-TEST-1"
    init: dict[str, Any] = field(default_factory=dict)
    auth: dict[str, Any] = field(default_factory=dict)
    asr: bytes = b""
    pdr: bytes = b""
    bpp: bytes = b""

    @property
    def tid(self) -> str:
        return self.init["transactionId"]

    def initiate(self, **override: Any) -> Es9Reply:
        body = {"euiccChallenge": b64e(self.card.get_euicc_challenge()),
                "euiccInfo1": b64e(self.card.get_euicc_info1()), "smdpAddress": self.address}
        body.update(override)
        reply = self.client.call("initiateAuthentication", body)
        if reply.function_status == "Executed-Success":
            self.init = reply.json
        return reply

    def authenticate_server(self) -> bytes:
        """ES10b.AuthenticateServer on the card with the initiateAuthentication answer."""
        request = authenticate_server_request(
            b64d(self.init["serverSigned1"]), b64d(self.init["serverSignature1"]),
            b64d(self.init["euiccCiPKIdToBeUsed"]), b64d(self.init["serverCertificate"]),
            encode_ctx_params1(self.matching_id))
        self.asr = self.card.authenticate_server(request, expected_address=self.address)
        return self.asr

    def authenticate(self, asr: bytes | None = None, tid: str | None = None) -> Es9Reply:
        if asr is None:
            asr = self.authenticate_server()
        reply = self.client.call("authenticateClient", {
            "transactionId": tid or self.tid, "authenticateServerResponse": b64e(asr)})
        if reply.function_status == "Executed-Success":
            self.auth = reply.json
        return reply

    def prepare_download(self) -> bytes:
        """ES10b.PrepareDownload on the card with the authenticateClient answer."""
        request = prepare_download_request(
            b64d(self.auth["smdpSigned2"]), b64d(self.auth["smdpSignature2"]),
            b64d(self.auth["smdpCertificate"]))
        self.pdr = self.card.prepare_download(request)
        return self.pdr

    def get_bpp(self, pdr: bytes | None = None, tid: str | None = None) -> Es9Reply:
        if pdr is None:
            pdr = self.prepare_download()
        reply = self.client.call("getBoundProfilePackage", {
            "transactionId": tid or self.tid, "prepareDownloadResponse": b64e(pdr)})
        if reply.function_status == "Executed-Success":
            self.bpp = b64d(reply.json["boundProfilePackage"])
        return reply

    def install(self) -> bytes:
        """ES10b.LoadBoundProfilePackage: the signed ProfileInstallationResult."""
        return self.card.load_bound_profile_package(self.bpp)

    def notify(self, notification: bytes) -> Es9Reply:
        return self.client.call("handleNotification", {"pendingNotification": b64e(notification)})

    def cancel(self, response: bytes, tid: str | None = None) -> Es9Reply:
        return self.client.call("cancelSession", {
            "transactionId": tid or self.tid, "cancelSessionResponse": b64e(response)})

    def until_bpp(self) -> None:
        """Run the happy path up to a delivered BPP."""
        assert_ok(self.initiate())
        assert_ok(self.authenticate())
        assert_ok(self.get_bpp())


def rebuild_authenticate_response(asr: bytes, card: SoftEuicc, *, signed1: bytes | None = None,
                                  euicc_cert: bytes | None = None,
                                  eum_cert: bytes | None = None,
                                  signature: bytes | None = None) -> bytes:
    """An AuthenticateServerResponse with parts replaced, re-signed by ``card`` unless given."""
    ok = parse_single(asr, b"\xbf\x38").children()[0]
    old_signed1, _sig, old_euicc, old_eum = ok.children()
    signed1 = signed1 if signed1 is not None else old_signed1.raw
    if signature is None:
        signature = card.sign(signed1)
    inner = (signed1 + encode_tlv(b"\x5f\x37", signature) + (euicc_cert or old_euicc.raw)
             + (eum_cert or old_eum.raw))
    return encode_tlv(b"\xbf\x38", encode_tlv(b"\xa0", inner))


def replace_field(container: bytes, tag: bytes, value: bytes) -> bytes:
    """The constructed TLV ``container`` with its child ``tag`` given a new value."""
    top = parse_single(container)
    parts = [encode_tlv(c.tag, value) if c.tag == tag else c.raw for c in top.children()]
    return encode_tlv(top.tag, b"".join(parts))
