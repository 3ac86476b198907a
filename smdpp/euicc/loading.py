"""Download and installation on the software eUICC (SGP.22 3.1.3): ES10b.PrepareDownload (5.7.5),
which signs euiccSigned2 with a new one-time key, and ES10b.LoadBoundProfilePackage (5.7.6): the
BPP opened whole or piece by piece, the profile installed, the ProfileInstallationResult signed."""
from __future__ import annotations

import asn1tools
from cryptography.hazmat.primitives.asymmetric import ec

from smdpp.asn1 import rsp
from smdpp.asn1.tlv import TlvError, encode_tlv, parse_single
from smdpp.bsp import BspError
from smdpp.es8p import OpenedProfilePackage, open_bound_profile_package
from smdpp.euicc.bpp_stream import StreamingOpener
from smdpp.euicc.card_core import (
    TAG_OCTET_STRING,
    TAG_OTPK,
    TAG_SEQUENCE,
    TAG_SIGNATURE,
    CardError,
    RspSession,
    curve_of,
)
from smdpp.euicc.installation import (
    BPP_COMMAND,
    ERROR_REASON,
    classify_bpp_error,
    iccid_from_bcd,
    iccid_from_ef,
    upp_header_iccid,
)
from smdpp.euicc.notifications import Notifications
from smdpp.pki.chain import SUPPORTED_CURVES, registered_ids
from smdpp.pki.ecdsa import public_point, verify_plain
from smdpp.pki.store import verify_smdp_certificate

__all__ = ["DOWNLOAD_ERROR", "Loading"]

#: DownloadErrorCode (SGP.22 5.7.5).
DOWNLOAD_ERROR = {
    "invalidCertificate": 1, "invalidSignature": 2, "unsupportedCurve": 3,
    "noSessionContext": 4, "invalidTransactionId": 5, "undefinedError": 127,
}
# ISD-P AIDs (SGP.02 / SGP.22 2.2.3 style): RID A000000559, then a per-profile counter.
_ISDP_AID_BASE = bytes.fromhex("A0000005591010FFFFFFFF8900001000")


class Loading(Notifications):
    """ES10b.PrepareDownload and LoadBoundProfilePackage of :class:`~smdpp.euicc.card.SoftEuicc`."""

    def _free_isdp_aid(self) -> bytes:
        """The lowest ISD-P AID no installed profile uses."""
        used = set(self.isdp_aids.values())
        base = int.from_bytes(_ISDP_AID_BASE, "big")
        n = 0
        while (aid := (base + 0x100 * n).to_bytes(16, "big")) in used:
            n += 1
        return aid

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
            if tags not in ([TAG_SEQUENCE, TAG_SIGNATURE, TAG_SEQUENCE],
                            [TAG_SEQUENCE, TAG_SIGNATURE, TAG_OCTET_STRING, TAG_SEQUENCE]):
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
            curve_name = curve_of(cert_tlv.raw)
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
        signed_data = signed2_tlv.raw + encode_tlv(TAG_SIGNATURE, session.euicc_signature1)
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
        euicc_signed2 = encode_tlv(TAG_SEQUENCE, tid_tlv.raw + encode_tlv(TAG_OTPK, session.euicc_otpk)
                                   + (hash_cc_tlv.raw if hash_cc_tlv else b""))
        signature = self.sign(euicc_signed2 + signature2_tlv.raw)
        ok = euicc_signed2 + encode_tlv(TAG_SIGNATURE, signature)
        return encode_tlv(b"\xbf\x21", encode_tlv(b"\xa0", ok))

    # --- ES10b.LoadBoundProfilePackage (SGP.22 5.7.6) ---------------------------

    def _install(self, bpp: bytes, session: RspSession) -> tuple[bytes | None, tuple[int, int] | str]:
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
                        session: RspSession) -> tuple[bytes | None, tuple[int, int] | str]:
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

    def _prepared_session(self) -> RspSession:
        session = self._session
        if session is None or session.ot_key is None:
            raise CardError("no RSP session with a prepared download")
        return session

    @property
    def download_prepared(self) -> bool:
        """True between a successful PrepareDownload and the end of the BPP."""
        return self._session is not None and self._session.ot_key is not None
