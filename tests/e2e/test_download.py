"""Whole profile downloads over real HTTP on 127.0.0.1 against ./osmo-smdpp.py."""
from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from smdpp.euicc.card import SoftEuicc
from smdpp.euicc.client import download
from smdpp.euicc.es9 import Es9Client, b64d

from .conftest import REPO, RunningServer, with_upps
from .flow import ADDRESS, Flow, assert_ok, check_server_signed1, ci_pkid, initiate_for_cis

LPA = [sys.executable, "-c", "import sys; from smdpp.euicc.cli import main; sys.exit(main())"]
TS48 = ["TS48V2-SAIP2-1-NOBERTLV-UNIQUE", "TS48V4-SAIP2-3-BERTLV-UNIQUE",
        "TS48V5-SAIP2-1A-NOBERTLV-UNIQUE"]


def test_generated_profile_with_smdpp_lpa_command(server_factory) -> None:
    """The README's first steps: server on its defaults, smdpp-lpa downloads the test profile."""
    server: RunningServer = server_factory()
    saved = server.data_dir / "installed.der"
    run = subprocess.run(LPA + ["download", "--smdp", server.url, "--address", ADDRESS,
                                "--matching-id", "SMDPP-TEST-1",
                                "--identity", str(server.data_dir / "euicc"),
                                "--save-upp", str(saved)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "89000123456789012341" in run.stdout
    assert saved.read_bytes() == (server.data_dir / "upp" / "SMDPP-TEST-1.der").read_bytes()
    server.wait_for_log("ProfileInstallationResult success")


def test_smdpp_lpa_names_the_failed_step(server_factory) -> None:
    server: RunningServer = server_factory()
    run = subprocess.run(LPA + ["download", "--smdp", server.url, "--address", ADDRESS,
                                "--matching-id", "NO-SUCH-PROFILE",
                                "--identity", str(server.data_dir / "euicc")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    out = run.stdout + run.stderr
    assert "authenticateclient" in out.lower() and "8.2.6" in out and "3.8" in out


def test_smdpp_lpa_explains_plain_http_and_a_refused_port(server_factory) -> None:
    """An activation code (https://) against the plain-HTTP default, and a port nobody serves."""
    server: RunningServer = server_factory()
    where = server.url.split("://", 1)[1]
    run = subprocess.run(LPA + ["download", "--activation-code", f"LPA:1${where}$SMDPP-TEST-1",
                                "--identity", str(server.data_dir / "euicc"), "--timeout", "20"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert f"{where} does not answer TLS: it looks like plain HTTP" in run.stderr, run.stderr
    assert f"use --smdp http://{where}" in run.stderr
    with socket.socket() as probe:  # a port that was free a moment ago, now closed again
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    run = subprocess.run(LPA + ["download", "--smdp", f"http://127.0.0.1:{free}", "--address",
                                ADDRESS, "--matching-id", "SMDPP-TEST-1",
                                "--identity", str(server.data_dir / "euicc")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert (f"127.0.0.1:{free} refused the connection: nothing listens on port {free}"
            in run.stderr), run.stderr


def test_ts48_profiles_download_byte_exact(server_factory, shared_testdata: Path,
                                           tmp_path: Path) -> None:
    """Every TS.48 profile of ../shared/testdata/upp, read in place, arrives byte for byte."""
    upps = [shared_testdata / "upp" / f"{name}.der" for name in TS48]
    data_dir = with_upps(tmp_path / "ts48-data", upps)
    server: RunningServer = server_factory(data_dir)
    card = SoftEuicc.from_identity_dir(data_dir / "euicc")
    with Es9Client(server.url) as client:
        for upp in upps:
            result = download(client, card, smdp_address=ADDRESS, matching_id=upp.stem)
            assert result.upp == upp.read_bytes(), upp.name
            assert result.notification_sent, result.notification_error
    assert set(card.installed) == {"8949449999999990007", "8949449999999990122",
                                   "8949449999999990148"}


@pytest.mark.parametrize("end", ["stop", "kill"])
def test_download_survives_a_restart_between_calls(server_factory, tmp_path: Path,
                                                   end: str) -> None:
    """stop: SIGTERM between authenticateClient and getBoundProfilePackage.  kill: SIGKILL
    (no shutdown, no close) after getBoundProfilePackage; the journal, the default store,
    kept the session with its one-time key, so the retried getBoundProfilePackage that
    SGP.22 allows and the notification both work on the next server."""
    data_dir = tmp_path / "restart-data"
    first: RunningServer = server_factory(data_dir)
    card = SoftEuicc.from_identity_dir(data_dir / "euicc")
    with Es9Client(first.url) as client:
        flow = Flow(client, card)
        assert_ok(flow.initiate())
        assert_ok(flow.authenticate())
        if end == "kill":
            assert_ok(flow.get_bpp())
            first.process.kill()
            first.process.wait()
    first.stop()
    assert list((data_dir / "sessions").glob("*.journal"))
    second: RunningServer = server_factory(data_dir)
    with Es9Client(second.url) as client:
        flow.client = client
        assert_ok(flow.get_bpp())
        result = flow.install()
        reply = flow.notify(result)
        assert reply.http_status == 204, reply.describe()
    assert card.installed["89000123456789012341"] == \
        (data_dir / "upp" / "SMDPP-TEST-1.der").read_bytes()


def test_a_second_server_on_the_same_data_folder_is_refused(server_factory,
                                                           tmp_path: Path) -> None:
    """The journal belongs to one process: a second one stops at start, naming the first."""
    data_dir = tmp_path / "busy-data"
    first: RunningServer = server_factory(data_dir)
    run = subprocess.run([sys.executable, str(REPO / "osmo-smdpp.py"), "-H", "127.0.0.1",
                          "-p", "0", "--data-dir", str(data_dir)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"in use by another smdpp process (pid {first.process.pid})" in run.stdout + run.stderr
    with Es9Client(first.url) as client:  # the first one serves on, unharmed
        assert_ok(Flow(client, SoftEuicc.from_identity_dir(data_dir / "euicc")).initiate())


def test_in_memory_server_loses_sessions_on_restart(server_factory, tmp_path: Path) -> None:
    """--in-memory writes no session file; a restart forgets the session (8.10.1/3.9)."""
    data_dir = tmp_path / "mem-data"
    first: RunningServer = server_factory(data_dir, "--in-memory")
    card = SoftEuicc.from_identity_dir(data_dir / "euicc")
    with Es9Client(first.url) as client:
        flow = Flow(client, card)
        assert_ok(flow.initiate())
    first.stop()
    assert not list(data_dir.glob("sessions*"))
    second: RunningServer = server_factory(data_dir, "--in-memory")
    with Es9Client(second.url) as client:
        flow.client = client
        reply = flow.authenticate()
        assert reply.status_code_data.get("subjectCode") == "8.10.1"


def test_sgp26_certificates_are_accepted(server_factory, shared_testdata: Path,
                                         tmp_path: Path) -> None:
    """With the SGP.26 CI/DPauth/DPpb the server signs serverSigned1 with the SGP.26 DPauth."""
    sgp26 = shared_testdata / "sgp26"
    data_dir = tmp_path / "sgp26-data"
    certs = data_dir / "certs"
    certs.mkdir(parents=True)
    for role in ("CertificateIssuer", "DPauth", "DPpb", "DPtls"):
        (certs / role).symlink_to((sgp26 / role).resolve())
    server: RunningServer = server_factory(data_dir)
    ci = x509.load_der_x509_certificate((sgp26 / "CertificateIssuer" /
                                         "CERT_CI_ECDSA_NIST.der").read_bytes())
    with Es9Client(server.url) as client:
        body = assert_ok(initiate_for_cis(client, [ci_pkid(ci)]))
    assert b64d(body["euiccCiPKIdToBeUsed"]) == b"\x04\x14" + ci_pkid(ci)
    check_server_signed1(body, (sgp26 / "DPauth" / "CERT_S_SM_DPauth_ECDSA_NIST.der").read_bytes())


@pytest.mark.parametrize("use_twice", [False, True])
def test_retried_get_bound_profile_package(shared_server: RunningServer, use_twice: bool) -> None:
    """A retry with the same otPK.EUICC.ECKA gets a BPP the eUICC can still open."""
    card = SoftEuicc.from_identity_dir(shared_server.data_dir / "euicc")
    with Es9Client(shared_server.url) as client:
        flow = Flow(client, card)
        assert_ok(flow.initiate())
        assert_ok(flow.authenticate())
        pdr = flow.prepare_download()
        first = b64d(assert_ok(flow.get_bpp(pdr))["boundProfilePackage"])
        if use_twice:
            second = b64d(assert_ok(flow.get_bpp(pdr))["boundProfilePackage"])
            assert second != first  # fresh PPKs each time, same one-time key agreement
        result = flow.install()
        assert flow.notify(result).http_status == 204
    assert "89000123456789012341" in card.installed
