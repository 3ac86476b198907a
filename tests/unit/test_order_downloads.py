"""ES9+ against orders (smdpp.orders.downloads), the HandleDownloadProgressInfo queue and its
delivery with back-off to a real HTTP endpoint on loopback, and the operator registry."""
from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from smdpp.errors import SgpError
from smdpp.orders.delivery import backoff, deliver_due
from smdpp.orders.downloads import OrderDownloads
from smdpp.orders.es2p import Es2pCore
from smdpp.orders.notify import Notifier
from smdpp.orders.operators import Operator, OperatorRegistry, check_notify_url
from smdpp.orders.pool import load_pool
from smdpp.orders.states import ProfileState
from smdpp.orders.store import OrderStore
from tests.orders_fixtures import pool_store, PROFILE_TYPE, order_eid, pool_iccid, write_pool
from tests.unit.test_orders import Caller

TID = "00112233445566778899AABBCCDDEEFF"
TID2 = "FFEEDDCCBBAA99887766554433221100"


class Receiver(BaseHTTPRequestHandler):
    """The operator's ES2+ endpoint: keeps every HandleDownloadProgressInfo."""

    received: list[tuple[str, dict]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def world(tmp_path: Path):
    store = pool_store(tmp_path, range(1, 4))
    registry = OperatorRegistry(tmp_path / "operators")
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    Receiver.received = []
    url = f"http://127.0.0.1:{server.server_address[1]}/op"
    registry.register(Operator("op1", b"\x01" * 32, url))
    notifier = Notifier(store, registry, "testsmdpplus1.example.com")
    downloads = OrderDownloads(store, notifier, max_cc_attempts=2)
    es2 = Caller(Es2pCore(store, "testsmdpplus1.example.com"))
    yield store, registry, downloads, es2, server
    server.server_close()
    store.close()


def _deliver(store: OrderStore, registry: OperatorRegistry, server: HTTPServer) -> int:
    thread = threading.Thread(target=lambda: [server.handle_request()
                                              for _ in range(store.queued())])
    thread.start()
    sent = deliver_due(store, registry, None)
    thread.join(10)
    return sent


def test_download_of_an_order_notifies_every_point(world) -> None:
    store, registry, downloads, es2, server = world
    eid = order_eid(3)
    iccid = es2("downloadOrder", profileType=PROFILE_TYPE)["iccid"]
    mid = es2("confirmOrder", iccid=iccid, releaseFlag=True, confirmationCode="0000")["matchingId"]
    assert downloads.find("NOT-AN-ORDER", eid) is None  # the lab's upp/ is asked next
    found = downloads.find(mid, eid)
    assert found is not None and found.iccid == iccid and found.cc_required
    hash_cc = hashlib.sha256(hashlib.sha256(b"0000").digest() + bytes.fromhex(TID)).digest()
    downloads.check_confirmation_code(iccid, eid, TID, hash_cc)
    downloads.bpp_delivered(iccid, eid, TID)
    downloads.bpp_delivered(iccid, eid, TID)  # a retry of the same session
    with pytest.raises(SgpError) as exc:  # another session, another eUICC: never
        downloads.bpp_delivered(iccid, order_eid(4), TID2)
    assert (exc.value.subject_code, exc.value.reason_code) == ("8.2", "3.7")
    downloads.installation_result(iccid, eid, TID, True, b"\xbf\x37\x00", None)
    assert store.get(iccid).state is ProfileState.INSTALLED  # type: ignore[union-attr]
    assert _deliver(store, registry, server) == 3
    points = [(path, body["notificationPointId"], body["notificationPointStatus"]["status"])
              for path, body in Receiver.received]
    assert points == [("/op/gsma/rsp2/es2plus/handleDownloadProgressInfo", n, "Executed-Success")
                      for n in (1, 3, 4)]
    last = Receiver.received[-1][1]
    assert base64.b64decode(last["resultData"]) == b"\xbf\x37\x00"
    assert last["iccid"] == iccid + "F" and last["eid"] == eid
    assert last["profileType"] == PROFILE_TYPE
    assert last["header"]["functionRequesterIdentifier"] == "testsmdpplus1.example.com"
    # a second download of the consumed profile
    with pytest.raises(SgpError) as exc:
        downloads.find(mid, eid)
    assert (exc.value.subject_code, exc.value.reason_code) == ("8.2", "3.7")


def test_order_refusals(world) -> None:
    store, registry, downloads, es2, server = world
    eid = order_eid(3)
    iccid = es2("downloadOrder", eid=eid, iccid=pool_iccid(1))["iccid"]
    mid = es2("confirmOrder", iccid=iccid, releaseFlag=False)["matchingId"]
    with pytest.raises(SgpError) as exc:
        downloads.find(mid, eid)
    assert (exc.value.subject_code, exc.value.reason_code) == ("8.2", "1.2")  # not released
    es2("releaseProfile", iccid=iccid)
    with pytest.raises(SgpError) as exc:
        downloads.find(mid, order_eid(9))
    assert (exc.value.subject_code, exc.value.reason_code) == ("8.1.1", "3.8")  # wrong EID
    # empty matchingId: the released order of this EID
    assert downloads.find("", eid).iccid == iccid  # type: ignore[union-attr]
    assert downloads.find(None, order_eid(9)) is None
    # cancelled order
    es2("cancelOrder", iccid=iccid, finalProfileStatusIndicator="Available")
    assert downloads.find(mid, eid) is None


def test_confirmation_code_retries(world) -> None:
    store, registry, downloads, es2, server = world
    eid = order_eid(3)
    iccid = es2("downloadOrder", iccid=pool_iccid(2))["iccid"]
    es2("confirmOrder", iccid=iccid, releaseFlag=True, confirmationCode="secret")
    with pytest.raises(SgpError) as exc:
        downloads.check_confirmation_code(iccid, eid, TID, None)
    assert (exc.value.subject_code, exc.value.reason_code) == ("8.2.7", "2.2")
    with pytest.raises(SgpError) as exc:
        downloads.check_confirmation_code(iccid, eid, TID, b"\x00" * 32)
    assert (exc.value.subject_code, exc.value.reason_code) == ("8.2.7", "6.4")
    record = store.get(iccid)
    assert record is not None and record.state is ProfileState.ERROR
    assert record.cc_hash == hashlib.sha256(b"secret").digest()  # never the code itself
    assert _deliver(store, registry, server) == 2
    assert [(b["notificationPointId"], b["notificationPointStatus"]["statusCodeData"]["reasonCode"])
            for _, b in Receiver.received] == [(2, "2.2"), (2, "6.4")]
    # Error, never delivered: the operator may put it back into the pool
    es2("cancelOrder", iccid=iccid, finalProfileStatusIndicator="Available")
    assert store.get(iccid).state is ProfileState.AVAILABLE  # type: ignore[union-attr]


def test_cancel_session_reasons(world) -> None:
    store, registry, downloads, es2, server = world
    eid = order_eid(3)
    iccid = es2("downloadOrder", iccid=pool_iccid(3))["iccid"]
    es2("confirmOrder", iccid=iccid, releaseFlag=True)
    downloads.session_cancelled(iccid, eid, TID, 1)  # postponed: try again later
    assert store.get(iccid).state is ProfileState.RELEASED  # type: ignore[union-attr]
    downloads.session_cancelled(iccid, eid, TID, 0)  # end user rejection
    assert store.get(iccid).state is ProfileState.ERROR  # type: ignore[union-attr]
    # the operator hears both (SGP.22 5.3.5), at the point reached: BPP download, Failed
    assert _deliver(store, registry, server) == 2
    assert [(b["notificationPointId"], b["notificationPointStatus"]["status"],
             b["notificationPointStatus"]["statusCodeData"]["message"])
            for _, b in Receiver.received] == [(3, "Failed", "cancelSession reason 1"),
                                               (3, "Failed", "cancelSession reason 0")]


def test_cancel_session_after_the_bpp_notifies_installation_failed(world) -> None:
    store, registry, downloads, es2, server = world
    eid = order_eid(3)
    iccid = es2("downloadOrder", iccid=pool_iccid(3))["iccid"]
    es2("confirmOrder", iccid=iccid, releaseFlag=True)
    downloads.bpp_delivered(iccid, eid, TID)
    downloads.session_cancelled(iccid, eid, TID2, 5)  # another session: not this profile's
    assert store.get(iccid).state is ProfileState.DOWNLOADED  # type: ignore[union-attr]
    downloads.session_cancelled(iccid, eid, TID, 5)  # loadBppExecutionError
    assert store.get(iccid).state is ProfileState.ERROR  # type: ignore[union-attr]
    assert _deliver(store, registry, server) == 2
    assert [(b["notificationPointId"], b["notificationPointStatus"]["status"])
            for _, b in Receiver.received] == [(3, "Executed-Success"), (4, "Failed")]


def test_session_expiry_before_and_after_the_bpp(world) -> None:
    store, registry, downloads, es2, server = world
    eid = order_eid(3)
    iccid = es2("downloadOrder", iccid=pool_iccid(2))["iccid"]
    es2("confirmOrder", iccid=iccid, releaseFlag=True)
    downloads.session_expired(iccid, eid, TID, False)  # before the BPP: try again
    assert store.get(iccid).state is ProfileState.RELEASED  # type: ignore[union-attr]
    assert store.queued() == 0
    downloads.bpp_delivered(iccid, eid, TID2)
    downloads.session_expired(iccid, eid, TID, True)  # not the session that took it
    assert store.get(iccid).state is ProfileState.DOWNLOADED  # type: ignore[union-attr]
    downloads.session_expired(iccid, eid, TID2, True)
    record = store.get(iccid)
    assert record is not None and record.state is ProfileState.ERROR
    assert _deliver(store, registry, server) == 2
    last = Receiver.received[-1][1]
    assert last["notificationPointId"] == 4
    assert last["notificationPointStatus"]["statusCodeData"]["subjectCode"] == "8.10.1"
    assert last["notificationPointStatus"]["statusCodeData"]["reasonCode"] == "4.10"


def test_sweep_finds_downloads_whose_session_expired(world) -> None:
    store, registry, downloads, es2, server = world
    eid = order_eid(3)
    taken, waiting = (es2("downloadOrder", iccid=pool_iccid(n))["iccid"] for n in (1, 2))
    for iccid in (taken, waiting):
        es2("confirmOrder", iccid=iccid, releaseFlag=True)
    downloads.bpp_delivered(taken, eid, TID)
    assert downloads.downloads_expired(600.0) == 0  # the session may still be live
    assert store.get(taken).state is ProfileState.DOWNLOADED  # type: ignore[union-attr]
    later = store.get(taken).updated + 601.0  # type: ignore[union-attr]
    store.clock = lambda: later
    assert downloads.downloads_expired(600.0) == 1
    assert store.get(taken).state is ProfileState.ERROR  # type: ignore[union-attr]
    assert store.get(waiting).state is ProfileState.RELEASED  # type: ignore[union-attr]
    assert downloads.downloads_expired(600.0) == 0
    assert _deliver(store, registry, server) == 2
    assert [(b["notificationPointId"], b["notificationPointStatus"]["status"])
            for _, b in Receiver.received] == [(3, "Executed-Success"), (4, "Failed")]


def test_operator_down_then_back(world, tmp_path: Path) -> None:
    store, registry, downloads, es2, server = world
    down = HTTPServer(("127.0.0.1", 0), Receiver)
    port = down.server_address[1]
    down.server_close()  # nothing listens there now
    registry.register(Operator("op1", b"\x01" * 32, f"http://127.0.0.1:{port}"))
    iccid = es2("downloadOrder", iccid=pool_iccid(1))["iccid"]
    mid = es2("confirmOrder", iccid=iccid, releaseFlag=True)["matchingId"]
    downloads.find(mid, order_eid(1))
    assert deliver_due(store, registry, None) == 0
    assert store.queued() == 1
    store.clock = lambda: 10 ** 10  # the back-off has passed
    back = HTTPServer(("127.0.0.1", port), Receiver)
    thread = threading.Thread(target=back.handle_request)
    thread.start()
    assert deliver_due(store, registry, None) == 1
    thread.join(10)
    back.server_close()
    assert store.queued() == 0 and Receiver.received[-1][1]["notificationPointId"] == 1
    assert [backoff(n) for n in (1, 2, 3, 20)] == [1.0, 2.0, 4.0, 300.0]


def test_operator_registry(tmp_path: Path) -> None:
    registry = OperatorRegistry(tmp_path)
    assert registry.by_name("a") is None
    registry.register(Operator("a", hashlib.sha256(b"cert-a").digest(), "https://op.example/x/"))
    assert registry.by_certificate(b"cert-a").name == "a"  # type: ignore[union-attr]
    assert registry.by_name("a").notify_url == "https://op.example/x"  # type: ignore[union-attr]
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "b.json").write_text(json.dumps({"name": "c", "certificateSha256": "00" * 32}))
    assert registry.by_name("b") is None and registry.by_name("a") is not None
    for bad in ("http://op.example/", "ftp://x/", "https://x/?q=1"):
        with pytest.raises(ValueError):
            check_notify_url(bad)
    assert check_notify_url("http://127.0.0.1:9/") == "http://127.0.0.1:9"


def test_smdpp_pki_operator_issues_or_registers(tmp_path: Path, capsys) -> None:
    from smdpp.pki.cli import main
    from smdpp.pki.files import load_certificate
    from smdpp.orders.operators import certificate_fingerprint
    from cryptography.hazmat.primitives.serialization import Encoding
    assert main(["operator", "lab", "--data-dir", str(tmp_path),
                 "--notify-url", "http://127.0.0.1:9/x"]) == 0
    issued = tmp_path / "operators" / "lab" / "cert.pem"
    assert "client key:" in capsys.readouterr().out
    assert oct((tmp_path / "operators" / "lab" / "key.pem").stat().st_mode & 0o777) == "0o600"
    registry = OperatorRegistry(tmp_path / "operators")
    der = load_certificate(issued).public_bytes(Encoding.DER)
    assert registry.by_certificate(der).notify_url == "http://127.0.0.1:9/x"  # type: ignore[union-attr]
    # a certificate already bound to another operator is refused
    assert main(["operator", "brought", "--data-dir", str(tmp_path), "--cert", str(issued)]) == 1
    assert "already operator lab's" in capsys.readouterr().err
    # an operator brings its own certificate: registered, no key of ours
    assert main(["operator", "other", "--data-dir", str(tmp_path / "elsewhere")]) == 0
    own = tmp_path / "elsewhere" / "operators" / "other" / "cert.pem"
    assert main(["operator", "brought", "--data-dir", str(tmp_path), "--cert", str(own)]) == 0
    assert "client key:" not in capsys.readouterr().out.split("registered in")[-1]
    brought = load_certificate(own).public_bytes(Encoding.DER)
    assert registry.by_certificate(brought).name == "brought"  # type: ignore[union-attr]
    assert main(["operator", "bad name", "--data-dir", str(tmp_path)]) == 1
    assert main(["operator", "x", "--data-dir", str(tmp_path),
                 "--notify-url", "http://example.com/"]) == 1
    assert certificate_fingerprint(der) == registry.by_name("lab").certificate_sha256  # type: ignore[union-attr]
