"""A certs folder laid out like pySim's (SGP.26 v3): what is skipped, which identity is served, what refuses."""
from __future__ import annotations

import logging
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from smdpp.pki.folder import looks_like_der_certificate
from smdpp.pki.identities import label_of
from smdpp.pki.issue import issue_ci, issue_dp_certificate
from smdpp.pki.store import CertificateStore
from tests.pysim_layout import DP2_HOSTNAME, DP2_OID, SGP26_OID, PysimLayout, write_dp

BRP_AUTH = "S_SM_DPauth_ECDSA_BRP"


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _pkid(ci: x509.Certificate) -> bytes:
    return ci.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def _auth_cert(store: CertificateStore, ci: x509.Certificate) -> bytes:
    return store.credentials(_pkid(ci)).auth_cert_der


def test_pysim_layout_loads_with_one_line_per_skipped_file(pysim_layout: PysimLayout,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="smdpp.pki"):
        store = CertificateStore.load(pysim_layout.certs)
    certs = pysim_layout.certs
    assert _auth_cert(store, pysim_layout.ci("NIST")) == \
        (certs / "DPauth" / "CERT_S_SM_DPauth_ECDSA_NIST.der").read_bytes()
    assert _auth_cert(store, pysim_layout.ci("BRP")) == (certs / "DPauth" / f"CERT_{BRP_AUTH}.der").read_bytes()
    assert {store.credentials(p).smdp_oid for p in store.credential_pkids} == {SGP26_OID}
    messages = [r.getMessage() for r in caplog.records]
    for skipped in (f"{certs / 'DPauth' / 'data_sig.der'}: neither",
                    f"{certs / 'DPtls' / 'CERT_S_SM_DP2_TLS.csr.cnf'}: neither",
                    f"{certs / 'CertificateIssuer' / 'README'}: neither",
                    f"{certs / 'CertificateIssuer' / 'CI-csr.cnf'}: neither",
                    f"{certs / 'DPtls' / 'CERT_S_SM_DP2_TLS.ext.cnf'}: neither",
                    f"folder {certs / 'DPtls' / 'Old_TLS_Validity'}: only the files"):
        assert len([m for m in messages if m.startswith(f"skipping {skipped}")]) == 1, skipped
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    listed = [m for m in messages if m.startswith("SM-DP+ identities under CI")]
    assert sorted(listed) == sorted([
        f"SM-DP+ identities under CI {_pkid(pysim_layout.ci('BRP')).hex()}: "
        "DP (2.999.10), DP2 (2.999.12); served: DP (2.999.10)",
        f"SM-DP+ identities under CI {_pkid(pysim_layout.ci('NIST')).hex()}: "
        "DP (2.999.10); served: DP (2.999.10)"])
    # The DPtls of DP2 belongs to an identity not served: only the SGP.26 DP TLS is offered.
    assert [c.cert_path.name for c in store.tls_all] == ["CERT_S_SM_DP_TLS_NIST.pem"]


@pytest.mark.parametrize("choice", ["DP2", "dp2", DP2_OID])
def test_smdp_identity_selects_the_second_identity(pysim_layout: PysimLayout, choice: str) -> None:
    store = CertificateStore.load(pysim_layout.certs, smdp_identity=choice)
    (pkid,) = store.credential_pkids  # the SGP.26 NIST CI has no DP2
    creds = store.credentials(pkid)
    assert (creds.smdp_oid, creds.label, creds.curve) == (DP2_OID, "DP2", "brainpoolP256r1")
    assert creds.auth_cert_der == (pysim_layout.certs / "DPauth" / "CERT_S_SM_DP2auth_ECDSA_BRP.der").read_bytes()
    assert creds.pb_cert_der == (pysim_layout.certs / "DPpb" / "CERT_S_SM_DP2pb_ECDSA_BRP.der").read_bytes()
    assert [c.cert_path.name for c in store.tls_all] == ["CERT_S_SM_DP2_TLS.pem"]


def test_unknown_smdp_identity_names_those_found(pysim_layout: PysimLayout) -> None:
    with pytest.raises(ValueError, match=r"no SM-DP\+ identity DP9 in DPauth/ \(found: .*DP2 \(2\.999\.12\)"):
        CertificateStore.load(pysim_layout.certs, smdp_identity="DP9")


@pytest.fixture
def layout(pysim_layout: PysimLayout, tmp_path: Path) -> PysimLayout:
    """A copy of the layout to change."""
    return pysim_layout.copy_to(tmp_path)


def _expired(layout: PysimLayout, role: str, oid: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    start = datetime(2020, 1, 1, tzinfo=timezone.utc)
    return issue_dp_certificate(layout.ci("BRP"), layout.ci_key(), role, smdp_oid=oid, not_before=start,
                                not_after=datetime(2021, 1, 1, tzinfo=timezone.utc))


def test_broken_certificate_is_refused_naming_it(layout: PysimLayout) -> None:
    auth = layout.certs / "DPauth" / f"CERT_{BRP_AUTH}.der"
    auth.write_bytes(auth.read_bytes()[:-20])
    with pytest.raises(ValueError, match=rf"{BRP_AUTH}\.der: not a valid certificate"):
        CertificateStore.load(layout.certs)
    auth.write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(ValueError, match=rf"{BRP_AUTH}\.der: not a valid certificate"):
        CertificateStore.load(layout.certs)
    with pytest.raises(ValueError, match=rf"{BRP_AUTH}\.der: not a valid certificate"):
        CertificateStore.load(layout.certs, smdp_identity=SGP26_OID)  # an OID: any broken one may be it
    ci = layout.certs / "CertificateIssuer" / "CERT_CI_ECDSA_BRP.der"
    ci.write_bytes(ci.read_bytes()[:-1])
    with pytest.raises(ValueError, match=r"CERT_CI_ECDSA_BRP\.der: not a valid certificate"):
        CertificateStore.load(layout.certs, smdp_identity="DP2")


def test_broken_certificate_of_an_identity_not_served_is_logged(layout: PysimLayout,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """A broken file cannot say whose it is: its SGP.26 name does (DP2, DP4 when DP is served)."""
    dp2 = layout.certs / "DPauth" / "CERT_S_SM_DP2auth_ECDSA_BRP.der"
    dp2.write_bytes(dp2.read_bytes()[:-20])
    dp4_tls = layout.certs / "DPtls" / "CERT_S_SM_DP4_TLS.der"
    dp4_tls.write_bytes(dp2.read_bytes())
    with caplog.at_level(logging.WARNING, logger="smdpp.pki"):
        store = CertificateStore.load(layout.certs)
    assert len(store.credential_pkids) == 2
    for path in (dp2, dp4_tls):
        assert f"skipping {path}: not a valid certificate (not one that is served)" in caplog.text
    with pytest.raises(ValueError, match=r"DP2auth_ECDSA_BRP\.der: not a valid certificate"):
        CertificateStore.load(layout.certs, smdp_identity="DP2")
    (layout.certs / "DPtls" / "CERT_S_SM_DP_TLS_BRP.der").write_bytes(dp2.read_bytes())
    with pytest.raises(ValueError, match=r"CERT_S_SM_DP_TLS_BRP\.der: not a valid certificate"):
        CertificateStore.load(layout.certs)


def test_expired_certificate_refused_only_if_served(layout: PysimLayout,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    write_dp(layout.certs / "DPauth", "S_SM_DP2auth_ECDSA_BRP", *_expired(layout, "auth", DP2_OID))
    assert len(CertificateStore.load(layout.certs).credential_pkids) == 2  # DP2 is not served
    with pytest.raises(ValueError, match=r"DP2auth_ECDSA_BRP\.der: SM-DP\+ auth certificate expired on 2021-01-01"):
        CertificateStore.load(layout.certs, smdp_identity="DP2")
    write_dp(layout.certs / "DPpb", "S_SM_DPpb_ECDSA_BRP", *_expired(layout, "pb", SGP26_OID))
    with pytest.raises(ValueError, match=r"DPpb_ECDSA_BRP\.der: SM-DP\+ pb certificate expired on 2021-01-01"):
        CertificateStore.load(layout.certs)


def test_certificate_of_the_wrong_role_is_refused(layout: PysimLayout) -> None:
    # The DPpb certificate and key under the DPauth name.
    for prefix, suffix in (("CERT", "der"), ("SK", "pem")):
        shutil.copy(layout.certs / "DPpb" / f"{prefix}_S_SM_DPpb_ECDSA_BRP.{suffix}",
                    layout.certs / "DPauth" / f"{prefix}_{BRP_AUTH}.{suffix}")
    with pytest.raises(ValueError, match=rf"{BRP_AUTH}\.der: .*lacks certificate policy 2\.23\.146\.1\.2\.1\.4"):
        CertificateStore.load(layout.certs)


def test_certificate_of_no_loaded_ci_is_refused_if_served(layout: PysimLayout,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    other_ci, other_key = issue_ci(curve="brainpool")
    write_dp(layout.certs / "DPauth", "S_SM_DP2auth_ECDSA_BRP",
             *issue_dp_certificate(other_ci, other_key, "auth", smdp_oid=DP2_OID))
    with caplog.at_level(logging.WARNING, logger="smdpp.pki"):
        CertificateStore.load(layout.certs)
    assert "DP2auth_ECDSA_BRP.der: not issued by any CI in CertificateIssuer/" in caplog.text
    with pytest.raises(ValueError, match=r"DP2auth_ECDSA_BRP\.der: not issued by any CI"):
        CertificateStore.load(layout.certs, smdp_identity="DP2")
    write_dp(layout.certs / "DPauth", BRP_AUTH, *issue_dp_certificate(other_ci, other_key, "auth"))
    with pytest.raises(ValueError, match=rf"{BRP_AUTH}\.der: not issued by any CI"):
        CertificateStore.load(layout.certs)


def test_certificate_not_matching_its_key_is_refused(layout: PysimLayout) -> None:
    key = ec.generate_private_key(ec.BrainpoolP256R1())
    (layout.certs / "DPauth" / f"SK_{BRP_AUTH}.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    with pytest.raises(ValueError, match=rf"{BRP_AUTH}\.der: no private key \(SK_\*\.pem\)"):
        CertificateStore.load(layout.certs)
    (layout.certs / "DPauth" / f"SK_{BRP_AUTH}.pem").write_text("-----BEGIN EC PRIVATE KEY-----\nAA\n"
                                                               "-----END EC PRIVATE KEY-----\n")
    with pytest.raises(ValueError, match=rf"no private key .*unreadable: .*SK_{BRP_AUTH}\.pem"):
        CertificateStore.load(layout.certs)


def test_several_identities_and_none_with_the_default_name(layout: PysimLayout) -> None:
    for folder, old, new in (("DPauth", "DPauth", "DP3auth"), ("DPpb", "DPpb", "DP3pb")):
        for path in (layout.certs / folder).glob(f"*_S_SM_{old}_ECDSA_BRP.*"):
            path.rename(path.with_name(path.name.replace(old, new)))
    with pytest.raises(ValueError, match=r"several SM-DP\+ identities under CI \w+ \(DP2 \(2\.999\.12\), "
                                         r"DP3 \(2\.999\.10\)\) .*choose one with --smdp-identity"):
        CertificateStore.load(layout.certs)
    store = CertificateStore.load(layout.certs, smdp_identity="DP3")
    assert [store.credentials(p).label for p in store.credential_pkids] == ["DP3"]
    store = CertificateStore.load(layout.certs, smdp_identity=SGP26_OID)  # by OID: under both CIs
    assert {store.credentials(p).label for p in store.credential_pkids} == {"DP3", "DP"}


def test_what_looks_like_a_certificate(pysim_layout: PysimLayout) -> None:
    cert = (pysim_layout.certs / "DPauth" / "CERT_S_SM_DPauth_ECDSA_NIST.der").read_bytes()
    assert looks_like_der_certificate(cert) and looks_like_der_certificate(cert[:40])
    signature = (pysim_layout.certs / "DPauth" / "data_sig.der").read_bytes()
    assert signature[0] == 0x30 and not looks_like_der_certificate(signature)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])).sign(key, hashes.SHA256()))
    assert not looks_like_der_certificate(csr.public_bytes(serialization.Encoding.DER))
    for data in (b"", b"\x30", b"\x30\x80\x30\x80", b"\x30\x84\x00\x00\x00\x10", b"README\n"):
        assert not looks_like_der_certificate(data), data


def test_labels_from_sgp26_file_names() -> None:
    names = {"CERT_S_SM_DPauth_ECDSA_NIST.der": "DP", "SK_S_SM_DP2auth_ECDSA_BRP.pem": "DP2",
             "CERT_S_SM_DPpb_ECDSA_NIST.der": "DP", "CERT_S_SM_DP8pb_ECDSA_NIST.der": "DP8",
             "CERT_S_SM_DP4_TLS.der": "DP4", "CERT_S_SM_DP_TLS_NIST.pem": "DP", "data_sig.der": None,
             "CERT_CI_ECDSA_NIST.der": None, "dpauth.der": None}
    assert {name: label_of(Path(name)) for name in names} == names


def test_identity_side_by_side_at_its_own_address(layout: PysimLayout) -> None:
    store = CertificateStore.load(layout.certs, side_by_side=[("DP2", "Lab.Example.org")])
    brp, nist = _pkid(layout.ci("BRP")), _pkid(layout.ci("NIST"))
    assert store.serves_side_by_side("lab.example.org") and not store.serves_side_by_side(DP2_HOSTNAME)
    assert store.credentials(brp).smdp_oid == SGP26_OID  # the default identity, at --hostname
    assert store.credentials(brp, "lab.example.org").smdp_oid == DP2_OID
    assert store.select_ci([nist, brp], [nist, brp]) == nist
    assert store.select_ci([nist, brp], [nist, brp], "lab.example.org") == brp  # no DP2 under NIST
    assert store.credentials(brp, "other.example").smdp_oid == SGP26_OID
    # Without an address, the DPtls of that identity names it; without one either, it is refused.
    store = CertificateStore.load(layout.certs, side_by_side=[("DP2", None)])
    assert list(store.side_by_side) == [DP2_HOSTNAME]
    with pytest.raises(ValueError, match=f"SM-DP\\+ identity {SGP26_OID}: address {DP2_HOSTNAME} is already served"):
        CertificateStore.load(layout.certs, side_by_side=[("DP2", None), (SGP26_OID, DP2_HOSTNAME)])
    for path in (layout.certs / "DPtls").glob("*DP2_TLS*"):
        path.unlink()
    with pytest.raises(ValueError, match=r"SM-DP\+ identity DP2: no DPtls with a dNSName names its address; "
                                         r"give it as --smdp-identity DP2=ADDRESS"):
        CertificateStore.load(layout.certs, side_by_side=[("DP2", None)])


def test_smdp_identity_command_line() -> None:
    from smdpp.cli import parse_args

    args = parse_args(["--smdp-identity", "DP2=lab.example.org", "--smdp-identity", "DP",
                       "--smdp-identity", "DP4"])
    assert (args.default_identity, args.side_by_side) == ("DP", [("DP2", "lab.example.org"), ("DP4", None)])
    args = parse_args([])
    assert (args.default_identity, args.side_by_side) == (None, [])


# --- a PEM file holding a certificate and its key ----------------------------------


def _combine(cert_der: Path, key: Path, *, key_first: bool = False) -> Path:
    """Replace ``cert_der`` and ``key`` by one PEM file with both, as ``cat cert.pem key.pem`` makes."""
    cert_pem = x509.load_der_x509_certificate(cert_der.read_bytes()).public_bytes(serialization.Encoding.PEM)
    parts = [cert_pem, key.read_bytes()]
    combined = cert_der.with_suffix(".pem")
    combined.write_bytes(b"".join(reversed(parts) if key_first else parts))
    cert_der.unlink()
    key.unlink()
    return combined


def test_pem_with_certificate_and_key_is_read_for_both(tmp_path: Path) -> None:
    from smdpp.pki.issue import create_test_pki
    certs = tmp_path / "certs"
    create_test_pki(certs, tmp_path / "euicc")
    expected = CertificateStore.load(certs)
    (pkid,) = expected.credential_pkids
    auth = _combine(certs / "DPauth" / "CERT_S_SM_DPauth_ECDSA_NIST.der",
                    certs / "DPauth" / "SK_S_SM_DPauth_ECDSA_NIST.pem")
    _combine(certs / "DPpb" / "CERT_S_SM_DPpb_ECDSA_NIST.der", certs / "DPpb" / "SK_S_SM_DPpb_ECDSA_NIST.pem",
             key_first=True)
    (certs / "DPtls" / "CERT_S_SM_DP_TLS_NIST.pem").unlink()
    tls = _combine(certs / "DPtls" / "CERT_S_SM_DP_TLS_NIST.der", certs / "DPtls" / "SK_S_SM_DP_TLS_NIST.pem")
    assert "PRIVATE KEY" in auth.read_text() and "CERTIFICATE" in auth.read_text()
    store = CertificateStore.load(certs)
    creds, before = store.credentials(pkid), expected.credentials(pkid)
    assert (creds.auth_cert_der, creds.pb_cert_der) == (before.auth_cert_der, before.pb_cert_der)
    for ours, theirs in ((creds.auth_key, before.auth_key), (creds.pb_key, before.pb_key)):
        assert ours.private_numbers() == theirs.private_numbers()
    (credential,) = store.check_tls()
    assert (credential.cert_path, credential.key_path) == (tls, tls)
    # The TLS layer reads the key from that file too.
    from smdpp.http.tls import DptlsServer
    assert DptlsServer.from_credentials(store.check_tls()).credentials == (credential,)


@pytest.mark.parametrize("folder, stem", [("DPauth", "S_SM_DPauth_ECDSA_NIST"), ("DPtls", "S_SM_DP_TLS_NIST")])
def test_pem_with_a_key_not_of_its_certificate_is_refused(tmp_path: Path, folder: str, stem: str) -> None:
    from smdpp.pki.issue import create_test_pki
    certs = tmp_path / "certs"
    create_test_pki(certs, tmp_path / "euicc")
    cert = x509.load_der_x509_certificate((certs / folder / f"CERT_{stem}.der").read_bytes())
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    combined = certs / folder / f"CERT_{stem}_WITH_KEY.pem"
    # Even with the right SK_*.pem beside it: the file says the key is this certificate's.
    combined.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + other)
    for path in (certs / folder).glob(f"CERT_{stem}.*"):
        path.unlink()
    message = re.escape(f"{combined}: the private key in this file does not match its certificate")
    with pytest.raises(ValueError, match=message):
        CertificateStore.load(certs).check_tls()


def test_status_page_and_metrics_list_the_side_by_side_identitys_certificates(layout: PysimLayout) -> None:
    from smdpp.admin.metrics import certificates
    from smdpp.pki.certificate import registered_ids

    def roles_of(store: CertificateStore) -> set[tuple[str, str]]:
        """(role, SM-DP+ OID) of every certificate listed (CIs name no OID)."""
        return {(role, oid) for role, cert in certificates(store) for oid in registered_ids(cert)}

    alone = roles_of(CertificateStore.load(layout.certs))
    both = roles_of(CertificateStore.load(layout.certs, side_by_side=[("DP2", "lab.example.org")]))
    dp2 = {("DPauth", DP2_OID), ("DPpb", DP2_OID), ("DPtls", DP2_OID)}
    assert not dp2 & alone and dp2 <= both
    assert {("DPauth", SGP26_OID), ("DPpb", SGP26_OID), ("DPtls", SGP26_OID)} <= alone & both
