"""Pool profiles from a template and a CSV, personalized at ES2+ DownloadOrder time."""
from __future__ import annotations

from pathlib import Path

import pytest

from smdpp.errors import SgpError
from smdpp.orders.es2p import Es2pCore
from smdpp.orders.pool import load_pool
from smdpp.orders.states import ProfileState
from smdpp.orders.store import OrderStore
from smdpp.profiles.generate import DEFAULT_PROFILE_TYPE, generate_default_test_profile
from smdpp.profiles.inventory import profile_from_upp
from tests.unit.test_orders import Caller

KI = "000102030405060708090a0b0c0d0e0f"
OPC = "f0e0d0c0b0a090807060504030201000"


def write_template_pool(pool: Path, rows: list[str]) -> None:
    pool.mkdir(parents=True, exist_ok=True)
    (pool / "batch1.template.der").write_bytes(generate_default_test_profile())
    (pool / "batch1.csv").write_text("iccid,imsi,ki,opc\n" + "".join(r + "\n" for r in rows))


def test_csv_rows_are_personalized_when_ordered(tmp_path: Path) -> None:
    write_template_pool(tmp_path / "pool", [
        f"8999800000000000015,001010000000001,{KI},{OPC}",
        f"8999800000000000023,001010000000002,{KI},{OPC}",
        "8999800000000000031,not-an-imsi,,",  # skipped, named in the log
    ])
    store = OrderStore(tmp_path)
    scan = load_pool(tmp_path / "pool", store)
    assert (scan.added, scan.skipped) == (2, 1)
    assert store.counts() == {DEFAULT_PROFILE_TYPE: {"Available": 2}}
    record = store.get("8999800000000000015")
    assert record is not None and record.template is not None
    with pytest.raises(ValueError):
        store.upp(record.iccid)  # nothing to download before it is ordered
    raw = (tmp_path / "orders.sqlite").read_bytes()
    assert bytes.fromhex(KI) not in raw and KI.encode() not in raw  # the row is sealed
    es2 = Caller(Es2pCore(store, "smdp.example"))
    iccid = es2("downloadOrder", iccid="8999800000000000015F")["iccid"]
    upp = store.upp(iccid)
    assert upp is not None and profile_from_upp("x", upp).iccid == iccid
    assert store.get(iccid).template is None  # type: ignore[union-attr]
    assert load_pool(tmp_path / "pool", store).known == 2  # SIGHUP: nothing twice
    store.close()


def test_a_row_the_template_cannot_take_becomes_unavailable(tmp_path: Path) -> None:
    write_template_pool(tmp_path / "pool", [f"8999800000000000015,001010000000001,{KI},{OPC}"])
    store = OrderStore(tmp_path)
    load_pool(tmp_path / "pool", store)
    # the template kept in the store is damaged: personalization fails at order time
    store._execute("UPDATE order_templates SET der = ?", (b"\x00" * 40,))
    es2 = Caller(Es2pCore(store, "smdp.example"))
    with pytest.raises(SgpError) as exc:
        es2("downloadOrder", profileType=DEFAULT_PROFILE_TYPE)
    assert (exc.value.subject_code, exc.value.reason_code) == ("1.2", "4.2")
    assert store.get("8999800000000000015").state is ProfileState.UNAVAILABLE  # type: ignore[union-attr]
    store.close()
