"""Orders from a template and a CSV in pool/, personalized at DownloadOrder, downloaded end to end."""
from __future__ import annotations

from pathlib import Path

from tests.unit.test_order_templates import KI, OPC, write_template_pool

from .test_orders import card, dl, es2_client, register, start


def test_template_and_csv_personalized_at_order_time(tmp_path: Path) -> None:
    """pool/NAME.template.der + NAME.csv: the ordered row is personalized and downloaded."""
    data_dir = tmp_path / "smdpp-data"
    write_template_pool(data_dir / "pool", [f"8999800000000000015,001010000000001,{KI},{OPC}",
                                            f"8999800000000000023,001010000000002,{KI},{OPC}"])
    server = start(data_dir)
    try:
        register(data_dir, "op1")
        with es2_client(server) as es2:
            iccid = es2.download_order(iccid="8999800000000000023F")
            mid = es2.confirm_order(iccid, release=True)["matchingId"]
        result = dl(server, card(server), mid)
        assert result.iccid == "8999800000000000023"
        assert b"\x08\x09\x10\x10\x00\x00\x00\x00\x20" in result.upp  # EF.IMSI of the row
    finally:
        server.stop()
