"""The start-up lines that give a user a route to a phone: activation codes (SGP.22 4.1).

One line per way a profile can be downloaded, so that the first screen of
output holds what an LPA (a phone's camera, lpac, ``smdpp-lpa``) needs:

* each profile of ``upp/`` at the default SM-DP+ address (``--hostname``) and
  at the address of each identity served side by side (``--smdp-identity``:
  each answers on its own smdpAddress, SGP.22 3.1.3);
* with orders (``--es2-port``, SGP.22 5.3): each order already ``Released``
  and waiting for its download, with its matchingId and the Confirmation
  Code Required Flag when the operator set a code (the code itself is never
  known to the server, only its hash); bounded to the first
  :data:`MAX_ORDER_LINES`, then how many more and where to list them;
* and one line for the pool's ``Available`` profiles, saying how to order one.

``--qr-dir`` writes each code as a PNG through :mod:`smdpp.activation` (the
one code path for activation codes and QR codes).
"""
from __future__ import annotations

import logging
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from smdpp.activation import ActivationCode, qr_png

if TYPE_CHECKING:
    from smdpp.orders.store import OrderStore
    from smdpp.profiles.inventory import ProfileInventory

# the logger of the start-up lines since osmo-smdpp's shape (operators grep for "smdpp:")
log = logging.getLogger("smdpp")

__all__ = ["announce_profiles", "announce_orders", "MAX_ORDER_LINES"]

MAX_ORDER_LINES = 10  # released orders given a line each at start; the others counted


def _qr(code: ActivationCode, qr_dir: Path | None, name: str) -> str:
    """Write the code's QR PNG to ``qr_dir``; the note for its line ('' without --qr-dir)."""
    if qr_dir is None:
        return ""
    qr_dir.mkdir(parents=True, exist_ok=True)
    return f", QR code {qr_png(code, qr_dir / name)}"


def announce_profiles(profiles: ProfileInventory, hostname: str, qr_dir: Path | None,
                      also: Iterable[str] = ()) -> None:
    """One line per servable profile and address with its activation code.

    ``also``: the addresses of identities served side by side; their QR
    files are ``MATCHINGID@ADDRESS.png`` beside the default ``MATCHINGID.png``."""
    if qr_dir is not None:
        qr_dir.mkdir(parents=True, exist_ok=True)
    addresses = [hostname, *also]
    for profile in sorted(profiles, key=lambda p: p.matching_id):
        for address in addresses:
            try:
                code = ActivationCode(address, profile.matching_id)
                text = code.uri()
            except ValueError as exc:
                log.warning("profile %s: no activation code for %s: %s", profile.matching_id,
                            address, exc)
                continue
            name = (f"{profile.matching_id}.png" if address == hostname
                    else f"{profile.matching_id}@{address}.png")
            at = "" if address == hostname else f" at {address}"
            log.info("profile %s (ICCID %s)%s: activation code %s%s", profile.matching_id,
                     profile.iccid, at, text, _qr(code, qr_dir, name))


def announce_orders(store: OrderStore, hostname: str, qr_dir: Path | None, *,
                    es2_url: str, data_dir: Path, limit: int = MAX_ORDER_LINES) -> None:
    """The released orders waiting for their download, and how to order from the pool.

    Orders are served at the default address: ConfirmOrder answers it as the
    order's smdpAddress (SGP.22 5.3.2)."""
    from smdpp.orders.states import ProfileState

    counts = store.counts()  # profile type -> state -> number
    waiting = sum(states.get(ProfileState.RELEASED.value, 0) for states in counts.values())
    for record in store.released(limit):  # bounded: a pool may hold many released orders
        if not record.matching_id:  # an empty matchingId: found by EID (SGP.22 3.1.3)
            log.info("order ICCID %s (%s): released for EID %s, found by its EID at the "
                     "default SM-DP+ address (no activation code)", record.iccid,
                     record.operator, record.eid)
            continue
        cc = record.cc_hash is not None
        code = ActivationCode(hostname, record.matching_id, confirmation_code_required=cc)
        try:
            text = code.uri()
        except ValueError as exc:
            log.warning("order ICCID %s: no activation code: %s", record.iccid, exc)
            continue
        log.info("order ICCID %s (%s, %s): activation code %s%s%s", record.iccid,
                 record.profile_type, record.operator, text,
                 " (a Confirmation Code is required: the operator has it; the user types it)"
                 if cc else "", _qr(code, qr_dir, f"order-{record.iccid}.png"))
    if waiting > limit:
        log.info("and %d more released orders: smdpp-order --data-dir %s list --state Released",
                 waiting - limit, shlex.quote(str(data_dir)))
    available = {ptype: states.get(ProfileState.AVAILABLE.value, 0)
                 for ptype, states in counts.items()}
    if any(available.values()):
        first = next(ptype for ptype, count in sorted(available.items()) if count)
        log.info("pool: %s Available; order one with: smdpp-order --url %s --operator NAME "
                 "--data-dir %s create --profile-type %s --release (NAME: an operator "
                 "registered with smdpp-pki operator NAME)", ", ".join(
                     f"{count} of profileType {ptype!r}" for ptype, count in
                     sorted(available.items()) if count), es2_url,
                 shlex.quote(str(data_dir)), shlex.quote(first))
    else:
        log.info("pool: no Available profile (profiles go into %s)", data_dir / "pool")
