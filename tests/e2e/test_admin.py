"""First contact and operations, over the real server process and real HTTP.

Activation codes at start, the admin listener (status page, /health, /ready,
/metrics, its token), --workers counted in every worker, JSON log lines, and
a clear start and stop (a port in use, SIGTERM, Ctrl-C at any moment).
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from smdpp.euicc.card import SoftEuicc
from smdpp.euicc.client import DownloadError, download
from smdpp.euicc.es9 import Es9Client

from .conftest import REPO, RunningServer
from .flow import ADDRESS

ADMIN = re.compile(r"status page on (http://[0-9.]+:\d+)/")
CODE = "LPA:1$testsmdpplus1.example.com$SMDPP-TEST-1"


def admin_url(server: RunningServer) -> str:
    match = ADMIN.search(server.log())
    assert match, server.log()
    return match.group(1)


def get(url: str, token: str | None = None) -> tuple[int, str, str]:
    """(status, content type, body) of a GET."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def metrics(url: str, token: str | None = None) -> dict[tuple[str, tuple], float]:
    status, kind, text = get(url + "/metrics", token)
    assert status == 200 and kind.startswith("text/plain; version="), (status, kind)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def one_download(server: RunningServer, matching_id: str = "SMDPP-TEST-1") -> str:
    card = SoftEuicc.from_identity_dir(server.data_dir / "euicc")
    with Es9Client(server.url) as client:
        download(client, card, smdp_address=ADDRESS, matching_id=matching_id)
    return card.eid


def test_activation_code_first_and_status_page_with_the_download(server_factory, tmp_path) -> None:
    qr_dir = tmp_path / "qr"
    server = server_factory(None, "--admin-port", "0", "--qr-dir", str(qr_dir))
    log = server.log()
    # the code is on the first screen: before the serving line, among the first 15 lines
    first = log.splitlines()[:15]
    assert any(f"activation code {CODE}" in line for line in first), log
    assert log.index(CODE) < log.index("serving ES9+")
    png = qr_dir / "SMDPP-TEST-1.png"
    zbarimg = shutil.which("zbarimg")
    if zbarimg is not None:  # .ci/run installs zbar-tools
        out = subprocess.run([zbarimg, "--quiet", "--raw", str(png)], capture_output=True,
                             text=True, timeout=30, check=True).stdout
        assert out.strip() == CODE
    else:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    url = admin_url(server)
    assert get(url + "/health")[::2] == (200, "ok\n")
    assert get(url + "/ready")[::2] == (200, "ready\n")
    assert "No ES9+ call yet" in get(url + "/")[2]

    eid = one_download(server)
    with pytest.raises(DownloadError):
        one_download(server, "NOT-HERE")
    status, kind, page = get(url + "/")
    assert status == 200 and kind.startswith("text/html")
    assert eid in page and "installed" in page and CODE in page
    for step in ("initiateAuthentication", "authenticateClient", "getBoundProfilePackage",
                 "handleNotification"):
        assert step in page
    assert "failed at authenticateClient: 8.2.6/3.8" in page and "NOT-HERE" in page
    assert server.url in page  # the ES9+ address actually served
    figures = metrics(url)
    assert figures[("smdpp_downloads_started_total", ())] == 2
    assert figures[("smdpp_downloads_completed_total", ())] == 1
    assert figures[("smdpp_downloads_failed_total",
                    (("code", "8.2.6/3.8"), ("function", "authenticateClient")))] == 1
    assert figures[("smdpp_es9_function_seconds_count", (("function", "authenticateClient"),))] == 2
    assert figures[("smdpp_sessions", (("state", "done"),))] == 1
    assert figures[("smdpp_connections_open", ())] == 0  # both clients have closed
    assert ("smdpp_connections_refused_total", ()) in figures
    assert any(name == "smdpp_store_seconds_count" for name, _ in figures)
    assert any(name == "smdpp_certificate_expiry_days" for name, _ in figures)
    # the ES9+ port still refuses what is not ES9+, and says so in its log with the way out
    assert get(server.url + "/metrics")[0] == 404
    server.wait_for_log("GET /metrics: not an ES9+ path (404)")


def test_admin_listener_has_its_own_connection_caps(server_factory) -> None:
    """The admin port caps connections per client (and per process) on its own: the open files
    ES9+ needs stay free, and ES9+'s caps and figures are not touched."""
    from smdpp.admin import MAX_PER_CLIENT
    server = server_factory(None, "--admin-port", "0")
    url = admin_url(server)
    host, port = url.split("://", 1)[1].rstrip("/").rsplit(":", 1)
    held = []
    try:
        for _ in range(MAX_PER_CLIENT):
            conn = socket.create_connection((host, int(port)), timeout=10)
            held.append(conn)
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert conn.recv(100).startswith(b"HTTP/1.1 200")  # answered, kept alive
        with socket.create_connection((host, int(port)), timeout=10) as one_more:
            assert one_more.recv(100) == b""  # closed at once
        server.wait_for_log(f"admin connection from 127.0.0.1 closed at once: {MAX_PER_CLIENT} "
                            f"connections open from it, the most per client ({MAX_PER_CLIENT}, fixed)")
    finally:
        for conn in held:
            conn.close()
    for _ in range(100):  # once those end, the page is served again
        try:
            status, _, _ = get(url.rstrip("/") + "/health")
        except (ConnectionError, urllib.error.URLError):
            time.sleep(0.05)
            continue
        assert status == 200
        break
    else:
        raise AssertionError("the admin listener did not serve again after its connections closed")
    assert metrics(url)[("smdpp_connections_refused_total", ())] == 0  # ES9+'s guard untouched


def test_connections_open_and_refused(server_factory) -> None:
    """The connection guard's caps (--max-connections-per-client) show in /metrics."""
    server = server_factory(None, "--admin-port", "0", "--max-connections-per-client", "1")
    url = admin_url(server)
    host, port = server.url.split("://", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as kept:
        kept.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        assert kept.recv(100).startswith(b"HTTP/1.1 404")  # admitted and answered: it is open
        assert metrics(url)[("smdpp_connections_open", ())] == 1
        with socket.create_connection((host, int(port)), timeout=10) as second:
            assert second.recv(100) == b""  # closed at once: one per client
        server.wait_for_log("closed at once")
        figures = metrics(url)
        assert figures[("smdpp_connections_refused_total", ())] == 1
        assert figures[("smdpp_connections_open", ())] == 1
    for _ in range(100):  # the server sees the close soon after
        if metrics(url)[("smdpp_connections_open", ())] == 0:
            break
        time.sleep(0.05)
    assert metrics(url)[("smdpp_connections_open", ())] == 0


def test_workers_are_all_counted(server_factory) -> None:
    """--workers 2: downloads through both workers (the JSON log's worker field says which
    answered); every download on the page and in /metrics, whichever worker answers."""
    server = server_factory(None, "--workers", "2", "--admin-port", "0", "--log-format", "json")
    url = admin_url(server)
    downloads: dict[str, set[int]] = {}  # transactionId -> workers that answered its calls
    for number in range(1, 41):  # the kernel picks the worker of each connection
        eid = one_download(server)
        for _ in range(200):  # the last call's line is written before its answer goes out
            calls = [call for call in map(json.loads, server.log().splitlines())
                     if call.get("event") == "call" and call["transactionId"]]
            if sum(call["function"] == "handleNotification" for call in calls) == number:
                break
            time.sleep(0.02)
        for call in calls:
            downloads.setdefault(call["transactionId"], set()).add(call["worker"])
        if number >= 4 and set().union(*downloads.values()) == {1, 2}:
            break
    assert set().union(*downloads.values()) == {1, 2}, downloads  # both workers answered
    pids: set[str] = set()
    deadline = time.monotonic() + 30
    while len(pids) < 2:  # each page request may reach either worker
        assert time.monotonic() < deadline, pids
        page = get(url + "/")[2]
        pid = re.search(r"process (\d+) \(one of 2 workers\)", page).group(1)
        rows = re.findall(r'<tr class="session">(.*?)</tr></table></td></tr>', page)
        shown = {re.search(r"<code>([0-9A-F]{32})</code>", row).group(1): row for row in rows}
        assert "The sessions of all 2 workers" in page
        # each download installed, with its four steps, whichever worker answered which call
        if all(tid in shown and ">installed<" in shown[tid] and eid in shown[tid]
               and shown[tid].count("<tr><td>") == 4 for tid in downloads):
            pids.add(pid)
        else:  # the other worker's ring reaches its file within 0.25 s
            time.sleep(0.1)
    for _ in range(3):  # whichever worker answers, every worker's downloads are counted
        figures = metrics(url)
        assert figures[("smdpp_downloads_started_total", ())] == len(downloads)
        assert figures[("smdpp_downloads_completed_total", ())] == len(downloads)
        assert figures[("smdpp_sessions", (("state", "done"),))] == len(downloads)


def test_admin_elsewhere_than_loopback_needs_a_token(server_factory, tmp_path: Path) -> None:
    data_dir = tmp_path / "refused"
    run = subprocess.run([sys.executable, str(REPO / "osmo-smdpp.py"), "-H", "127.0.0.1", "-p", "0",
                          "--data-dir", str(data_dir), "--admin-host", "0.0.0.0",
                          "--admin-port", "0"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "--admin-token-file" in run.stdout and "Traceback" not in run.stdout + run.stderr
    assert not data_dir.exists()  # refused before anything was written

    token = "an-admin-token-of-32-characters!"
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    server = server_factory(None, "--admin-host", "0.0.0.0", "--admin-port", "0",
                            "--admin-token-file", str(token_file))
    port = re.search(r"status page on http://[0-9.]+:(\d+)/", server.log()).group(1)
    url = f"http://127.0.0.1:{port}"
    assert get(url + "/")[0] == 401 and get(url + "/metrics")[0] == 401
    assert get(url + "/", "not-the-token-at-all")[0] == 401
    assert get(url + "/", token)[0] == 200 and metrics(url, token)
    basic = urllib.request.Request(url + "/")
    basic.add_header("Authorization", "Basic " + base64.b64encode(f"lab:{token}".encode()).decode())
    with urllib.request.urlopen(basic, timeout=20) as answer:
        assert answer.status == 200
    assert get(url + "/health")[0] == 200  # liveness needs no token


def test_port_in_use_stops_before_anything_is_written(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        data_dir = tmp_path / "smdpp-data"
        for extra in ([], ["--workers", "2"]):
            run = subprocess.run([sys.executable, str(REPO / "osmo-smdpp.py"), "-H", "127.0.0.1",
                                  "-p", str(port), "--data-dir", str(data_dir), *extra],
                                 capture_output=True, text=True, timeout=60)
            assert run.returncode == 1, run.stdout
            assert f"127.0.0.1:{port} is in use" in run.stdout and "-p PORT" in run.stdout
            assert not data_dir.exists()
        run = subprocess.run([sys.executable, str(REPO / "osmo-smdpp.py"), "-H", "127.0.0.1",
                              "-p", "0", "--admin-port", str(port), "--data-dir", str(data_dir)],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 1 and "--admin-port PORT" in run.stdout
        assert not data_dir.exists()


@pytest.mark.parametrize("signo, reason", [(signal.SIGTERM, "SIGTERM received"),
                                           (signal.SIGINT, "SIGINT received (Ctrl-C)")])
def test_stop_says_why(server_factory, signo: int, reason: str) -> None:
    server = server_factory()
    server.process.send_signal(signo)
    assert server.process.wait(timeout=30) == 0
    server.wait_for_log("INFO smdpp: stopped\n")
    log = server.log()
    assert f"stopping: {reason}" in log and "Traceback" not in log


# ./osmo-smdpp.py, run once the interpreter itself is up: a SIGINT during the interpreter's
# own start (its site module) is Python's to report, before any line of smdpp runs.  A
# KeyboardInterrupt before the script's first statement completed is this harness's own.
_RUN_WHEN_UP = """
import sys
path = sys.argv[1]
sys.argv = sys.argv[1:]
code = compile(open(path).read(), path, "exec")
scope = {"__name__": "__main__", "__file__": path}
try:
    print("interpreter up", flush=True)
    exec(code, scope)
except KeyboardInterrupt:
    if "sys" in scope:
        raise
    sys.exit(130)
"""


def test_ctrl_c_at_any_moment_of_start_up(tmp_path: Path) -> None:
    """SIGINT or SIGTERM at several moments of start-up: loading modules, writing the PKI, listening."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for number, delay in enumerate((0.0, 0.02, 0.1, 0.3, 0.8, 2.0, 4.0)):
        process = subprocess.Popen(
            [sys.executable, "-c", _RUN_WHEN_UP, str(REPO / "osmo-smdpp.py"), "-H", "127.0.0.1",
             "-p", "0", "--data-dir", str(tmp_path / f"d{number}")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        assert process.stdout is not None
        assert process.stdout.readline() == "interpreter up\n"
        time.sleep(delay)
        signo = (signal.SIGINT, signal.SIGTERM)[number % 2]
        process.send_signal(signo)
        out, _ = process.communicate(timeout=60)
        assert "Traceback" not in out and "KeyboardInterrupt" not in out, (delay, out)
        if process.returncode == -signal.SIGTERM:  # SIGTERM's default, while modules load
            assert signo == signal.SIGTERM and not out.strip(), (delay, out)
            continue
        assert process.returncode in (0, 130, 143), (delay, process.returncode, out)
        if out.strip():  # once smdpp has logged anything, it says why it stops
            assert f"{signo.name} received" in out, (delay, out)


@pytest.mark.parametrize("signo", [signal.SIGINT, signal.SIGTERM])
def test_signal_while_the_listeners_start(tmp_path: Path, signo: int) -> None:
    """Right after the material is loaded, while the store opens and the reactor starts:
    Twisted would swallow a KeyboardInterrupt there and run on; the signal must stop it."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for number in range(3):
        process = subprocess.Popen(
            [sys.executable, str(REPO / "osmo-smdpp.py"), "-H", "127.0.0.1", "-p", "0",
             "--admin-port", "0", "--data-dir", str(tmp_path / "d")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        assert process.stdout is not None
        seen = []
        for line in process.stdout:
            seen.append(line)
            if "activation code" in line:
                break
        time.sleep(0.02 * number)
        process.send_signal(signo)
        out, _ = process.communicate(timeout=60)  # a server that ran on fails here
        out = "".join(seen) + out
        assert "Traceback" not in out, out
        assert f"{signal.Signals(signo).name} received" in out, out
        assert process.returncode in (0, 130, 143), (process.returncode, out)


def test_json_log_lines(server_factory) -> None:
    server = server_factory(None, "--log-format", "json")
    eid = one_download(server)
    log = server.wait_for_log('"function":"handleNotification"')
    lines = [json.loads(line) for line in log.splitlines()]  # every line is one JSON object
    calls = [line for line in lines if line.get("event") == "call"]
    assert [c["function"] for c in calls][-4:] == [
        "initiateAuthentication", "authenticateClient", "getBoundProfilePackage",
        "handleNotification"]
    assert calls[-1]["eid"] == eid and calls[-1]["matchingId"] == "SMDPP-TEST-1"
    assert calls[-1]["code"] == "ok" and calls[-1]["transactionId"] == calls[-4]["transactionId"]
    assert any(CODE in line["message"] for line in lines)


def test_version_and_help_name_the_program() -> None:
    out = subprocess.run([sys.executable, str(REPO / "osmo-smdpp.py"), "--version"],
                         capture_output=True, text=True, timeout=60).stdout
    assert re.fullmatch(r"osmo-smdpp\.py \d+\.\d+\.\d+\S*\n", out), out
    smdpp = shutil.which("smdpp", path=os.path.dirname(sys.executable))
    if smdpp is not None:  # the console script of this installation
        help_text = subprocess.run([smdpp, "--help"], capture_output=True, text=True,
                                   timeout=60).stdout
        assert help_text.startswith("usage: smdpp ")
