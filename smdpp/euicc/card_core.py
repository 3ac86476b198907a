"""What every ES10b part of the software eUICC shares: its credentials, state and RSP session.

:class:`CardCore` holds the state of :class:`smdpp.euicc.card.SoftEuicc`
that :mod:`smdpp.euicc.authentication` (Common Mutual Authentication, SGP.22
3.1.2), :mod:`smdpp.euicc.loading` (PrepareDownload, the BPP, SGP.22 3.1.3)
and :mod:`smdpp.euicc.notifications` (ProfileInstallationResult, SGP.22
5.7.9-5.7.11) work on; :class:`RspSession` is the eUICC's view of one RSP
session; :class:`CardError` is the answer to a command it cannot process.
"""
from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec

from smdpp.euicc.identity import EuiccIdentity
from smdpp.euicc.info import EuiccCapabilities
from smdpp.pki.ecdsa import sign_plain

__all__ = ["CardCore", "CardError", "RspSession", "TAG_OCTET_STRING", "TAG_OTPK", "TAG_SEQUENCE",
           "TAG_SIGNATURE", "curve_of"]

# Tags of the ES10b messages taken apart by hand, to keep signed parts as received.
TAG_SEQUENCE = b"\x30"
TAG_SIGNATURE = b"\x5f\x37"
TAG_OTPK = b"\x5f\x49"
TAG_OCTET_STRING = b"\x04"


def curve_of(cert_der: bytes) -> str | None:
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
class RspSession:
    """The eUICC's view of one RSP session, from AuthenticateServer to the BPP."""

    transaction_id: bytes
    server_address: str
    smdp_oid: str
    euicc_signature1: bytes
    dppb_cert: x509.Certificate | None = None
    ot_key: ec.EllipticCurvePrivateKey | None = None  # otSK.EUICC.ECKA
    euicc_otpk: bytes | None = None  # otPK.EUICC.ECKA

    def __repr__(self) -> str:  # the one-time key stays out of logs
        return f"RspSession(transaction_id={self.transaction_id.hex()})"


class CardCore:
    """The state of a software eUICC (set by :class:`smdpp.euicc.card.SoftEuicc`) and what every part uses."""

    _id: EuiccIdentity
    capabilities: EuiccCapabilities
    other_certs_in_chain: tuple[bytes, ...]
    _challenge: bytes | None
    _session: RspSession | None
    _seq_number: int
    installed: dict[str, bytes]
    installed_metadata: dict[str, dict]
    isdp_aids: dict[str, bytes]
    pending_notifications: dict[int, bytes]
    last_error: str | None

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

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` with SK.EUICC.ECDSA (plain r||s). For tests that forge eUICC messages."""
        return sign_plain(self._id.euicc_key, data)
