"""smdpp.pki.crl: loading and verifying CRLs, revocation in the SGP.22 5.6.3 checks, reload, revoke."""
from __future__ import annotations

import shutil
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from smdpp.errors import SgpError
from smdpp.pki import cli
from smdpp.pki.crl import CrlError, CrlSet, issue_crl, revoke
from smdpp.pki.issue import create_test_pki, issue_euicc_identity, issue_eum, issue_sub_ca
from smdpp.pki.store import CertificateStore

EID = "89049032123451234512345678901235"
NOW = datetime.now(timezone.utc).replace(microsecond=0)


def der(obj: x509.Certificate | x509.CertificateRevocationList) -> bytes:
    return obj.public_bytes(serialization.Encoding.DER)


def pem(obj: x509.Certificate | x509.CertificateRevocationList) -> bytes:
    return obj.public_bytes(serialization.Encoding.PEM)


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_der_x509_certificate(path.read_bytes())


def load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


class Pki:
    """A test PKI on disk (certs/, euicc/, crl/) and its keys in memory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.certs, self.euicc, self.crl = root / "certs", root / "euicc", root / "crl"
        create_test_pki(self.certs, self.euicc)
        ci_dir = self.certs / "CertificateIssuer"
        self.ci = load_cert(ci_dir / "CERT_CI_ECDSA_NIST.der")
        self.ci_key = load_key(ci_dir / "SK_CI_ECDSA_NIST.pem")
        self.eum = load_cert(self.euicc / "eum_cert.der")
        self.eum_key = load_key(self.euicc / "eum_key.pem")
        self.euicc_cert = load_cert(self.euicc / "euicc_cert.der")
        self.pkid = self.ci.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        self.crl.mkdir()

    def cis(self) -> dict[bytes, x509.Certificate]:
        return {self.pkid: self.ci}

    def store(self) -> CertificateStore:
        return CertificateStore.load(self.certs, self.crl)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


def status(exc: pytest.ExceptionInfo[SgpError]) -> tuple[str, str]:
    return exc.value.subject_code, exc.value.reason_code


def refused(store: CertificateStore, eum: x509.Certificate, euicc: x509.Certificate, **kw) -> tuple[str, str]:
    with pytest.raises(SgpError) as exc:
        store.verify_euicc(der(eum), der(euicc), None, **kw)
    return status(exc)


# --- revocation in the eUICC chain (SGP.22 5.6.3) ------------------------------


def test_revoked_euicc_and_eum(pki: Pki) -> None:
    other_eum, other_key = issue_eum(pki.ci, pki.ci_key)
    other_euicc, _ = issue_euicc_identity(other_eum, other_key, EID)
    store = pki.store()
    assert store.verify_euicc(der(pki.eum), der(pki.euicc_cert), None).eid == EID
    assert store.verify_euicc(der(other_eum), der(other_euicc), None).eid == EID

    # The EUM revokes our eUICC; the CI revokes the other EUM.
    (pki.crl / "eum.crl").write_bytes(der(issue_crl(
        pki.eum, pki.eum_key, [(pki.euicc_cert.serial_number, NOW, x509.ReasonFlags.key_compromise)])))
    (pki.crl / "eum-issuer.pem").write_bytes(pem(pki.eum))
    (pki.crl / "ci.pem").write_bytes(pem(issue_crl(pki.ci, pki.ci_key, [(other_eum.serial_number, NOW, None)])))
    store = pki.store()
    assert len(store.crls) == 2
    assert refused(store, pki.eum, pki.euicc_cert) == ("8.1.3", "6.1")
    assert refused(store, other_eum, other_euicc) == ("8.1.2", "6.1")
    with pytest.raises(SgpError, match="revoked since .*keyCompromise.*eum.crl"):
        store.verify_euicc(der(pki.eum), der(pki.euicc_cert), pki.pkid)
    # Another eUICC of the same EUM is not on the list.
    fresh, _ = issue_euicc_identity(pki.eum, pki.eum_key, EID)
    assert store.verify_euicc(der(pki.eum), der(fresh), None).certificate == fresh


def test_revocation_needs_the_issuer_to_match(pki: Pki) -> None:
    """A CRL lists serials of its own issuer only: the same serial under another EUM is not revoked."""
    other_eum, other_key = issue_eum(pki.ci, pki.ci_key)
    twin, _ = issue_euicc_identity(other_eum, other_key, EID)
    crl = issue_crl(pki.eum, pki.eum_key, [(twin.serial_number, NOW, None)])
    (pki.crl / "eum.crl").write_bytes(der(crl))
    (pki.crl / "eum-issuer.der").write_bytes(der(pki.eum))
    crls = CrlSet.load(pki.crl, pki.cis())
    assert crls.revocation(twin) is None
    assert crls.revocation(other_eum) is None
    # Same serial and the EUM's key identifier, but another issuer name: not this CRL's certificate.
    key = ec.generate_private_key(ec.SECP256R1())
    odd = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "odd")]))
        .issuer_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "not the EUM")]))
        .public_key(key.public_key()).serial_number(twin.serial_number)
        .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(pki.eum_key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    assert crls.revocation(odd) is None


def test_remove_from_crl_entry_is_not_a_revocation(pki: Pki) -> None:
    crl = issue_crl(pki.eum, pki.eum_key, [(pki.euicc_cert.serial_number, NOW, x509.ReasonFlags.remove_from_crl)])
    (pki.crl / "eum.crl").write_bytes(der(crl))
    (pki.crl / "eum-issuer.der").write_bytes(der(pki.eum))
    assert CrlSet.load(pki.crl, pki.cis()).revocation(pki.euicc_cert) is None


def test_revoked_eum_subca(pki: Pki) -> None:
    """An EUM SubCA (SGP.22 v3 Variant A) revoked by its EUM's CRL refuses its eUICCs with 8.1.2/6.1."""
    eum, eum_key = issue_eum(pki.ci, pki.ci_key, path_length=1)
    sub, sub_key = issue_sub_ca(eum, eum_key, "eum-subca")
    euicc, _ = issue_euicc_identity(sub, sub_key, EID)
    store = pki.store()
    assert store.verify_euicc(der(sub), der(euicc), None, other_certs=[der(eum)]).eid == EID
    revoke(pki.crl, eum, eum_key, [sub.serial_number])
    store.reload_crls()
    with pytest.raises(SgpError, match="EUM SubCA certificate .* is revoked") as exc:
        store.verify_euicc(der(sub), der(euicc), None, other_certs=[der(eum)])
    assert status(exc) == ("8.1.2", "6.1")


# --- what makes a CRL unusable: reported by file name ----------------------------


def problems(pki: Pki, now: datetime | None = None) -> list[str]:
    with pytest.raises(CrlError) as exc:
        CrlSet.load(pki.crl, pki.cis(), now)
    return exc.value.problems


def test_bad_signature_is_reported(pki: Pki) -> None:
    crl = issue_crl(pki.ci, pki.ci_key, [(1234, NOW, None)])
    raw = bytearray(der(crl))
    raw[-3] ^= 0x01  # inside the signature value
    (pki.crl / "tampered.crl").write_bytes(bytes(raw))
    # Signed by another key that claims the CI's name and key identifier.
    impostor = ec.generate_private_key(ec.SECP256R1())
    (pki.crl / "impostor.crl").write_bytes(der(issue_crl(pki.ci, impostor, [(1, NOW, None)])))
    found = problems(pki)
    assert len(found) == 2
    assert any("impostor.crl" in p and "signature does not verify" in p for p in found)
    assert any("tampered.crl" in p for p in found)


def test_stale_and_future_crls_are_reported(pki: Pki) -> None:
    old = issue_crl(pki.ci, pki.ci_key, [], this_update=NOW - timedelta(days=40), next_update=NOW - timedelta(days=10))
    (pki.crl / "old.crl").write_bytes(der(old))
    assert problems(pki) == [f"{pki.crl / 'old.crl'}: CRL is past its nextUpdate "
                             f"{old.next_update_utc:%Y-%m-%d %H:%M}; get a current one from its issuer"]
    # The same CRL was fine while it was current.
    assert len(CrlSet.load(pki.crl, pki.cis(), NOW - timedelta(days=20))) == 1
    (pki.crl / "old.crl").unlink()
    future = issue_crl(pki.ci, pki.ci_key, [], this_update=NOW + timedelta(days=2))
    (pki.crl / "future.crl").write_bytes(der(future))
    assert "not valid yet" in problems(pki)[0]


def test_crl_without_issuer_certificate_or_from_a_stranger(pki: Pki) -> None:
    (pki.crl / "eum.crl").write_bytes(der(issue_crl(pki.eum, pki.eum_key, [])))
    assert "no CI or issuer certificate" in problems(pki)[0]
    # An "issuer certificate" that no loaded CI signed does not help.
    stranger = pki.root / "stranger"
    create_test_pki(stranger / "certs", stranger / "euicc")
    (pki.crl / "eum.crl").write_bytes(der(issue_crl(load_cert(stranger / "euicc" / "eum_cert.der"),
                                                    load_key(stranger / "euicc" / "eum_key.pem"), [])))
    shutil.copy(stranger / "euicc" / "eum_cert.der", pki.crl / "stranger-eum.der")
    found = problems(pki)
    assert any("stranger-eum.der: issuer certificate does not chain to a loaded CI" in p for p in found)
    assert any("eum.crl: no CI or issuer certificate" in p for p in found)


def test_issuer_without_crl_sign(pki: Pki) -> None:
    """RFC 5280 6.3.3: the CRL issuer's keyUsage must allow cRLSign."""
    ski = x509.SubjectKeyIdentifier.from_public_key(pki.eum_key.public_key())
    no_crl_sign = (
        x509.CertificateBuilder().subject_name(pki.eum.subject).issuer_name(pki.ci.subject)
        .public_key(pki.eum_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1)).not_valid_after(NOW + timedelta(days=30))
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(pki.ci_key.public_key()), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, False, False, False), critical=True)
        .sign(pki.ci_key, hashes.SHA256())
    )
    (pki.crl / "eum.der").write_bytes(der(no_crl_sign))
    (pki.crl / "eum.crl").write_bytes(der(issue_crl(no_crl_sign, pki.eum_key, [])))
    assert problems(pki) == [f"{pki.crl / 'eum.crl'}: issuer certificate keyUsage lacks cRLSign"]


def test_one_crl_per_issuer(pki: Pki) -> None:
    first = issue_crl(pki.ci, pki.ci_key, [(1, NOW, None)], number=1)
    (pki.crl / "a.crl").write_bytes(der(first))
    (pki.crl / "a.pem").write_bytes(pem(first))  # the same CRL twice is harmless
    assert len(CrlSet.load(pki.crl, pki.cis())) == 1
    (pki.crl / "b.crl").write_bytes(der(issue_crl(pki.ci, pki.ci_key, [(2, NOW, None)], number=2)))
    assert problems(pki) == [f"{pki.crl / 'b.crl'}: a second CRL of {pki.ci.subject.rfc4514_string()} "
                             "(also a.crl); keep one CRL per issuer"]


def test_unreadable_and_unsupported_files(pki: Pki) -> None:
    (pki.crl / "junk.crl").write_bytes(b"\x30\x03abc")
    (pki.crl / "notes.txt").write_text("ignored: not a CRL file name")
    (pki.crl / ".hidden.crl").write_bytes(b"ignored too")
    delta = (
        x509.CertificateRevocationListBuilder().issuer_name(pki.ci.subject)
        .last_update(NOW - timedelta(minutes=1)).next_update(NOW + timedelta(days=1))
        .add_extension(x509.DeltaCRLIndicator(1), critical=True)
        .sign(pki.ci_key, hashes.SHA256())
    )
    (pki.crl / "delta.crl").write_bytes(der(delta))
    found = problems(pki)
    assert len(found) == 2
    assert any("junk.crl: neither a DER CRL nor a DER certificate" in p for p in found)
    assert any("delta.crl: delta CRLs are not supported" in p for p in found)


def test_missing_folder_means_no_crls(pki: Pki) -> None:
    assert len(CrlSet.load(pki.root / "nowhere", pki.cis())) == 0


# --- the store: start-up and SIGHUP reload -------------------------------------


def test_store_refuses_a_revoked_dp_certificate(pki: Pki) -> None:
    dpauth = load_cert(pki.certs / "DPauth" / "CERT_S_SM_DPauth_ECDSA_NIST.der")
    revoke(pki.crl, pki.ci, pki.ci_key, [dpauth.serial_number])
    with pytest.raises(ValueError, match=r"CERT_S_SM_DPauth_ECDSA_NIST\.der: DPauth certificate is revoked"):
        pki.store()


def test_store_load_reports_a_bad_crl(pki: Pki) -> None:
    impostor = ec.generate_private_key(ec.SECP256R1())
    (pki.crl / "ci.crl").write_bytes(der(issue_crl(pki.ci, impostor, [])))
    with pytest.raises(ValueError, match=r"ci\.crl: CRL signature does not verify"):
        pki.store()


def test_reload_picks_up_new_crls_and_keeps_old_ones_on_error(pki: Pki) -> None:
    store = pki.store()
    assert len(store.crls) == 0
    assert store.verify_euicc(der(pki.eum), der(pki.euicc_cert), None)
    revoke(pki.crl, pki.eum, pki.eum_key, [pki.euicc_cert.serial_number])
    # Not applied before the reload.
    assert store.verify_euicc(der(pki.eum), der(pki.euicc_cert), None)
    assert store.reload_crls() == 1
    assert refused(store, pki.eum, pki.euicc_cert) == ("8.1.3", "6.1")
    (pki.crl / "broken.crl").write_bytes(b"garbage")
    with pytest.raises(CrlError, match="broken.crl"):
        store.reload_crls()
    assert len(store.crls) == 1  # the verified set stays in use
    assert refused(store, pki.eum, pki.euicc_cert) == ("8.1.3", "6.1")


def test_reload_warns_when_our_own_certificate_is_revoked(pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    store = pki.store()
    dppb = load_cert(pki.certs / "DPpb" / "CERT_S_SM_DPpb_ECDSA_NIST.der")
    revoke(pki.crl, pki.ci, pki.ci_key, [dppb.serial_number])
    with caplog.at_level("ERROR"):
        assert store.reload_crls() == 1
    assert "our DPpb certificate" in caplog.text and "revoked" in caplog.text


# --- issuing: revoke() and smdpp-pki revoke --------------------------------------


def test_revoke_merges_entries_and_numbers_the_crl(pki: Pki) -> None:
    path = revoke(pki.crl, pki.eum, pki.eum_key, [11], reason=x509.ReasonFlags.superseded)
    again = revoke(pki.crl, pki.eum, pki.eum_key, [12, 11])
    assert again == path and path.suffix == ".crl"
    crl = x509.load_der_x509_crl(path.read_bytes())
    assert sorted(r.serial_number for r in crl) == [11, 12]
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    entry = crl.get_revoked_certificate_by_serial_number(11)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.superseded
    assert crl.is_signature_valid(pki.eum.public_key())
    # The EUM's certificate went along once, so that the SM-DP+ can verify the CRL.
    issuers = [p for p in pki.crl.iterdir() if p.read_bytes() == der(pki.eum)]
    assert len(issuers) == 1
    assert len(CrlSet.load(pki.crl, pki.cis())) == 1
    with pytest.raises(ValueError, match="does not belong"):
        revoke(pki.crl, pki.eum, pki.ci_key, [13])


def test_smdpp_pki_revoke_command(pki: Pki, capsys: pytest.CaptureFixture[str]) -> None:
    crl_dir = pki.root / "crl2"
    assert cli.main(["revoke", "--issuer-cert", str(pki.euicc / "eum_cert.der"),
                     "--issuer-key", str(pki.euicc / "eum_key.pem"),
                     "--cert", str(pki.euicc / "euicc_cert.der"), "--crl-dir", str(crl_dir),
                     "--reason", "keyCompromise", "--days", "7"]) == 0
    assert f"{pki.euicc_cert.serial_number:x}" in capsys.readouterr().out
    assert stat.S_IMODE(crl_dir.stat().st_mode) == 0o700
    store = CertificateStore.load(pki.certs, crl_dir)
    assert refused(store, pki.eum, pki.euicc_cert) == ("8.1.3", "6.1")
    (crl_file,) = crl_dir.glob("*.crl")
    crl = x509.load_der_x509_crl(crl_file.read_bytes())
    assert crl.next_update_utc - crl.last_update_utc == timedelta(days=7)
    # A certificate of another issuer is not put on this issuer's CRL.
    assert cli.main(["revoke", "--issuer-cert", str(pki.euicc / "eum_cert.der"),
                     "--issuer-key", str(pki.euicc / "eum_key.pem"),
                     "--cert", str(pki.euicc / "eum_cert.der"), "--crl-dir", str(crl_dir)]) == 1
    assert "not issued by" in capsys.readouterr().err
    assert cli.main(["revoke", "--issuer-cert", str(pki.euicc / "eum_cert.der"),
                     "--issuer-key", str(pki.euicc / "eum_key.pem"), "--crl-dir", str(crl_dir)]) == 1
