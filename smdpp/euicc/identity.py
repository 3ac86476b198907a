"""The credentials of a software eUICC: CI, EUM and eUICC certificates and SK.EUICC.ECDSA.

SGP.22 2.6.7 / 4.5.2: the eUICC holds CERT.EUICC.ECDSA (issued by its EUM),
CERT.EUM.ECDSA (issued by the CI) and the CI's public key, which it trusts to
verify the SM-DP+ certificates.  The EID is the serialNumber of the eUICC
certificate subject (SGP.22 4.5.2.1.0.3).

An identity folder (written by :func:`smdpp.pki.issue.create_test_pki`) has::

    ci_cert.der  eum_cert.der  euicc_cert.der  euicc_key.pem
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from smdpp.pki.chain import euicc_eid, subject_key_identifier

__all__ = ["EuiccIdentity", "load_identity"]

IDENTITY_FILES = ("ci_cert.der", "eum_cert.der", "euicc_cert.der", "euicc_key.pem")


@dataclass(frozen=True, repr=False)
class EuiccIdentity:
    """What a (test) eUICC is personalised with by its manufacturer."""

    ci_cert: x509.Certificate  # the CI whose key (PK.CI.ECDSA) the eUICC trusts
    eum_cert_der: bytes  # CERT.EUM.ECDSA
    euicc_cert_der: bytes  # CERT.EUICC.ECDSA
    euicc_key: ec.EllipticCurvePrivateKey  # SK.EUICC.ECDSA
    eid: str  # 32 digits

    def __repr__(self) -> str:  # never show key material
        return f"EuiccIdentity(eid={self.eid})"

    @property
    def ci_pkid(self) -> bytes:
        """The CI public key identifier: the subjectKeyIdentifier of the CI certificate (SGP.22 2.6.7.1)."""
        ski = subject_key_identifier(self.ci_cert)
        if ski is None:
            raise ValueError("CI certificate has no subjectKeyIdentifier")
        return ski


def load_identity(path: Path) -> EuiccIdentity:
    """Read an identity folder; ValueError naming the file if something is missing or wrong."""
    path = Path(path)
    missing = [name for name in IDENTITY_FILES if not (path / name).is_file()]
    if missing:
        raise ValueError(f"eUICC identity folder {path} lacks {', '.join(missing)}")
    try:
        ci_cert = x509.load_der_x509_certificate((path / "ci_cert.der").read_bytes())
    except ValueError as exc:
        raise ValueError(f"{path / 'ci_cert.der'} is not a DER certificate: {exc}") from None
    eum_der = (path / "eum_cert.der").read_bytes()
    euicc_der = (path / "euicc_cert.der").read_bytes()
    try:
        x509.load_der_x509_certificate(eum_der)
        euicc_cert = x509.load_der_x509_certificate(euicc_der)
    except ValueError as exc:
        raise ValueError(f"eUICC or EUM certificate in {path} is not DER: {exc}") from None
    try:
        key = serialization.load_pem_private_key((path / "euicc_key.pem").read_bytes(), None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path / 'euicc_key.pem'} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path / 'euicc_key.pem'} is not an EC private key")
    if key.public_key() != euicc_cert.public_key():
        raise ValueError(f"{path / 'euicc_key.pem'} does not belong to {path / 'euicc_cert.der'}")
    return EuiccIdentity(ci_cert=ci_cert, eum_cert_der=eum_der, euicc_cert_der=euicc_der,
                         euicc_key=key, eid=euicc_eid(euicc_cert))
