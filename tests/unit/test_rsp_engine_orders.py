"""RspEngine with an OrderLookup, driven directly (no HTTP): ccRequiredFlag in smdpSigned2,
hashCc checked with its retry limit, one eUICC once, results back to the order (SGP.22 5.6)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from smdpp.asn1 import rsp
from smdpp.euicc.card import SoftEuicc
from smdpp.euicc.client import prepare_download_request
from smdpp.euicc.es9 import b64d
from smdpp.orders.downloads import OrderDownloads
from smdpp.orders.es2p import Es2pCore
from smdpp.orders.notify import Notifier
from smdpp.orders.operators import OperatorRegistry
from smdpp.orders.states import ProfileState
from smdpp.rsp.engine import EngineConfig, RspEngine
from smdpp.rsp.states import FAILED, SessionState
from smdpp.store import MemoryStore
from tests.e2e.flow import ADDRESS, Flow, assert_failed, assert_ok
from tests.orders_fixtures import PROFILE_TYPE, pool_store
from tests.unit.test_orders import Caller
from tests.unit.test_rsp_engine import FakeClock, Material, material  # noqa: F401 - fixture

from bench.engine import EngineClient


@pytest.fixture
def world(material: Material, tmp_path: Path):  # noqa: F811
    store = pool_store(tmp_path, range(1, 4))
    downloads = OrderDownloads(store, Notifier(store, OperatorRegistry(tmp_path / "ops"), ADDRESS))
    engine = RspEngine(material.certs, material.profiles, MemoryStore(),
                       EngineConfig(hostname=ADDRESS), clock=FakeClock(), orders=downloads)
    yield engine, store, Caller(Es2pCore(store, ADDRESS)), material
    store.close()


def _flow(engine: RspEngine, material: Material, matching_id: str) -> Flow:  # noqa: F811
    return Flow(EngineClient(engine), SoftEuicc.from_identity_dir(material.euicc_dir),  # type: ignore[arg-type]
                matching_id=matching_id)


def _authenticated(world, code: str) -> tuple[str, str, Flow]:
    """An order with Confirmation Code ``code`` and a session authenticated for it."""
    engine, store, es2, material = world
    iccid = es2("downloadOrder", profileType=PROFILE_TYPE)["iccid"]
    mid = es2("confirmOrder", iccid=iccid, releaseFlag=True, confirmationCode=code)["matchingId"]
    flow = _flow(engine, material, mid)
    assert_ok(flow.initiate())
    assert_ok(flow.authenticate())
    return iccid, mid, flow


def _prepare(flow: Flow, code: str) -> bytes:
    hash_cc = hashlib.sha256(hashlib.sha256(code.encode()).digest()
                             + bytes.fromhex(flow.tid)).digest()
    return flow.card.prepare_download(prepare_download_request(
        b64d(flow.auth["smdpSigned2"]), b64d(flow.auth["smdpSignature2"]),
        b64d(flow.auth["smdpCertificate"]), hash_cc))


def test_engine_serves_an_order_with_a_confirmation_code(world) -> None:
    engine, store, es2, material = world
    iccid, mid, flow = _authenticated(world, "7")
    assert rsp().decode("SmdpSigned2", b64d(flow.auth["smdpSigned2"]))["ccRequiredFlag"] is True
    assert_ok(flow.get_bpp(_prepare(flow, "7")))
    assert store.get(iccid).state is ProfileState.DOWNLOADED  # type: ignore[union-attr]
    assert flow.notify(flow.install()).http_status == 204
    assert store.get(iccid).state is ProfileState.INSTALLED  # type: ignore[union-attr]
    again = _flow(engine, material, mid)
    assert_ok(again.initiate())
    assert_failed(again.authenticate(), "8.2", "3.7")
    # the lab's upp/ beside it: no ccRequiredFlag, any number of times
    lab = _flow(engine, material, material.matching_id)
    assert_ok(lab.initiate())
    assert_ok(lab.authenticate())
    assert rsp().decode("SmdpSigned2", b64d(lab.auth["smdpSigned2"]))["ccRequiredFlag"] is False


def test_engine_ends_the_session_when_the_codes_run_out(world) -> None:
    engine, store, es2, material = world
    iccid, mid, flow = _authenticated(world, "7")
    for reason in ("3.8", "3.8"):  # a wrong code: the session stays, the user may try again
        assert_failed(flow.get_bpp(_prepare(flow, "8")), "8.2.7", reason)
        assert engine.store.get(flow.tid).state is SessionState.AUTHENTICATED  # type: ignore[union-attr]
    assert_failed(flow.get_bpp(_prepare(flow, "8")), "8.2.7", "6.4")
    assert engine.store.get(flow.tid).state is FAILED  # type: ignore[union-attr]
    assert store.get(iccid).state is ProfileState.ERROR  # type: ignore[union-attr]


def _expire(engine: RspEngine) -> None:
    engine.clock.now += engine.config.session_lifetime + 1  # type: ignore[attr-defined]


def test_expiry_before_the_bpp_leaves_the_order_released_for_a_retry(world) -> None:
    engine, store, es2, material = world
    iccid, mid, flow = _authenticated(world, "7")
    _expire(engine)
    assert_failed(flow.get_bpp(_prepare(flow, "7")), "8.10.1", "3.9")
    assert engine.store.get(flow.tid).state is SessionState.EXPIRED  # type: ignore[union-attr]
    assert store.get(iccid).state is ProfileState.RELEASED  # type: ignore[union-attr]
    again = _flow(engine, material, mid)  # the subscriber scans the code again
    assert_ok(again.initiate())
    assert_ok(again.authenticate())
    assert_ok(again.get_bpp(_prepare(again, "7")))
    assert store.get(iccid).state is ProfileState.DOWNLOADED  # type: ignore[union-attr]


def test_expiry_after_the_bpp_without_a_result_puts_the_order_in_error(world) -> None:
    engine, store, es2, material = world
    iccid, mid, flow = _authenticated(world, "7")
    assert_ok(flow.get_bpp(_prepare(flow, "7")))
    installed = flow.install()
    _expire(engine)
    assert flow.notify(installed).http_status != 204  # too late: the session has expired
    assert engine.store.get(flow.tid).state is SessionState.EXPIRED  # type: ignore[union-attr]
    record = store.get(iccid)
    assert record is not None and record.state is ProfileState.ERROR
    again = _flow(engine, material, mid)
    assert_ok(again.initiate())
    assert_failed(again.authenticate(), "8.2", "3.7")


def test_the_expiry_sweep_puts_a_download_without_a_result_in_error(world) -> None:
    engine, store, es2, material = world
    iccid, mid, flow = _authenticated(world, "7")
    assert_ok(flow.get_bpp(_prepare(flow, "7")))
    engine.expire_sessions()  # the session is live: nothing changes
    assert store.get(iccid).state is ProfileState.DOWNLOADED  # type: ignore[union-attr]
    _expire(engine)
    later = store.get(iccid).updated + engine.config.session_lifetime + 1  # type: ignore[union-attr]
    store.clock = lambda: later
    assert engine.expire_sessions() == 1  # the session is dropped unseen ...
    assert engine.store.get(flow.tid) is None
    assert store.get(iccid).state is ProfileState.ERROR  # type: ignore[union-attr]  # ... not its order
