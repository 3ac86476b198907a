"""``--tls`` with two SM-DP+ identities side by side: each address gets its own DPtls (SNI).

The data folder is built at test time: a NIST and a brainpool test PKI, each
CI with the identities DP (2.999.10, ``testsmdpplus1.example.com``) and DP2
(2.999.12, ``testsmdpplus2.example.com``), each with its DPtls, named as
SGP.26 names them.  Clients are Python's ``ssl`` (server_hostname, the CIs as
trust root), curl (``--resolve NAME:PORT:127.0.0.1 --cacert``) and the test
LPA (:mod:`smdpp.euicc.client`) over both HTTP front ends.
"""
from __future__ import annotations

import json
import re
import shutil
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from smdpp.euicc.card import SoftEuicc
from smdpp.euicc.client import download
from smdpp.euicc.es9 import Es9Client
from smdpp.pki.files import load_private_key, write_cert, write_key
from smdpp.pki.issue import create_test_pki, issue_dp_certificate
from tests.pysim_layout import DP2_HOSTNAME, DP2_OID, SGP26_OID

from .conftest import RunningServer, start_server
from .flow import ADDRESS
from .test_tls import host_port, run_server

IDENTITIES = ("--smdp-identity", "DP", "--smdp-identity", "DP2")


def add_dp2(certs: Path, suffix: str) -> None:
    """DP2's DPauth, DPpb and DPtls under the CI ``suffix`` (NIST or BRP), as SGP.26 names them."""
    ci = x509.load_der_x509_certificate((certs / "CertificateIssuer" / f"CERT_CI_ECDSA_{suffix}.der").read_bytes())
    ci_key = load_private_key(certs / "CertificateIssuer" / f"SK_CI_ECDSA_{suffix}.pem")
    for role, folder, stem in (("auth", "DPauth", f"S_SM_DP2auth_ECDSA_{suffix}"),
                               ("pb", "DPpb", f"S_SM_DP2pb_ECDSA_{suffix}"),
                               ("tls", "DPtls", f"S_SM_DP2_TLS_{suffix}")):
        cert, key = issue_dp_certificate(ci, ci_key, role, smdp_oid=DP2_OID, hostname=DP2_HOSTNAME)
        write_cert(certs / folder / f"CERT_{stem}.der", cert, pem=role == "tls")
        write_key(certs / folder / f"SK_{stem}.pem", key)


def build_two_identities(base: Path) -> Path:
    """A data folder with DP and DP2 under a NIST and a brainpool CI; ``cis.pem`` holds both CIs."""
    data_dir = base / "data"
    create_test_pki(data_dir / "certs", data_dir / "euicc", curve="nist")
    create_test_pki(base / "brp" / "certs", base / "brp" / "euicc", curve="brainpool")
    for folder in ("CertificateIssuer", "DPauth", "DPpb", "DPtls"):
        for source in (base / "brp" / "certs" / folder).iterdir():
            shutil.copy2(source, data_dir / "certs" / folder / source.name)
    for suffix in ("NIST", "BRP"):
        add_dp2(data_dir / "certs", suffix)
    cis = data_dir / "certs" / "CertificateIssuer"
    (base / "cis.pem").write_text((cis / "CERT_CI_ECDSA_NIST.pem").read_text()
                                  + (cis / "CERT_CI_ECDSA_BRP.pem").read_text())
    return data_dir


def dptls(data_dir: Path, stem: str) -> bytes:
    """The DER of ``certs/DPtls/CERT_<stem>.pem``."""
    cert = x509.load_pem_x509_certificate((data_dir / "certs" / "DPtls" / f"CERT_{stem}.pem").read_bytes())
    return cert.public_bytes(serialization.Encoding.DER)


def presented(url: str, server_name: str | None, cafile: Path, *, brainpool: bool = False) -> bytes:
    """The certificate a handshake gets for ``server_name`` (None: no SNI, nothing verified)."""
    context = ssl.create_default_context(cafile=str(cafile))
    if brainpool:  # TLS 1.2 offering only brainpoolP256r1, as a Brainpool LPA does (SGP.22 2.6.6)
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ecdh_curve("brainpoolP256r1")
    if server_name is None or server_name.startswith("unknown"):
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(host_port(url), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


@pytest.fixture(scope="module")
def two_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_two_identities(tmp_path_factory.mktemp("sni"))


@pytest.fixture(scope="module", params=["smdpp", "klein"])
def two_server(request: pytest.FixtureRequest, two_dir: Path) -> Iterator[RunningServer]:
    """``--tls`` with DP at --hostname and DP2 side by side, on either HTTP front end."""
    server = start_server(two_dir, "--tls", "--http", request.param, *IDENTITIES)
    yield server
    server.stop()


def test_each_address_gets_its_own_dptls_per_curve(two_server: RunningServer, two_dir: Path) -> None:
    cas = two_dir.parent / "cis.pem"
    log = two_server.log()
    assert "chosen per handshake by server name (SNI), then by curve" in log
    assert f"{ADDRESS}: " in log and f"{DP2_HOSTNAME}: " in log
    url = two_server.url
    assert presented(url, ADDRESS, cas) == dptls(two_dir, "S_SM_DP_TLS_NIST")
    assert presented(url, DP2_HOSTNAME, cas) == dptls(two_dir, "S_SM_DP2_TLS_NIST")
    assert presented(url, DP2_HOSTNAME.upper(), cas) == dptls(two_dir, "S_SM_DP2_TLS_NIST")
    # Within an address the curve the client can verify still decides.
    assert presented(url, DP2_HOSTNAME, cas, brainpool=True) == dptls(two_dir, "S_SM_DP2_TLS_BRP")
    assert presented(url, ADDRESS, cas, brainpool=True) == dptls(two_dir, "S_SM_DP_TLS_BRP")


def test_no_or_unknown_server_name_gets_the_default_address(two_server: RunningServer, two_dir: Path) -> None:
    cas = two_dir.parent / "cis.pem"
    assert presented(two_server.url, None, cas) == dptls(two_dir, "S_SM_DP_TLS_NIST")
    two_server.wait_for_log(f"TLS: no server name (SNI) from 127.0.0.1: presenting the DPtls of {ADDRESS}")
    long_name = "unknown-" + "x" * 55 + "." + "y" * 60 + ".example.com"  # longer than a log line takes
    assert presented(two_server.url, long_name, cas) == dptls(two_dir, "S_SM_DP_TLS_NIST")
    line = next(line for line in two_server.wait_for_log("named by no DPtls").splitlines()
                if "named by no DPtls" in line)
    assert "'unknown-xxxx" in line and "...'" in line and long_name not in line  # cut short


def test_curl_verifies_each_name(two_server: RunningServer, two_dir: Path) -> None:
    """curl, another TLS client, with --resolve: the certificate verifies for the name asked."""
    if shutil.which("curl") is None:
        pytest.fail("curl is missing (.ci/run installs it)")
    _, port = host_port(two_server.url)
    cas = two_dir.parent / "cis.pem"
    for name in (ADDRESS, DP2_HOSTNAME):
        run = subprocess.run(
            ["curl", "-sS", "-v", "--resolve", f"{name}:{port}:127.0.0.1", "--cacert", str(cas),
             "-H", "Content-Type: application/json", "-H", "X-Admin-Protocol: gsma/rsp/v2.5.0",
             "--data", json.dumps({"euiccChallenge": "AAAAAAAAAAAAAAAAAAAAAA==", "euiccInfo1": "",
                                   "smdpAddress": name}),
             f"https://{name}:{port}/gsma/rsp2/es9plus/initiateAuthentication"],
            capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert re.search(rf"subject: .*CN ?= ?{re.escape(name)}", run.stderr), run.stderr
        assert "SSL certificate verify ok" in run.stderr
        assert json.loads(run.stdout)["header"]["functionExecutionStatus"]["status"] == "Failed"  # bad euiccInfo1


def test_download_through_each_address(two_server: RunningServer, two_dir: Path) -> None:
    """The test LPA in TLS mode, verifying each address's name, downloads through both identities."""
    cas = str(two_dir.parent / "cis.pem")
    for address, oid in ((ADDRESS, SGP26_OID), (DP2_HOSTNAME, DP2_OID)):
        for euicc_dir in (two_dir / "euicc", two_dir.parent / "brp" / "euicc"):
            context = ssl.create_default_context(cafile=cas)
            if "brp" in euicc_dir.parts:  # a Brainpool LPA: TLS 1.2 with brainpoolP256r1
                context.maximum_version = ssl.TLSVersion.TLSv1_2
                context.set_ecdh_curve("brainpoolP256r1")
            with Es9Client(two_server.url, tls_server_name=address, ssl_context=context) as client:
                result = download(client, SoftEuicc.from_identity_dir(euicc_dir), smdp_address=address,
                                  matching_id="SMDPP-TEST-1", smdp_oid=oid)
            assert result.upp == (two_dir / "upp" / "SMDPP-TEST-1.der").read_bytes()
            assert result.notification_sent, result.notification_error


# --- refusals at start-up --------------------------------------------------------


def _refusal(data_dir: Path, *extra: str) -> str:
    run = run_server(data_dir, "--tls", *extra)
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    refusal = [line for line in out.splitlines() if "cannot start" in line]
    assert len(refusal) == 1 and "serving ES9+" not in out, out
    return refusal[0]


def test_identity_without_a_dptls_for_its_address_refuses(two_dir: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(two_dir, data_dir)
    line = _refusal(data_dir, "--smdp-identity", "DP", "--smdp-identity", "DP2=lab.example.org")
    assert "SM-DP+ DP2 (2.999.12) is served at lab.example.org" in line
    assert f"CERT_S_SM_DP2_TLS_NIST.pem names {DP2_HOSTNAME}" in line and "--smdp-identity NAME=ADDRESS" in line
    # The default identity's address (--hostname) needs one too.
    line = _refusal(data_dir, *IDENTITIES, "--hostname", "smdp.example.org")
    assert "SM-DP+ DP (2.999.10) is served at smdp.example.org" in line
    # Without --tls the addresses need no DPtls.
    server = start_server(data_dir, "--smdp-identity", "DP", "--smdp-identity", "DP2=lab.example.org")
    try:
        assert server.url.startswith("http://")
    finally:
        server.stop()
