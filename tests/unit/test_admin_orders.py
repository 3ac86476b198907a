"""The orders part of the status page (smdpp.admin.orders) over a real OrderStore, and masking."""
from __future__ import annotations

from pathlib import Path

from smdpp.admin.orders import read_orders
from smdpp.admin.page import StatusData, render
from smdpp.observe import masked
from smdpp.orders.es2p import Es2pCore
from tests.orders_fixtures import PROFILE_TYPE, order_eid, pool_store


def _call(core: Es2pCore, function: str, number: int, **fields) -> dict:
    header = {"functionRequesterIdentifier": "op1", "functionCallIdentifier": f"c{number}"}
    return core.call(function, "op1", {"header": header, **fields})


def test_masked() -> None:
    assert masked("ABCD-EFGH-IJKL") == "ABCD..."
    assert masked("AB") == "AB..."
    assert masked("") == "" and masked(None) is None
    assert masked("\x1b[2Jxyz") == "?[2J..."  # no terminal escapes through


def test_inventory_and_recent_orders(tmp_path: Path) -> None:
    store = pool_store(tmp_path, range(1, 6))
    core = Es2pCore(store, "smdp.example")
    first = _call(core, "downloadOrder", 1, profileType=PROFILE_TYPE)["iccid"]
    answer = _call(core, "confirmOrder", 2, iccid=first, releaseFlag=True,
                   confirmationCode="1234", eid=order_eid(3))
    second = _call(core, "downloadOrder", 3, profileType=PROFILE_TYPE)["iccid"]
    view = read_orders(store, limit=1)
    assert view.total == 2 and [o.iccid for o in view.orders] == [second]  # bounded, newest
    view = read_orders(store)
    released = view.orders[1]
    assert (released.state, released.eid, released.operator) == ("Released", order_eid(3), "op1")
    assert released.matching_id == answer["matchingId"][:4] + "..." and released.cc_required
    assert released.ordered is not None and released.result == "waiting for the download"
    assert {(row.state, row.count) for row in view.pool} == {
        ("Available", 3), ("Allocated", 1), ("Released", 1)}
    page = render(StatusData("smdp.example", "1", "-", 1, 0.0, orders=view))
    assert answer["matchingId"] not in page and "required" in page
    assert "The 2 orders" not in page  # all shown
    page = render(StatusData("smdp.example", "1", "-", 1, 0.0, orders=read_orders(store, 1)))
    assert "The 1 orders changed last of 2" in page
    # cancelled back to the pool: no order any more, nothing of it kept
    _call(core, "cancelOrder", 4, iccid=second, finalProfileStatusIndicator="Available")
    assert [o.iccid for o in read_orders(store).orders] == [first]
    store.close()


def test_unreadable_store_is_named_on_the_page(tmp_path: Path) -> None:
    store = pool_store(tmp_path, range(1, 2))
    store.close()
    view = read_orders(store)
    assert view.problem and "cannot be read" in view.problem
    page = render(StatusData("smdp.example", "1", "-", 1, 0.0, orders=view))
    assert "the order store cannot be read" in page


def test_order_store_of_an_earlier_version_gets_the_ordered_column(tmp_path: Path) -> None:
    import sqlite3

    from smdpp.orders import sql
    from smdpp.orders.store import OrderStore
    old = sqlite3.connect(tmp_path / sql.FILE_NAME)  # the tables as the first schema made them
    old.executescript(sql._SCHEMA.format(blob="BLOB", real="REAL",
                                         serial="INTEGER PRIMARY KEY AUTOINCREMENT"))
    old.execute("INSERT INTO order_profiles (iccid, profile_type, state, upp, updated) "
                "VALUES ('8999', 't', 'Installed', x'00', 1.0)")
    old.commit()
    old.close()
    store = OrderStore(tmp_path)
    record = store.get("8999")
    assert record is not None and record.ordered is None and record.state.value == "Installed"
    store.close()
    OrderStore(tmp_path).close()  # and again: the column is there now, nothing to add
