"""The orderable pool: UPP files of ``smdpp-data/pool/`` entered into the order store.

Each ``*.der`` in the pool folder is one Unprotected Profile Package with its
own ICCID (e.g. written by ``smdpp-profile batch``).  Its ProfileHeader gives
the ICCID and the profileType, which is the ES2+ ``profileType`` an operator
orders by (SGP.22 5.3.1).  The folder is read at start and on SIGHUP; a new
file enters the store as ``Available``, a known ICCID keeps its state, and a
file that is not a valid UPP or repeats an ICCID is skipped with a line
naming it.  The files may be removed once read: the store keeps each
package, sealed.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from smdpp.orders.store import OrderStore
from smdpp.profiles.inventory import InvalidUpp, profile_from_upp

log = logging.getLogger(__name__)

POOL_DIR = "pool"
DEFAULT_PROFILE_TYPE = "default"  # for a UPP whose header names no profileType
MAX_UPP = 2 * 1024 * 1024  # bytes: far above any real profile, below a mistaken file


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
    for path in sorted(p for p in pool_dir.iterdir() if p.suffix == ".der"):
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
    return PoolScan(added, known, skipped)
