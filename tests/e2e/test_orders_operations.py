"""Operations with orders, over the real server process: ES2+ calls in the JSON log and in
/metrics, orders on the status page, and the activation codes of waiting orders at start."""
from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from pathlib import Path

import pytest

from smdpp.euicc.client import DownloadError
from tests.orders_fixtures import PROFILE_TYPE, pool_iccid, write_pool

from .conftest import RunningServer, start_server
from .operator_endpoint import OperatorEndpoint
from .test_admin import admin_url, get, metrics
from .test_orders import card, dl, es2_client, register

CC = "4711"


@pytest.fixture
def ops(tmp_path: Path):
    """A server with orders (pool of 6), JSON log lines, the admin listener; operator op1
    notified at an HTTPS endpoint."""
    data_dir = tmp_path / "smdpp-data"
    write_pool(data_dir / "pool", range(1, 7))
    server = start_server(data_dir, "--es2-port", "0", "--log-format", "json",
                          "--admin-port", "0")
    endpoint = OperatorEndpoint(tmp_path / "endpoint").start()
    register(data_dir, "op1", "--notify-url", endpoint.url, "--notify-ca", str(endpoint.ca_file))
    yield server, endpoint
    endpoint.stop()
    server.stop()


def es2_calls(server: RunningServer, count: int) -> list[dict]:
    """The JSON lines of the ES2+ calls once there are ``count`` of them."""
    for _ in range(200):
        lines = [json.loads(line) for line in server.log().splitlines()]  # all JSON
        calls = [line for line in lines
                 if line.get("event") == "call" and line["interface"] == "ES2+"]
        if len(calls) >= count:
            return calls
        server.wait_for_log("", 0.05)
    raise AssertionError(f"fewer than {count} ES2+ call lines:\n{server.log()}")


def test_es2p_calls_in_json_log_and_metrics(ops) -> None:
    server, endpoint = ops
    euicc = card(server)
    with es2_client(server) as es2:
        iccid = es2.download_order(profile_type=PROFILE_TYPE)
        answer = es2.confirm_order(iccid, release=True, confirmation_code=CC)
        second = es2.download_order(iccid=pool_iccid(5))
        held = es2.confirm_order(second, release=False)["matchingId"]
        with pytest.raises(DownloadError):  # not released yet: refused, the id still masked
            dl(server, euicc, held)
        es2.release_profile(second)
        es2.cancel_order(second, "Available")
        call_id = uuid.uuid4().hex
        refused = es2.raw("releaseProfile", {"header": es2.header(call_id), "iccid": second})
    assert refused.status_code_data["subjectCode"] == "8.2.1"  # Available: nothing to release
    matching_id = answer["matchingId"]
    dl(server, euicc, matching_id, cc=CC)
    endpoint.wait_for(4)
    calls = es2_calls(server, 11)
    operator_calls = [c for c in calls if c["function"] != "handleDownloadProgressInfo"]
    assert [c["function"] for c in operator_calls] == [
        "downloadOrder", "confirmOrder", "downloadOrder", "confirmOrder", "releaseProfile",
        "cancelOrder", "releaseProfile"]
    for call in operator_calls:
        assert call["functionRequesterIdentifier"] == "op1"
        assert len(call["functionCallIdentifier"]) == 32 and call["durationMs"] >= 0
    confirm = operator_calls[1]
    assert confirm["iccid"] == iccid and confirm["outcome"] == "success" and confirm["code"] == "ok"
    assert confirm["matchingId"] == matching_id[:4] + "..."  # masked: it downloads the profile
    last = operator_calls[-1]
    assert last["functionCallIdentifier"] == call_id and last["outcome"] == "failed"
    assert last["code"] == f"8.2.1/{refused.status_code_data['reasonCode']}"
    assert last["iccid"] == second
    sent = [c for c in calls if c["function"] == "handleDownloadProgressInfo"]
    assert len(sent) == 4 and all(c["outcome"] == "success" and c["operator"] == "op1"
                                  for c in sent)  # the refusal's point 1, and 1, 3, 4
    assert sorted(c["iccid"] for c in sent) == sorted([second + "F"] + [iccid + "F"] * 3)
    assert {c["eid"] for c in sent} == {euicc.eid}
    # never the Confirmation Code, its hash, nor the full matchingId in an ES2+ line
    log = server.log()
    cc_hash = hashlib.sha256(CC.encode()).digest()
    for secret in (f'"{CC}"', cc_hash.hex(), base64.b64encode(cc_hash).decode()):
        assert secret not in log
    assert matching_id not in log  # ES9+ lines of an order's download mask it too
    assert held not in log and f'"matchingId":"{held[:4]}..."' in log

    figures = metrics(admin_url(server))
    assert figures[("smdpp_es2_calls_total", (("code", "ok"), ("function", "downloadOrder")))] == 2
    assert figures[("smdpp_es2_calls_total", (("code", "ok"), ("function", "releaseProfile")))] == 1
    assert figures[("smdpp_es2_calls_total", (("code", last["code"]),
                                              ("function", "releaseProfile")))] == 1
    assert figures[("smdpp_es2_calls_total", (("code", "ok"),
                                              ("function", "handleDownloadProgressInfo")))] == 4
    assert figures[("smdpp_es2_function_seconds_count", (("function", "confirmOrder"),))] == 2
    assert figures[("smdpp_downloads_completed_total", ())] == 1  # ES9+ counts stay ES9+'s


def test_orders_on_the_status_page(ops) -> None:
    server, endpoint = ops
    url = admin_url(server) + "/"
    page = get(url)[2]
    assert 'id="pool-table"' in page and "No order yet" in page
    euicc = card(server)
    with es2_client(server) as es2:
        iccid = es2.download_order(profile_type=PROFILE_TYPE, eid=euicc.eid)
        matching_id = es2.confirm_order(iccid, release=True, confirmation_code=CC)["matchingId"]
        held = es2.download_order(iccid=pool_iccid(6))
    page = get(url)[2]
    rows = order_rows(page)
    assert [row[0] for row in rows] == [held, iccid]  # newest first
    assert rows[1][1:7] == ["Released", PROFILE_TYPE, euicc.eid, "op1", matching_id[:4] + "...",
                            "required"]
    assert rows[0][1] == "Allocated" and rows[0][3] == "-" and rows[0][6] == "no"
    assert matching_id not in page  # masked everywhere on the page
    assert pool_counts(page) == {"Available": "4", "Allocated": "1", "Released": "1",
                                 "total": "6"}
    dl(server, euicc, matching_id, cc=CC)
    for _ in range(100):  # the order store is written before the last ES9+ answer goes out
        rows = order_rows(get(url)[2])
        if rows[0][1] == "Installed":
            break
        time.sleep(0.05)
    assert rows[0][0] == iccid and rows[0][1] == "Installed"
    assert rows[0][-1] == "installed on the eUICC"


def order_rows(page: str) -> list[list[str]]:
    """The cells of the order table (text, tags stripped)."""
    import html
    import re
    return [[html.unescape(re.sub(r"<[^>]+>", "", cell)) for cell in
             re.findall(r"<td[^>]*>(.*?)</td>", row)]
            for row in re.findall(r'<tr class="order">(.*?)</tr>', page)]


def pool_counts(page: str) -> dict[str, str]:
    """The pool table's one row: column name -> cell."""
    import re
    table = re.search(r'<table id="pool-table">(.*?)</table>', page, re.S).group(1)
    head, row = re.findall(r"<tr>(.*?)</tr>", table)
    names = re.findall(r"<th>(.*?)</th>", head)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    return {name: cell for name, cell in zip(names, cells) if name not in ("profileType", "from")}


def test_released_orders_activation_codes_at_start(tmp_path: Path) -> None:
    """The released orders' codes (the first 10, the rest counted) and the pool's line, in the
    first lines of a restarted server, once also with --workers 2; --qr-dir writes them."""
    import re
    import shutil
    import subprocess

    from smdpp.activation import parse_activation_code

    data_dir = tmp_path / "smdpp-data"
    write_pool(data_dir / "pool", range(1, 16))
    server = start_server(data_dir, "--es2-port", "0")
    register(data_dir, "op1")
    codes = {}
    with es2_client(server) as es2:
        for number in range(12):
            iccid = es2.download_order(iccid=pool_iccid(number + 1))
            answer = es2.confirm_order(iccid, release=True,
                                       confirmation_code=CC if number == 0 else None)
            codes[iccid] = answer["matchingId"]
        es2.confirm_order(es2.download_order(iccid=pool_iccid(13)), release=False)  # not released
    server.stop()
    qr_dir = tmp_path / "qr"
    for extra in ((), ("--workers", "2", "--store", "shelve:")):
        server = start_server(data_dir, "--es2-port", "0", "--qr-dir", str(qr_dir), *extra)
        try:
            log = server.log()
        finally:
            server.stop()
        lines = log[:log.index("serving ES9+")].splitlines()
        shown = [line for line in lines if " order ICCID " in line]
        assert len(shown) == 10, log  # once, also with two workers
        for line in shown:
            iccid = re.search(r"order ICCID (\d+)", line).group(1)
            code = parse_activation_code(re.search(r"activation code ([^\s,]+)", line).group(1))
            assert (code.smdp_address, code.matching_id) == ("testsmdpplus1.example.com",
                                                             codes[iccid])
            assert code.confirmation_code_required == (iccid == pool_iccid(1))
            assert ("Confirmation Code is required" in line) == (iccid == pool_iccid(1))
            assert (qr_dir / f"order-{iccid}.png").read_bytes()[:4] == b"\x89PNG"
        assert pool_iccid(13) not in log  # Confirmed, not released: no code
        assert any("and 2 more released orders: smdpp-order --data-dir" in line
                   for line in lines), log
        pool = [line for line in lines if "pool: " in line and "Available" in line]
        assert len(pool) == 1 and "2 of profileType 'smdpp test pool' Available" in pool[0]
        assert re.search(r"smdpp-order --url https://127\.0\.0\.1:\d+ --operator NAME", pool[0])
        assert CC not in log
    zbarimg = shutil.which("zbarimg")
    if zbarimg is not None:  # .ci/run installs zbar-tools
        out = subprocess.run([zbarimg, "--quiet", "--raw", str(qr_dir / f"order-{pool_iccid(1)}.png")],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        assert out.strip() == f"LPA:1$testsmdpplus1.example.com${codes[pool_iccid(1)]}$$1"


def test_orders_on_the_page_of_every_worker(tmp_path: Path) -> None:
    """--workers 2: the order store is shared, so whichever worker answers shows the order."""
    import re

    data_dir = tmp_path / "smdpp-data"
    write_pool(data_dir / "pool", range(1, 4))
    server = start_server(data_dir, "--workers", "2", "--es2-port", "0", "--admin-port", "0")
    try:
        register(data_dir, "op1")
        with es2_client(server) as es2:
            iccid = es2.download_order(profile_type=PROFILE_TYPE)
            es2.confirm_order(iccid, release=True)
        pids: set[str] = set()
        for _ in range(200):  # each request may reach either worker
            page = get(admin_url(server) + "/")[2]
            pids.add(re.search(r"process (\d+) \(one of 2 workers\)", page).group(1))
            assert [row[:2] for row in order_rows(page)] == [[iccid, "Released"]]
            if len(pids) == 2:
                break
        assert len(pids) == 2
    finally:
        server.stop()
