"""Pool profiles for the order tests: generated UPPs, each with its own ICCID."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from smdpp.pki.eid import make_eid
from smdpp.profiles.generate import generate_test_profile
from smdpp.profiles.identifiers import luhn_check_digit

PROFILE_TYPE = "smdpp test pool"
EIN = "89049032"


def pool_iccid(serial: int) -> str:
    """A 19-digit test ICCID with its Luhn digit (89 99 ... test range)."""
    body = f"899900000000{serial:06d}"
    return body + luhn_check_digit(body)


@lru_cache(maxsize=64)
def pool_upp(serial: int, profile_type: str = PROFILE_TYPE) -> bytes:
    """A small TS.48-like UPP for ``pool_iccid(serial)``."""
    return generate_test_profile(iccid=pool_iccid(serial), imsi=f"00101{serial:010d}",
                                 ki=bytes([serial % 256]) * 16, opc=bytes([7]) * 16,
                                 profile_type=profile_type)


def write_pool(pool_dir: Path, serials: range, profile_type: str = PROFILE_TYPE) -> list[str]:
    """Write pool UPPs; return their ICCIDs."""
    pool_dir.mkdir(parents=True, exist_ok=True)
    iccids = []
    for serial in serials:
        (pool_dir / f"p{serial:04d}.der").write_bytes(pool_upp(serial, profile_type))
        iccids.append(pool_iccid(serial))
    return iccids


def pool_store(folder: Path, serials: range, url: str | None = None):
    """An OrderStore in ``folder`` (or at ``url``) whose pool holds the UPPs of ``serials``."""
    from smdpp.orders.pool import load_pool
    from smdpp.orders.store import OrderStore
    store = OrderStore(folder, url=url)
    write_pool(folder / "pool", serials)
    load_pool(folder / "pool", store)
    return store


def order_eid(serial: int = 1) -> str:
    """A valid EID in the test EIN."""
    return make_eid(EIN, serial)
