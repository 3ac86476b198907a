"""Drop-in for osmo-smdpp: a copy of pySim's smdpp-data and osmo-smdpp's command lines, unchanged.

The data folder is built at test time (:mod:`tests.pysim_layout`): the SGP.26
certificates from ``../shared/testdata/sgp26`` beside a brainpool CI of ours
with two SM-DP+ identities (DP, DP2), the files that are neither certificates
nor keys, old TLS certificates in a subfolder, and TS.48 profiles that share
ICCIDs.  Each server is the real ``./osmo-smdpp.py`` over HTTP on 127.0.0.1.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
from cryptography import x509

from smdpp.euicc.card import SoftEuicc
from smdpp.euicc.client import download
from smdpp.euicc.es9 import Es9Client, b64d
from tests.pysim_layout import DP2_HOSTNAME, DP2_OID, SGP26_OID, PysimLayout

from .conftest import REPO, RunningServer, start_server
from .flow import ADDRESS, Flow, assert_failed, assert_ok, check_server_signed1, ci_pkid, initiate_for_cis


@pytest.fixture(scope="module")
def layout(pysim_layout: PysimLayout, tmp_path_factory: pytest.TempPathFactory) -> PysimLayout:
    """This module's own copy (its servers write sessions into it)."""
    return pysim_layout.copy_to(tmp_path_factory.mktemp("dropin"))


@pytest.fixture(scope="module")
def plain(layout: PysimLayout) -> Iterator[RunningServer]:
    """``./osmo-smdpp.py -H 127.0.0.1 -p 0`` started in the folder that holds smdpp-data."""
    server = start_server(layout.data_dir, cwd=layout.root)
    yield server
    server.stop()


def _dpauth(layout: PysimLayout, name: str) -> bytes:
    return (layout.certs / "DPauth" / f"CERT_S_SM_{name}.der").read_bytes()


def test_starts_with_only_h_and_p_and_logs_what_it_skipped(plain: RunningServer,
                                                           layout: PysimLayout) -> None:
    log, certs = plain.log(), Path("smdpp-data", "certs")  # as the user named it: relative
    for line in (f"skipping {certs / 'DPauth' / 'data_sig.der'}: neither a certificate",
                 f"skipping {certs / 'DPtls' / 'CERT_S_SM_DP2_TLS.csr.cnf'}: neither",
                 f"skipping {certs / 'CertificateIssuer' / 'README'}: neither",
                 f"skipping folder {certs / 'DPtls' / 'Old_TLS_Validity'}: only the files"):
        assert log.count(line) == 1, line
    brp, nist = (ci_pkid(layout.ci(suffix)).hex() for suffix in ("BRP", "NIST"))
    assert log.count(f"under CI {brp}: DP (2.999.10), DP2 (2.999.12); served: DP (2.999.10)") == 1
    assert log.count(f"under CI {nist}: DP (2.999.10); served: DP (2.999.10)") == 1
    assert "profiles sharing an ICCID, each served under its own matchingId to any eUICC: " \
           "8949449999999990007 (3: TS48V2-SAIP2-1-NOBERTLV-COPY, TS48V2-SAIP2-1-NOBERTLV-UNIQUE, " \
           "TS48V2-SAIP2-1-NOBERTLV)" in log
    assert "ERROR" not in log and "Traceback" not in log
    assert (layout.data_dir / "sessions").is_dir()  # ./smdpp-data, found from the working folder


def test_every_matching_id_downloads_end_to_end(plain: RunningServer, layout: PysimLayout) -> None:
    """Every UPP, also those sharing an ICCID, to the same EID (a fresh card each: one ICCID per card)."""
    assert len(layout.matching_ids) == 7
    with Es9Client(plain.url) as client:
        for matching_id, source in sorted(layout.matching_ids.items()):
            card = SoftEuicc.from_identity_dir(layout.euicc_dir)
            result = download(client, card, smdp_address=ADDRESS, matching_id=matching_id,
                              smdp_oid=SGP26_OID)
            assert result.upp == source.read_bytes(), matching_id
            assert result.notification_sent, result.notification_error
    assert plain.log().count("ProfileInstallationResult success") == 7


def test_sgp26_ci_is_answered_with_the_sgp26_dpauth(plain: RunningServer, layout: PysimLayout) -> None:
    with Es9Client(plain.url) as client:
        body = assert_ok(initiate_for_cis(client, [ci_pkid(layout.ci("NIST"))]))
    check_server_signed1(body, _dpauth(layout, "DPauth_ECDSA_NIST"))


def test_brainpool_option_prefers_the_brainpool_ci(plain: RunningServer, layout: PysimLayout,
                                                   server_factory) -> None:
    """-b/--brainpool: an eUICC trusting both CIs gets the BRP DPauth, without -b its first CI."""
    both = [ci_pkid(layout.ci("NIST")), ci_pkid(layout.ci("BRP"))]
    with Es9Client(plain.url) as client:
        check_server_signed1(assert_ok(initiate_for_cis(client, both)), _dpauth(layout, "DPauth_ECDSA_NIST"))
    for option in ("-b", "--brainpool"):
        server: RunningServer = server_factory(layout.data_dir, option, "--in-memory")
        with Es9Client(server.url) as client:
            check_server_signed1(assert_ok(initiate_for_cis(client, both)),
                                 _dpauth(layout, "DPauth_ECDSA_BRP"))
        server.stop()


def test_in_memory_option(pysim_layout: PysimLayout, tmp_path: Path) -> None:
    """-m (--in-memory, tested in test_download): no session file, a restart forgets the session."""
    option = "-m"
    layout = pysim_layout.copy_to(tmp_path)
    card = SoftEuicc.from_identity_dir(layout.euicc_dir)
    first = start_server(layout.data_dir, option, cwd=layout.root)
    try:
        with Es9Client(first.url) as client:
            flow = Flow(client, card, matching_id="TS48V2-SAIP2-1-NOBERTLV")
            assert_ok(flow.initiate())
    finally:
        first.stop()
    assert not (layout.data_dir / "sessions").exists()
    assert not list(layout.data_dir.glob("sessions*")) and not (layout.data_dir / "session-store.key").exists()
    second = start_server(layout.data_dir, option, cwd=layout.root)
    try:
        with Es9Client(second.url) as client:
            flow.client = client
            assert_failed(flow.authenticate(), "8.10.1", "3.9")
    finally:
        second.stop()


@pytest.mark.parametrize("option", ["-s", "--nossl"])
def test_nossl_option_serves_plain_http(layout: PysimLayout, server_factory, option: str) -> None:
    server: RunningServer = server_factory(layout.data_dir, option, "--in-memory")
    assert server.url.startswith("http://")
    with Es9Client(server.url) as client:
        assert_ok(Flow(client, SoftEuicc.from_identity_dir(layout.euicc_dir)).initiate())


def test_nossl_contradicts_tls(layout: PysimLayout) -> None:
    with pytest.raises(RuntimeError, match="--nossl contradicts --tls"):
        start_server(layout.data_dir, "-s", "--tls", timeout=30)


@pytest.mark.parametrize("option", ["-v", "--verbose"])
def test_verbose_option_logs_debug_lines(plain: RunningServer, layout: PysimLayout, server_factory,
                                         option: str) -> None:
    """-v/--verbose: DEBUG lines, such as the public key files left aside (not at INFO)."""
    public_key = "DPauth/PK_S_SM_DPauth_ECDSA_NIST.pem: a public key"
    assert public_key not in plain.log()
    server: RunningServer = server_factory(layout.data_dir, option, "--in-memory")
    assert f"{layout.certs}/{public_key}" in server.log() and " DEBUG " in server.log()


@pytest.mark.parametrize(("option", "how"), [("-c", "relative"), ("--certdir", "absolute")])
def test_certdir_option(pysim_layout: PysimLayout, tmp_path: Path, option: str, how: str) -> None:
    """-c/--certdir DIR: relative to the data folder, or absolute; no certs/ is created."""
    layout = pysim_layout.copy_to(tmp_path)
    elsewhere = layout.data_dir / "sgp26-certs" if how == "relative" else tmp_path / "elsewhere" / "certs"
    elsewhere.parent.mkdir(exist_ok=True)
    shutil.move(layout.certs, elsewhere)
    argument = "sgp26-certs" if how == "relative" else str(elsewhere)
    server = start_server(layout.data_dir, option, argument, "-m", cwd=layout.root)
    try:
        with Es9Client(server.url) as client:
            body = assert_ok(initiate_for_cis(client, [_ski(elsewhere)]))
        check_server_signed1(body, (elsewhere / "DPauth" / "CERT_S_SM_DPauth_ECDSA_NIST.der").read_bytes())
        named = Path("smdpp-data", argument) if how == "relative" else elsewhere
        assert f"skipping {named / 'DPauth' / 'data_sig.der'}: neither" in server.log()
    finally:
        server.stop()
    assert not layout.certs.exists() and not (layout.data_dir / "euicc").exists()


def _ski(certs: Path) -> bytes:
    """The PKID of the SGP.26 CI in ``certs``."""
    return ci_pkid(x509.load_der_x509_certificate(
        (certs / "CertificateIssuer" / "CERT_CI_ECDSA_NIST.der").read_bytes()))


@pytest.mark.parametrize("choice", ["DP2", DP2_OID])
def test_smdp_identity_option_serves_dp2(layout: PysimLayout, server_factory, choice: str) -> None:
    """--smdp-identity: DP2 under the brainpool CI; the SGP.26 CI has no DP2 and serves nobody."""
    server: RunningServer = server_factory(layout.data_dir, "--smdp-identity", choice, "-m")
    assert "DP (2.999.10), DP2 (2.999.12); served: DP2 (2.999.12)" in server.log()
    assert "served: none (no " in server.log()
    with Es9Client(server.url) as client:
        body = assert_ok(initiate_for_cis(client, [ci_pkid(layout.ci("BRP"))]))
        check_server_signed1(body, _dpauth(layout, "DP2auth_ECDSA_BRP"))
        assert_failed(initiate_for_cis(client, [ci_pkid(layout.ci("NIST"))]), "8.8.2", "3.1")
        result = download(client, SoftEuicc.from_identity_dir(layout.euicc_dir), smdp_address=ADDRESS,
                          matching_id="TS48V4-SAIP2-3-BERTLV", smdp_oid=DP2_OID)
    assert result.notification_sent and b64d(body["serverCertificate"]) != _dpauth(layout, "DPauth_ECDSA_BRP")


def _readme_check_command() -> str:
    """The shell command of README.rst's "Check the set-up without a card"."""
    text = (REPO / "README.rst").read_text()
    block = text[text.index("Check the set-up without a card"):text.index("It prints ``Executed-Success True``")]
    lines = block.split("::\n", 1)[1].strip("\n").splitlines()
    return "\n".join(line[4:] if line.startswith("    ") else line for line in lines)


def test_readme_check_without_a_card(plain: RunningServer, layout: PysimLayout) -> None:
    """The README's curl command, run in the folder of smdpp-data, prints Executed-Success True."""
    if shutil.which("curl") is None:
        pytest.fail("curl is missing (.ci/run installs it)")
    command = _readme_check_command()
    assert "http://127.0.0.1:8000/" in command
    command = command.replace("http://127.0.0.1:8000/", plain.url + "/")
    run = subprocess.run(["bash", "-c", f"set -o pipefail; {command}"], cwd=layout.root,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "Executed-Success True\n"


def test_two_identities_side_by_side(layout: PysimLayout, server_factory) -> None:
    """--smdp-identity DP --smdp-identity DP2: each session gets the identity of the address asked for
    (DP2's from the dNSName of its DPtls)."""
    server: RunningServer = server_factory(layout.data_dir, "--smdp-identity", "DP",
                                           "--smdp-identity", "DP2", "-m")
    log = server.log()
    assert f"also serving SM-DP+ DP2 at {DP2_HOSTNAME}: brainpoolP256r1 {DP2_OID}" in log
    # an activation code per profile and address, before the serving line (the first screen)
    for address in (ADDRESS, DP2_HOSTNAME):
        assert log.index(f"activation code LPA:1${address}$TS48V2-SAIP2-1-NOBERTLV") \
            < log.index("serving ES9+")
    brp, nist = ci_pkid(layout.ci("BRP")), ci_pkid(layout.ci("NIST"))
    with Es9Client(server.url) as client:
        for address, oid, dpauth in ((ADDRESS, SGP26_OID, "DPauth_ECDSA_BRP"),
                                     (DP2_HOSTNAME.upper(), DP2_OID, "DP2auth_ECDSA_BRP")):
            body = assert_ok(initiate_for_cis(client, [brp], address=address))
            check_server_signed1(body, _dpauth(layout, dpauth), address=address)
            result = download(client, SoftEuicc.from_identity_dir(layout.euicc_dir), smdp_address=address,
                              matching_id="TS48V2-SAIP2-1-NOBERTLV", smdp_oid=oid)
            assert result.notification_sent, result.notification_error
        check_server_signed1(assert_ok(initiate_for_cis(client, [nist])), _dpauth(layout, "DPauth_ECDSA_NIST"))
        assert_failed(initiate_for_cis(client, [nist], address=DP2_HOSTNAME), "8.8.2", "3.1")
        assert_failed(initiate_for_cis(client, [brp], address="testsmdpplus9.example.com"), "8.8.1", "3.8")


def test_side_by_side_at_the_default_address_is_refused(layout: PysimLayout) -> None:
    with pytest.raises(RuntimeError, match=f"cannot start: --smdp-identity: {ADDRESS} is the address "
                                           "of the default identity"):
        start_server(layout.data_dir, "--smdp-identity", f"DP2={ADDRESS}", "-m", timeout=30)
