"""A data folder shaped like pySim's ``smdpp-data``, built at test time.

``certs/`` as SGP.26 v3 ships in pySim: the SGP.26 NIST CI, DPauth, DPpb and
(expired) DPtls from ``../shared/testdata/sgp26`` (linked, never copied into
the repository), plus generated extras under a brainpool CI of ours, with the
SGP.26 file names (``_BRP``): the default identity DP (OID 2.999.10), a second
identity DP2 (OID 2.999.12, ``CERT_S_SM_DP2auth_ECDSA_BRP`` ...), a DP2 TLS
certificate, the files that are neither certificates nor keys (``data_sig.der``,
``*.csr.cnf``, ``*.ext.cnf``, ``README``, ``PK_*`` public keys), an expired TLS
certificate in ``DPtls/Old_TLS_Validity/Expired 2024/`` and a
``SelfSignedOperators/`` folder beside the SGP.26 ones.  The CI key stays outside
``certs/`` (pySim has none); ``eum/`` beside the data folder keeps the EUM and
one brainpool eUICC identity for downloads.

``upp/`` holds the TS.48 profiles of ``../shared/testdata/upp`` under their own
names and copies under other names, so that several files share an ICCID.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from smdpp.pki.files import load_private_key
from smdpp.pki.issue import create_test_pki, issue_dp_certificate

SGP26_OID, DP2_OID = "2.999.10", "2.999.12"
DP2_HOSTNAME = "testsmdpplus2.example.com"
# name of the copy -> the TS.48 file copied (ICCIDs shared with the original)
UPP_COPIES = {
    "TS48V2-SAIP2-1-NOBERTLV": "TS48V2-SAIP2-1-NOBERTLV-UNIQUE",
    "TS48V2-SAIP2-1-NOBERTLV-COPY": "TS48V2-SAIP2-1-NOBERTLV-UNIQUE",
    "TS48V4-SAIP2-3-BERTLV": "TS48V4-SAIP2-3-BERTLV-UNIQUE",
    "TS48V5-SAIP2-1A-NOBERTLV": "TS48V5-SAIP2-1A-NOBERTLV-UNIQUE",
}


@dataclass
class PysimLayout:
    """Where the pieces of the built layout are."""

    root: Path  # the folder a user starts ./osmo-smdpp.py in
    data_dir: Path  # root / "smdpp-data"
    euicc_dir: Path  # a brainpool eUICC identity under the generated CI
    ci_key_path: Path  # the generated brainpool CI's key (outside certs/)
    matching_ids: dict[str, Path]  # every UPP's matchingId -> the file whose bytes it holds

    @property
    def certs(self) -> Path:
        return self.data_dir / "certs"

    def ci(self, suffix: str) -> x509.Certificate:
        path = self.certs / "CertificateIssuer" / f"CERT_CI_ECDSA_{suffix}.der"
        return x509.load_der_x509_certificate(path.read_bytes())

    def ci_key(self) -> ec.EllipticCurvePrivateKey:
        return load_private_key(self.ci_key_path)

    def copy_to(self, root: Path) -> "PysimLayout":
        """The same layout below ``root`` (links to the SGP.26 files stay links), to change."""
        shutil.copytree(self.data_dir, root / "smdpp-data", symlinks=True)
        return replace(self, root=root, data_dir=root / "smdpp-data")


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_dp(folder: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    """``CERT_<stem>.der``, ``SK_<stem>.pem`` and ``PK_<stem>.pem`` as SGP.26 names them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"CERT_{stem}.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    (folder / f"SK_{stem}.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    (folder / f"PK_{stem}.pem").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def build_pysim_layout(root: Path, testdata: Path) -> PysimLayout:
    """Build the layout below ``root`` from ``testdata`` (``../shared/testdata``)."""
    data_dir, sgp26 = root / "smdpp-data", testdata / "sgp26"
    certs = data_dir / "certs"
    for role in ("CertificateIssuer", "DPauth", "DPpb", "DPtls"):
        (certs / role).mkdir(parents=True)
        for source in sorted((sgp26 / role).iterdir()):
            (certs / role / source.name).symlink_to(source.resolve())

    # A brainpool CI of ours with its DP identity, made the way smdpp-pki makes them.
    generated = root / "generated"
    create_test_pki(generated / "certs", root / "eum", curve="brainpool")
    for role in ("CertificateIssuer", "DPauth", "DPpb"):
        for source in sorted((generated / "certs" / role).iterdir()):
            if not source.name.startswith("SK_CI_"):
                shutil.copy(source, certs / role / source.name)
    ci_key_path = generated / "certs" / "CertificateIssuer" / "SK_CI_ECDSA_BRP.pem"
    ci = x509.load_der_x509_certificate(
        (certs / "CertificateIssuer" / "CERT_CI_ECDSA_BRP.der").read_bytes())
    ci_key = load_private_key(ci_key_path)

    # The second identity under the same CI, and its TLS certificate.
    for role, folder, stem in (("auth", "DPauth", "S_SM_DP2auth_ECDSA_BRP"),
                               ("pb", "DPpb", "S_SM_DP2pb_ECDSA_BRP"),
                               ("tls", "DPtls", "S_SM_DP2_TLS")):
        write_dp(certs / folder, stem, *issue_dp_certificate(ci, ci_key, role, smdp_oid=DP2_OID,
                                                            hostname=DP2_HOSTNAME))
    (certs / "DPtls" / "CERT_S_SM_DP2_TLS.pem").write_bytes(
        _pem(x509.load_der_x509_certificate((certs / "DPtls" / "CERT_S_SM_DP2_TLS.der").read_bytes())))

    # What is neither a certificate nor a key, and old certificates in a subfolder.
    signer = load_private_key(certs / "DPauth" / "SK_S_SM_DPauth_ECDSA_BRP.pem")
    (certs / "DPauth" / "data_sig.der").write_bytes(signer.sign(b"data", ec.ECDSA(hashes.SHA256())))
    for cnf in (certs / "DPtls" / "CERT_S_SM_DP2_TLS.csr.cnf", certs / "CertificateIssuer" / "CI-csr.cnf"):
        cnf.write_text("[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = test\n")
    (certs / "DPtls" / "CERT_S_SM_DP2_TLS.ext.cnf").write_text("subjectAltName = RID:2.999.12\n")
    (certs / "SelfSignedOperators").mkdir()  # beside the SGP.26 folders in pySim; not ours to read
    (certs / "SelfSignedOperators" / "TEST_OPERATOR_selfsigned.pem").write_bytes(_pem(ci))
    for folder in (certs, certs / "CertificateIssuer"):
        (folder / "README").write_text("SGP.26 test certificates, see the GSMA document.\n")
    old = certs / "DPtls" / "Old_TLS_Validity" / "Expired 2024"
    start = datetime(2023, 1, 1, tzinfo=timezone.utc)
    expired, expired_key = issue_dp_certificate(ci, ci_key, "tls", not_before=start,
                                                not_after=datetime(2024, 1, 1, tzinfo=timezone.utc))
    write_dp(old, "S_SM_DP_TLS_BRP", expired, expired_key)

    upp = data_dir / "upp"
    upp.mkdir()
    matching_ids: dict[str, Path] = {}
    for source in sorted((testdata / "upp").glob("*.der")):
        shutil.copy(source, upp / source.name)
        matching_ids[source.stem] = source
    for name, original in UPP_COPIES.items():
        shutil.copy(testdata / "upp" / f"{original}.der", upp / f"{name}.der")
        matching_ids[name] = testdata / "upp" / f"{original}.der"
    return PysimLayout(root, data_dir, root / "eum", ci_key_path, matching_ids)
