"""The call observers and the admin listener's handler, over a real engine in process.

A whole download goes through :class:`Es9pApi` (HTTP-shaped requests, no
socket); its one report per call feeds the recent sessions, the metrics and
the JSON log lines; :class:`AdminApi` answers the page, /health, /ready and
/metrics.  Over real HTTP: tests/e2e/test_admin.py.
"""
from __future__ import annotations

import base64
import io
import json
import logging
from pathlib import Path
from typing import Any, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from smdpp import admin, app, cli, logs
from smdpp.admin.page import StatusData, render
from smdpp.admin.recent import MAX_STEPS, RecentSessions
from smdpp.euicc.card import SoftEuicc
from smdpp.euicc.client import DownloadError, download
from smdpp.euicc.es9 import Es9Reply
from smdpp.http.es9p import Es9pApi, HttpRequest
from smdpp.observe import CallOutcome, Observers, bounded

ADDRESS = "testsmdpplus1.example.com"
TOKEN = "0123456789abcdef-token"


class InProcessClient:
    """Es9Client's ``call`` over :meth:`Es9pApi.handle`: the HTTP mapping without a socket."""

    def __init__(self, api: Es9pApi) -> None:
        self.api = api

    def call(self, function: str, body: dict[str, Any]) -> Es9Reply:
        response = self.api.handle(HttpRequest(
            "POST", f"/gsma/rsp2/es9plus/{function}",
            {b"content-type": b"application/json", b"x-admin-protocol": b"gsma/rsp/v2.2.0"},
            json.dumps(body).encode()))
        headers = {k.decode().lower(): v.decode() for k, v in response.headers}
        return Es9Reply(response.status, headers, response.body,
                        json.loads(response.body) if response.body else None)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("admin") / "smdpp-data"
    app.load_material(cli.parse_args(["--data-dir", str(folder)]))  # test PKI and profile once
    return folder


@pytest.fixture
def server(data_dir: Path) -> Iterator[tuple[Any, Es9pApi, admin.Admin, list[CallOutcome]]]:
    engine = app.build_engine(cli.parse_args(["--data-dir", str(data_dir), "--in-memory"]))
    seen: list[CallOutcome] = []
    observers = Observers(seen.append)
    setup = admin.setup(engine, observers, version="9.9", es9_url="http://x/", token=TOKEN)
    yield engine, Es9pApi(engine, observer=observers), setup, seen
    engine.store.close()


def _get(setup: admin.Admin, path: str, token: str | None = TOKEN, method: str = "GET"):
    headers = {b"authorization": f"Bearer {token}".encode()} if token else {}
    return setup.api.handle(HttpRequest(method, path, headers, b""))


def _metrics(setup: admin.Admin) -> dict[tuple[str, tuple], float]:
    text = _get(setup, "/metrics").body.decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_one_report_per_call_with_the_session_fields(server, data_dir: Path) -> None:
    engine, api, setup, seen = server
    card = SoftEuicc.from_identity_dir(data_dir / "euicc")
    result = download(InProcessClient(api), card, smdp_address=ADDRESS, matching_id="SMDPP-TEST-1")
    assert [o.function for o in seen] == ["initiateAuthentication", "authenticateClient",
                                          "getBoundProfilePackage", "handleNotification"]
    tid = seen[0].transaction_id
    assert tid and all(o.transaction_id == tid and o.ok and o.interface == "ES9+" for o in seen)
    assert [o.state for o in seen] == ["initiated", "authenticated", "bpp_delivered", "done"]
    assert [o.state_before for o in seen] == [None, "initiated", "authenticated", "bpp_delivered"]
    last = seen[-1]
    assert (last.eid, last.matching_id, last.iccid) == (card.eid, "SMDPP-TEST-1", result.iccid)
    assert last.installed is True and seen[0].installed is None
    assert all(0 < o.duration < 5 for o in seen)
    # the page: the session with its four steps; the metrics: one download started and completed
    view = setup.api.recent.newest_first()[0]
    assert view.transaction_id == tid and view.outcome == "installed" and len(view.steps) == 4
    figures = _metrics(setup)
    assert figures[("smdpp_downloads_started_total", ())] == 1
    assert figures[("smdpp_downloads_completed_total", ())] == 1
    assert figures[("smdpp_es9_function_seconds_count", (("function", "getBoundProfilePackage"),))] == 1
    assert figures[("smdpp_sessions", (("state", "done"),))] == 1
    assert figures[("smdpp_store_seconds_count", (("operation", "put_if"),))] == 4
    days = [v for (name, labels), v in figures.items() if name == "smdpp_certificate_expiry_days"]
    assert len(days) >= 3 and all(v > 300 for v in days)  # CI, DPauth, DPpb (+ DPtls) of the test PKI


def test_a_failed_step_reports_its_sgp22_code(server, data_dir: Path) -> None:
    engine, api, setup, seen = server
    card = SoftEuicc.from_identity_dir(data_dir / "euicc")
    with pytest.raises(DownloadError):
        download(InProcessClient(api), card, smdp_address=ADDRESS, matching_id="NO-SUCH-ONE")
    failed = seen[-1]
    assert failed.function == "authenticateClient" and failed.code == "8.2.6/3.8"
    assert "NO-SUCH-ONE" in (failed.message or "") and failed.state == "initiated"
    assert failed.eid == card.eid and failed.matching_id == "NO-SUCH-ONE"  # who asked for what
    assert engine.store.get(failed.transaction_id).eid is None  # only reported, not stored
    view = setup.api.recent.newest_first()[0]
    assert view.outcome == "failed at authenticateClient: 8.2.6/3.8"
    assert _metrics(setup)[("smdpp_downloads_failed_total",
                            (("code", "8.2.6/3.8"), ("function", "authenticateClient")))] == 1
    page = _get(setup, "/").body.decode()
    assert "8.2.6/3.8" in page and "no profile for matchingId" in page


def test_malformed_calls_are_reported_without_a_session(server) -> None:
    engine, api, setup, seen = server
    client = InProcessClient(api)
    client.call("authenticateClient", {"transactionId": "00" * 16,
                                       "authenticateServerResponse": "AA=="})
    client.call("getBoundProfilePackage", {"transactionId": "<script>"})
    assert [o.code for o in seen] == ["8.10.1/3.9", "1.2/2.2"]
    assert seen[0].transaction_id is None and seen[0].state is None  # unknown: no session
    api.handle(HttpRequest("GET", "/", {}, b""))  # not ES9+: no report
    assert len(seen) == 2


def test_admin_routes_and_token(server) -> None:
    engine, api, setup, seen = server
    assert _get(setup, "/health", token=None).body == b"ok\n"
    assert _get(setup, "/ready", token=None).status == 200
    for path in ("/", "/metrics"):
        assert _get(setup, path, token=None).status == 401
        assert _get(setup, path, token="wrong-token-wrong").status == 401
        assert _get(setup, path).status == 200
    basic = base64.b64encode(f"anyone:{TOKEN}".encode())
    assert setup.api.handle(HttpRequest("GET", "/?x=1", {b"authorization": b"Basic " + basic},
                                        b"")).status == 200
    assert setup.api.handle(HttpRequest("GET", "/", {b"authorization": b"Basic !!"}, b"")).status == 401
    assert _get(setup, "/nothing").status == 404
    assert _get(setup, "/", method="POST").status == 405
    head = _get(setup, "/", method="HEAD")
    assert head.status == 200 and head.body == b""
    page = _get(setup, "/")
    assert dict(page.headers)[b"Content-Security-Policy"].startswith(b"default-src 'none'")
    assert b"<script" not in page.body


def test_ready_names_an_unreachable_store(server) -> None:
    engine, api, setup, seen = server
    engine.store.close()

    def broken(transaction_id: str) -> None:
        raise OSError("disk gone")
    engine.store._store.get = broken  # the store behind the timing wrapper fails
    answer = _get(setup, "/ready", token=None)
    assert answer.status == 503 and b"session store unreachable: OSError: disk gone" in answer.body


def test_recent_sessions_are_bounded() -> None:
    recent = RecentSessions(limit=3)
    for number in range(5):
        for step in range(MAX_STEPS + 5):
            recent(CallOutcome("ES9+", "getBoundProfilePackage", 1.0, 0.001, f"{number:02X}"))
    views = recent.newest_first()
    assert [v.transaction_id for v in views] == ["04", "03", "02"]
    assert all(len(v.steps) == MAX_STEPS for v in views)


def test_page_escapes_what_came_from_the_network() -> None:
    recent = RecentSessions()
    recent(CallOutcome("ES9+", "authenticateClient", 1.0, 0.001, "AB", "8.2.6", "3.8",
                       "no profile for matchingId '<img src=x onerror=alert(1)>'",
                       matching_id="<b>x</b>" + "y" * 200))
    page = render(StatusData("h<", "1", "u", 1, 0.0, sessions=recent.newest_first()))
    assert "<img src=x" not in page and "&lt;img src=x" in page and "<b>x" not in page
    assert "y" * 65 not in page  # client strings bounded


def test_page_marks_certificates_30_days_ahead_and_lists_crls() -> None:
    from datetime import datetime, timedelta, timezone

    from smdpp.admin.page import CertificateRow, CrlRow
    now = datetime.now(timezone.utc)
    rows = [CertificateRow("CI", "CN=ci", now + timedelta(days=400), 400.0),
            CertificateRow("DPauth", "CN=soon", now + timedelta(days=12), 12.0),
            CertificateRow("DPtls", "CN=gone", now - timedelta(days=3), -3.0)]
    crl = CrlRow("crl/eum.crl", "CN=EUM", now - timedelta(days=1), now + timedelta(days=6), 7, 2)
    page = render(StatusData("h", "1", "u", 1, 0.0, certificates=rows, crls=[crl]))
    assert '<tr class=""><td>CI</td>' in page
    assert '<tr class="warn"><td>DPauth</td>' in page and "12 (expires within 30 days)" in page
    assert '<tr class="expired"><td>DPtls</td>' in page and "(expired)" in page
    assert "<td>crl/eum.crl</td><td>CN=EUM</td>" in page and '<td class="num">2</td>' in page


def test_an_observer_that_fails_does_not_fail_the_call(caplog) -> None:
    calls: list[CallOutcome] = []

    def broken(outcome: CallOutcome) -> None:
        raise RuntimeError("bug")
    observers = Observers(broken, calls.append)
    outcome = CallOutcome("ES9+", "cancelSession", 1.0, 0.0, None)
    with caplog.at_level(logging.ERROR):
        observers(outcome)
        observers(outcome)
    assert calls == [outcome, outcome]
    assert sum("failed (logged once)" in r.message for r in caplog.records) == 1


def test_json_log_lines(server, data_dir: Path) -> None:
    engine, api, setup, seen = server
    stream = io.StringIO()
    logs.configure(stream=stream, log_format="json")
    try:
        observers = Observers(logs.call_logger)
        api.observer = observers
        card = SoftEuicc.from_identity_dir(data_dir / "euicc")
        download(InProcessClient(api), card, smdp_address=ADDRESS, matching_id="SMDPP-TEST-1")
    finally:
        logs.configure()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]  # every line is JSON
    calls = [line for line in lines if line.get("event") == "call"]
    assert [c["function"] for c in calls] == ["initiateAuthentication", "authenticateClient",
                                              "getBoundProfilePackage", "handleNotification"]
    last = calls[-1]
    assert last["eid"] == card.eid and last["matchingId"] == "SMDPP-TEST-1"
    assert last["outcome"] == "success" and last["code"] == "ok" and last["durationMs"] > 0
    assert last["transactionId"] == calls[0]["transactionId"] and last["installed"] is True
    assert all({"time", "level", "logger", "message", "pid"} <= set(line) for line in lines)
    engine_lines = [line for line in lines if line["logger"] == "smdpp.rsp.engine"]
    assert engine_lines and "transactionId=" in engine_lines[0]["message"]
    text = stream.getvalue()
    assert "PRIVATE" not in text and "smdp_ot_key" not in text  # no key material


def test_bounded() -> None:
    assert bounded("a\x1b[31mb") == "a?[31mb"
    assert bounded("x" * 70) == "x" * 64 + "..."
    assert bounded(None) is None
