"""The orderable pool: UPP files of ``smdpp-data/pool/`` entered into the order store.

Each ``*.der`` in the pool folder is one Unprotected Profile Package with its
own ICCID (e.g. written by ``smdpp-profile batch``).  Its ProfileHeader gives
the ICCID and the profileType, which is the ES2+ ``profileType`` an operator
orders by (SGP.22 5.3.1).  The folder is read at start and on SIGHUP; a new
file enters the store as ``Available``, a known ICCID keeps its state, and a
file that is not a valid UPP or repeats an ICCID is skipped with a line
naming it.  The files may be removed once read: the store keeps each
package, sealed.

So that orders work out of the box (as ``upp/`` does), a pool folder
without any ``*.der`` under an empty store gets :data:`TEST_POOL_SIZE`
generated TS.48-like test profiles (:func:`ensure_test_pool`), each with its
own test ICCID and random Ki/OPc, profileType ``smdpp Generic Test Profile``.
"""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from smdpp.orders.store import OrderStore
from smdpp.orders.templates import TEMPLATE_SUFFIX, load_templates
from smdpp.profiles.generate import DEFAULT_PROFILE_TYPE as TEST_PROFILE_TYPE
from smdpp.profiles.generate import generate_test_profile
from smdpp.profiles.identifiers import luhn_check_digit
from smdpp.profiles.inventory import InvalidUpp, profile_from_upp

log = logging.getLogger(__name__)

POOL_DIR = "pool"
DEFAULT_PROFILE_TYPE = "default"  # for a UPP whose header names no profileType
MAX_UPP = 2 * 1024 * 1024  # bytes: far above any real profile, below a mistaken file
TEST_POOL_SIZE = 10
_TEST_ICCID_PREFIX = "8999900000000"  # + 5-digit serial + Luhn digit: 19 digits


@dataclass(frozen=True)
class PoolScan:
    """What one reading of the pool folder did."""

    added: int
    known: int
    skipped: int


def load_pool(pool_dir: Path, store: OrderStore) -> PoolScan:
    """Enter every UPP of ``pool_dir`` (if it exists) into ``store``."""
    added = known = skipped = 0
    if not pool_dir.is_dir():
        return PoolScan(0, 0, 0)
    seen: dict[str, str] = {}
    for path in sorted(p for p in pool_dir.iterdir()
                       if p.suffix == ".der" and not p.name.endswith(TEMPLATE_SUFFIX)):
        try:
            if path.stat().st_size > MAX_UPP:
                raise InvalidUpp(f"larger than {MAX_UPP} bytes")
            upp = path.read_bytes()
            profile = profile_from_upp(path.stem, upp)
        except OSError as exc:
            log.warning("pool: skipping %s: cannot read it: %s", path, exc)
            skipped += 1
            continue
        except InvalidUpp as exc:
            log.warning("pool: skipping %s: not a valid Profile Package: %s", path, exc)
            skipped += 1
            continue
        if profile.iccid in seen:
            log.warning("pool: skipping %s: ICCID %s is already in %s", path, profile.iccid,
                        seen[profile.iccid])
            skipped += 1
            continue
        seen[profile.iccid] = path.name
        profile_type = profile.profile_name or DEFAULT_PROFILE_TYPE
        if store.add_profile(profile.iccid, profile_type, upp, path.name):
            added += 1
        else:
            known += 1
    log.info("pool %s: %d new profile(s), %d known, %d skipped", pool_dir, added, known, skipped)
    rows = load_templates(pool_dir, store)  # NAME.template.der + NAME.csv
    return PoolScan(added + rows.added, known + rows.known, skipped + rows.skipped)


def pool_test_iccid(serial: int) -> str:
    """The ICCID of generated test pool profile ``serial`` (19 digits with the Luhn digit)."""
    body = f"{_TEST_ICCID_PREFIX}{serial:05d}"
    return body + luhn_check_digit(body)


def ensure_test_pool(pool_dir: Path, store: OrderStore, count: int = TEST_POOL_SIZE) -> int:
    """Write ``count`` generated test profiles into an empty pool folder of an empty store.

    Returns how many were written (0 when the folder holds a UPP or the store a profile).
    """
    pool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if any(p.suffix in (".der", ".csv") for p in pool_dir.iterdir()) or store.counts():
        return 0
    for serial in range(1, count + 1):
        upp = generate_test_profile(iccid=pool_test_iccid(serial), imsi=f"00101{serial:010d}",
                                    ki=os.urandom(16), opc=os.urandom(16))
        fd, tmp = tempfile.mkstemp(dir=pool_dir, prefix=".test-pool.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(upp)
            os.replace(tmp, pool_dir / f"TEST-POOL-{serial:02d}.der")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return count
