"""Common Mutual Authentication on the software eUICC (SGP.22 3.1.2): ES10b.GetEUICCChallenge,
GetEUICCInfo and AuthenticateServer (5.7.7, 5.7.8, 5.7.13), which builds and signs euiccSigned1."""
from __future__ import annotations

import os

import asn1tools

from smdpp.asn1 import rsp
from smdpp.asn1.tlv import TlvError, encode_tlv, parse_single
from smdpp.euicc.card_core import (
    TAG_OCTET_STRING,
    TAG_SEQUENCE,
    TAG_SIGNATURE,
    CardCore,
    CardError,
    RspSession,
    curve_of,
)
from smdpp.euicc.info import encode_euicc_info1, encode_euicc_info2
from smdpp.pki.chain import SUPPORTED_CURVES, registered_ids
from smdpp.pki.ecdsa import verify_plain
from smdpp.pki.store import verify_smdp_certificate

__all__ = ["AUTHENTICATE_ERROR", "Authentication"]

#: AuthenticateErrorCode (SGP.22 5.7.13).
AUTHENTICATE_ERROR = {
    "invalidCertificate": 1, "invalidSignature": 2, "unsupportedCurve": 3,
    "noSessionContext": 4, "invalidOid": 5, "euiccChallengeMismatch": 6,
    "ciPKUnknown": 7, "undefinedError": 127,
}


class Authentication(CardCore):
    """ES10b.GetEUICCChallenge, GetEUICCInfo1/2 and AuthenticateServer of :class:`~smdpp.euicc.card.SoftEuicc`."""

    # --- ES10b.GetEUICCChallenge / GetEUICCInfo (SGP.22 5.7.7, 5.7.8) ---------

    def get_euicc_challenge(self) -> bytes:
        """A fresh 16-byte euiccChallenge, remembered for AuthenticateServer."""
        self._challenge = os.urandom(16)
        return self._challenge

    def get_euicc_info1(self) -> bytes:
        """EUICCInfo1 (BF20)."""
        return encode_euicc_info1(self.capabilities, self.ci_pkid)

    def get_euicc_info2(self) -> bytes:
        """EUICCInfo2 (BF22)."""
        return encode_euicc_info2(self.capabilities, self.ci_pkid)

    # --- ES10b.AuthenticateServer (SGP.22 5.7.13) -------------------------------

    def _auth_error(self, transaction_id: bytes, code: str, why: str) -> bytes:
        self.last_error = f"{code}: {why}"
        return rsp().encode("AuthenticateServerResponse", ("authenticateResponseError", {
            "transactionId": transaction_id, "authenticateErrorCode": AUTHENTICATE_ERROR[code]}))

    def authenticate_server(self, request: bytes, *, expected_address: str | None = None) -> bytes:
        """Verify the SM-DP+ and answer AuthenticateServerResponse (BF38).

        ``request`` is the AuthenticateServerRequest (BF38).  Checks, in order:
        euiccCiPKIdToBeUsed is the eUICC's CI (ciPKUnknown); serverCertificate
        is a DPauth certificate on a supported curve (unsupportedCurve) chained
        to that CI (invalidCertificate) naming an SM-DP+ OID (invalidOid);
        serverSignature1 over serverSigned1 as received (invalidSignature); the
        euiccChallenge is the one issued last (euiccChallengeMismatch); and,
        when the LPA gives ``expected_address``, that serverAddress matches it
        (host names compare case-insensitively; undefinedError).  On success a
        new RSP session replaces any previous one.
        """
        self.last_error = None
        try:
            outer = parse_single(request, b"\xbf\x38")
            parts = outer.children()
            if [p.tag for p in parts] != [TAG_SEQUENCE, TAG_SIGNATURE, TAG_OCTET_STRING,
                                           TAG_SEQUENCE, b"\xa0"]:
                raise CardError("AuthenticateServerRequest does not have the five expected parts")
            # Decoded part by part: the certificate is checked by the X.509 parser below.
            signed1 = rsp().decode("ServerSigned1", parts[0].raw)
            rsp().decode("CtxParams1", parts[4].raw)
            signed1_parts = parts[0].children()
        except (TlvError, asn1tools.Error) as exc:
            raise CardError(f"AuthenticateServerRequest malformed: {exc}") from None
        tid = signed1["transactionId"]

        if parts[2].value != self.ci_pkid:
            return self._auth_error(tid, "ciPKUnknown",
                                    f"euiccCiPKIdToBeUsed {parts[2].value.hex()} is not a CI of this eUICC")
        cert_der = parts[3].raw
        try:
            curve_name = curve_of(cert_der)
        except ValueError as exc:
            return self._auth_error(tid, "invalidCertificate", f"serverCertificate unreadable: {exc}")
        if curve_name not in SUPPORTED_CURVES:
            return self._auth_error(tid, "unsupportedCurve", f"serverCertificate key curve {curve_name}")
        try:
            dpauth = verify_smdp_certificate(cert_der, self._id.ci_cert, "auth")
        except ValueError as exc:
            return self._auth_error(tid, "invalidCertificate", str(exc))
        oids = registered_ids(dpauth)
        if len(oids) != 1:
            return self._auth_error(tid, "invalidOid", "serverCertificate must name exactly one SM-DP+ OID")
        if not verify_plain(dpauth.public_key(), parts[1].value, parts[0].raw):
            return self._auth_error(tid, "invalidSignature",
                                    "serverSignature1 does not verify over serverSigned1 with CERT.DPauth")
        if self._challenge is None or signed1["euiccChallenge"] != self._challenge:
            return self._auth_error(tid, "euiccChallengeMismatch",
                                    "euiccChallenge in serverSigned1 is not the one this eUICC issued")
        address = signed1["serverAddress"]
        if expected_address is not None and address.casefold() != expected_address.casefold():
            return self._auth_error(tid, "undefinedError",
                                    f"serverAddress {address!r} is not the SM-DP+ address "
                                    f"{expected_address!r}")

        # euiccSigned1: transactionId, serverAddress, serverChallenge copied as received
        # (tags 80, 83, 84 of serverSigned1), then euiccInfo2 and ctxParams1.
        copied = {p.tag: p.raw for p in signed1_parts}
        euicc_signed1 = encode_tlv(TAG_SEQUENCE, copied[b"\x80"] + copied[b"\x83"] + copied[b"\x84"]
                                   + self.get_euicc_info2() + parts[4].raw)
        signature1 = self.sign(euicc_signed1)
        self._challenge = None  # one challenge, one authentication
        self._session = RspSession(transaction_id=tid, server_address=address, smdp_oid=oids[0],
                                    euicc_signature1=signature1)
        ok = (euicc_signed1 + encode_tlv(TAG_SIGNATURE, signature1)
              + self._id.euicc_cert_der + self._id.eum_cert_der)
        if self.other_certs_in_chain:  # otherCertsInChain [0] CertificateChain (v3)
            ok += encode_tlv(b"\xa0", b"".join(self.other_certs_in_chain))
        return encode_tlv(b"\xbf\x38", encode_tlv(b"\xa0", ok))
