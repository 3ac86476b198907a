"""Issue a private test PKI shaped like the GSMA SGP.26 test certificates.

The certificate profiles follow SGP.22 4.5.2.1 (as the SGP.26 test
certificates realise them): every certificate has one ``id-rspRole-*``
policy, a subjectKeyIdentifier and (except the self-signed CI) an
authorityKeyIdentifier, and is signed with ecdsa-with-SHA256 on NIST P-256
or brainpoolP256r1.  The names differ from SGP.26 on purpose, so that our own
CI is never mistaken for the GSMA test CI.

The low-level ``issue_*`` functions take validity, policy and EID range as
arguments so that tests can produce expired, not-yet-valid, wrong-policy and
out-of-range certificates.  :func:`create_test_pki` writes the SGP.26 /
osmo-smdpp file layout, so the real SGP.26 files can be dropped in instead.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from smdpp.asn1.tlv import encode_tlv
from smdpp.pki.chain import permitted_eids
from smdpp.pki.eid import eid_is_valid, make_eid
from smdpp.pki.files import load_private_key, make_dir, write_cert, write_key
from smdpp.pki.oids import (
    DEFAULT_CI_OID,
    ID_RSP_PERMITTED_EINS,
    ID_RSP_ROLE_CI,
    ID_RSP_ROLE_CI_SUBCA,
    ID_RSP_ROLE_DP_AUTH,
    ID_RSP_ROLE_DP_PB,
    ID_RSP_ROLE_DP_TLS,
    ID_RSP_ROLE_EUICC,
    ID_RSP_ROLE_EUM,
    ID_RSP_ROLE_EUM_SUBCA,
)

#: Curve name -> (curve class, file name suffix used by SGP.26).
CURVES: dict[str, tuple[type[ec.EllipticCurve], str]] = {
    "nist": (ec.SECP256R1, "NIST"),
    "brainpool": (ec.BrainpoolP256R1, "BRP"),
}

#: The SGP.26 test EID; its first 8 digits are the EUM's IIN / EIN.
DEFAULT_EID = "89049032123451234512345678901235"
ORGANIZATION = "smdpp test PKI"
EUM_ORGANIZATION = "smdpp Test EUM"

#: eUICC certificates have no well-defined expiry (RFC 5280 4.1.2.5: 99991231235959Z).
NO_WELL_DEFINED_EXPIRY = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)

Keyed = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def curve_for(name: str) -> ec.EllipticCurve:
    """The curve object for ``'nist'`` or ``'brainpool'``."""
    try:
        return CURVES[name][0]()
    except KeyError:
        raise ValueError(f"unknown curve {name!r}; use 'nist' or 'brainpool'") from None


def _suffix(curve: str) -> str:
    curve_for(curve)
    return CURVES[curve][1]


def _now() -> datetime:
    # Start a little in the past so that a peer with a slow clock accepts the certificate.
    return datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=1)


def _years(start: datetime, years: int) -> datetime:
    return start + timedelta(days=365 * years)


def _policy(oid: x509.ObjectIdentifier) -> x509.CertificatePolicies:
    return x509.CertificatePolicies([x509.PolicyInformation(oid, None)])


def _key_usage(*, digital_signature: bool = False, key_cert_sign: bool = False,
               crl_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=key_cert_sign,
        crl_sign=crl_sign, encipher_only=False, decipher_only=False,
    )


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
             not_before: datetime, not_after: datetime) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _with_aki(builder: x509.CertificateBuilder, issuer_cert: x509.Certificate) -> x509.CertificateBuilder:
    ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
    )


def _with_policy(builder: x509.CertificateBuilder, policy: x509.ObjectIdentifier | None,
                 critical: bool = True) -> x509.CertificateBuilder:
    # policy=None leaves the extension out: tests use it for a certificate without a role.
    return builder if policy is None else builder.add_extension(_policy(policy), critical=critical)


def issue_ci(*, curve: str = "nist", common_name: str = "smdpp Test CI",
             not_before: datetime | None = None, not_after: datetime | None = None,
             policy: x509.ObjectIdentifier | None = ID_RSP_ROLE_CI) -> Keyed:
    """A self-signed CI certificate (SGP.22 4.5.2.1.0.1): CA, keyCertSign + cRLSign, policy ci."""
    key = ec.generate_private_key(curve_for(curve))
    start = not_before or _now()
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
    ])
    builder = (
        _builder(name, name, key.public_key(), start, not_after or _years(start, 35))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.RegisteredID(DEFAULT_CI_OID)]), critical=False)
    )
    return _with_policy(builder, policy).sign(key, hashes.SHA256()), key


def issue_dp_certificate(ci_cert: x509.Certificate, ci_key: ec.EllipticCurvePrivateKey, role: str, *,
                         smdp_oid: str = "2.999.10", hostname: str = "testsmdpplus1.example.com",
                         not_before: datetime | None = None, not_after: datetime | None = None,
                         policy: x509.ObjectIdentifier | None = None) -> Keyed:
    """An SM-DP+ certificate under ``ci_cert``: ``role`` is 'auth', 'pb' or 'tls' (SGP.22 4.5.2.1.0.4-6).

    All three carry digitalSignature and the SM-DP+ OID as subjectAltName
    registeredID; the TLS certificate also the hostname as dNSName and the
    serverAuth extended key usage.  ``policy`` overrides the role's policy.
    """
    role_policy = {"auth": ID_RSP_ROLE_DP_AUTH, "pb": ID_RSP_ROLE_DP_PB, "tls": ID_RSP_ROLE_DP_TLS}
    if role not in role_policy:
        raise ValueError(f"unknown SM-DP+ role {role!r}")
    key = ec.generate_private_key(ci_key.curve)
    start = not_before or _now()
    common_name = hostname if role == "tls" else "smdpp Test SM-DP+"
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])
    alt_names: list[x509.GeneralName] = [x509.RegisteredID(x509.ObjectIdentifier(smdp_oid))]
    if role == "tls":
        alt_names.insert(0, x509.DNSName(hostname))
    builder = _with_aki(
        _builder(subject, ci_cert.subject, key.public_key(), start, not_after or _years(start, 10)),
        ci_cert,
    )
    builder = builder.add_extension(_key_usage(digital_signature=True), critical=True)
    builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    if role == "tls":
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=True
        )
    # SGP.26 marks the role policy critical for DPauth/DPpb but not for the TLS certificate,
    # which general-purpose TLS clients must accept.
    builder = _with_policy(builder, policy or role_policy[role], critical=role != "tls")
    return builder.sign(ci_key, hashes.SHA256()), key


def encode_permitted_eins(eins: Sequence[str]) -> bytes:
    """DER of ``PermittedEins ::= SEQUENCE OF PrintableString`` (SGP.22 v3 4.5.2.1.0.2)."""
    return encode_tlv(b"\x30", b"".join(encode_tlv(b"\x13", e.encode("ascii")) for e in eins))


def issue_eum(ci_cert: x509.Certificate, ci_key: ec.EllipticCurvePrivateKey, *,
              eins: Sequence[str] = (DEFAULT_EID[:8],), organization: str = EUM_ORGANIZATION,
              not_before: datetime | None = None, not_after: datetime | None = None,
              policy: x509.ObjectIdentifier | None = ID_RSP_ROLE_EUM,
              permitted_eins: bool = True, name_constraints: bool = True,
              path_length: int | None = 0) -> Keyed:
    """An EUM certificate (SGP.22 4.5.2.1.0.2): CA, keyCertSign + cRLSign, policy eum.

    The EID range ``eins`` is written in both forms: the GSMA permittedEins
    extension (v3) and the older nameConstraints with one permitted
    directoryName (O = ``organization``, serialNumber = EIN) per entry.
    ``path_length`` is 0 (eUICC certificates only) unless the EUM issues an
    EUM SubCA (SGP.22 v3 Variant A: 1).  ``ci_cert`` may be a CI SubCA.
    """
    key = ec.generate_private_key(ci_key.curve)
    start = not_before or _now()
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        x509.NameAttribute(NameOID.COMMON_NAME, "smdpp Test EUM"),
    ])
    builder = _with_aki(
        _builder(subject, ci_cert.subject, key.public_key(), start, not_after or _years(start, 30)),
        ci_cert,
    )
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
    builder = builder.add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
    builder = _with_policy(builder, policy)
    if name_constraints:
        subtrees: list[x509.GeneralName] = [
            x509.DirectoryName(x509.Name([
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                x509.NameAttribute(NameOID.SERIAL_NUMBER, ein),
            ]))
            for ein in eins
        ]
        builder = builder.add_extension(
            x509.NameConstraints(permitted_subtrees=subtrees, excluded_subtrees=None), critical=True
        )
    if permitted_eins:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(ID_RSP_PERMITTED_EINS, encode_permitted_eins(eins)),
            critical=False,
        )
    return builder.sign(ci_key, hashes.SHA256()), key


def issue_sub_ca(issuer_cert: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey, role: str, *,
                 common_name: str | None = None, organization: str | None = None,
                 eins: Sequence[str] | None = None, path_length: int | None = 0,
                 not_before: datetime | None = None, not_after: datetime | None = None,
                 policy: x509.ObjectIdentifier | None = None) -> Keyed:
    """A sub-CA of the SGP.22 v3 chain variants (4.5.2.0): ``role`` 'eum-subca' or 'ci-subca'.

    An EUM SubCA is issued by the EUM and issues eUICC certificates (Variants
    A and C); a CI SubCA is issued by the CI and issues EUM (and SM-DP+)
    certificates (Variants B and C).  CA with keyCertSign + cRLSign and the
    role's policy; an EUM SubCA may narrow the EID range with ``eins``
    (permittedEins).  The subject O defaults to the issuer's.
    """
    policies = {"eum-subca": ID_RSP_ROLE_EUM_SUBCA, "ci-subca": ID_RSP_ROLE_CI_SUBCA}
    if role not in policies:
        raise ValueError(f"unknown sub-CA role {role!r} (eum-subca, ci-subca)")
    key = ec.generate_private_key(issuer_key.curve)
    start = not_before or _now()
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization or _organization(issuer_cert) or ORGANIZATION),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name or f"smdpp Test {role.replace('-subca', '').upper()} SubCA"),
    ])
    builder = _with_aki(
        _builder(subject, issuer_cert.subject, key.public_key(), start, not_after or _years(start, 10)),
        issuer_cert,
    )
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
    builder = builder.add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
    builder = _with_policy(builder, policy or policies[role])
    if eins:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(ID_RSP_PERMITTED_EINS, encode_permitted_eins(eins)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def _organization(cert: x509.Certificate) -> str | None:
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(orgs[0].value) if orgs else None


def issue_euicc_identity(eum_cert: x509.Certificate, eum_key: ec.EllipticCurvePrivateKey, eid: str, *,
                         not_before: datetime | None = None, not_after: datetime | None = None,
                         policy: x509.ObjectIdentifier | None = ID_RSP_ROLE_EUICC,
                         organization: str | None = None) -> Keyed:
    """An eUICC certificate + key (SGP.22 4.5.2.1.0.3): EID in subject serialNumber, policy euicc.

    The subject O defaults to the EUM's O, as the nameConstraints form requires.
    ``eid`` is written as given (tests issue bad EIDs on purpose).
    """
    key = ec.generate_private_key(eum_key.curve)
    if organization is None:
        organization = _organization(eum_cert) or EUM_ORGANIZATION
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, eid),
        x509.NameAttribute(NameOID.COMMON_NAME, "smdpp Test eUICC"),
    ])
    builder = _with_aki(
        _builder(subject, eum_cert.subject, key.public_key(), not_before or _now(),
                 not_after or NO_WELL_DEFINED_EXPIRY),
        eum_cert,
    )
    builder = builder.add_extension(_key_usage(digital_signature=True), critical=True)
    builder = _with_policy(builder, policy)
    return builder.sign(eum_key, hashes.SHA256()), key


# --- files -----------------------------------------------------------------


def _sm_dp_paths(certs_dir: Path, suffix: str) -> dict[str, tuple[Path, Path]]:
    """(certificate, key) paths of the SGP.26 layout, per role."""
    return {
        "ci": (certs_dir / "CertificateIssuer" / f"CERT_CI_ECDSA_{suffix}.der",
               certs_dir / "CertificateIssuer" / f"SK_CI_ECDSA_{suffix}.pem"),
        "auth": (certs_dir / "DPauth" / f"CERT_S_SM_DPauth_ECDSA_{suffix}.der",
                 certs_dir / "DPauth" / f"SK_S_SM_DPauth_ECDSA_{suffix}.pem"),
        "pb": (certs_dir / "DPpb" / f"CERT_S_SM_DPpb_ECDSA_{suffix}.der",
               certs_dir / "DPpb" / f"SK_S_SM_DPpb_ECDSA_{suffix}.pem"),
        "tls": (certs_dir / "DPtls" / f"CERT_S_SM_DP_TLS_{suffix}.der",
                certs_dir / "DPtls" / f"SK_S_SM_DP_TLS_{suffix}.pem"),
    }


EUICC_FILES = ("ci_cert.der", "eum_cert.der", "euicc_cert.der", "euicc_key.pem")


def _write_euicc(out_dir: Path, ci_cert: x509.Certificate, eum_cert: x509.Certificate,
                 euicc_cert: x509.Certificate, euicc_key: ec.EllipticCurvePrivateKey) -> None:
    make_dir(out_dir)
    write_cert(out_dir / "ci_cert.der", ci_cert)
    write_cert(out_dir / "eum_cert.der", eum_cert)
    write_cert(out_dir / "euicc_cert.der", euicc_cert)
    write_key(out_dir / "euicc_key.pem", euicc_key)


def create_test_pki(certs_dir: Path, euicc_dir: Path, *, hostname: str = "testsmdpplus1.example.com",
                    smdp_oid: str = "2.999.10", curve: str = "nist", eid: str | None = None,
                    eins: Sequence[str] | None = None) -> None:
    """Write a CI, DPauth, DPpb, DPtls (SGP.26 layout), an EUM and one eUICC identity.

    ``certs_dir`` gets ``CertificateIssuer/``, ``DPauth/``, ``DPpb/``, ``DPtls/``
    as SGP.26 names them (suffix NIST or BRP, so a NIST and a brainpool PKI
    share one folder), with the CI key kept as
    ``CertificateIssuer/SK_CI_ECDSA_<suffix>.pem``.  ``euicc_dir`` gets
    ``ci_cert.der``, ``eum_cert.der``, ``eum_key.pem``, ``euicc_cert.der``,
    ``euicc_key.pem`` (one folder per PKI).  The EUM may issue EIDs starting
    with one of ``eins`` (default: the first 8 digits of ``eid``); ``eid``
    defaults to the SGP.26 test EID, or the first EID of the range.
    Refuses (FileExistsError) to overwrite any of these files.
    """
    certs_dir, euicc_dir = Path(certs_dir), Path(euicc_dir)
    suffix = _suffix(curve)
    if eins is not None and (not eins or not all(e.isascii() and e.isdigit() and 0 < len(e) <= 30
                                                  for e in eins)):
        raise ValueError(f"EINs {list(eins)} must be 1 to 30 digits each")
    if eid is None:
        eid = DEFAULT_EID if eins is None or DEFAULT_EID.startswith(tuple(eins)) else make_eid(eins[0], 1)
    if not eid_is_valid(eid):
        raise ValueError(f"EID {eid!r} is not 32 digits with valid check digits")
    if eins is None:
        eins = (eid[:8],)
    if not eid.startswith(tuple(eins)):
        raise ValueError(f"EID {eid} is outside the EUM range {', '.join(eins)}")
    paths = _sm_dp_paths(certs_dir, suffix)
    targets = [p for pair in paths.values() for p in pair]
    targets += [paths[role][0].with_suffix(".pem") for role in ("ci", "tls")]
    targets += [euicc_dir / n for n in (*EUICC_FILES, "eum_key.pem")]
    for target in targets:
        if target.exists():
            raise FileExistsError(f"{target} exists; not overwriting a PKI")

    ci_cert, ci_key = issue_ci(curve=curve)
    issued = {"ci": (ci_cert, ci_key)}
    for role in ("auth", "pb", "tls"):
        issued[role] = issue_dp_certificate(ci_cert, ci_key, role, smdp_oid=smdp_oid, hostname=hostname)
    for role, (cert, key) in issued.items():
        cert_path, key_path = paths[role]
        make_dir(cert_path.parent)
        write_cert(cert_path, cert, pem=role in ("ci", "tls"))
        write_key(key_path, key)

    eum_cert, eum_key = issue_eum(ci_cert, ci_key, eins=tuple(eins))
    euicc_cert, euicc_key = issue_euicc_identity(eum_cert, eum_key, eid)
    _write_euicc(euicc_dir, ci_cert, eum_cert, euicc_cert, euicc_key)
    write_key(euicc_dir / "eum_key.pem", eum_key)


def _load_cert(path: Path) -> x509.Certificate:
    return x509.load_der_x509_certificate(path.read_bytes())


def issue_euicc(eum_dir: Path, eid: str, out_dir: Path | None = None) -> Path:
    """Issue one more eUICC identity with the EUM kept in ``eum_dir`` (from :func:`create_test_pki`).

    Writes ``ci_cert.der``, ``eum_cert.der``, ``euicc_cert.der`` and
    ``euicc_key.pem`` to ``out_dir`` (default ``eum_dir/<eid>``), the same
    layout as ``eum_dir`` itself, and returns that folder.  The EID must be
    valid and inside the EUM's permitted range (ValueError otherwise).
    """
    eum_dir = Path(eum_dir)
    if not eid_is_valid(eid):
        raise ValueError(f"EID {eid!r} is not 32 digits with valid check digits")
    ci_cert = _load_cert(eum_dir / "ci_cert.der")
    eum_cert = _load_cert(eum_dir / "eum_cert.der")
    eum_key = load_private_key(eum_dir / "eum_key.pem")
    if not permitted_eids(eum_cert).allows(eid, _organization(eum_cert)):
        raise ValueError(f"EID {eid} is outside the range of the EUM in {eum_dir}")
    out = Path(out_dir) if out_dir is not None else eum_dir / eid
    euicc_cert, euicc_key = issue_euicc_identity(eum_cert, eum_key, eid)
    _write_euicc(out, ci_cert, eum_cert, euicc_cert, euicc_key)
    return out


def has_certificate_issuer(certs_dir: Path) -> bool:
    """True if ``certs_dir/CertificateIssuer`` holds a certificate file (.der or certificate .pem)."""
    ci_dir = Path(certs_dir) / "CertificateIssuer"
    if not ci_dir.is_dir():
        return False
    for f in ci_dir.iterdir():
        if f.suffix == ".der" and f.is_file():
            return True
        if f.suffix == ".pem" and f.is_file() and b"-----BEGIN CERTIFICATE-----" in f.read_bytes():
            return True
    return False


def ensure_test_pki(certs_dir: Path, euicc_dir: Path, hostname: str) -> bool:
    """Create the test PKI (NIST) unless ``certs_dir`` already has a CI certificate.

    Returns True if it created one, False if it found a CI and touched nothing.
    """
    if has_certificate_issuer(certs_dir):
        return False
    create_test_pki(Path(certs_dir), Path(euicc_dir), hostname=hostname)
    return True
