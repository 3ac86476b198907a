"""Certificate chain checks of the RSP PKI (SGP.22 4.5.2 and 5.6.3).

Two chains are verified here:

* eUICC side, by the SM-DP+ in ES9+.AuthenticateClient (SGP.22 5.6.3):
  CI -> [CI SubCA] -> CERT.EUM.ECDSA -> [EUM SubCA] -> CERT.EUICC.ECDSA.
  The eUICC sends its certificate, the one certifying it (``eumCertificate``,
  v3 ``nextCertInChain``) and, in the v3 chain variants, the rest of the
  chain in ``otherCertsInChain``.  Each certificate is checked for its
  signature, validity dates, basicConstraints and keyUsage, the policy of its
  role, AKI/SKI linkage and revocation; the EID must lie in the range of the
  EUM (4.5.2.1.0.2 / 4.5.2.1.0.3).  Failures are :class:`SgpError` with the
  status codes of 5.6.3.
* SM-DP+ side, by a (software) eUICC and by the SM-DP+ at start-up:
  CI -> CERT.DPauth.ECDSA / CERT.DPpb.ECDSA / CERT.DP.TLS (SGP.22 5.7.13 and
  5.7.5), failures are ValueError.

Path building follows RFC 5280 with the key identifiers SGP.22 4.5.2.1 asks
for: a certificate's authorityKeyIdentifier must equal its issuer's
subjectKeyIdentifier, and the issuer name must equal the issuer's subject.
All certificates are signed with ecdsa-with-SHA256 (SGP.22 4.5.2.1).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

from smdpp.asn1.tlv import parse_single
from smdpp.errors import SgpError
from smdpp.pki.eid import eid_is_valid
from smdpp.pki.oids import (
    DP_POLICIES,
    EUICC_POLICIES,
    EUM_POLICIES,
    ID_RSP_PERMITTED_EINS,
    ID_RSP_ROLE_CI,
    ID_RSP_ROLE_CI_SUBCA,
    ID_RSP_ROLE_EUM_SUBCA,
)

#: Curves of SGP.22 2.6.7.2 (NIST P-256, brainpoolP256r1); the eUICC key must be on one.
SUPPORTED_CURVES = frozenset({"secp256r1", "brainpoolP256r1"})

#: Critical extensions that cryptography does not parse but SGP.22 defines (so a
#: verifier "understands" them, 4.5.2.1: all critical extensions of the profile).
_KNOWN_GSMA_EXTENSIONS = frozenset({ID_RSP_PERMITTED_EINS})

#: The CA certificates between an eUICC certificate and the CI, bottom-up, that
#: the SGP.22 v3 chain variants allow (4.5.2.0): O / Ov3, A (EUM SubCA), B (CI
#: SubCA), C (both).  Longer chains are refused before any signature is checked.
_CA_PATHS = frozenset({
    ("EUM",),
    ("EUM SubCA", "EUM"),
    ("EUM", "CI SubCA"),
    ("EUM SubCA", "EUM", "CI SubCA"),
})
MAX_CHAIN_CAS = max(len(p) for p in _CA_PATHS)

# SGP.22 5.6.3 status codes (subjectCode, reasonCode).  SGP.22 has no reason of
# its own for a revoked certificate: revocation is "verification failed" (6.1).
_EUM_INVALID = ("8.1.2", "6.1")
_EUM_EXPIRED = ("8.1.2", "6.3")
_EUICC_INVALID = ("8.1.3", "6.1")
_EUICC_EXPIRED = ("8.1.3", "6.3")

#: Asks whether a certificate is revoked: a text saying by whom and when, or None.
RevocationCheck = Callable[[x509.Certificate], "str | None"]


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


# --- generic checks (raise ValueError / _Expired) --------------------------


def check_critical_extensions(cert: x509.Certificate) -> None:
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
    check_signature(cert, issuer, what)


def check_signature(cert: x509.Certificate, issuer: x509.Certificate, what: str) -> None:
    """``cert`` carries a valid ecdsa-with-SHA256 signature by the key of ``issuer``."""
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


def _check_policy(cert: x509.Certificate, policies: frozenset[x509.ObjectIdentifier], what: str) -> None:
    if not policies & certificate_policies(cert):
        wanted = " or ".join(sorted((p.dotted_string for p in policies), key=len))
        raise ValueError(f"{what} certificate lacks certificate policy {wanted}")


def _ec_public_key(cert: x509.Certificate, what: str) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in SUPPORTED_CURVES:
        raise ValueError(f"{what} certificate key is not on NIST P-256 or brainpoolP256r1")
    return key


def _check_ca(cert: x509.Certificate, what: str, cas_below: int) -> None:
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


def _check_revocation(cert: x509.Certificate, revoked: RevocationCheck | None, what: str) -> None:
    if revoked is not None:
        reason = revoked(cert)
        if reason:
            raise ValueError(f"{what} certificate (serial {cert.serial_number:x}) is {reason}")


def check_ci_certificate(cert: x509.Certificate, now: datetime) -> None:
    """A CI certificate (SGP.22 4.5.2.1.0.1): self-signed CA with keyCertSign, SKI, policy ci, in date.

    ValueError with the reason (:class:`_Expired`, a ValueError, for the dates).
    """
    check_critical_extensions(cert)
    if subject_key_identifier(cert) is None:
        raise ValueError("CI certificate has no subjectKeyIdentifier (CI PKID)")
    if cert.issuer != cert.subject:
        raise ValueError("CI certificate is not self-signed (issuer differs from subject)")
    check_signature(cert, cert, "CI")
    _check_policy(cert, frozenset({ID_RSP_ROLE_CI}), "CI")
    _check_ca(cert, "CI", 0)
    _ec_public_key(cert, "CI")
    check_validity(cert, now, "CI")


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


def eid_range(cert: x509.Certificate) -> PermittedEids | None:
    """The EID range a CA certificate carries (either form), None if it carries none."""
    eins: tuple[str, ...] | None = None
    subtrees: tuple[tuple[str, str | None], ...] | None = None
    try:
        ext = cert.extensions.get_extension_for_oid(ID_RSP_PERMITTED_EINS)
        eins = decode_permitted_eins(ext.value.value)
    except x509.ExtensionNotFound:
        pass
    try:
        constraints = cert.extensions.get_extension_for_class(x509.NameConstraints).value
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
        return None
    return PermittedEids(eins, subtrees)


def permitted_eids(eum_cert: x509.Certificate) -> PermittedEids:
    """The EID range of ``eum_cert``; ValueError if it carries neither form or a malformed one."""
    found = eid_range(eum_cert)
    if found is None:
        raise ValueError("EUM certificate carries no permitted EID range")
    return found


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


def _ca_role(cert: x509.Certificate) -> str:
    """The role of a CA certificate in the eUICC chain, from its certificate policy."""
    policies = certificate_policies(cert)
    if ID_RSP_ROLE_EUM_SUBCA in policies:
        return "EUM SubCA"
    if policies & EUM_POLICIES:
        return "EUM"
    if ID_RSP_ROLE_CI_SUBCA in policies:
        return "CI SubCA"
    wanted = " or ".join(sorted((p.dotted_string for p in EUM_POLICIES), key=len))
    raise ValueError(f"EUM certificate lacks certificate policy {wanted}")


def _issuer_path(first: x509.Certificate, others: list[x509.Certificate],
                 ci_cert: x509.Certificate) -> list[x509.Certificate]:
    """``[first, ..., top]`` linked by AKI/SKI and names, ``top`` naming ``ci_cert``.

    Every certificate of ``others`` must be used (a copy of the CI may be
    included); ValueError otherwise or if the path is longer than SGP.22 allows.
    """
    path = [first]
    pool = list(others)
    while not names_issuer(path[-1], ci_cert):
        parent = next((c for c in pool if names_issuer(path[-1], c)), None)
        if parent is None:
            ski = subject_key_identifier(ci_cert)
            raise ValueError(f"EUM certificate chain does not lead to the CI {ski.hex() if ski else ''}")
        pool.remove(parent)
        path.append(parent)
        if len(path) > MAX_CHAIN_CAS:
            raise ValueError(f"EUM certificate chain is longer than {MAX_CHAIN_CAS} CA certificates")
    stray = [c for c in pool if c != ci_cert]
    if stray:
        raise ValueError(f"otherCertsInChain holds {len(stray)} certificate(s) outside the chain")
    return path


def _check_ca_path(path: list[x509.Certificate], ci_cert: x509.Certificate, now: datetime,
                   revoked: RevocationCheck | None) -> list[PermittedEids]:
    """Check the CA certificates below the CI (``path`` bottom-up); their EID ranges.

    Raises ValueError naming the role, or :class:`_Expired`.
    """
    roles = [_ca_role(c) for c in path]
    if tuple(roles) not in _CA_PATHS:
        raise ValueError(f"EUM certificate chain {' <- '.join(reversed(roles))} is not an SGP.22 chain")
    # The CI's own pathLenConstraint bounds the whole path.
    ci_basic = basic_constraints(ci_cert)
    if ci_basic is not None and ci_basic.path_length is not None and len(path) > ci_basic.path_length:
        raise ValueError(f"CI pathLenConstraint {ci_basic.path_length} does not allow this chain")
    ranges: list[PermittedEids] = []
    parents = path[1:] + [ci_cert]
    for index in reversed(range(len(path))):  # top-down, as RFC 5280 6.1 walks
        cert, role = path[index], roles[index]
        check_critical_extensions(cert)
        check_signed_by(cert, parents[index], role)
        _check_ca(cert, role, index)
        _ec_public_key(cert, role)
        found = permitted_eids(cert) if role == "EUM" else eid_range(cert)
        if found is not None:
            ranges.append(found)
        _check_revocation(cert, revoked, role)
        check_validity(cert, now, role)
    return ranges


def _check_euicc(euicc_cert: x509.Certificate, issuer: x509.Certificate, ranges: list[PermittedEids],
                 now: datetime, revoked: RevocationCheck | None) -> EuiccIdentity:
    check_critical_extensions(euicc_cert)
    check_signed_by(euicc_cert, issuer, "eUICC")
    _check_policy(euicc_cert, EUICC_POLICIES, "eUICC")
    basic = basic_constraints(euicc_cert)
    if basic is not None and basic.ca:
        raise ValueError("eUICC certificate must not be a CA certificate")
    usage = key_usage(euicc_cert)
    if usage is None or not usage.digital_signature:
        raise ValueError("eUICC certificate keyUsage lacks digitalSignature")
    public_key = _ec_public_key(euicc_cert, "eUICC")
    eid = euicc_eid(euicc_cert)
    orgs = euicc_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    organization = str(orgs[0].value) if orgs else None
    if not ranges or not all(r.allows(eid, organization) for r in ranges):
        raise ValueError(f"EID {eid} is outside the range permitted by the EUM certificate")
    _check_revocation(euicc_cert, revoked, "eUICC")
    check_validity(euicc_cert, now, "eUICC")
    return EuiccIdentity(eid=eid, public_key=public_key, certificate=euicc_cert)


def verify_euicc_chain(
    ci_cert: x509.Certificate, eum_cert_der: bytes, euicc_cert_der: bytes, now: datetime | None = None,
    *, other_certs_der: Sequence[bytes] = (), revoked: RevocationCheck | None = None,
) -> EuiccIdentity:
    """Verify CERT.EUICC.ECDSA up to ``ci_cert`` (SGP.22 5.6.3).

    ``eum_cert_der`` is the certificate that certifies the eUICC certificate
    (``eumCertificate``, v3 ``nextCertInChain``: the EUM or an EUM SubCA);
    ``other_certs_der`` the v3 ``otherCertsInChain`` (EUM, CI SubCA) in any
    order.  ``revoked`` answers whether a certificate is revoked (CRLs).

    Raises SgpError 8.1.2/6.1 (EUM or a sub-CA invalid or revoked), 8.1.2/6.3
    (one of them expired or not yet valid), 8.1.3/6.1 (eUICC invalid:
    signature, policy, key usage, EID, range, revoked), 8.1.3/6.3 (eUICC
    expired or not yet valid).  Malformed DER is "invalid"; no other
    exception escapes.
    """
    moment = utc_now(now)
    try:
        eum_cert = x509.load_der_x509_certificate(bytes(eum_cert_der))
        others = [x509.load_der_x509_certificate(bytes(d)) for d in other_certs_der]
        path = _issuer_path(eum_cert, others, ci_cert)
        ranges = _check_ca_path(path, ci_cert, moment, revoked)
    except _Expired as exc:
        raise SgpError(*_EUM_EXPIRED, str(exc)) from None
    except Exception as exc:  # lazy DER parsing may fail in any accessor
        raise SgpError(*_EUM_INVALID, f"EUM certificate invalid: {exc}") from None
    try:
        euicc_cert = x509.load_der_x509_certificate(bytes(euicc_cert_der))
        return _check_euicc(euicc_cert, eum_cert, ranges, moment, revoked)
    except _Expired as exc:
        raise SgpError(*_EUICC_EXPIRED, str(exc)) from None
    except Exception as exc:
        raise SgpError(*_EUICC_INVALID, f"eUICC certificate invalid: {exc}") from None


# --- SM-DP+ chain, for the eUICC side and the start-up checks --------------


def check_smdp_certificate(
    cert: x509.Certificate, ci_cert: x509.Certificate, role: str, now: datetime | None
) -> None:
    """Signature by the CI, policy and keyUsage of an SM-DP+ certificate; dates unless ``now`` is None."""
    if role not in DP_POLICIES:
        raise ValueError(f"unknown SM-DP+ certificate role {role!r} (auth, pb, tls)")
    what = f"SM-DP+ {role}"
    check_critical_extensions(cert)
    check_signed_by(cert, ci_cert, what)
    _check_policy(cert, DP_POLICIES[role], what)
    usage = key_usage(cert)
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
    "MAX_CHAIN_CAS",
    "PermittedEids",
    "RevocationCheck",
    "SUPPORTED_CURVES",
    "authority_key_identifier",
    "basic_constraints",
    "certificate_policies",
    "check_ci_certificate",
    "check_critical_extensions",
    "check_signature",
    "check_signed_by",
    "check_smdp_certificate",
    "check_validity",
    "decode_permitted_eins",
    "eid_range",
    "euicc_eid",
    "key_usage",
    "names_issuer",
    "permitted_eids",
    "registered_ids",
    "subject_key_identifier",
    "utc_now",
    "verify_euicc_chain",
    "verify_smdp_certificate",
]
