"""One certificate of the RSP PKI: its fields and the checks of its profile (SGP.22 4.5.2.1).

The accessors read the extensions SGP.22 gives a role to (key identifiers,
certificate policies, keyUsage, basicConstraints, the SM-DP+ OID); the checks
raise ValueError with the reason, :class:`Expired` (a ValueError) for the
validity dates, so that callers map them to their own status codes.  The CI
(4.5.2.1.0.1) and the SM-DP+ certificates (4.5.2.1.0.4-6, checked by an eUICC
in ES10b.AuthenticateServer / PrepareDownload and by the SM-DP+ at start-up)
are checked here whole; the eUICC chain is :mod:`smdpp.pki.chain`.
All certificates are signed with ecdsa-with-SHA256 (SGP.22 4.5.2.1).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import SignatureAlgorithmOID

from smdpp.asn1.tlv import TlvError, read_tlv
from smdpp.pki.ecdsa import ECDSA_SHA256
from smdpp.pki.oids import DP_POLICIES, ID_RSP_PERMITTED_EINS, ID_RSP_ROLE_CI

#: Curves of SGP.22 2.6.7.2 (NIST P-256, brainpoolP256r1); every RSP key must be on one.
SUPPORTED_CURVES = frozenset({"secp256r1", "brainpoolP256r1"})

#: Critical extensions that cryptography does not parse but SGP.22 defines (so a
#: verifier "understands" them, 4.5.2.1: all critical extensions of the profile).
_KNOWN_GSMA_EXTENSIONS = frozenset({ID_RSP_PERMITTED_EINS})


class Expired(ValueError):
    """The certificate is outside its validity period (reason 6.3 instead of 6.1)."""


# --- the received DER of a certificate --------------------------------------


class CertificateDer(NamedTuple):
    """Parts of a certificate exactly as received (RFC 5280 4.1), cut out with the TLV helpers.

    ``tbs`` is what the issuer signed: verifying over it checks the bytes
    that came over the wire, not a re-encoding of the parsed certificate.
    ``issuer`` and ``subject`` are the DER of the two Names.
    """

    tbs: bytes
    issuer: bytes
    subject: bytes
    subject_public_key_info: bytes


def split_certificate(der: bytes) -> CertificateDer:
    """Cut ``Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }``.

    Only the outline is checked (tags of the parts used); the certificate
    itself is parsed by ``cryptography``.  ValueError if the outline is wrong.
    """
    try:
        outer = read_tlv(der)
        tbs = read_tlv(der, outer.value_start, outer.end)
        if outer.tag != b"\x30" or outer.end != len(der) or tbs.tag != b"\x30":
            raise ValueError("certificate is not a SEQUENCE starting with tbsCertificate")
        # version [0] EXPLICIT (absent for v1), serialNumber, signature, then the four
        # read one after the other: the extensions after them are never walked
        fields = []
        offset = tbs.value_start
        while len(fields) < 7 and offset < tbs.end:
            field = read_tlv(der, offset, tbs.end)
            fields.append(field)
            offset = field.end
    except TlvError as exc:
        raise ValueError(f"certificate DER malformed: {exc}") from None
    first = 3 if fields and fields[0].tag == b"\xa0" else 2
    named = fields[first:first + 4]
    if len(named) != 4 or any(f.tag != b"\x30" for f in named):
        raise ValueError("tbsCertificate lacks issuer, validity, subject or subjectPublicKeyInfo")
    return CertificateDer(tbs.raw, named[0].raw, named[2].raw, named[3].raw)


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


def key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    """The keyUsage extension of ``cert``, or None."""
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    """The basicConstraints extension of ``cert``, or None."""
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def names_issuer(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True if ``cert`` names ``issuer`` as its issuer: AKI == issuer's SKI and issuer DN == subject."""
    aki = authority_key_identifier(cert)
    return aki is not None and aki == subject_key_identifier(issuer) and cert.issuer == issuer.subject


# --- generic checks (raise ValueError / Expired) --------------------------


def check_critical_extensions(cert: x509.Certificate) -> None:
    """Reject critical extensions we do not understand (RFC 5280 4.2, SGP.22 4.5.2.1)."""
    for ext in cert.extensions:
        if (
            ext.critical
            and isinstance(ext.value, x509.UnrecognizedExtension)
            and ext.oid not in _KNOWN_GSMA_EXTENSIONS
        ):
            raise ValueError(f"unknown critical extension {ext.oid.dotted_string}")


def check_signed_by(cert: x509.Certificate, issuer: x509.Certificate, what: str, *,
                    cert_der: CertificateDer | None = None,
                    issuer_der: CertificateDer | None = None) -> None:
    """``cert`` names ``issuer`` (AKI == SKI, issuer DN) and carries its valid signature.

    With the received DER of both (:func:`split_certificate`), the signature
    is checked over ``cert``'s tbsCertificate as received, and identical
    Name bytes settle the name comparison without building Name objects.
    """
    issuer_ski = subject_key_identifier(issuer)
    aki = authority_key_identifier(cert)
    if aki is None:
        raise ValueError(f"{what} certificate has no authorityKeyIdentifier")
    if issuer_ski is not None and aki != issuer_ski:
        raise ValueError(
            f"{what} certificate authorityKeyIdentifier {aki.hex()} does not match "
            f"issuer key {issuer_ski.hex()}"
        )
    same_bytes = (cert_der is not None and issuer_der is not None
                  and cert_der.issuer == issuer_der.subject)
    if not same_bytes and cert.issuer != issuer.subject:  # equal DER is an equal Name
        raise ValueError(f"{what} certificate issuer name does not match its issuer's subject")
    check_signature(cert, issuer, what, tbs=cert_der.tbs if cert_der is not None else None)


def check_signature(cert: x509.Certificate, issuer: x509.Certificate, what: str, *,
                    tbs: bytes | None = None) -> None:
    """``cert`` carries a valid ecdsa-with-SHA256 signature by the key of ``issuer``.

    ``tbs`` is the tbsCertificate as received (:class:`CertificateDer`);
    without it ``cryptography``'s encoding of the parsed certificate is used.
    """
    if cert.signature_algorithm_oid != SignatureAlgorithmOID.ECDSA_WITH_SHA256:
        raise ValueError(f"{what} certificate is not signed with ecdsa-with-SHA256")
    public_key = issuer.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise ValueError(f"issuer of the {what} certificate has no EC key")
    try:
        public_key.verify(cert.signature, cert.tbs_certificate_bytes if tbs is None else tbs,
                          ECDSA_SHA256)
    except Exception:  # InvalidSignature, or a malformed signature value
        raise ValueError(f"{what} certificate signature is invalid") from None


def check_validity(cert: x509.Certificate, now: datetime, what: str) -> None:
    """Raise :class:`Expired` unless notBefore <= now <= notAfter."""
    if now < cert.not_valid_before_utc:
        raise Expired(f"{what} certificate is not yet valid (notBefore {cert.not_valid_before_utc:%Y-%m-%d})")
    if now > cert.not_valid_after_utc:
        raise Expired(f"{what} certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}")


def check_policy(cert: x509.Certificate, policies: frozenset[x509.ObjectIdentifier], what: str) -> None:
    """``cert`` carries one of ``policies`` (its role, SGP.22 4.5.2.1.0.x) as a certificate policy."""
    if not policies & certificate_policies(cert):
        wanted = " or ".join(sorted((p.dotted_string for p in policies), key=len))
        raise ValueError(f"{what} certificate lacks certificate policy {wanted}")


def ec_public_key(cert: x509.Certificate, what: str) -> ec.EllipticCurvePublicKey:
    """The EC public key of ``cert``, on one of the curves of SGP.22 2.6.7.2."""
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in SUPPORTED_CURVES:
        raise ValueError(f"{what} certificate key is not on NIST P-256 or brainpoolP256r1")
    return key


def check_ca(cert: x509.Certificate, what: str, cas_below: int) -> None:
    """basicConstraints cA with room for ``cas_below`` CAs under it, keyUsage keyCertSign."""
    basic = basic_constraints(cert)
    if basic is None or not basic.ca:
        raise ValueError(f"{what} certificate is not a CA certificate (basicConstraints)")
    if basic.path_length is not None and cas_below > basic.path_length:
        raise ValueError(f"{what} certificate allows {basic.path_length} CA(s) below it "
                         f"(pathLenConstraint), the chain has {cas_below}")
    usage = key_usage(cert)
    if usage is None or not usage.key_cert_sign:
        raise ValueError(f"{what} certificate keyUsage lacks keyCertSign")


def check_ci_certificate(cert: x509.Certificate, now: datetime) -> None:
    """A CI certificate (SGP.22 4.5.2.1.0.1): self-signed CA with keyCertSign, SKI, policy ci, in date.

    ValueError with the reason (:class:`Expired`, a ValueError, for the dates).
    """
    check_critical_extensions(cert)
    if subject_key_identifier(cert) is None:
        raise ValueError("CI certificate has no subjectKeyIdentifier (CI PKID)")
    if cert.issuer != cert.subject:
        raise ValueError("CI certificate is not self-signed (issuer differs from subject)")
    check_signature(cert, cert, "CI")
    check_policy(cert, frozenset({ID_RSP_ROLE_CI}), "CI")
    check_ca(cert, "CI", 0)
    ec_public_key(cert, "CI")
    check_validity(cert, now, "CI")


# --- SM-DP+ certificates: for the eUICC side and the start-up checks -------


def check_smdp_certificate(
    cert: x509.Certificate, ci_cert: x509.Certificate, role: str, now: datetime | None
) -> None:
    """Signature by the CI, policy and keyUsage of an SM-DP+ certificate; dates unless ``now`` is None."""
    if role not in DP_POLICIES:
        raise ValueError(f"unknown SM-DP+ certificate role {role!r} (auth, pb, tls)")
    what = f"SM-DP+ {role}"
    check_critical_extensions(cert)
    check_signed_by(cert, ci_cert, what)
    check_policy(cert, DP_POLICIES[role], what)
    usage = key_usage(cert)
    if usage is None or not usage.digital_signature:
        raise ValueError(f"{what} certificate keyUsage lacks digitalSignature")
    ec_public_key(cert, what)
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
    "CertificateDer",
    "Expired",
    "SUPPORTED_CURVES",
    "authority_key_identifier",
    "basic_constraints",
    "certificate_policies",
    "check_ca",
    "check_ci_certificate",
    "check_critical_extensions",
    "check_policy",
    "check_signature",
    "check_signed_by",
    "check_smdp_certificate",
    "check_validity",
    "ec_public_key",
    "key_usage",
    "names_issuer",
    "registered_ids",
    "split_certificate",
    "subject_key_identifier",
    "utc_now",
    "verify_smdp_certificate",
]
