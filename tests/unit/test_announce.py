"""Start-up activation code lines (smdpp.announce) over real inventories and order stores."""
from __future__ import annotations

import logging
from pathlib import Path

from smdpp.activation import parse_activation_code
from smdpp.announce import announce_orders, announce_profiles
from smdpp.orders.es2p import Es2pCore
from smdpp.profiles.inventory import ProfileInventory, ensure_test_profile
from tests.orders_fixtures import order_eid, pool_iccid, pool_store


def test_each_profile_at_each_address(tmp_path: Path, caplog) -> None:
    ensure_test_profile(tmp_path / "upp")
    profiles = ProfileInventory.load(tmp_path / "upp")
    with caplog.at_level(logging.INFO, logger="smdpp"):
        announce_profiles(profiles, "smdp.example", tmp_path / "qr", also=["dp2.example:8443"])
    codes = [parse_activation_code(r.getMessage().split("activation code ")[1].split(",")[0])
             for r in caplog.records if "activation code" in r.getMessage()]
    assert [(c.smdp_address, c.matching_id) for c in codes] == [
        ("smdp.example", "SMDPP-TEST-1"), ("dp2.example:8443", "SMDPP-TEST-1")]
    assert sorted(p.name for p in (tmp_path / "qr").iterdir()) == [
        "SMDPP-TEST-1.png", "SMDPP-TEST-1@dp2.example:8443.png"]


def test_orders_by_eid_and_empty_pool(tmp_path: Path, caplog) -> None:
    store = pool_store(tmp_path, range(1, 2))
    core = Es2pCore(store, "smdp.example")
    header = {"functionRequesterIdentifier": "op1", "functionCallIdentifier": "1"}
    core.call("downloadOrder", "op1", {"header": header, "iccid": pool_iccid(1)})
    core.call("confirmOrder", "op1", {"header": {**header, "functionCallIdentifier": "2"},
                                      "iccid": pool_iccid(1), "matchingId": "",
                                      "eid": order_eid(4), "releaseFlag": True})
    with caplog.at_level(logging.INFO, logger="smdpp"):
        announce_orders(store, "smdp.example", None, es2_url="https://127.0.0.1:1",
                        data_dir=tmp_path)
    lines = [r.getMessage() for r in caplog.records]
    assert any(f"released for EID {order_eid(4)}, found by its EID" in line for line in lines)
    assert not any("activation code LPA:" in line for line in lines)
    assert any(line.startswith("pool: no Available profile") for line in lines)
    store.close()
