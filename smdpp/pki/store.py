"""The SM-DP+ certificate store: CIs, DPauth/DPpb credentials per CI, DPtls.

Layout (SGP.26 / osmo-smdpp, see :mod:`smdpp.pki.issue`)::

    certs_dir/CertificateIssuer/*.der | *.pem   CI certificates (PK.CI.ECDSA)
    certs_dir/DPauth/CERT_*.der + SK_*.pem      CERT.DPauth.ECDSA and SK.DPauth.ECDSA
    certs_dir/DPpb/CERT_*.der + SK_*.pem        CERT.DPpb.ECDSA and SK.DPpb.ECDSA
    certs_dir/DPtls/CERT_*.pem|der + SK_*.pem   TLS server certificate (optional)

One credential set (DPauth + DPpb) exists per CI the SM-DP+ is certified
under; the CI is named by its public key identifier (the SKI of the CI
certificate, SGP.22 2.6.7.1 "CI PKID").  The store answers SGP.22 5.6.1 (which
CI to use) and 5.6.3 (is this eUICC genuine).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from smdpp.errors import SgpError
from smdpp.pki.chain import (
    EuiccIdentity,
    authority_key_identifier,
    check_smdp_certificate,
    registered_ids,
    subject_key_identifier,
    utc_now,
    verify_euicc_chain,
    verify_smdp_certificate,
)
from smdpp.pki.ecdsa import public_point

log = logging.getLogger(__name__)

__all__ = ["CertificateStore", "DpCredentials", "EuiccIdentity", "TlsCredential", "verify_smdp_certificate"]


@dataclass(frozen=True)
class DpCredentials:
    """One SM-DP+ credential set under one CI (SGP.22 2.6.7)."""

    ci_pkid: bytes  # SKI of the CI
    auth_cert_der: bytes  # CERT.DPauth.ECDSA
    auth_key: ec.EllipticCurvePrivateKey  # SK.DPauth.ECDSA
    pb_cert_der: bytes  # CERT.DPpb.ECDSA
    pb_key: ec.EllipticCurvePrivateKey  # SK.DPpb.ECDSA
    smdp_oid: str  # registeredID from the DPauth subjectAltName

    def __repr__(self) -> str:  # never show key material
        return f"DpCredentials(ci_pkid={self.ci_pkid.hex()}, smdp_oid={self.smdp_oid})"


@dataclass(frozen=True)
class TlsCredential:
    """The SM-DP+ TLS server certificate (CERT.DP.TLS) and its key file, for the HTTPS layer."""

    cert_path: Path
    key_path: Path
    certificate: x509.Certificate

    def expired(self, now: datetime | None = None) -> bool:
        """True if the certificate is outside its validity period at ``now``."""
        moment = utc_now(now)
        return not self.certificate.not_valid_before_utc <= moment <= self.certificate.not_valid_after_utc


# --- reading files ---------------------------------------------------------

_PEM_CERT = b"-----BEGIN CERTIFICATE-----"
_PEM_KEY = b"PRIVATE KEY-----"


def _certificates_in(path: Path) -> list[x509.Certificate]:
    """Certificates in a .der file or a .pem file; [] for PEM files without one (keys)."""
    data = path.read_bytes()
    try:
        if path.suffix == ".der":
            return [x509.load_der_x509_certificate(data)]
        if _PEM_CERT in data:
            return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ValueError(f"{path}: not a valid certificate: {exc}") from None
    return []


def _private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not a readable unencrypted PEM private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: not an EC private key")
    return key


def _scan(folder: Path, *, with_keys: bool = True
          ) -> tuple[list[tuple[Path, x509.Certificate]], list[tuple[Path, ec.EllipticCurvePrivateKey]]]:
    """Certificates (deduplicated: .der and .pem of one certificate) and private keys in ``folder``.

    With ``with_keys`` False, key files are skipped unread (the CI key of a test PKI).
    """
    certs: list[tuple[Path, x509.Certificate]] = []
    keys: list[tuple[Path, ec.EllipticCurvePrivateKey]] = []
    seen: set[bytes] = set()
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix not in (".der", ".pem"):
            continue
        if path.suffix == ".pem" and _PEM_KEY in path.read_bytes():
            if with_keys:
                keys.append((path, _private_key(path)))
            continue
        for cert in _certificates_in(path):
            der = cert.public_bytes(serialization.Encoding.DER)
            if der not in seen:
                seen.add(der)
                certs.append((path, cert))
    return certs, keys


def _matching_key(path: Path, cert: x509.Certificate,
                  keys: list[tuple[Path, ec.EllipticCurvePrivateKey]]) -> tuple[Path, ec.EllipticCurvePrivateKey]:
    public_key = cert.public_key()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        point = public_point(public_key)
        for key_path, key in keys:
            if key.curve.name == public_key.curve.name and public_point(key) == point:
                return key_path, key
    raise ValueError(f"{path}: no private key (SK_*.pem) in {path.parent} matches this certificate")


class CertificateStore:
    """CIs and SM-DP+ credentials loaded from a certificate folder (see module docstring)."""

    def __init__(self, cis: dict[bytes, x509.Certificate], credentials: dict[bytes, DpCredentials],
                 tls: TlsCredential | None = None) -> None:
        self._cis = dict(cis)
        self._credentials = dict(credentials)
        self.tls = tls

    # -- loading --

    @classmethod
    def load(cls, certs_dir: Path) -> "CertificateStore":
        """Read ``certs_dir``; ValueError naming the file if a DP certificate does not fit.

        Each DPauth/DPpb certificate must chain to a loaded CI, carry its role
        policy and match a private key next to it; a CI with DPauth needs DPpb
        too.  Expired DP certificates are loaded with a warning in the log.
        """
        certs_dir = Path(certs_dir)
        ci_dir = certs_dir / "CertificateIssuer"
        if not ci_dir.is_dir():
            raise ValueError(f"{ci_dir}: missing (no CI certificate)")
        cis: dict[bytes, x509.Certificate] = {}
        for path, cert in _scan(ci_dir, with_keys=False)[0]:
            ski = subject_key_identifier(cert)
            if ski is None:
                raise ValueError(f"{path}: CI certificate has no subjectKeyIdentifier (CI PKID)")
            cis[ski] = cert
        if not cis:
            raise ValueError(f"{ci_dir}: no CI certificate")

        found: dict[str, dict[bytes, tuple[Path, x509.Certificate, ec.EllipticCurvePrivateKey]]] = {}
        for role, folder in (("auth", "DPauth"), ("pb", "DPpb")):
            found[role] = {}
            if (certs_dir / folder).is_dir():
                found[role] = cls._load_role(certs_dir / folder, role, cis)

        credentials: dict[bytes, DpCredentials] = {}
        for pkid, (auth_path, auth_cert, auth_key) in found["auth"].items():
            if pkid not in found["pb"]:
                raise ValueError(f"{auth_path}: no DPpb certificate under the same CI {pkid.hex()}")
            pb_path, pb_cert, pb_key = found["pb"][pkid]
            oids = registered_ids(auth_cert)
            if len(oids) != 1:
                raise ValueError(f"{auth_path}: subjectAltName must carry one registeredID (SM-DP+ OID)")
            if registered_ids(pb_cert) not in ([], oids):
                raise ValueError(f"{pb_path}: SM-DP+ OID differs from the DPauth certificate's")
            credentials[pkid] = DpCredentials(
                ci_pkid=pkid,
                auth_cert_der=auth_cert.public_bytes(serialization.Encoding.DER),
                auth_key=auth_key,
                pb_cert_der=pb_cert.public_bytes(serialization.Encoding.DER),
                pb_key=pb_key,
                smdp_oid=oids[0],
            )
        for pkid, (pb_path, _, _) in found["pb"].items():
            if pkid not in credentials:
                raise ValueError(f"{pb_path}: no DPauth certificate under the same CI {pkid.hex()}")

        tls_dir = certs_dir / "DPtls"
        tls = cls._load_tls(tls_dir) if tls_dir.is_dir() else None
        return cls(cis, credentials, tls)

    @staticmethod
    def _load_role(folder: Path, role: str, cis: dict[bytes, x509.Certificate]
                   ) -> dict[bytes, tuple[Path, x509.Certificate, ec.EllipticCurvePrivateKey]]:
        certs, keys = _scan(folder)
        by_ci: dict[bytes, tuple[Path, x509.Certificate, ec.EllipticCurvePrivateKey]] = {}
        now = utc_now(None)
        for path, cert in certs:
            aki = authority_key_identifier(cert)
            if aki is None or aki not in cis:
                raise ValueError(f"{path}: not issued by any CI in CertificateIssuer/")
            try:
                check_smdp_certificate(cert, cis[aki], role, None)
            except ValueError as exc:
                raise ValueError(f"{path}: {exc}") from None
            _, key = _matching_key(path, cert, keys)
            if aki in by_ci:
                raise ValueError(f"{path}: a second {folder.name} certificate under CI {aki.hex()}")
            if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
                log.warning("%s: outside its validity period (%s .. %s); eUICCs will reject it",
                            path, cert.not_valid_before_utc.date(), cert.not_valid_after_utc.date())
            by_ci[aki] = (path, cert, key)
        return by_ci

    @staticmethod
    def _load_tls(folder: Path) -> TlsCredential | None:
        """The TLS certificate with its key; a PEM file is preferred (TLS stacks read PEM)."""
        certs, keys = _scan(folder)
        if not certs:
            return None
        # Prefer NIST P-256, which every TLS client supports, over brainpool.
        def not_p256(item: tuple[Path, x509.Certificate]) -> bool:
            key = item[1].public_key()
            return not (isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1")

        path, cert = sorted(certs, key=not_p256)[0]
        key_path, _ = _matching_key(path, cert, keys)
        pem = path.with_suffix(".pem")
        if path.suffix == ".der" and pem.is_file() and _PEM_CERT in pem.read_bytes():
            path = pem
        if cert.not_valid_after_utc < utc_now(None):
            log.warning("%s: TLS certificate expired on %s", path, cert.not_valid_after_utc.date())
        return TlsCredential(cert_path=path, key_path=key_path, certificate=cert)

    # -- queries --

    @property
    def ci_pkids(self) -> tuple[bytes, ...]:
        """The PKIDs (SKIs) of all loaded CIs."""
        return tuple(self._cis)

    def ci_certificate(self, ci_pkid: bytes) -> x509.Certificate:
        """The CI certificate for ``ci_pkid``; SgpError 8.11.1/3.9 if unknown."""
        try:
            return self._cis[bytes(ci_pkid)]
        except KeyError:
            raise SgpError("8.11.1", "3.9", f"unknown CI public key {bytes(ci_pkid).hex()}") from None

    def select_ci(self, for_verification: Sequence[bytes], for_signing: Sequence[bytes]) -> bytes:
        """Pick the CI PKID for this session (SGP.22 5.6.1, ES9+.InitiateAuthentication).

        The first PKID of ``euiccCiPKIdListForVerification`` (the eUICC's order
        of preference) under which we hold DPauth/DPpb credentials and which is
        also in ``euiccCiPKIdListForSigning``.  None: SgpError 8.8.2/3.1.
        """
        signing = {bytes(p) for p in for_signing}
        for pkid in for_verification:
            pkid = bytes(pkid)
            if pkid in self._credentials and pkid in signing:
                return pkid
        raise SgpError("8.8.2", "3.1", "none of the eUICC's CI public keys is supported")

    def credentials(self, ci_pkid: bytes) -> DpCredentials:
        """DPauth/DPpb credentials under ``ci_pkid``; SgpError 8.11.1/3.9 if there are none."""
        try:
            return self._credentials[bytes(ci_pkid)]
        except KeyError:
            raise SgpError("8.11.1", "3.9", f"no SM-DP+ credentials under CI {bytes(ci_pkid).hex()}") from None

    def verify_euicc(self, eum_cert_der: bytes, euicc_cert_der: bytes, ci_pkid: bytes | None,
                     now: datetime | None = None) -> EuiccIdentity:
        """Verify the eUICC's certificate chain up to the CI ``ci_pkid`` (SGP.22 5.6.3).

        ``ci_pkid`` None means the CI named by the EUM certificate's
        authorityKeyIdentifier.  Unknown CI: 8.11.1/3.9; other failures as in
        :func:`smdpp.pki.chain.verify_euicc_chain` (8.1.2 / 8.1.3, 6.1 / 6.3).
        """
        if ci_pkid is None:
            ci_pkid = self._eum_issuer(eum_cert_der)
        ci_cert = self.ci_certificate(ci_pkid)
        return verify_euicc_chain(ci_cert, eum_cert_der, euicc_cert_der, now)

    @staticmethod
    def _eum_issuer(eum_cert_der: bytes) -> bytes:
        try:
            aki = authority_key_identifier(x509.load_der_x509_certificate(bytes(eum_cert_der)))
        except Exception as exc:  # malformed DER surfaces lazily in any accessor
            raise SgpError("8.1.2", "6.1", f"EUM certificate invalid: {exc}") from None
        if aki is None:
            raise SgpError("8.1.2", "6.1", "EUM certificate has no authorityKeyIdentifier")
        return aki
