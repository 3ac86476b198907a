"""The eUICC certificate chain, as the SM-DP+ verifies it (SGP.22 4.5.2 and 5.6.3).

In ES9+.AuthenticateClient the eUICC sends its certificate, the one that
certifies it (``eumCertificate``, v3 ``nextCertInChain``) and, in the SGP.22
v3 chain variants, the rest of its chain in ``otherCertsInChain``:
CI -> [CI SubCA] -> CERT.EUM.ECDSA -> [EUM SubCA] -> CERT.EUICC.ECDSA.
Path building follows RFC 5280 with the key identifiers SGP.22 4.5.2.1 asks
for (authorityKeyIdentifier == the issuer's subjectKeyIdentifier, issuer name
== the issuer's subject).  Each certificate is checked for its signature,
validity dates, basicConstraints and keyUsage, the policy of its role and
revocation; the EID must lie in the range of the EUM (4.5.2.1.0.2 /
4.5.2.1.0.3).  Failures are :class:`SgpError` with the status codes of 5.6.3.

The single-certificate accessors and checks live in :mod:`smdpp.pki.certificate`
and are re-exported here for the callers that know them from this module.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from smdpp import status
from smdpp.asn1.tlv import parse_single
from smdpp.pki.certificate import (
    SUPPORTED_CURVES,
    CertificateDer,
    Expired,
    authority_key_identifier,
    basic_constraints,
    certificate_policies,
    check_ca,
    check_ci_certificate,
    check_critical_extensions,
    check_policy,
    check_signature,
    check_signed_by,
    check_smdp_certificate,
    check_validity,
    ec_public_key,
    key_usage,
    names_issuer,
    registered_ids,
    split_certificate,
    subject_key_identifier,
    utc_now,
    verify_smdp_certificate,
)
from smdpp.pki.eid import eid_is_valid
from smdpp.pki.oids import (
    EUICC_POLICIES,
    EUM_POLICIES,
    ID_RSP_PERMITTED_EINS,
    ID_RSP_ROLE_CI_SUBCA,
    ID_RSP_ROLE_EUM_SUBCA,
)

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

#: Asks whether a certificate is revoked: a text saying by whom and when, or None.
RevocationCheck = Callable[[x509.Certificate], "str | None"]


@dataclass(frozen=True)
class EuiccIdentity:
    """An eUICC whose certificate chain verified: its EID and ECDSA public key (PK.EUICC.ECDSA)."""

    eid: str
    public_key: ec.EllipticCurvePublicKey
    certificate: x509.Certificate
    #: PK.EUICC.ECDSA as the SubjectPublicKeyInfo DER in the certificate as received
    public_key_der: bytes = b""


def _check_revocation(cert: x509.Certificate, revoked: RevocationCheck | None, what: str) -> None:
    if revoked is not None:
        reason = revoked(cert)
        if reason:
            raise ValueError(f"{what} certificate (serial {cert.serial_number:x}) is {reason}")


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


@dataclass(frozen=True)
class _CaPath:
    """A CA path below a CI whose time-independent checks passed (see :func:`_ca_path`)."""

    ci_cert: x509.Certificate
    certs: tuple[x509.Certificate, ...]  # bottom-up: the eUICC certificate's issuer first
    issuer_der: CertificateDer  # DER parts of certs[0], as received
    roles: tuple[str, ...]
    ranges: tuple[PermittedEids, ...]


class _CaPathCache:
    """Checked CA paths by (eumCertificate DER, otherCertsInChain DER, CI), least recently used out.

    An EUM (and its sub-CAs) signs many eUICCs: parsing its certificates,
    linking them to the CI and checking their signatures, roles, constraints
    and ranges happens once; dates and revocation are checked on every call
    (:func:`_check_ca_path`).  Certificates compare by their DER.  The CI is
    keyed by identity (hashing an ``x509.Certificate`` hashes its DER on every
    call), with the object kept in the entry so a recycled id cannot match.
    A failing path raises and is not remembered.
    """

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._paths: OrderedDict[tuple[bytes, tuple[bytes, ...], int], _CaPath] = OrderedDict()

    def get(self, eum_cert_der: bytes, other_certs_der: tuple[bytes, ...],
            ci_cert: x509.Certificate) -> _CaPath:
        key = (eum_cert_der, other_certs_der, id(ci_cert))
        found = self._paths.get(key)
        if found is not None and found.ci_cert is ci_cert:
            self._paths.move_to_end(key)
            return found
        found = _ca_path(eum_cert_der, other_certs_der, ci_cert)
        self._paths[key] = found
        if len(self._paths) > self._size:
            self._paths.popitem(last=False)
        return found

    def clear(self) -> None:
        self._paths.clear()


def _ca_path(eum_cert_der: bytes, other_certs_der: tuple[bytes, ...],
             ci_cert: x509.Certificate) -> _CaPath:
    """Parse the received CA certificates, link them to the CI (:func:`_issuer_path`) and run
    the checks that do not depend on time or CRLs; ValueError naming the role."""
    eum_cert = x509.load_der_x509_certificate(eum_cert_der)
    issuer_der = split_certificate(eum_cert_der)
    others = [x509.load_der_x509_certificate(d) for d in other_certs_der]
    path = tuple(_issuer_path(eum_cert, others, ci_cert))
    roles = tuple(_ca_role(c) for c in path)
    if roles not in _CA_PATHS:
        raise ValueError(f"EUM certificate chain {' <- '.join(reversed(roles))} is not an SGP.22 chain")
    # The CI's own pathLenConstraint bounds the whole path.
    ci_basic = basic_constraints(ci_cert)
    if ci_basic is not None and ci_basic.path_length is not None and len(path) > ci_basic.path_length:
        raise ValueError(f"CI pathLenConstraint {ci_basic.path_length} does not allow this chain")
    ranges: list[PermittedEids] = []
    parents = path[1:] + (ci_cert,)
    for index in reversed(range(len(path))):  # top-down, as RFC 5280 6.1 walks
        cert, role = path[index], roles[index]
        check_critical_extensions(cert)
        check_signed_by(cert, parents[index], role)
        check_ca(cert, role, index)
        ec_public_key(cert, role)
        found = permitted_eids(cert) if role == "EUM" else eid_range(cert)
        if found is not None:
            ranges.append(found)
    return _CaPath(ci_cert, path, issuer_der, roles, tuple(ranges))


_CA_PATH_CACHE = _CaPathCache()


def _check_ca_path(path: _CaPath, now: datetime, revoked: RevocationCheck | None) -> None:
    """The checks of a CA path that depend on time and CRLs, on every call, top-down as
    RFC 5280 6.1 walks; raises ValueError naming the role, or :class:`Expired`."""
    for index in reversed(range(len(path.certs))):
        _check_revocation(path.certs[index], revoked, path.roles[index])
        check_validity(path.certs[index], now, path.roles[index])


def _check_euicc(euicc_cert: x509.Certificate, euicc_der: CertificateDer,
                 issuer: x509.Certificate, issuer_der: CertificateDer,
                 ranges: Sequence[PermittedEids], now: datetime,
                 revoked: RevocationCheck | None) -> EuiccIdentity:
    check_critical_extensions(euicc_cert)
    # over the tbsCertificate as received (SGP.22 4.5.2.1 / the house rule on signed bytes)
    check_signed_by(euicc_cert, issuer, "eUICC", cert_der=euicc_der, issuer_der=issuer_der)
    check_policy(euicc_cert, EUICC_POLICIES, "eUICC")
    basic = basic_constraints(euicc_cert)
    if basic is not None and basic.ca:
        raise ValueError("eUICC certificate must not be a CA certificate")
    usage = key_usage(euicc_cert)
    if usage is None or not usage.digital_signature:
        raise ValueError("eUICC certificate keyUsage lacks digitalSignature")
    public_key = ec_public_key(euicc_cert, "eUICC")
    eid = euicc_eid(euicc_cert)
    orgs = euicc_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    organization = str(orgs[0].value) if orgs else None
    if not ranges or not all(r.allows(eid, organization) for r in ranges):
        raise ValueError(f"EID {eid} is outside the range permitted by the EUM certificate")
    _check_revocation(euicc_cert, revoked, "eUICC")
    check_validity(euicc_cert, now, "eUICC")
    return EuiccIdentity(eid=eid, public_key=public_key, certificate=euicc_cert,
                         public_key_der=euicc_der.subject_public_key_info)


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
        path = _CA_PATH_CACHE.get(bytes(eum_cert_der), tuple(bytes(d) for d in other_certs_der),
                                  ci_cert)
        _check_ca_path(path, moment, revoked)
    except Expired as exc:
        raise status.eum_certificate_expired(str(exc)) from None
    except Exception as exc:  # lazy DER parsing may fail in any accessor
        raise status.eum_certificate_invalid(f"EUM certificate invalid: {exc}") from None
    try:
        euicc_der = bytes(euicc_cert_der)
        euicc_cert = x509.load_der_x509_certificate(euicc_der)
        return _check_euicc(euicc_cert, split_certificate(euicc_der), path.certs[0],
                            path.issuer_der, path.ranges, moment, revoked)
    except Expired as exc:
        raise status.euicc_certificate_expired(str(exc)) from None
    except Exception as exc:
        raise status.euicc_certificate_invalid(f"eUICC certificate invalid: {exc}") from None


__all__ = [
    "EuiccIdentity",
    "MAX_CHAIN_CAS",
    "PermittedEids",
    "RevocationCheck",
    "decode_permitted_eins",
    "eid_range",
    "euicc_eid",
    "permitted_eids",
    "verify_euicc_chain",
    # re-exported from smdpp.pki.certificate
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
    "key_usage",
    "names_issuer",
    "registered_ids",
    "subject_key_identifier",
    "utc_now",
    "verify_smdp_certificate",
]
