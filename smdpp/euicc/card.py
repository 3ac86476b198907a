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

The ES10b functions are grouped by concept: :mod:`smdpp.euicc.authentication`,
:mod:`smdpp.euicc.loading`, :mod:`smdpp.euicc.notifications`, on the state of
:mod:`smdpp.euicc.card_core`; this module puts them together.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from cryptography.hazmat.primitives.asymmetric import ec

from smdpp.asn1 import rsp
from smdpp.asn1.tlv import encode_tlv
from smdpp.euicc.authentication import AUTHENTICATE_ERROR, Authentication
from smdpp.euicc.card_core import TAG_SIGNATURE, CardError, RspSession
from smdpp.euicc.identity import EuiccIdentity, load_identity
from smdpp.euicc.info import EuiccCapabilities
from smdpp.euicc.loading import DOWNLOAD_ERROR, Loading

__all__ = ["SoftEuicc", "CardError", "AUTHENTICATE_ERROR", "DOWNLOAD_ERROR", "CANCEL_SESSION_REASON"]

#: CancelSessionReason (SGP.22 5.7.14).
CANCEL_SESSION_REASON = {
    "endUserRejection": 0, "postponed": 1, "timeout": 2, "pprNotAllowed": 3,
    "metadataMismatch": 4, "loadBppExecutionError": 5, "undefinedReason": 127,
}


class SoftEuicc(Authentication, Loading):
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
        self._session: RspSession | None = None
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
    def transaction_id(self) -> bytes | None:
        """transactionId of the RSP session in progress, if any."""
        return self._session.transaction_id if self._session else None

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
        ok = signed + encode_tlv(TAG_SIGNATURE, self.sign(signed))
        return encode_tlv(b"\xbf\x41", encode_tlv(b"\xa0", ok))
