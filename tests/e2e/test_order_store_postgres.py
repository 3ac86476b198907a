"""The order store on a real PostgreSQL (the cluster of tests/e2e/test_scale.py): two processes
racing for the same profiles, and a whole ES2+ order and ES9+ download bookkeeping on it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from smdpp.orders.downloads import OrderDownloads
from smdpp.orders.es2p import Es2pCore
from smdpp.orders.notify import Notifier
from smdpp.orders.operators import OperatorRegistry
from smdpp.orders.states import ProfileState
from tests.orders_fixtures import PROFILE_TYPE, order_eid, pool_store
from tests.unit.test_orders import Caller, race_two_processes

from .test_scale import postgresql_url  # noqa: F401 - the fixture

TID = "00112233445566778899AABBCCDDEEFF"


def _clean(url: str) -> None:
    import psycopg
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS order_profiles, order_calls, order_notifications")


def test_postgres_two_processes_never_take_one_profile(tmp_path: Path,
                                                        postgresql_url: str) -> None:  # noqa: F811
    _clean(postgresql_url)
    race_two_processes(tmp_path, postgresql_url)


def test_postgres_order_lifecycle(tmp_path: Path, postgresql_url: str) -> None:  # noqa: F811
    _clean(postgresql_url)
    store = pool_store(tmp_path, range(1, 3), postgresql_url)
    es2 = Caller(Es2pCore(store, "smdp.example"))
    downloads = OrderDownloads(store, Notifier(store, OperatorRegistry(tmp_path / "ops"), "x"))
    iccid = es2("downloadOrder", profileType=PROFILE_TYPE)["iccid"]
    mid = es2("confirmOrder", iccid=iccid, releaseFlag=True, confirmationCode="1")["matchingId"]
    found = downloads.find(mid, order_eid(1))
    assert found is not None and found.cc_required and found.upp[:1] == b"\xa0"
    downloads.bpp_delivered(iccid, order_eid(1), TID)
    downloads.installation_result(iccid, order_eid(1), TID, True, b"\xbf\x37\x00", None)
    record = store.get(iccid)
    assert record is not None and record.state is ProfileState.INSTALLED and record.delivered
    assert store.enqueue("op", b"{}") > 0 and store.queued() == 1
    store.close()


def test_two_hosts_share_orders_in_postgres(tmp_path: Path,
                                            postgresql_url: str) -> None:  # noqa: F811
    """Two servers ("hosts", each its own data folder with the same certificates and seal key)
    with --store postgresql://: an order placed on A's ES2+ downloads from B's ES9+, once."""
    import shutil

    import pytest

    from smdpp.euicc.client import DownloadError
    from tests.orders_fixtures import write_pool

    from .conftest import start_server
    from .test_orders import card, dl, es2_client, register

    _clean(postgresql_url)
    host_a = tmp_path / "host-a"
    write_pool(host_a / "pool", range(1, 4))
    a = start_server(host_a, "--store", postgresql_url, "--es2-port", "0")
    try:
        register(host_a, "op1")
        host_b = Path(shutil.copytree(host_a, tmp_path / "host-b"))
        b = start_server(host_b, "--store", postgresql_url, "--es2-port", "0")
        try:
            with es2_client(a) as es2:
                iccid = es2.download_order(profile_type=PROFILE_TYPE)
                mid = es2.confirm_order(iccid, release=True)["matchingId"]
            assert dl(b, card(b), mid).iccid == iccid
            with pytest.raises(DownloadError) as exc:  # and not again through A
                dl(a, card(a), mid)
            assert (exc.value.subject_code, exc.value.reason_code) == ("8.2", "3.7")
            listing = subprocess.run(
                [sys.executable, "-c", "import sys; from smdpp.orders.cli import main; "
                 "sys.exit(main())", "--data-dir", str(host_b), "--store", postgresql_url,
                 "list", "--state", "Installed"], capture_output=True, text=True, timeout=60)
            assert iccid in listing.stdout, listing.stdout + listing.stderr
            with es2_client(b) as es2:  # B's ES2+ sees A's order's end
                with pytest.raises(Exception):
                    es2.cancel_order(iccid, "Available")
        finally:
            b.stop()
    finally:
        a.stop()
