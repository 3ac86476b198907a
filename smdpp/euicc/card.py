"""A software test eUICC: the ISD-R side of ES10b (SGP.22 5.7) and of ES8+ (5.5).

:class:`SoftEuicc` does what a consumer eUICC does during a profile download
(SGP.22 3.1.3 Download and Installation, with its Common Mutual Authentication):
it issues the euiccChallenge, verifies the SM-DP+ (certificates chained to its
CI, signatures over the bytes exactly as received, challenge, transactionId),
signs its answers with SK.EUICC.ECDSA, opens the Bound Profile Package with
its one-time key and reports a signed ProfileInstallationResult.

It is written from SGP.22 independently of the server code (it imports
nothing from :mod:`smdpp.rsp` or :mod:`smdpp.http`), so that a download
between the two checks one reading of the specification against another.
Profiles are kept in memory only.

Inputs that cannot be parsed at all raise :class:`CardError`, the way a real
card answers such an APDU with a status word and no data; every refusal the
specification gives a code for is answered with that code.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import asn1tools
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec

from smdpp.asn1 import rsp
from smdpp.asn1.tlv import TlvError, encode_tlv, parse_single
from smdpp.bsp import BspError
from smdpp.es8p import OpenedProfilePackage, open_bound_profile_package
from smdpp.euicc.bpp_stream import StreamingOpener
from smdpp.euicc.identity import EuiccIdentity, load_identity
from smdpp.euicc.info import EuiccCapabilities, encode_euicc_info1, encode_euicc_info2
from smdpp.euicc.installation import (
    BPP_COMMAND,
    ERROR_REASON,
    classify_bpp_error,
    encode_pir,
    encode_pir_data,
    iccid_from_bcd,
    iccid_from_ef,
    upp_header_iccid,
)
from smdpp.pki.chain import SUPPORTED_CURVES, registered_ids
from smdpp.pki.ecdsa import public_point, sign_plain, verify_plain
from smdpp.pki.store import verify_smdp_certificate

__all__ = ["SoftEuicc", "CardError", "AUTHENTICATE_ERROR", "DOWNLOAD_ERROR", "CANCEL_SESSION_REASON"]

#: AuthenticateErrorCode (SGP.22 5.7.13).
AUTHENTICATE_ERROR = {
    "invalidCertificate": 1, "invalidSignature": 2, "unsupportedCurve": 3,
    "noSessionContext": 4, "invalidOid": 5, "euiccChallengeMismatch": 6,
    "ciPKUnknown": 7, "undefinedError": 127,
}
#: DownloadErrorCode (SGP.22 5.7.5).
DOWNLOAD_ERROR = {
    "invalidCertificate": 1, "invalidSignature": 2, "unsupportedCurve": 3,
    "noSessionContext": 4, "invalidTransactionId": 5, "undefinedError": 127,
}
#: CancelSessionReason (SGP.22 5.7.14).
CANCEL_SESSION_REASON = {
    "endUserRejection": 0, "postponed": 1, "timeout": 2, "pprNotAllowed": 3,
    "metadataMismatch": 4, "loadBppExecutionError": 5, "undefinedReason": 127,
}

_TAG_SEQUENCE = b"\x30"
_TAG_SIGNATURE = b"\x5f\x37"
_TAG_OTPK = b"\x5f\x49"
_TAG_OCTET_STRING = b"\x04"
# ISD-P AIDs (SGP.02 / SGP.22 2.2.3 style): RID A000000559, then a per-profile counter.
_ISDP_AID_BASE = bytes.fromhex("A0000005591010FFFFFFFF8900001000")


def _curve_of(cert_der: bytes) -> str | None:
    """The curve name of the certificate's key, None if it is not EC on a curve we know.

    ValueError if the certificate cannot be read at all.
    """
    cert = x509.load_der_x509_certificate(cert_der)
    try:
        key = cert.public_key()
    except UnsupportedAlgorithm:
        return None
    return key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else None


class CardError(ValueError):
    """The eUICC refused a command it could not process at all (no response data)."""


@dataclass
class _RspSession:
    """The eUICC's view of one RSP session, from AuthenticateServer to the BPP."""

    transaction_id: bytes
    server_address: str
    smdp_oid: str
    euicc_signature1: bytes
    dppb_cert: x509.Certificate | None = None
    ot_key: ec.EllipticCurvePrivateKey | None = None  # otSK.EUICC.ECKA
    euicc_otpk: bytes | None = None  # otPK.EUICC.ECKA

    def __repr__(self) -> str:  # the one-time key stays out of logs
        return f"_RspSession(transaction_id={self.transaction_id.hex()})"


class SoftEuicc:
    """A consumer eUICC in software, driven by an LPA through ES10b calls.

    State between calls: the last euiccChallenge, the current RSP session
    (transactionId, SM-DP+ address and OID, euiccSignature1, CERT.DPpb and the
    one-time key once PrepareDownload succeeded), installed profiles
    (``installed``: ICCID -> UPP bytes) and pending notifications
    (``pending_notifications``: seqNumber -> signed notification).
    """

    def __init__(self, identity: EuiccIdentity, capabilities: EuiccCapabilities | None = None,
                 other_certs_in_chain: Sequence[bytes] = ()) -> None:
        self._id = identity
        self.capabilities = capabilities or EuiccCapabilities()
        #: SGP.22 v3 otherCertsInChain: the certificates (DER) between the one certifying the
        #: eUICC certificate (an EUM SubCA) and the CI, sent in AuthenticateServerResponse.
        self.other_certs_in_chain: tuple[bytes, ...] = tuple(other_certs_in_chain)
        self._challenge: bytes | None = None
        self._session: _RspSession | None = None
        self._seq_number = 0
        self.installed: dict[str, bytes] = {}
        #: ICCID -> the decoded StoreMetadataRequest and the ISD-P AID of each installed profile.
        self.installed_metadata: dict[str, dict] = {}
        self.isdp_aids: dict[str, bytes] = {}
        self.pending_notifications: dict[int, bytes] = {}
        #: Why the last command was refused, in words (the codes are in the response).
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return f"SoftEuicc(eid={self.eid})"

    @classmethod
    def from_identity_dir(cls, path: Path, capabilities: EuiccCapabilities | None = None) -> "SoftEuicc":
        """An eUICC personalised from an identity folder (see :mod:`smdpp.euicc.identity`)."""
        return cls(load_identity(Path(path)), capabilities)

    # --- identity -----------------------------------------------------------

    @property
    def eid(self) -> str:
        """The EID, 32 digits."""
        return self._id.eid

    @property
    def eid_bytes(self) -> bytes:
        """The EID as 16 octets (the digits as hex, as in the BSP SharedInfo of SGP.22 2.6.4)."""
        return bytes.fromhex(self._id.eid)

    @property
    def ci_pkid(self) -> bytes:
        """Subject key identifier of the CI the eUICC trusts."""
        return self._id.ci_pkid

    @property
    def euicc_certificate(self) -> bytes:
        """CERT.EUICC.ECDSA (DER)."""
        return self._id.euicc_cert_der

    @property
    def eum_certificate(self) -> bytes:
        """CERT.EUM.ECDSA (DER)."""
        return self._id.eum_cert_der

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        """PK.EUICC.ECDSA."""
        return self._id.euicc_key.public_key()

    @property
    def seq_number(self) -> int:
        """The last notification seqNumber used (SGP.22 5.7.9); a persistent card restores it."""
        return self._seq_number

    @seq_number.setter
    def seq_number(self, value: int) -> None:
        self._seq_number = value

    def _free_isdp_aid(self) -> bytes:
        """The lowest ISD-P AID no installed profile uses."""
        used = set(self.isdp_aids.values())
        base = int.from_bytes(_ISDP_AID_BASE, "big")
        n = 0
        while (aid := (base + 0x100 * n).to_bytes(16, "big")) in used:
            n += 1
        return aid

    @property
    def transaction_id(self) -> bytes | None:
        """transactionId of the RSP session in progress, if any."""
        return self._session.transaction_id if self._session else None

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` with SK.EUICC.ECDSA (plain r||s). For tests that forge eUICC messages."""
        return sign_plain(self._id.euicc_key, data)

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
            if [p.tag for p in parts] != [_TAG_SEQUENCE, _TAG_SIGNATURE, _TAG_OCTET_STRING,
                                           _TAG_SEQUENCE, b"\xa0"]:
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
            curve_name = _curve_of(cert_der)
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
        euicc_signed1 = encode_tlv(_TAG_SEQUENCE, copied[b"\x80"] + copied[b"\x83"] + copied[b"\x84"]
                                   + self.get_euicc_info2() + parts[4].raw)
        signature1 = self.sign(euicc_signed1)
        self._challenge = None  # one challenge, one authentication
        self._session = _RspSession(transaction_id=tid, server_address=address, smdp_oid=oids[0],
                                    euicc_signature1=signature1)
        ok = (euicc_signed1 + encode_tlv(_TAG_SIGNATURE, signature1)
              + self._id.euicc_cert_der + self._id.eum_cert_der)
        if self.other_certs_in_chain:  # otherCertsInChain [0] CertificateChain (v3)
            ok += encode_tlv(b"\xa0", b"".join(self.other_certs_in_chain))
        return encode_tlv(b"\xbf\x38", encode_tlv(b"\xa0", ok))

    # --- ES10b.PrepareDownload (SGP.22 5.7.5) ----------------------------------

    def _download_error(self, transaction_id: bytes, code: str, why: str) -> bytes:
        self.last_error = f"{code}: {why}"
        return rsp().encode("PrepareDownloadResponse", ("downloadResponseError", {
            "transactionId": transaction_id, "downloadErrorCode": DOWNLOAD_ERROR[code]}))

    def prepare_download(self, request: bytes) -> bytes:
        """Verify smdpSigned2 and answer PrepareDownloadResponse (BF21) with a new otPK.EUICC.ECKA.

        Checks: an RSP session exists (noSessionContext); smdpCertificate is a
        DPpb certificate on a supported curve (unsupportedCurve), chained to
        the CI and naming the SM-DP+ OID of CERT.DPauth (invalidCertificate);
        smdpSignature2 over smdpSigned2 as received followed by the eUICC's
        euiccSignature1 as a '5F37' data object (invalidSignature); the
        transactionId is the session's (invalidTransactionId); hashCc is
        present when ccRequiredFlag is set (undefinedError).  If bppEuiccOtpk
        names the one-time key of this session the key is reused (a retry),
        otherwise a new one is made on the curve of SK.EUICC.ECDSA.
        """
        self.last_error = None
        try:
            outer = parse_single(request, b"\xbf\x21")
            parts = outer.children()
            tags = [p.tag for p in parts]
            if tags not in ([_TAG_SEQUENCE, _TAG_SIGNATURE, _TAG_SEQUENCE],
                            [_TAG_SEQUENCE, _TAG_SIGNATURE, _TAG_OCTET_STRING, _TAG_SEQUENCE]):
                raise CardError("PrepareDownloadRequest does not have the expected parts")
            signed2 = rsp().decode("SmdpSigned2", parts[0].raw)
        except (TlvError, asn1tools.Error) as exc:
            raise CardError(f"PrepareDownloadRequest malformed: {exc}") from None
        signed2_tlv, signature2_tlv, cert_tlv = parts[0], parts[1], parts[-1]
        hash_cc_tlv = parts[2] if len(parts) == 4 else None
        if hash_cc_tlv is not None and len(hash_cc_tlv.value) != 32:
            raise CardError("PrepareDownloadRequest hashCc is not 32 bytes")
        tid = signed2["transactionId"]

        session = self._session
        if session is None:
            return self._download_error(tid, "noSessionContext", "no RSP session (AuthenticateServer first)")
        try:
            curve_name = _curve_of(cert_tlv.raw)
        except ValueError as exc:
            return self._download_error(tid, "invalidCertificate", f"smdpCertificate unreadable: {exc}")
        if curve_name not in SUPPORTED_CURVES:
            return self._download_error(tid, "unsupportedCurve", f"smdpCertificate key curve {curve_name}")
        try:
            dppb = verify_smdp_certificate(cert_tlv.raw, self._id.ci_cert, "pb")
        except ValueError as exc:
            return self._download_error(tid, "invalidCertificate", str(exc))
        if registered_ids(dppb) != [session.smdp_oid]:
            return self._download_error(tid, "invalidCertificate",
                                        f"smdpCertificate does not name SM-DP+ OID {session.smdp_oid} "
                                        "of the DPauth certificate")
        signed_data = signed2_tlv.raw + encode_tlv(_TAG_SIGNATURE, session.euicc_signature1)
        if not verify_plain(dppb.public_key(), signature2_tlv.value, signed_data):
            return self._download_error(tid, "invalidSignature",
                                        "smdpSignature2 does not verify over smdpSigned2 and "
                                        "euiccSignature1 with CERT.DPpb")
        if tid != session.transaction_id:
            return self._download_error(tid, "invalidTransactionId",
                                        f"transactionId {tid.hex()} is not the session's "
                                        f"{session.transaction_id.hex()}")
        if signed2["ccRequiredFlag"] and hash_cc_tlv is None:
            return self._download_error(tid, "undefinedError",
                                        "ccRequiredFlag is set but the LPA gave no hashCc")

        requested = signed2.get("bppEuiccOtpk")
        if not (requested is not None and session.ot_key is not None and requested == session.euicc_otpk):
            session.ot_key = ec.generate_private_key(self._id.euicc_key.curve)
            session.euicc_otpk = public_point(session.ot_key)
        session.dppb_cert = dppb

        tid_tlv = next(p for p in signed2_tlv.children() if p.tag == b"\x80")
        euicc_signed2 = encode_tlv(_TAG_SEQUENCE, tid_tlv.raw + encode_tlv(_TAG_OTPK, session.euicc_otpk)
                                   + (hash_cc_tlv.raw if hash_cc_tlv else b""))
        signature = self.sign(euicc_signed2 + signature2_tlv.raw)
        ok = euicc_signed2 + encode_tlv(_TAG_SIGNATURE, signature)
        return encode_tlv(b"\xbf\x21", encode_tlv(b"\xa0", ok))

    # --- ES10b.LoadBoundProfilePackage (SGP.22 5.7.6) ---------------------------

    def _install(self, bpp: bytes, session: _RspSession) -> tuple[bytes | None, tuple[int, int] | str]:
        """Open and install; (EF.ICCID or None, (bppCommandId, errorReason) or the ICCID digits)."""
        assert session.ot_key is not None and session.euicc_otpk is not None and session.dppb_cert is not None
        try:
            opened = open_bound_profile_package(
                bpp, euicc_ot_key=session.ot_key, euicc_otpk=session.euicc_otpk,
                eid=self.eid_bytes, dppb_public_key=session.dppb_cert.public_key())
        except BspError as exc:
            self.last_error = f"BPP refused: {exc}"
            return None, classify_bpp_error(str(exc))
        return self._install_opened(opened, session)

    def _install_opened(self, opened: OpenedProfilePackage,
                        session: _RspSession) -> tuple[bytes | None, tuple[int, int] | str]:
        """Install an opened package (transactionId, ConfigureISDP, StoreMetadata, PE-Header checks)."""
        if opened.transaction_id != session.transaction_id:
            self.last_error = "InitialiseSecureChannel transactionId is not the session's"
            return None, (BPP_COMMAND["initialiseSecureChannel"], ERROR_REASON["invalidTransactionId"])
        try:
            rsp().decode("ConfigureISDPRequest", opened.configure_isdp)
        except asn1tools.Error as exc:
            self.last_error = f"ConfigureISDPRequest undecodable: {exc}"
            return None, (BPP_COMMAND["configureISDP"], ERROR_REASON["incorrectInputValues"])
        try:
            metadata = rsp().decode("StoreMetadataRequest", opened.store_metadata)
        except asn1tools.Error as exc:
            self.last_error = f"StoreMetadataRequest undecodable: {exc}"
            return None, (BPP_COMMAND["storeMetadata"], ERROR_REASON["incorrectInputValues"])
        iccid_ef = metadata["iccid"]
        iccid = iccid_from_ef(iccid_ef)
        if iccid in self.installed:
            self.last_error = f"a profile with ICCID {iccid} is already installed"
            return iccid_ef, (BPP_COMMAND["storeMetadata"],
                              ERROR_REASON["installFailedDueToIccidAlreadyExistsOnEuicc"])
        try:
            header_iccid = iccid_from_bcd(upp_header_iccid(opened.upp))
        except ValueError as exc:
            self.last_error = str(exc)
            return iccid_ef, (BPP_COMMAND["loadProfileElements"],
                              ERROR_REASON["installFailedDueToPEProcessingError"])
        if header_iccid != iccid:
            self.last_error = f"PE-Header ICCID {header_iccid} differs from StoreMetadata ICCID {iccid}"
            return iccid_ef, (BPP_COMMAND["loadProfileElements"],
                              ERROR_REASON["installFailedDueToDataMismatch"])
        self.installed[iccid] = opened.upp
        self.installed_metadata[iccid] = metadata
        self.isdp_aids[iccid] = self._free_isdp_aid()
        return iccid_ef, iccid

    def load_bound_profile_package(self, bpp: bytes) -> bytes:
        """Install the profile in ``bpp`` (BF36); return the signed ProfileInstallationResult (BF37).

        Needs a session that went through PrepareDownload (else CardError).
        Whatever the outcome, the session and its one-time key end here and
        the result is kept in ``pending_notifications`` until the LPA removes it.
        """
        self.last_error = None
        session = self._prepared_session()
        try:
            iccid_ef, outcome = self._install(bpp, session)
        finally:
            self._session = None  # otSK.EUICC.ECKA is gone with the session
        return self._installation_result(session, iccid_ef, outcome)

    def begin_load(self, initialise: bytes) -> StreamingOpener | tuple[int, int]:
        """Start opening a BPP whose pieces come one by one, with its InitialiseSecureChannel (BF23).

        SGP.22 5.5.1 / 5.7.6: the structure, smdpSign over the received bytes
        and otPK.EUICC.ECKA, and the session's transactionId are checked when
        this piece arrives.  The opener for the following segments, or
        ``(bppCommandId, errorReason)`` for :meth:`abort_load`.
        """
        session = self._prepared_session()
        assert session.ot_key is not None and session.euicc_otpk is not None and session.dppb_cert is not None
        try:
            opener = StreamingOpener(initialise, euicc_ot_key=session.ot_key, euicc_otpk=session.euicc_otpk,
                                     eid=self.eid_bytes, dppb_public_key=session.dppb_cert.public_key())
        except BspError as exc:
            self.last_error = f"BPP refused: {exc}"
            return classify_bpp_error(str(exc))
        if opener.initialise.transaction_id != session.transaction_id:
            self.last_error = "InitialiseSecureChannel transactionId is not the session's"
            return BPP_COMMAND["initialiseSecureChannel"], ERROR_REASON["invalidTransactionId"]
        return opener

    def load_opened(self, opened: OpenedProfilePackage) -> bytes:
        """Install a package a :class:`StreamingOpener` opened; the ProfileInstallationResult (BF37)."""
        self.last_error = None
        session = self._prepared_session()
        try:
            iccid_ef, outcome = self._install_opened(opened, session)
        finally:
            self._session = None
        return self._installation_result(session, iccid_ef, outcome)

    def abort_load(self, error: tuple[int, int], why: str) -> bytes:
        """End the prepared session with an error ProfileInstallationResult (BF37).

        For an LPA that sends the BPP in pieces (SGP.22 5.7.6) and a piece
        that cannot be part of one: ``error`` is ``(bppCommandId, errorReason)``.
        """
        session = self._prepared_session()
        self._session = None
        self.last_error = why
        return self._installation_result(session, None, error)

    def _prepared_session(self) -> _RspSession:
        session = self._session
        if session is None or session.ot_key is None:
            raise CardError("no RSP session with a prepared download")
        return session

    def _installation_result(self, session: _RspSession, iccid_ef: bytes | None,
                             outcome: tuple[int, int] | str) -> bytes:
        self._seq_number += 1
        common = dict(transaction_id=session.transaction_id, seq_number=self._seq_number,
                      notification_address=session.server_address, iccid_ef=iccid_ef,
                      smdp_oid=session.smdp_oid)
        if isinstance(outcome, str):
            pir_data = encode_pir_data(**common, success_aid=self.isdp_aids[outcome])
        else:
            pir_data = encode_pir_data(**common, error=outcome)
        pir = encode_pir(pir_data, self.sign(pir_data))
        self.pending_notifications[self._seq_number] = pir
        return pir

    @property
    def download_prepared(self) -> bool:
        """True between a successful PrepareDownload and the end of the BPP."""
        return self._session is not None and self._session.ot_key is not None

    def remove_notification(self, seq_number: int) -> bool:
        """ES10b.RemoveNotificationFromList (SGP.22 5.7.11): True if it was pending."""
        return self.pending_notifications.pop(seq_number, None) is not None

    # --- ES10b.CancelSession (SGP.22 5.7.14) ------------------------------------

    def cancel_session(self, transaction_id: bytes, reason: int, smdp_oid: str | None = None) -> bytes:
        """CancelSessionResponse (BF41) for the session ``transaction_id``, signed by the eUICC.

        A transactionId that is not the current session's is answered with
        cancelSessionResponseError invalidTransactionId.  ``smdp_oid``
        defaults to the OID of the session's CERT.DPauth.  The session ends.
        """
        self.last_error = None
        session = self._session
        if session is None or session.transaction_id != transaction_id:
            self.last_error = f"invalidTransactionId: no RSP session {transaction_id.hex()}"
            return rsp().encode("CancelSessionResponse", ("cancelSessionResponseError", 5))
        signed = rsp().encode("EuiccCancelSessionSigned", {
            "transactionId": transaction_id,
            "smdpOid": smdp_oid if smdp_oid is not None else session.smdp_oid,
            "reason": reason,
        })
        self._session = None
        ok = signed + encode_tlv(_TAG_SIGNATURE, self.sign(signed))
        return encode_tlv(b"\xbf\x41", encode_tlv(b"\xa0", ok))
