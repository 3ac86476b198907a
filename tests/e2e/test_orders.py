"""ES2+ orders end to end: ./osmo-smdpp.py with --es2-port, our ES2+ client with a client
certificate (smdpp-pki operator), downloads with the software eUICC, and an HTTPS operator
endpoint receiving every HandleDownloadProgressInfo; then the refusals."""
from __future__ import annotations

import base64
import hashlib
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from smdpp.euicc.card import SoftEuicc
from smdpp.asn1.tlv import encode_tlv, parse_single
from smdpp.euicc.client import (DownloadError, confirmation_code_hash, download,
                                prepare_download_request)
from smdpp.euicc.es9 import b64d
from smdpp.euicc.es9 import Es9Client
from smdpp.orders.client import Es2pClient, Es2pFailed
from tests.orders_fixtures import PROFILE_TYPE, order_eid, pool_iccid, write_pool

from .conftest import REPO, RunningServer, start_server
from .flow import ADDRESS, Flow, assert_failed, assert_ok
from .operator_endpoint import OperatorEndpoint

ES2_READY = re.compile(r"serving ES2\+ on (https?://[0-9.]+:\d+)/")
PKI = [sys.executable, "-c", "import sys; from smdpp.pki.cli import main; sys.exit(main())"]
ORDER = [sys.executable, "-c", "import sys; from smdpp.orders.cli import main; sys.exit(main())"]


def es2_url(server: RunningServer) -> str:
    match = ES2_READY.search(server.log())
    assert match, server.log()
    return match.group(1)


def register(data_dir: Path, name: str, *extra: str) -> None:
    run = subprocess.run(PKI + ["operator", name, "--data-dir", str(data_dir), *extra],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert run.returncode == 0, run.stderr


def es2_client(server: RunningServer, name: str = "op1", **override) -> Es2pClient:
    own = server.data_dir / "operators" / name
    options = {"cert": own / "cert.pem", "key": own / "key.pem",
               "ca_file": server.data_dir / "certs" / "CertificateIssuer" / "CERT_CI_ECDSA_NIST.pem",
               "server_name": ADDRESS, **override}
    return Es2pClient(es2_url(server), name, **options)


def start(data_dir: Path) -> RunningServer:
    return start_server(data_dir, "--es2-port", "0")


@pytest.fixture
def orders(tmp_path: Path):
    """A server with a pool of 8 profiles, operator op1 notified at an HTTPS endpoint."""
    data_dir = tmp_path / "smdpp-data"
    write_pool(data_dir / "pool", range(1, 9))
    server = start(data_dir)
    endpoint = OperatorEndpoint(tmp_path / "endpoint").start()
    register(data_dir, "op1", "--notify-url", endpoint.url, "--notify-ca", str(endpoint.ca_file))
    servers = [server]
    yield servers, endpoint
    endpoint.stop()
    for s in servers:
        s.stop()


def card(server: RunningServer) -> SoftEuicc:
    return SoftEuicc.from_identity_dir(server.data_dir / "euicc")


def dl(server: RunningServer, euicc: SoftEuicc, matching_id: str, cc: str | None = None):
    with Es9Client(server.url) as client:
        return download(client, euicc, smdp_address=ADDRESS, matching_id=matching_id,
                        confirmation_code=cc)


def test_order_download_notifications(orders) -> None:
    (server,), endpoint = orders
    euicc = card(server)
    with es2_client(server) as es2:
        iccid = es2.download_order(profile_type=PROFILE_TYPE)
        answer = es2.confirm_order(iccid + "F", release=True, confirmation_code="4711")
    assert answer["smdpAddress"] == ADDRESS
    result = dl(server, euicc, answer["matchingId"], cc="4711")
    assert result.iccid == iccid and result.notification_sent
    received = endpoint.wait_for(3)
    assert [body["notificationPointId"] for _, body, _ in received] == [1, 3, 4]
    for path, body, cert in received:
        assert path == "/gsma/rsp2/es2plus/handleDownloadProgressInfo"
        assert body["notificationPointStatus"]["status"] == "Executed-Success"
        assert body["iccid"] == iccid + "F" and body["eid"] == euicc.eid
        assert body["profileType"] == PROFILE_TYPE
        # the SM-DP+ authenticated with its DPtls
        dptls = (server.data_dir / "certs" / "DPtls" / "CERT_S_SM_DP_TLS_NIST.der").read_bytes()
        assert cert == dptls
    pir = base64.b64decode(received[-1][1]["resultData"])
    assert pir[:2] == b"\xbf\x37"  # the eUICC's signed ProfileInstallationResult, as received
    # the consumed profile is not downloaded again
    with pytest.raises(DownloadError) as exc:
        dl(server, card(server), answer["matchingId"], cc="4711")
    assert (exc.value.subject_code, exc.value.reason_code) == ("8.2", "3.7")
    listing = subprocess.run(ORDER + ["--data-dir", str(server.data_dir), "list"],
                             capture_output=True, text=True, cwd=REPO, timeout=60)
    assert re.search(rf"{iccid}\s+Installed", listing.stdout), listing.stdout


def test_download_refusals(orders) -> None:
    (server,), endpoint = orders
    euicc = card(server)
    with es2_client(server) as es2:
        # an order for another eUICC
        other = es2.download_order(iccid=pool_iccid(2), eid=order_eid(77))
        mid = es2.confirm_order(other, release=True)["matchingId"]
        with pytest.raises(DownloadError) as exc:
            dl(server, euicc, mid)
        assert (exc.value.subject_code, exc.value.reason_code) == ("8.1.1", "3.8")
        # confirmed, not released
        held = es2.download_order(iccid=pool_iccid(3))
        mid = es2.confirm_order(held, release=False)["matchingId"]
        with pytest.raises(DownloadError) as exc:
            dl(server, euicc, mid)
        assert (exc.value.subject_code, exc.value.reason_code) == ("8.2", "1.2")
        # a cancelled order's matchingId is gone
        es2.release_profile(held)
        es2.cancel_order(held, "Available")
        with pytest.raises(DownloadError) as exc:
            dl(server, euicc, mid)
        assert (exc.value.subject_code, exc.value.reason_code) == ("8.2.6", "3.8")
        # wrong Confirmation Codes until the order is in Error
        guarded = es2.download_order(iccid=pool_iccid(4))
        mid = es2.confirm_order(guarded, release=True, confirmation_code="right")["matchingId"]
    for attempt, reason in ((1, "3.8"), (2, "3.8"), (3, "6.4")):
        with pytest.raises(DownloadError) as exc:
            dl(server, euicc, mid, cc="wrong")
        assert (exc.value.subject_code, exc.value.reason_code) == ("8.2.7", reason), attempt
    with pytest.raises(DownloadError) as exc:
        dl(server, euicc, mid, cc="right")  # too late: the order is in Error
    assert (exc.value.subject_code, exc.value.reason_code) == ("8.2", "3.7")
    # point 1 failed twice (EID, not released); per code attempt point 1 then point 2 failed;
    # the last attempt's point 1 failed (the order is in Error)
    received = endpoint.wait_for(9)
    failures = sorted((b["notificationPointId"],
                       b["notificationPointStatus"]["statusCodeData"]["reasonCode"])
                      for _, b, _ in received if b["notificationPointStatus"]["status"] == "Failed")
    assert failures == [(1, "1.2"), (1, "3.7"), (1, "3.8"), (2, "3.8"), (2, "3.8"), (2, "6.4")]


def test_es2p_refusals_over_mutual_tls(orders, tmp_path: Path) -> None:
    (server,), endpoint = orders
    # an operator certificate nobody registered: issue one elsewhere, present it here
    register(tmp_path / "elsewhere", "stranger")
    stranger = tmp_path / "elsewhere" / "operators" / "stranger"
    with es2_client(server, "op1", cert=stranger / "cert.pem", key=stranger / "key.pem") as es2:
        with pytest.raises(Es2pFailed) as exc:
            es2.download_order(profile_type=PROFILE_TYPE)
    assert exc.value.reply.http_status == 403
    assert (exc.value.subject_code, exc.value.reason_code) == ("1.1", "1.1")
    # no client certificate at all: the TLS handshake is refused
    with pytest.raises(Exception):
        with es2_client(server, cert=None, key=None) as es2:
            es2.download_order(profile_type=PROFILE_TYPE)
    # a registered operator sending another one's functionRequesterIdentifier
    register(server.data_dir, "op2")  # takes effect without a restart
    with es2_client(server, "op2") as es2:
        es2.requester = "op1"
        with pytest.raises(Es2pFailed) as exc:
            es2.download_order(profile_type=PROFILE_TYPE)
        assert (exc.value.subject_code, exc.value.reason_code) == ("1.1", "1.2")
        es2.requester = "op2"
        body = {"header": es2.header("same-call-id"), "profileType": PROFILE_TYPE}
        assert es2.raw("downloadOrder", body).function_status == "Executed-Success"
        replay = es2.raw("downloadOrder", body)
        assert replay.status_code_data["subjectCode"] == "1.1"
        assert replay.status_code_data["reasonCode"] == "3.3"


def test_operator_down_and_smdpp_restart(orders) -> None:
    servers, endpoint = orders
    server = servers[0]
    endpoint.stop()  # the operator is down
    with es2_client(server) as es2:
        iccid = es2.download_order(iccid=pool_iccid(5))
        mid = es2.confirm_order(iccid, release=True)["matchingId"]
    # the download does not wait for the operator
    assert dl(server, card(server), mid).iccid == iccid
    server.process.send_signal(signal.SIGKILL)  # and smdpp dies with the queue full
    server.process.wait()
    restarted = start(server.data_dir)
    servers.append(restarted)
    endpoint.start()  # same port: the operator is back
    received = endpoint.wait_for(3, timeout=60)
    assert sorted(b["notificationPointId"] for _, b, _ in received) == [1, 3, 4]


def test_smdpp_order_command_prints_activation_code_and_qr(orders, tmp_path: Path) -> None:
    (server,), endpoint = orders
    png = tmp_path / "code.png"
    run = subprocess.run(ORDER + ["--url", es2_url(server), "--data-dir", str(server.data_dir),
                                  "--operator", "op1", "create", "--profile-type", PROFILE_TYPE,
                                  "--confirmation-code", "1234", "--release", "--qr", str(png)],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert run.returncode == 0, run.stderr
    code = re.search(r"LPA:1\$([^$\s]+)\$([A-Z2-7-]+)\$\$1", run.stdout)
    assert code and code.group(1) == ADDRESS, run.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import shutil
    if shutil.which("zbarimg"):  # the PNG reads back as the activation code
        scan = subprocess.run(["zbarimg", "--raw", "-q", str(png)], capture_output=True,
                              text=True, timeout=60)
        assert scan.stdout.strip() == code.group(0)
    assert "█" in run.stdout or "▀" in run.stdout or "▄" in run.stdout  # the QR on the terminal
    iccid = re.search(r"ICCID (\d+): Released", run.stdout).group(1)  # type: ignore[union-attr]
    show = subprocess.run(ORDER + ["--data-dir", str(server.data_dir), "show", iccid, "--no-qr"],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert "Released" in show.stdout and code.group(0) in show.stdout, show.stdout + show.stderr
    assert "confirmation code: required" in show.stdout.replace("  ", " ").replace("  ", " ")
    # the activation code downloads with smdpp-lpa and the Confirmation Code
    lpa = subprocess.run([sys.executable, "-c",
                          "import sys; from smdpp.euicc.cli import main; sys.exit(main())",
                          "download", "--smdp", server.url, "--activation-code", code.group(0),
                          "--identity", str(server.data_dir / "euicc"),
                          "--confirmation-code", "1234"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert lpa.returncode == 0, lpa.stdout + lpa.stderr


def test_lab_profiles_are_unchanged_beside_orders(orders) -> None:
    (server,), endpoint = orders
    for _ in range(2):  # any number of times
        assert dl(server, card(server), "SMDPP-TEST-1").notification_sent


def _curl(server: RunningServer, function: str, body: dict) -> dict:
    """One ES2+ call with curl (OpenSSL's client, not ours), headers as pySim's client sends."""
    import json
    import shutil
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed (apt-get install curl)")
    port = es2_url(server).rsplit(":", 1)[1]
    own = server.data_dir / "operators" / "op1"
    ca = server.data_dir / "certs" / "CertificateIssuer" / "CERT_CI_ECDSA_NIST.pem"
    run = subprocess.run(
        [curl, "-sS", "--fail-with-body", "--cert", str(own / "cert.pem"), "--key",
         str(own / "key.pem"), "--cacert", str(ca), "--resolve", f"{ADDRESS}:{port}:127.0.0.1",
         "-H", "Content-Type: application/json", "-H", "X-Admin-Protocol: gsma/rsp/v2.5.0",
         "--data-binary", json.dumps(body),
         f"https://{ADDRESS}:{port}/gsma/rsp2/es2plus/{function}"],
        capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr + run.stdout
    return json.loads(run.stdout)


def test_another_es2p_client_drives_the_flow(orders) -> None:
    """curl with the operator's certificate, ICCIDs padded with F and call ids as pySim makes them."""
    (server,), endpoint = orders
    header = {"functionRequesterIdentifier": "op1"}
    answer = _curl(server, "downloadOrder", {
        "header": {**header, "functionCallIdentifier": "FCI-1765000000-1"},
        "profileType": PROFILE_TYPE})
    assert answer["header"]["functionExecutionStatus"]["status"] == "Executed-Success"
    iccid = answer["iccid"]
    answer = _curl(server, "confirmOrder", {
        "header": {**header, "functionCallIdentifier": "FCI-1765000000-2"},
        "iccid": iccid + "F", "releaseFlag": True})
    assert answer["header"]["functionExecutionStatus"]["status"] == "Executed-Success"
    assert dl(server, card(server), answer["matchingId"]).iccid == iccid


def test_orders_with_two_workers(tmp_path: Path) -> None:
    """--workers 2: each worker serves ES2+ on the one port and asks the one order store."""
    data_dir = tmp_path / "smdpp-data"
    write_pool(data_dir / "pool", range(1, 5))
    server = start_server(data_dir, "--workers", "2", "--es2-port", "0")
    try:
        register(data_dir, "op1")
        with es2_client(server) as es2:
            iccids = [es2.download_order(profile_type=PROFILE_TYPE) for _ in range(3)]
            assert len(set(iccids)) == 3  # never one profile twice, whichever worker answered
            mid = es2.confirm_order(iccids[0], release=True)["matchingId"]
        assert dl(server, card(server), mid).iccid == iccids[0]
        with pytest.raises(DownloadError) as exc:
            dl(server, card(server), mid)
        assert (exc.value.subject_code, exc.value.reason_code) == ("8.2", "3.7")
    finally:
        server.stop()


def test_pool_is_read_again_on_sighup(orders, tmp_path: Path) -> None:
    (server,), endpoint = orders
    write_pool(server.data_dir / "pool", range(20, 21))  # a new file after the start
    with es2_client(server) as es2:
        with pytest.raises(Es2pFailed) as exc:
            es2.download_order(iccid=pool_iccid(20))
        assert (exc.value.subject_code, exc.value.reason_code) == ("8.2.1", "3.9")
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while "1 new profile(s)" not in server.log():
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.1)
        assert es2.download_order(iccid=pool_iccid(20)) == pool_iccid(20)


def test_plain_http_es2p_only_on_loopback(tmp_path: Path) -> None:
    refused = subprocess.run([sys.executable, str(REPO / "osmo-smdpp.py"), "-H", "127.0.0.1",
                              "-p", "0", "--data-dir", str(tmp_path / "a"), "--es2-port", "0",
                              "--es2-host", "0.0.0.0", "--es2-plain-http"],
                             capture_output=True, text=True, cwd=REPO, timeout=120)
    assert refused.returncode == 1
    assert "--es2-plain-http only on a loopback address" in refused.stdout + refused.stderr
    data_dir = tmp_path / "b"
    server = start_server(data_dir, "--es2-port", "0", "--es2-plain-http")
    try:
        assert es2_url(server).startswith("http://127.0.0.1:")
        register(data_dir, "lab")
        with Es2pClient(es2_url(server), "lab") as es2:  # no certificate: the name decides
            iccid = es2.download_order(profile_type="smdpp Generic Test Profile")
            mid = es2.confirm_order(iccid, release=True)["matchingId"]
        assert dl(server, card(server), mid).iccid == iccid
        with Es2pClient(es2_url(server), "nobody") as es2:
            with pytest.raises(Es2pFailed) as exc:
                es2.download_order(profile_type="smdpp Generic Test Profile")
            assert exc.value.reply.http_status == 403
    finally:
        server.stop()


def test_cancel_session_ends_or_keeps_the_order(orders) -> None:
    """The user gives no Confirmation Code: the LPA cancels (endUserRejection) and the order
    goes to Error (SGP.22 5.6.5, our reading; 'postponed' keeping it Released is in
    tests/unit/test_order_downloads.py)."""
    from smdpp.euicc.client import STEP_CONFIRMATION_CODE
    (server,), endpoint = orders
    with es2_client(server) as es2:
        iccid = es2.download_order(iccid=pool_iccid(6))
        mid = es2.confirm_order(iccid, release=True, confirmation_code="0000")["matchingId"]
    with pytest.raises(DownloadError) as exc:
        dl(server, card(server), mid)  # no code: the LPA cancels the session
    assert exc.value.step == STEP_CONFIRMATION_CODE
    show = subprocess.run(ORDER + ["--data-dir", str(server.data_dir), "show", iccid],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert re.search(r"state:\s+Error", show.stdout), show.stdout
    # the operator hears the cancelled download (SGP.22 5.3.5): point 3, Failed
    received = endpoint.wait_for(2)
    assert [(b["notificationPointId"], b["notificationPointStatus"]["status"])
            for _, b, _ in received] == [(1, "Executed-Success"), (3, "Failed")]
    assert received[1][1]["notificationPointStatus"]["statusCodeData"]["message"] == \
        "cancelSession reason 0"
    with pytest.raises(DownloadError) as exc:
        dl(server, card(server), mid, cc="0000")
    assert (exc.value.subject_code, exc.value.reason_code) == ("8.2", "3.7")


def _prepare_with(flow: Flow, code: str) -> bytes:
    """ES10b.PrepareDownload on the card with the hashCc of ``code``."""
    return flow.card.prepare_download(prepare_download_request(
        b64d(flow.auth["smdpSigned2"]), b64d(flow.auth["smdpSignature2"]),
        b64d(flow.auth["smdpCertificate"]),
        confirmation_code_hash(code, bytes.fromhex(flow.tid))))


def _prepare_without_hash_cc(flow: Flow) -> bytes:
    """The PrepareDownloadResponse of an eUICC that ignores ccRequiredFlag: euiccSigned2
    without hashCc, validly signed with the eUICC's own key (SGP.22 5.7.5)."""
    ok = parse_single(_prepare_with(flow, "unused"), b"\xbf\x21").children()[0]
    signed2 = ok.children()[0]
    euicc_signed2 = encode_tlv(b"\x30", b"".join(
        part.raw for part in signed2.children() if part.tag != b"\x04"))  # drop hashCc
    signature = flow.card.sign(euicc_signed2 + b64d(flow.auth["smdpSignature2"]))
    return encode_tlv(b"\xbf\x21", encode_tlv(b"\xa0", euicc_signed2
                                              + encode_tlv(b"\x5f\x37", signature)))


def test_missing_confirmation_code_over_http(orders) -> None:
    """An order with a Confirmation Code, a signed prepareDownloadResponse without hashCc
    over real HTTP: 8.2.7 / 2.2 (SGP.22 5.6.2), the session and the order stay usable,
    the operator hears point 2 Failed; then the right code downloads."""
    (server,), endpoint = orders
    with es2_client(server) as es2:
        iccid = es2.download_order(iccid=pool_iccid(7))
        mid = es2.confirm_order(iccid, release=True, confirmation_code="2468")["matchingId"]
    with Es9Client(server.url) as client:
        flow = Flow(client, card(server), matching_id=mid)
        assert_ok(flow.initiate())
        assert_ok(flow.authenticate())
        assert_failed(flow.get_bpp(_prepare_without_hash_cc(flow)), "8.2.7", "2.2")
        assert_ok(flow.get_bpp(_prepare_with(flow, "2468")))
    received = endpoint.wait_for(3)
    assert [(b["notificationPointId"], b["notificationPointStatus"]["status"])
            for _, b, _ in received[:3]] == [(1, "Executed-Success"), (2, "Failed"),
                                             (3, "Executed-Success")]
    assert received[1][1]["notificationPointStatus"]["statusCodeData"]["reasonCode"] == "2.2"
