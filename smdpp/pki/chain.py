"""Certificate chain checks of the RSP PKI (SGP.22 4.5.2 and 5.6.3).

Two chains are verified here:

* eUICC side, by the SM-DP+ in ES9+.AuthenticateClient (SGP.22 5.6.3):
  CI -> CERT.EUM.ECDSA -> CERT.EUICC.ECDSA, including the EID range the EUM
  may use (4.5.2.1.0.2 / 4.5.2.1.0.3).  Failures are :class:`SgpError` with
  the status codes of 5.6.3.
* SM-DP+ side, by a (software) eUICC: CI -> CERT.DPauth.ECDSA / CERT.DPpb.ECDSA
  (SGP.22 5.7.13 and 5.7.5), failures are ValueError.

Path building follows RFC 5280 with the key identifiers SGP.22 4.5.2.1 asks
for: a certificate's authorityKeyIdentifier must equal its issuer's
subjectKeyIdentifier, and the issuer name must equal the issuer's subject.
All certificates are signed with ecdsa-with-SHA256 (SGP.22 4.5.2.1).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from smdpp.asn1.tlv import parse_single
from smdpp.errors import SgpError
from smdpp.pki.eid import eid_is_valid
from smdpp.pki.oids import (
    ID_RSP_PERMITTED_EINS,
    ID_RSP_ROLE_DP_AUTH,
    ID_RSP_ROLE_DP_PB,
    ID_RSP_ROLE_DP_TLS,
    ID_RSP_ROLE_EUICC,
    ID_RSP_ROLE_EUM,
)

#: Curves of SGP.22 2.6.7.2 (NIST P-256, brainpoolP256r1); the eUICC key must be on one.
SUPPORTED_CURVES = frozenset({"secp256r1", "brainpoolP256r1"})

#: Critical extensions that cryptography does not parse but SGP.22 defines (so a
#: verifier "understands" them, 4.5.2.1: all critical extensions of the profile).
_KNOWN_GSMA_EXTENSIONS = frozenset({ID_RSP_PERMITTED_EINS})

_SMDP_ROLES = {"auth": ID_RSP_ROLE_DP_AUTH, "pb": ID_RSP_ROLE_DP_PB, "tls": ID_RSP_ROLE_DP_TLS}

# SGP.22 5.6.3 status codes (subjectCode, reasonCode).
_EUM_INVALID = ("8.1.2", "6.1")
_EUM_EXPIRED = ("8.1.2", "6.3")
_EUICC_INVALID = ("8.1.3", "6.1")
_EUICC_EXPIRED = ("8.1.3", "6.3")


@dataclass(frozen=True)
class EuiccIdentity:
    """An eUICC whose certificate chain verified: its EID and ECDSA public key (PK.EUICC.ECDSA)."""

    eid: str
    public_key: ec.EllipticCurvePublicKey
    certificate: x509.Certificate


class _Expired(ValueError):
    """The certificate is outside its validity period (reason 6.3 instead of 6.1)."""


# --- small accessors -------------------------------------------------------


def utc_now(now: datetime | None) -> datetime:
    """``now`` as an aware UTC datetime (naive values are taken as UTC); default: the clock."""
    if now is None:
        return datetime.now(timezone.utc)
    return now if now.tzinfo else now.replace(tzinfo=timezone.utc)


def subject_key_identifier(cert: x509.Certificate) -> bytes | None:
    """The subjectKeyIdentifier of ``cert`` (a CI's SKI is its CI PKID), or None."""
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


def authority_key_identifier(cert: x509.Certificate) -> bytes | None:
    """The keyIdentifier of the authorityKeyIdentifier of ``cert``, or None."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    except x509.ExtensionNotFound:
        return None
    return ext.value.key_identifier


def certificate_policies(cert: x509.Certificate) -> frozenset[x509.ObjectIdentifier]:
    """The policy OIDs of ``cert`` (the RSP role, SGP.22 4.5.2.1.0.x)."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.CertificatePolicies)
    except x509.ExtensionNotFound:
        return frozenset()
    return frozenset(p.policy_identifier for p in ext.value)


def registered_ids(cert: x509.Certificate) -> list[str]:
    """The registeredID entries of the subjectAltName (the SM-DP+ OID, SGP.22 4.5.2.1.0.4)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [oid.dotted_string for oid in san.get_values_for_type(x509.RegisteredID)]


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


# --- generic checks (raise ValueError / _Expired) --------------------------


def _check_critical_extensions(cert: x509.Certificate) -> None:
    """Reject critical extensions we do not understand (RFC 5280 4.2, SGP.22 4.5.2.1)."""
    for ext in cert.extensions:
        if (
            ext.critical
            and isinstance(ext.value, x509.UnrecognizedExtension)
            and ext.oid not in _KNOWN_GSMA_EXTENSIONS
        ):
            raise ValueError(f"unknown critical extension {ext.oid.dotted_string}")


def check_signed_by(cert: x509.Certificate, issuer: x509.Certificate, what: str) -> None:
    """``cert`` names ``issuer`` (AKI == SKI, issuer DN) and carries its valid signature."""
    issuer_ski = subject_key_identifier(issuer)
    aki = authority_key_identifier(cert)
    if aki is None:
        raise ValueError(f"{what} certificate has no authorityKeyIdentifier")
    if issuer_ski is not None and aki != issuer_ski:
        raise ValueError(
            f"{what} certificate authorityKeyIdentifier {aki.hex()} does not match "
            f"issuer key {issuer_ski.hex()}"
        )
    if cert.issuer != issuer.subject:
        raise ValueError(f"{what} certificate issuer name does not match its issuer's subject")
    if cert.signature_algorithm_oid != SignatureAlgorithmOID.ECDSA_WITH_SHA256:
        raise ValueError(f"{what} certificate is not signed with ecdsa-with-SHA256")
    public_key = issuer.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise ValueError(f"issuer of the {what} certificate has no EC key")
    try:
        public_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
    except Exception:  # InvalidSignature, or a malformed signature value
        raise ValueError(f"{what} certificate signature is invalid") from None


def check_validity(cert: x509.Certificate, now: datetime, what: str) -> None:
    """Raise :class:`_Expired` unless notBefore <= now <= notAfter."""
    if now < cert.not_valid_before_utc:
        raise _Expired(f"{what} certificate is not yet valid (notBefore {cert.not_valid_before_utc:%Y-%m-%d})")
    if now > cert.not_valid_after_utc:
        raise _Expired(f"{what} certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}")


def _check_policy(cert: x509.Certificate, policy: x509.ObjectIdentifier, what: str) -> None:
    if policy not in certificate_policies(cert):
        raise ValueError(f"{what} certificate lacks certificate policy {policy.dotted_string}")


def _ec_public_key(cert: x509.Certificate, what: str) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in SUPPORTED_CURVES:
        raise ValueError(f"{what} certificate key is not on NIST P-256 or brainpoolP256r1")
    return key


# --- the EID range of an EUM (SGP.22 4.5.2.1.0.2 / 4.5.2.1.0.3) -------------


@dataclass(frozen=True)
class PermittedEids:
    """Where an EUM may issue EIDs: permittedEins prefixes and/or nameConstraints subtrees."""

    eins: tuple[str, ...] | None  # permittedEins extension, None if absent
    subtrees: tuple[tuple[str, str | None], ...] | None  # (serialNumber prefix, O) from nameConstraints

    def allows(self, eid: str, organization: str | None) -> bool:
        """True if ``eid`` (and the eUICC subject O) is inside every form the EUM carries."""
        if self.eins is not None and not any(eid.startswith(e) for e in self.eins):
            return False
        if self.subtrees is not None and not any(
            eid.startswith(prefix) and (org is None or org == organization)
            for prefix, org in self.subtrees
        ):
            return False
        return self.eins is not None or self.subtrees is not None


def decode_permitted_eins(value: bytes) -> tuple[str, ...]:
    """Decode ``PermittedEins ::= SEQUENCE OF PrintableString`` (digits only)."""
    seq = parse_single(value, b"\x30")
    eins: list[str] = []
    for item in seq.children():
        if item.tag != b"\x13":
            raise ValueError("permittedEins entry is not a PrintableString")
        ein = item.value.decode("ascii")
        if not ein.isdigit() or not 1 <= len(ein) <= 30:
            raise ValueError(f"permittedEins entry {ein!r} is not an EIN")
        eins.append(ein)
    if not eins:
        raise ValueError("permittedEins is empty")
    return tuple(eins)


def permitted_eids(eum_cert: x509.Certificate) -> PermittedEids:
    """The EID range of ``eum_cert``; ValueError if it carries neither form or a malformed one."""
    eins: tuple[str, ...] | None = None
    subtrees: tuple[tuple[str, str | None], ...] | None = None
    try:
        ext = eum_cert.extensions.get_extension_for_oid(ID_RSP_PERMITTED_EINS)
        eins = decode_permitted_eins(ext.value.value)
    except x509.ExtensionNotFound:
        pass
    try:
        constraints = eum_cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is not None:
        found: list[tuple[str, str | None]] = []
        for subtree in constraints.permitted_subtrees or ():
            if not isinstance(subtree, x509.DirectoryName):
                continue
            serials = subtree.value.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
            orgs = subtree.value.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
            org = str(orgs[0].value) if orgs else None
            found.extend((str(s.value), org) for s in serials)
        subtrees = tuple(found) or None
    if eins is None and subtrees is None:
        raise ValueError("EUM certificate carries no permitted EID range")
    return PermittedEids(eins, subtrees)


def euicc_eid(cert: x509.Certificate) -> str:
    """The EID in the eUICC certificate subject serialNumber (SGP.22 4.5.2.1.0.3)."""
    serials = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if len(serials) != 1:
        raise ValueError("eUICC certificate subject must carry exactly one serialNumber (EID)")
    eid = str(serials[0].value)
    if not eid_is_valid(eid):
        raise ValueError(f"EID {eid!r} is not 32 digits with valid check digits")
    return eid


# --- eUICC chain, SGP.22 5.6.3 ---------------------------------------------


def _check_eum(eum_cert: x509.Certificate, ci_cert: x509.Certificate, now: datetime) -> PermittedEids:
    _check_critical_extensions(eum_cert)
    check_signed_by(eum_cert, ci_cert, "EUM")
    _check_policy(eum_cert, ID_RSP_ROLE_EUM, "EUM")
    try:
        basic = eum_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        basic = None
    if basic is None or not basic.ca:
        raise ValueError("EUM certificate is not a CA certificate (basicConstraints)")
    usage = _key_usage(eum_cert)
    if usage is None or not usage.key_cert_sign:
        raise ValueError("EUM certificate keyUsage lacks keyCertSign")
    _ec_public_key(eum_cert, "EUM")
    permitted = permitted_eids(eum_cert)
    check_validity(eum_cert, now, "EUM")
    return permitted


def _check_euicc(
    euicc_cert: x509.Certificate, eum_cert: x509.Certificate, permitted: PermittedEids, now: datetime
) -> EuiccIdentity:
    _check_critical_extensions(euicc_cert)
    check_signed_by(euicc_cert, eum_cert, "eUICC")
    _check_policy(euicc_cert, ID_RSP_ROLE_EUICC, "eUICC")
    usage = _key_usage(euicc_cert)
    if usage is None or not usage.digital_signature:
        raise ValueError("eUICC certificate keyUsage lacks digitalSignature")
    public_key = _ec_public_key(euicc_cert, "eUICC")
    eid = euicc_eid(euicc_cert)
    orgs = euicc_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    organization = str(orgs[0].value) if orgs else None
    if not permitted.allows(eid, organization):
        raise ValueError(f"EID {eid} is outside the range permitted by the EUM certificate")
    check_validity(euicc_cert, now, "eUICC")
    return EuiccIdentity(eid=eid, public_key=public_key, certificate=euicc_cert)


def verify_euicc_chain(
    ci_cert: x509.Certificate, eum_cert_der: bytes, euicc_cert_der: bytes, now: datetime | None = None
) -> EuiccIdentity:
    """Verify CERT.EUM.ECDSA under ``ci_cert`` and CERT.EUICC.ECDSA under it (SGP.22 5.6.3).

    Raises SgpError 8.1.2/6.1 (EUM invalid), 8.1.2/6.3 (EUM expired or not yet
    valid), 8.1.3/6.1 (eUICC invalid: signature, policy, key usage, EID,
    range), 8.1.3/6.3 (eUICC expired or not yet valid).  Malformed DER is
    "invalid"; no other exception escapes.
    """
    moment = utc_now(now)
    try:
        eum_cert = x509.load_der_x509_certificate(bytes(eum_cert_der))
        permitted = _check_eum(eum_cert, ci_cert, moment)
    except _Expired as exc:
        raise SgpError(*_EUM_EXPIRED, str(exc)) from None
    except Exception as exc:  # lazy DER parsing may fail in any accessor
        raise SgpError(*_EUM_INVALID, f"EUM certificate invalid: {exc}") from None
    try:
        euicc_cert = x509.load_der_x509_certificate(bytes(euicc_cert_der))
        return _check_euicc(euicc_cert, eum_cert, permitted, moment)
    except _Expired as exc:
        raise SgpError(*_EUICC_EXPIRED, str(exc)) from None
    except Exception as exc:
        raise SgpError(*_EUICC_INVALID, f"eUICC certificate invalid: {exc}") from None


# --- SM-DP+ chain, for the eUICC side --------------------------------------


def check_smdp_certificate(
    cert: x509.Certificate, ci_cert: x509.Certificate, role: str, now: datetime | None
) -> None:
    """Signature by the CI, policy and keyUsage of an SM-DP+ certificate; dates unless ``now`` is None."""
    if role not in _SMDP_ROLES:
        raise ValueError(f"unknown SM-DP+ certificate role {role!r} (auth, pb, tls)")
    what = f"SM-DP+ {role}"
    _check_critical_extensions(cert)
    check_signed_by(cert, ci_cert, what)
    _check_policy(cert, _SMDP_ROLES[role], what)
    usage = _key_usage(cert)
    if usage is None or not usage.digital_signature:
        raise ValueError(f"{what} certificate keyUsage lacks digitalSignature")
    _ec_public_key(cert, what)
    if now is not None:
        check_validity(cert, now, what)


def verify_smdp_certificate(
    cert_der: bytes, ci_cert: x509.Certificate, role: str, now: datetime | None = None
) -> x509.Certificate:
    """Verify CERT.DPauth.ECDSA (``role='auth'``) or CERT.DPpb.ECDSA (``'pb'``) under ``ci_cert``.

    What an eUICC checks in ES10b.AuthenticateServer / PrepareDownload
    (SGP.22 5.7.13 / 5.7.5): CI signature, validity dates, the dp-auth / dp-pb
    policy and digitalSignature key usage.  Raises ValueError with the reason.
    """
    try:
        cert = x509.load_der_x509_certificate(bytes(cert_der))
    except ValueError as exc:
        raise ValueError(f"SM-DP+ {role} certificate is not valid DER: {exc}") from None
    try:
        check_smdp_certificate(cert, ci_cert, role, utc_now(now))
    except ValueError:
        raise
    except Exception as exc:  # lazily parsed extensions of a malformed certificate
        raise ValueError(f"SM-DP+ {role} certificate is malformed: {exc}") from None
    return cert


__all__ = [
    "EuiccIdentity",
    "PermittedEids",
    "SUPPORTED_CURVES",
    "authority_key_identifier",
    "certificate_policies",
    "check_signed_by",
    "check_smdp_certificate",
    "check_validity",
    "decode_permitted_eins",
    "euicc_eid",
    "permitted_eids",
    "registered_ids",
    "subject_key_identifier",
    "utc_now",
    "verify_euicc_chain",
    "verify_smdp_certificate",
]
