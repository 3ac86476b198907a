"""smdpp.pki: plain ECDSA, EIDs, the test PKI, the certificate store and SGP.22 5.6.3 checks."""
from __future__ import annotations

import shutil
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from smdpp.errors import SgpError
from smdpp.pki import cli
from smdpp.pki.certificate import check_signed_by, split_certificate
from smdpp.pki.chain import permitted_eids, registered_ids, verify_euicc_chain
from smdpp.pki.ecdsa import public_key_from_point, public_point, sign_plain, verify_plain
from smdpp.pki.eid import eid_check_digits, eid_is_valid, make_eid
from smdpp.pki.issue import (
    create_test_pki,
    encode_permitted_eins,
    ensure_test_pki,
    issue_ci,
    issue_dp_certificate,
    issue_euicc,
    issue_euicc_identity,
    issue_eum,
    issue_sub_ca,
)
from smdpp.pki.oids import (
    ID_RSP_PERMITTED_EINS,
    ID_RSP_ROLE_DP_AUTH,
    ID_RSP_ROLE_DP_AUTH_V3,
    ID_RSP_ROLE_DP_PB,
    ID_RSP_ROLE_EUICC,
    ID_RSP_ROLE_EUICC_V3,
    ID_RSP_ROLE_EUM,
    ID_RSP_ROLE_EUM_V3,
)
from smdpp.pki.store import CertificateStore, verify_smdp_certificate

EID = "89049032123451234512345678901235"
SGP26_CI_PKID = bytes.fromhex("f54172bdf98a95d65cbeb88a38a1c11d800a85c3")
NOW = datetime.now(timezone.utc)

# RFC 6979 A.2.5: P-256, SHA-256, message "sample".
RFC6979_X = int("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721", 16)
RFC6979_POINT = bytes.fromhex(
    "04" "60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6"
    "7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299"
)
RFC6979_R = bytes.fromhex("EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716")
RFC6979_S = bytes.fromhex("F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8")


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def status(exc: pytest.ExceptionInfo[SgpError]) -> tuple[str, str]:
    return exc.value.subject_code, exc.value.reason_code


# --- ECDSA in TR-03111 plain form ------------------------------------------


def test_rfc6979_vector_in_plain_form() -> None:
    key = ec.derive_private_key(RFC6979_X, ec.SECP256R1())
    assert public_point(key) == RFC6979_POINT
    assert public_point(key.public_key()) == RFC6979_POINT
    public = public_key_from_point(RFC6979_POINT, ec.SECP256R1())
    assert verify_plain(public, RFC6979_R + RFC6979_S, b"sample")
    assert not verify_plain(public, RFC6979_S + RFC6979_R, b"sample")  # order is r || s
    assert not verify_plain(public, RFC6979_R + RFC6979_S, b"samplE")


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.BrainpoolP256R1()], ids=["nist", "brainpool"])
def test_sign_plain_roundtrip_and_rejections(curve: ec.EllipticCurve) -> None:
    key = ec.generate_private_key(curve)
    public = key.public_key()
    sig = sign_plain(key, b"euiccSigned1")
    assert len(sig) == 64
    assert verify_plain(public, sig, b"euiccSigned1")
    for bit in (0, 255, 256, 511):  # first/last bit of r and of s
        flipped = bytearray(sig)
        flipped[bit // 8] ^= 0x80 >> (bit % 8)
        assert not verify_plain(public, bytes(flipped), b"euiccSigned1")
    assert not verify_plain(public, sig[:-1], b"euiccSigned1")
    assert not verify_plain(public, sig + b"\x00", b"euiccSigned1")
    assert not verify_plain(public, b"", b"euiccSigned1")
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    assert not verify_plain(public, encode_dss_signature(r, s), b"euiccSigned1")  # DER form
    assert not verify_plain(public, bytes(32) + sig[32:], b"euiccSigned1")  # r = 0
    assert not verify_plain(public, b"\xff" * 64, b"euiccSigned1")  # r, s >= n
    assert not verify_plain(public, None, b"euiccSigned1")  # type: ignore[arg-type]
    other = ec.generate_private_key(curve).public_key()
    assert not verify_plain(other, sig, b"euiccSigned1")


def test_public_key_from_point_rejects_bad_points() -> None:
    with pytest.raises(ValueError):
        public_key_from_point(RFC6979_POINT[:-1] + bytes([RFC6979_POINT[-1] ^ 1]), ec.SECP256R1())
    with pytest.raises(ValueError):
        public_key_from_point(RFC6979_POINT[:-1], ec.SECP256R1())
    compressed = bytes([2 + (RFC6979_POINT[-1] & 1)]) + RFC6979_POINT[1:33]
    with pytest.raises(ValueError):
        public_key_from_point(compressed, ec.SECP256R1())
    with pytest.raises(ValueError):  # a P-256 point is not on brainpoolP256r1
        public_key_from_point(RFC6979_POINT, ec.BrainpoolP256R1())


# --- EIDs -------------------------------------------------------------------


def test_eid_check_digits() -> None:
    assert eid_is_valid(EID)
    assert eid_check_digits(EID[:30]) == "35"
    assert not eid_is_valid(EID[:30] + "36")
    assert not eid_is_valid(EID[:-1])
    assert not eid_is_valid("8904903212345123451234567890123a")
    made = make_eid("89049032", 42)
    assert made.startswith("89049032") and made[8:30] == "42".zfill(22) and eid_is_valid(made)


def test_permitted_eins_encoding() -> None:
    assert encode_permitted_eins(["89049032"]) == bytes.fromhex("300a13083839303439303332")


# --- the SGP.26 certificates -----------------------------------------------


def test_sgp26_files_load(shared_testdata: Path) -> None:
    sgp26 = shared_testdata / "sgp26"
    store = CertificateStore.load(sgp26)
    assert store.ci_pkids == (SGP26_CI_PKID,)
    creds = store.credentials(SGP26_CI_PKID)
    assert creds.smdp_oid == "2.999.10"
    assert creds.auth_cert_der == (sgp26 / "DPauth" / "CERT_S_SM_DPauth_ECDSA_NIST.der").read_bytes()
    assert creds.pb_cert_der == (sgp26 / "DPpb" / "CERT_S_SM_DPpb_ECDSA_NIST.der").read_bytes()
    auth_cert = x509.load_der_x509_certificate(creds.auth_cert_der)
    assert public_point(auth_cert.public_key()) == public_point(creds.auth_key)
    assert "auth_key" not in repr(creds)
    assert store.tls is not None and store.tls.cert_path.name == "CERT_S_SM_DP_TLS_NIST.pem"
    assert store.tls.expired(datetime(2026, 8, 3, tzinfo=timezone.utc))
    assert not store.tls.expired(datetime(2026, 1, 1, tzinfo=timezone.utc))

    ci = store.ci_certificate(SGP26_CI_PKID)
    when = datetime(2025, 1, 1, tzinfo=timezone.utc)
    assert verify_smdp_certificate(creds.pb_cert_der, ci, "pb", when).serial_number == 257
    with pytest.raises(ValueError, match="2.23.146.1.2.1.4"):
        verify_smdp_certificate(creds.pb_cert_der, ci, "auth", when)
    with pytest.raises(ValueError, match="expired"):
        verify_smdp_certificate(creds.auth_cert_der, ci, "auth", datetime(2030, 4, 1, tzinfo=timezone.utc))


# --- a generated PKI on disk ------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    create_test_pki(root / "certs", root / "euicc", hostname="smdp.test")
    create_test_pki(root / "certs", root / "euicc-brp", curve="brainpool")
    return root


def test_generated_pki_loads_and_verifies(pki: Path) -> None:
    store = CertificateStore.load(pki / "certs")
    assert len(store.ci_pkids) == 2
    for folder, curve in (("euicc", "secp256r1"), ("euicc-brp", "brainpoolP256r1")):
        d = pki / folder
        ci = x509.load_der_x509_certificate((d / "ci_cert.der").read_bytes())
        pkid = ci.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        identity = store.verify_euicc((d / "eum_cert.der").read_bytes(), (d / "euicc_cert.der").read_bytes(), pkid)
        assert identity.eid == EID and identity.public_key.curve.name == curve
        key = serialization.load_pem_private_key((d / "euicc_key.pem").read_bytes(), None)
        assert public_point(key) == public_point(identity.public_key)
        creds = store.credentials(pkid)
        assert creds.smdp_oid == "2.999.10"
        assert verify_smdp_certificate(creds.auth_cert_der, ci, "auth")
        assert verify_smdp_certificate(creds.pb_cert_der, ci, "pb")
    tls = store.tls
    assert tls is not None and tls.certificate.public_key().curve.name == "secp256r1"
    san = tls.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["smdp.test"]


def test_generated_pki_file_modes_and_no_overwrite(pki: Path) -> None:
    for path in pki.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        if path.is_dir():
            assert mode == 0o700, path
        else:  # keys and certificates alike: every file the server creates is 0600
            assert mode == 0o600, path
    assert (pki / "certs" / "CertificateIssuer" / "SK_CI_ECDSA_NIST.pem").is_file()
    assert (pki / "euicc" / "eum_key.pem").is_file()
    with pytest.raises(FileExistsError):
        create_test_pki(pki / "certs", pki / "elsewhere")
    assert ensure_test_pki(pki / "certs", pki / "elsewhere", "smdp.test") is False
    assert not (pki / "elsewhere").exists()


def test_ensure_test_pki_creates_once(tmp_path: Path) -> None:
    assert ensure_test_pki(tmp_path / "certs", tmp_path / "euicc", "smdp.example") is True
    assert ensure_test_pki(tmp_path / "certs", tmp_path / "euicc", "smdp.example") is False
    assert CertificateStore.load(tmp_path / "certs").tls is not None


def test_issue_more_euiccs_and_cli(tmp_path: Path) -> None:
    assert cli.main(["create", "--certs", str(tmp_path / "c"), "--euicc", str(tmp_path / "e")]) == 0
    assert cli.main(["issue-euicc", "--euicc", str(tmp_path / "e"), "--count", "2", "--first", "5"]) == 0
    store = CertificateStore.load(tmp_path / "c")
    for serial in (5, 6):
        d = tmp_path / "e" / make_eid("89049032", serial)
        identity = store.verify_euicc((d / "eum_cert.der").read_bytes(), (d / "euicc_cert.der").read_bytes(), None)
        assert identity.eid == d.name
    with pytest.raises(ValueError, match="outside the range"):
        issue_euicc(tmp_path / "e", make_eid("89049033", 1))
    assert cli.main(["issue-euicc", "--euicc", str(tmp_path / "e"), "--ein", "89049033"]) == 1


def test_store_load_names_the_bad_file(tmp_path: Path) -> None:
    create_test_pki(tmp_path / "a", tmp_path / "ea")
    create_test_pki(tmp_path / "b", tmp_path / "eb")
    foreign = tmp_path / "a" / "DPauth" / "CERT_S_SM_DPauth_ECDSA_NIST.der"
    shutil.copy(tmp_path / "b" / "DPauth" / "CERT_S_SM_DPauth_ECDSA_NIST.der", foreign)
    with pytest.raises(ValueError, match="CERT_S_SM_DPauth_ECDSA_NIST.der.*not issued by any CI"):
        CertificateStore.load(tmp_path / "a")

    # Right chain, wrong key: the CI of b signs, the key of a stays.
    shutil.copytree(tmp_path / "b" / "CertificateIssuer", tmp_path / "a" / "CertificateIssuer", dirs_exist_ok=True)
    with pytest.raises(ValueError, match="CERT_S_SM_DPauth_ECDSA_NIST.der: no private key"):
        CertificateStore.load(tmp_path / "a")


# --- SGP.22 5.6.3 negative cases (in memory) --------------------------------


@pytest.fixture(scope="module")
def chain() -> dict:
    ci, ci_key = issue_ci()
    eum, eum_key = issue_eum(ci, ci_key)
    euicc, _ = issue_euicc_identity(eum, eum_key, EID)
    pkid = ci.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    store = CertificateStore({pkid: ci}, {})
    return {"ci": ci, "ci_key": ci_key, "eum": eum, "eum_key": eum_key, "euicc": euicc, "pkid": pkid,
            "store": store}


def check(chain: dict, eum: x509.Certificate | bytes, euicc: x509.Certificate | bytes,
          now: datetime | None = None, pkid: bytes | None = b"") -> tuple[str, str]:
    eum_der = eum if isinstance(eum, bytes) else der(eum)
    euicc_der = euicc if isinstance(euicc, bytes) else der(euicc)
    with pytest.raises(SgpError) as exc:
        chain["store"].verify_euicc(eum_der, euicc_der, chain["pkid"] if pkid == b"" else pkid, now)
    return status(exc)


def test_valid_chain_accepted(chain: dict) -> None:
    identity = chain["store"].verify_euicc(der(chain["eum"]), der(chain["euicc"]), chain["pkid"])
    assert identity.eid == EID and identity.certificate == chain["euicc"]
    assert verify_euicc_chain(chain["ci"], der(chain["eum"]), der(chain["euicc"])).eid == EID


def test_expired_eum(chain: dict) -> None:
    old = datetime(2001, 1, 1, tzinfo=timezone.utc)
    eum, eum_key = issue_eum(chain["ci"], chain["ci_key"], not_before=old, not_after=old + timedelta(days=365))
    euicc, _ = issue_euicc_identity(eum, eum_key, EID)
    assert check(chain, eum, euicc) == ("8.1.2", "6.3")
    assert check(chain, chain["eum"], chain["euicc"], now=old) == ("8.1.2", "6.3")  # EUM not yet valid


def test_not_yet_valid_euicc(chain: dict) -> None:
    euicc, _ = issue_euicc_identity(chain["eum"], chain["eum_key"], EID, not_before=NOW + timedelta(days=10))
    assert check(chain, chain["eum"], euicc) == ("8.1.3", "6.3")


def test_expired_euicc(chain: dict) -> None:
    euicc, _ = issue_euicc_identity(chain["eum"], chain["eum_key"], EID, not_before=NOW - timedelta(days=10),
                                    not_after=NOW - timedelta(days=1))
    assert check(chain, chain["eum"], euicc) == ("8.1.3", "6.3")


def test_wrong_policies(chain: dict) -> None:
    euicc, _ = issue_euicc_identity(chain["eum"], chain["eum_key"], EID, policy=ID_RSP_ROLE_EUM)
    assert check(chain, chain["eum"], euicc) == ("8.1.3", "6.1")
    euicc, _ = issue_euicc_identity(chain["eum"], chain["eum_key"], EID, policy=None)
    assert check(chain, chain["eum"], euicc) == ("8.1.3", "6.1")
    eum, eum_key = issue_eum(chain["ci"], chain["ci_key"], policy=ID_RSP_ROLE_DP_AUTH)
    euicc, _ = issue_euicc_identity(eum, eum_key, EID)
    assert check(chain, eum, euicc) == ("8.1.2", "6.1")


def test_eid_out_of_range_and_bad_check_digits(chain: dict) -> None:
    euicc, _ = issue_euicc_identity(chain["eum"], chain["eum_key"], make_eid("89049033", 1))
    assert check(chain, chain["eum"], euicc) == ("8.1.3", "6.1")
    euicc, _ = issue_euicc_identity(chain["eum"], chain["eum_key"], EID[:30] + "36")
    assert check(chain, chain["eum"], euicc) == ("8.1.3", "6.1")


def test_eid_range_forms(chain: dict) -> None:
    ci, ci_key = chain["ci"], chain["ci_key"]
    # Each form alone bounds the range; a range in both forms must hold in both.
    for kwargs in ({"permitted_eins": False}, {"name_constraints": False}):
        eum, eum_key = issue_eum(ci, ci_key, eins=("8904903212",), **kwargs)
        assert permitted_eids(eum).allows(EID, "smdpp Test EUM")
        euicc, _ = issue_euicc_identity(eum, eum_key, EID)
        assert chain["store"].verify_euicc(der(eum), der(euicc), chain["pkid"]).eid == EID
        euicc, _ = issue_euicc_identity(eum, eum_key, make_eid("8904903213", 1))
        assert check(chain, eum, euicc) == ("8.1.3", "6.1")
    # nameConstraints also binds the organization name of the eUICC subject.
    eum, eum_key = issue_eum(ci, ci_key, permitted_eins=False)
    euicc, _ = issue_euicc_identity(eum, eum_key, EID, organization="Someone Else")
    assert check(chain, eum, euicc) == ("8.1.3", "6.1")
    # An EUM without any range is itself invalid.
    eum, eum_key = issue_eum(ci, ci_key, permitted_eins=False, name_constraints=False)
    euicc, _ = issue_euicc_identity(eum, eum_key, EID)
    assert check(chain, eum, euicc) == ("8.1.2", "6.1")


def test_euicc_signed_by_another_eum(chain: dict) -> None:
    other, other_key = issue_eum(chain["ci"], chain["ci_key"])  # same names, other key
    euicc, _ = issue_euicc_identity(other, other_key, EID)
    assert check(chain, chain["eum"], euicc) == ("8.1.3", "6.1")  # AKI names the other EUM
    forged, _ = issue_euicc_identity(chain["eum"], other_key, EID)  # AKI of ours, signed by the other
    assert check(chain, chain["eum"], forged) == ("8.1.3", "6.1")


def test_eum_of_another_ci_and_unknown_ci(chain: dict) -> None:
    ci2, ci2_key = issue_ci()
    eum2, eum2_key = issue_eum(ci2, ci2_key)
    euicc2, _ = issue_euicc_identity(eum2, eum2_key, EID)
    assert check(chain, eum2, euicc2) == ("8.1.2", "6.1")  # checked against our CI
    assert check(chain, eum2, euicc2, pkid=None) == ("8.11.1", "3.9")  # the CI it names is unknown
    assert check(chain, chain["eum"], chain["euicc"], pkid=bytes(20)) == ("8.11.1", "3.9")
    # An EUM signed by a DP key of the right CI is no EUM either.
    dp, dp_key = issue_dp_certificate(chain["ci"], chain["ci_key"], "auth")
    assert check(chain, dp, chain["euicc"]) == ("8.1.2", "6.1")


def test_malformed_der(chain: dict) -> None:
    eum, euicc = der(chain["eum"]), der(chain["euicc"])
    assert check(chain, b"\x30\x03abc", euicc) == ("8.1.2", "6.1")
    assert check(chain, eum[:-5], euicc) == ("8.1.2", "6.1")
    assert check(chain, b"", euicc) == ("8.1.2", "6.1")
    assert check(chain, eum, euicc[:100]) == ("8.1.3", "6.1")
    assert check(chain, eum, b"\x04\x00") == ("8.1.3", "6.1")
    assert check(chain, b"garbage", euicc, pkid=None) == ("8.1.2", "6.1")


# --- CI selection, SGP.22 5.6.1 ----------------------------------------------


def test_select_ci(pki: Path) -> None:
    store = CertificateStore.load(pki / "certs")
    a, b = store.ci_pkids
    unknown = bytes(20)
    assert store.select_ci([unknown, b, a], [a, b]) == b  # the eUICC's order of preference
    assert store.select_ci([a, b], [b]) == b
    for verification, signing in (([a], [b]), ([unknown], [unknown]), ([], [a, b])):
        with pytest.raises(SgpError) as exc:
            store.select_ci(verification, signing)
        assert status(exc) == ("8.8.2", "3.1")
    with pytest.raises(SgpError) as exc:
        store.credentials(unknown)
    assert status(exc) == ("8.11.1", "3.9")


# --- basicConstraints, keyUsage, AKI (SGP.22 4.5.2.1) -------------------------


def custom(issuer: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey, subject: x509.Name, *,
           ca: bool | None, usage: dict[str, bool], policy: x509.ObjectIdentifier,
           key: ec.EllipticCurvePrivateKey | None = None, aki: bool = True,
           extra: list[x509.ExtensionType] = ()) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate with exactly the extensions a test wants to get wrong."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    flags = dict(digital_signature=False, content_commitment=False, key_encipherment=False,
                 data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                 encipher_only=False, decipher_only=False)
    flags.update(usage)
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=365))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.KeyUsage(**flags), critical=True)
        .add_extension(x509.CertificatePolicies([x509.PolicyInformation(policy, None)]), critical=True)
    )
    if aki:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    for ext in extra:
        builder = builder.add_extension(ext, critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def eum_name() -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "smdpp Test EUM"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "custom EUM")])


def eins_ext() -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(ID_RSP_PERMITTED_EINS, encode_permitted_eins([EID[:8]]))


def test_eum_must_be_a_ca_with_key_cert_sign(chain: dict) -> None:
    for ca, usage in ((None, {"key_cert_sign": True}), (False, {"key_cert_sign": True}),
                      (True, {"digital_signature": True})):
        eum, eum_key = custom(chain["ci"], chain["ci_key"], eum_name(), ca=ca, usage=usage,
                              policy=ID_RSP_ROLE_EUM, extra=[eins_ext()])
        euicc, _ = issue_euicc_identity(eum, eum_key, EID)
        assert check(chain, eum, euicc) == ("8.1.2", "6.1"), (ca, usage)
    # The same EUM with both right is accepted: the failures above are the flags.
    eum, eum_key = custom(chain["ci"], chain["ci_key"], eum_name(), ca=True, usage={"key_cert_sign": True},
                          policy=ID_RSP_ROLE_EUM, extra=[eins_ext()])
    euicc, _ = issue_euicc_identity(eum, eum_key, EID)
    assert chain["store"].verify_euicc(der(eum), der(euicc), chain["pkid"]).eid == EID


def test_eum_without_authority_key_identifier(chain: dict) -> None:
    eum, eum_key = custom(chain["ci"], chain["ci_key"], eum_name(), ca=True, usage={"key_cert_sign": True},
                          policy=ID_RSP_ROLE_EUM, extra=[eins_ext()], aki=False)
    euicc, _ = issue_euicc_identity(eum, eum_key, EID)
    assert check(chain, eum, euicc) == ("8.1.2", "6.1")
    assert check(chain, eum, euicc, pkid=None) == ("8.1.2", "6.1")


def test_euicc_key_usage_and_ca_flag(chain: dict) -> None:
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "smdpp Test EUM"),
                         x509.NameAttribute(NameOID.SERIAL_NUMBER, EID)])
    for ca, usage in ((None, {"key_agreement": True}), (True, {"digital_signature": True})):
        euicc, _ = custom(chain["eum"], chain["eum_key"], subject, ca=ca, usage=usage, policy=ID_RSP_ROLE_EUICC)
        assert check(chain, chain["eum"], euicc) == ("8.1.3", "6.1"), (ca, usage)
    euicc, _ = custom(chain["eum"], chain["eum_key"], subject, ca=None, usage={"digital_signature": True},
                      policy=ID_RSP_ROLE_EUICC)
    assert chain["store"].verify_euicc(der(chain["eum"]), der(euicc), chain["pkid"]).eid == EID


# --- sub-CAs and otherCertsInChain (SGP.22 v3 variants) ---------------------------


@pytest.fixture(scope="module")
def variants(chain: dict) -> dict:
    """Variant A: CI -> EUM -> EUM SubCA -> eUICC; Variant C adds a CI SubCA under the CI."""
    ci, ci_key = chain["ci"], chain["ci_key"]
    eum, eum_key = issue_eum(ci, ci_key, path_length=1, policy=ID_RSP_ROLE_EUM_V3)
    sub, sub_key = issue_sub_ca(eum, eum_key, "eum-subca")
    euicc, _ = issue_euicc_identity(sub, sub_key, EID, policy=ID_RSP_ROLE_EUICC_V3)
    ci_sub, ci_sub_key = issue_sub_ca(ci, ci_key, "ci-subca", path_length=2)
    c_eum, c_eum_key = issue_eum(ci_sub, ci_sub_key, path_length=1, policy=ID_RSP_ROLE_EUM_V3)
    c_sub, c_sub_key = issue_sub_ca(c_eum, c_eum_key, "eum-subca")
    c_euicc, _ = issue_euicc_identity(c_sub, c_sub_key, EID, policy=ID_RSP_ROLE_EUICC_V3)
    return {"eum": eum, "eum_key": eum_key, "sub": sub, "sub_key": sub_key, "euicc": euicc,
            "ci_sub": ci_sub, "c_eum": c_eum, "c_sub": c_sub, "c_euicc": c_euicc}


def test_eum_subca_chain_needs_other_certs(chain: dict, variants: dict) -> None:
    store, v = chain["store"], variants
    identity = store.verify_euicc(der(v["sub"]), der(v["euicc"]), chain["pkid"], other_certs=[der(v["eum"])])
    assert identity.eid == EID and identity.certificate == v["euicc"]
    assert store.verify_euicc(der(v["sub"]), der(v["euicc"]), None, other_certs=[der(v["eum"])]).eid == EID
    # Without otherCertsInChain the sub-CA does not lead to the CI.
    assert check(chain, v["sub"], v["euicc"]) == ("8.1.2", "6.1")
    # A copy of the CI in otherCertsInChain is tolerated; any other stray certificate is not.
    assert store.verify_euicc(der(v["sub"]), der(v["euicc"]), chain["pkid"],
                              other_certs=[der(v["eum"]), der(chain["ci"])]).eid == EID
    with pytest.raises(SgpError, match="outside the chain") as exc:
        store.verify_euicc(der(v["sub"]), der(v["euicc"]), chain["pkid"],
                           other_certs=[der(v["eum"]), der(chain["eum"])])
    assert status(exc) == ("8.1.2", "6.1")


def test_variant_c_in_any_order(chain: dict, variants: dict) -> None:
    store, v = chain["store"], variants
    for others in ([v["c_eum"], v["ci_sub"]], [v["ci_sub"], v["c_eum"]]):
        identity = store.verify_euicc(der(v["c_sub"]), der(v["c_euicc"]), None,
                                      other_certs=[der(c) for c in others])
        assert identity.eid == EID
    with pytest.raises(SgpError) as exc:  # the CI SubCA is missing
        store.verify_euicc(der(v["c_sub"]), der(v["c_euicc"]), chain["pkid"], other_certs=[der(v["c_eum"])])
    assert status(exc) == ("8.1.2", "6.1")


def test_sub_ca_checks(chain: dict, variants: dict) -> None:
    ci, ci_key, v = chain["ci"], chain["ci_key"], variants

    def run(sub: x509.Certificate, sub_key, eum: x509.Certificate, **kw) -> tuple[str, str]:
        euicc, _ = issue_euicc_identity(sub, sub_key, kw.pop("eid", EID), policy=ID_RSP_ROLE_EUICC_V3)
        with pytest.raises(SgpError) as exc:
            chain["store"].verify_euicc(der(sub), der(euicc), chain["pkid"], other_certs=[der(eum)], **kw)
        return status(exc)

    # The EUM's pathLenConstraint 0 leaves no room for a sub-CA.
    eum0, eum0_key = issue_eum(ci, ci_key, path_length=0)
    sub, sub_key = issue_sub_ca(eum0, eum0_key, "eum-subca")
    assert run(sub, sub_key, eum0) == ("8.1.2", "6.1")
    # An expired sub-CA: 6.3.
    old = datetime(2001, 1, 1, tzinfo=timezone.utc)
    sub, sub_key = issue_sub_ca(v["eum"], v["eum_key"], "eum-subca", not_before=old, not_after=old + timedelta(days=9))
    assert run(sub, sub_key, v["eum"]) == ("8.1.2", "6.3")
    # A sub-CA may narrow the EID range; an EID outside it is refused as an eUICC failure.
    sub, sub_key = issue_sub_ca(v["eum"], v["eum_key"], "eum-subca", eins=["8904903299"])
    assert run(sub, sub_key, v["eum"]) == ("8.1.3", "6.1")
    assert chain["store"].verify_euicc(
        der(sub), der(issue_euicc_identity(sub, sub_key, make_eid("8904903299", 7))[0]), chain["pkid"],
        other_certs=[der(v["eum"])]).eid == make_eid("8904903299", 7)
    # Two EUM SubCAs stacked are no SGP.22 chain; nor is a sub-CA without an RSP role.
    sub2, sub2_key = issue_sub_ca(v["sub"], v["sub_key"], "eum-subca")
    euicc, _ = issue_euicc_identity(sub2, sub2_key, EID, policy=ID_RSP_ROLE_EUICC_V3)
    with pytest.raises(SgpError, match="not an SGP.22 chain") as exc:
        chain["store"].verify_euicc(der(sub2), der(euicc), chain["pkid"], other_certs=[der(v["sub"]), der(v["eum"])])
    assert status(exc) == ("8.1.2", "6.1")
    sub, sub_key = issue_sub_ca(v["eum"], v["eum_key"], "eum-subca", policy=ID_RSP_ROLE_DP_AUTH)
    assert run(sub, sub_key, v["eum"]) == ("8.1.2", "6.1")


# --- start-up checks of the SM-DP+'s own certificates ------------------------------


def _replace(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(der(cert))
    key_path = path.parent / path.name.replace("CERT_", "SK_").replace(".der", ".pem")
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))


def _ci_of(certs: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ci_dir = certs / "CertificateIssuer"
    cert = x509.load_der_x509_certificate((ci_dir / "CERT_CI_ECDSA_NIST.der").read_bytes())
    key = serialization.load_pem_private_key((ci_dir / "SK_CI_ECDSA_NIST.pem").read_bytes(), None)
    return cert, key


def test_store_refuses_expired_or_wrong_dp_certificates(tmp_path: Path) -> None:
    create_test_pki(tmp_path / "certs", tmp_path / "euicc")
    ci, ci_key = _ci_of(tmp_path / "certs")
    auth = tmp_path / "certs" / "DPauth" / "CERT_S_SM_DPauth_ECDSA_NIST.der"
    old = datetime(2020, 1, 1, tzinfo=timezone.utc)
    _replace(auth, *issue_dp_certificate(ci, ci_key, "auth", not_before=old, not_after=old + timedelta(days=30)))
    with pytest.raises(ValueError, match=r"CERT_S_SM_DPauth_ECDSA_NIST\.der: SM-DP\+ auth certificate expired on 2020-01-31"):
        CertificateStore.load(tmp_path / "certs")
    _replace(auth, *issue_dp_certificate(ci, ci_key, "auth", policy=ID_RSP_ROLE_DP_PB))
    with pytest.raises(ValueError, match=r"CERT_S_SM_DPauth_ECDSA_NIST\.der: .*lacks certificate policy 2\.23\.146\.1\.2\.1\.4"):
        CertificateStore.load(tmp_path / "certs")
    # The v3 (Variant Ov3/A/B/C) dp-auth policy is a dp-auth policy too.
    _replace(auth, *issue_dp_certificate(ci, ci_key, "auth", policy=ID_RSP_ROLE_DP_AUTH_V3))
    assert len(CertificateStore.load(tmp_path / "certs").credential_pkids) == 1


def test_store_checks_the_ci_certificate(tmp_path: Path) -> None:
    create_test_pki(tmp_path / "certs", tmp_path / "euicc")
    ci_file = tmp_path / "certs" / "CertificateIssuer" / "CERT_CI_ECDSA_NIST.der"
    for kwargs, message in (({"policy": ID_RSP_ROLE_EUM}, "lacks certificate policy 2.23.146.1.2.1.0"),
                            ({"not_before": datetime(2000, 1, 1, tzinfo=timezone.utc),
                              "not_after": datetime(2001, 1, 1, tzinfo=timezone.utc)}, "expired on 2001-01-01")):
        cert, _ = issue_ci(**kwargs)
        ci_file.write_bytes(der(cert))
        (ci_file.with_suffix(".pem")).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        with pytest.raises(ValueError, match=f"CERT_CI_ECDSA_NIST.*{message}"):
            CertificateStore.load(tmp_path / "certs")


def test_check_tls(tmp_path: Path) -> None:
    create_test_pki(tmp_path / "certs", tmp_path / "euicc", hostname="smdp.test")
    store = CertificateStore.load(tmp_path / "certs")
    (tls,) = store.check_tls()
    assert tls.cert_path.name == "CERT_S_SM_DP_TLS_NIST.pem"
    with pytest.raises(ValueError, match=r"CERT_S_SM_DP_TLS_NIST\.\w+: DPtls certificate expired on \d{4}-\d\d-\d\d"):
        store.check_tls(NOW + timedelta(days=365 * 11))
    ci, ci_key = _ci_of(tmp_path / "certs")
    tls_file = tmp_path / "certs" / "DPtls" / "CERT_S_SM_DP_TLS_NIST.der"
    tls_file.with_suffix(".pem").unlink()
    # A DPtls with the wrong policy, or without its key, still lets plain HTTP start; --tls refuses it.
    _replace(tls_file, *issue_dp_certificate(ci, ci_key, "tls", policy=ID_RSP_ROLE_DP_AUTH))
    with pytest.raises(ValueError, match=r"CERT_S_SM_DP_TLS_NIST\.der: .*policy 2\.23\.146\.1\.2\.1\.3"):
        CertificateStore.load(tmp_path / "certs").check_tls()
    cert, _ = issue_dp_certificate(ci, ci_key, "tls")
    tls_file.write_bytes(der(cert))  # its key stays the old one
    store = CertificateStore.load(tmp_path / "certs")
    with pytest.raises(ValueError, match=r"CERT_S_SM_DP_TLS_NIST\.der: no private key"):
        store.check_tls()
    other_ci, other_key = issue_ci()
    _replace(tls_file, *issue_dp_certificate(other_ci, other_key, "tls"))
    with pytest.raises(ValueError, match="not issued by any CI"):
        CertificateStore.load(tmp_path / "certs").check_tls()
    shutil.rmtree(tmp_path / "certs" / "DPtls")
    with pytest.raises(ValueError, match="no DPtls certificate"):
        CertificateStore.load(tmp_path / "certs").check_tls()


# --- several credential sets ---------------------------------------------------------


def test_preferred_curve_only_decides_among_matches(pki: Path) -> None:
    store = CertificateStore.load(pki / "certs")
    by_curve = {store.credentials(p).curve: p for p in store.credential_pkids}
    nist, brp = by_curve["secp256r1"], by_curve["brainpoolP256r1"]
    assert store.select_ci([nist, brp], [nist, brp]) == nist  # the eUICC's order
    store.preferred_curve = "brainpoolP256r1"
    assert store.select_ci([nist, brp], [nist, brp]) == brp
    assert store.select_ci([nist], [nist, brp]) == nist  # a preference, not a requirement
    store.preferred_curve = "secp256r1"
    assert store.select_ci([brp, nist], [brp, nist]) == nist
    assert "curve=brainpoolP256r1" in repr(store.credentials(brp))


def test_cli_create_with_ein_range_and_both_curves(tmp_path: Path) -> None:
    certs = tmp_path / "data" / "certs"
    assert cli.main(["create", "--certs", str(certs), "--ein", "89049099", "--ein", "89049098",
                     "--hostname", "smdp.example.org", "--smdp-oid", "2.999.77"]) == 0
    assert cli.main(["create", "--certs", str(certs), "--curve", "brainpool"]) == 0
    store = CertificateStore.load(certs)
    assert sorted(store.credentials(p).curve for p in store.credential_pkids) == ["brainpoolP256r1", "secp256r1"]
    eum = x509.load_der_x509_certificate((tmp_path / "data" / "euicc" / "eum_cert.der").read_bytes())
    assert permitted_eids(eum).eins == ("89049099", "89049098")
    first = x509.load_der_x509_certificate((tmp_path / "data" / "euicc" / "euicc_cert.der").read_bytes())
    assert first.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == make_eid("89049099", 1)
    assert (tmp_path / "data" / "euicc-brainpool" / "euicc_cert.der").is_file()
    assert cli.main(["issue-euicc", "--euicc", str(tmp_path / "data" / "euicc"), "--count", "3"]) == 0
    for serial in (1, 2, 3):
        d = tmp_path / "data" / "euicc" / make_eid("89049099", serial)
        assert store.verify_euicc((d / "eum_cert.der").read_bytes(), (d / "euicc_cert.der").read_bytes(), None)
    auth = x509.load_der_x509_certificate(store.credentials(
        next(p for p in store.credential_pkids if store.credentials(p).curve == "secp256r1")).auth_cert_der)
    assert registered_ids(auth) == ["2.999.77"]
    with pytest.raises(ValueError, match="outside the EUM range"):
        create_test_pki(tmp_path / "x", tmp_path / "y", eins=["89049099"], eid=EID)


def test_remembered_eum_path_still_checks_dates_every_time(chain: dict) -> None:
    """The EUM path is parsed and linked once; its validity is checked on each call."""
    store = chain["store"]
    assert store.verify_euicc(der(chain["eum"]), der(chain["euicc"]), chain["pkid"]).eid == EID
    after = chain["eum"].not_valid_after_utc + timedelta(days=1)
    assert check(chain, chain["eum"], chain["euicc"], now=after) == ("8.1.2", "6.3")
    assert store.verify_euicc(der(chain["eum"]), der(chain["euicc"]), chain["pkid"]).eid == EID


# --- the received DER of a certificate, and what the chain check takes from it ----


def test_split_certificate_matches_cryptography(chain: dict) -> None:
    for cert in (chain["ci"], chain["eum"], chain["euicc"]):
        parts = split_certificate(der(cert))
        assert parts.tbs == cert.tbs_certificate_bytes
        assert parts.issuer == cert.issuer.public_bytes()
        assert parts.subject == cert.subject.public_bytes()
        assert parts.subject_public_key_info == cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    good = der(chain["euicc"])
    for bad in (good + b"\x00", good[:-1], b"\x30\x00", b"\x31\x03\x30\x01\x00", b"",
                b"\x30\x05\x30\x03\x02\x01\x01"):
        with pytest.raises(ValueError):
            split_certificate(bad)


def test_euicc_signature_is_checked_over_the_received_tbs(chain: dict) -> None:
    euicc, eum = chain["euicc"], chain["eum"]
    parts, eum_parts = split_certificate(der(euicc)), split_certificate(der(eum))
    check_signed_by(euicc, eum, "eUICC", cert_der=parts, issuer_der=eum_parts)
    tampered = parts._replace(tbs=parts.tbs[:-1] + bytes([parts.tbs[-1] ^ 1]))
    with pytest.raises(ValueError, match="signature"):
        check_signed_by(euicc, eum, "eUICC", cert_der=tampered, issuer_der=eum_parts)
    # other Name bytes: the Names themselves are compared (here: equal, so accepted)
    check_signed_by(euicc, eum, "eUICC", cert_der=parts,
                    issuer_der=eum_parts._replace(subject=b"\x30\x00"))


def test_issuer_name_must_match_the_eum_subject(chain: dict) -> None:
    other_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "someone else")])
    key = ec.generate_private_key(ec.SECP256R1())
    euicc = (
        x509.CertificateBuilder()
        .subject_name(chain["euicc"].subject).issuer_name(other_name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=365))
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            chain["eum_key"].public_key()), critical=False)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.CertificatePolicies([x509.PolicyInformation(ID_RSP_ROLE_EUICC, None)]),
                       critical=True)
        .sign(chain["eum_key"], hashes.SHA256()))
    with pytest.raises(SgpError) as exc:
        chain["store"].verify_euicc(der(chain["eum"]), der(euicc), chain["pkid"])
    assert status(exc) == ("8.1.3", "6.1") and "issuer name" in exc.value.message


def test_remembered_eum_is_still_checked_for_dates_and_its_ci(chain: dict) -> None:
    """The checked EUM path is remembered per EUM and CI: dates count on every call, and the
    same EUM bytes under another CI (or another CI object) are checked afresh."""
    eum, euicc = der(chain["eum"]), der(chain["euicc"])
    chain["store"].verify_euicc(eum, euicc, chain["pkid"])  # remembered now
    later = chain["eum"].not_valid_after_utc + timedelta(days=1)
    assert check(chain, eum, euicc, now=later) == ("8.1.2", "6.3")
    ci2, _ = issue_ci()
    pkid2 = ci2.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    other_store = CertificateStore({pkid2: ci2}, {})
    with pytest.raises(SgpError) as exc:
        other_store.verify_euicc(eum, euicc, pkid2)
    assert status(exc) == ("8.1.2", "6.1")
    # the same CI as a new object (a reloaded store) verifies as before
    same_ci = x509.load_der_x509_certificate(der(chain["ci"]))
    assert CertificateStore({chain["pkid"]: same_ci}, {}).verify_euicc(
        eum, euicc, chain["pkid"]).eid == EID
