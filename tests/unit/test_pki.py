"""smdpp.pki: plain ECDSA, EIDs, the test PKI, the certificate store and SGP.22 5.6.3 checks."""
from __future__ import annotations

import shutil
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from smdpp.errors import SgpError
from smdpp.pki import cli
from smdpp.pki.chain import permitted_eids, verify_euicc_chain
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
)
from smdpp.pki.oids import ID_RSP_ROLE_DP_AUTH, ID_RSP_ROLE_EUM
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
        elif path.name.startswith("SK_") or path.name.endswith("_key.pem"):
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
