"""The orders part of the status page: the pool's inventory and the recent orders (ES2+).

Read at each page request from the order store (:mod:`smdpp.orders.store`),
which every worker and process shares, so the page is right whichever
worker answers.  What an order shows (SGP.22 5.3): its profile state
(:mod:`smdpp.orders.states`), ICCID, the EID once bound, the operator
(functionRequesterIdentifier), whether a Confirmation Code is required, when
it was ordered and last changed, and its last result.  Never the
Confirmation Code's hash; the matchingId only masked, since with the SM-DP+
address it is all an LPA needs to download the profile.  Bounded: the newest
:data:`DEFAULT_LIMIT` orders, the others counted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from smdpp.observe import bounded, masked

__all__ = ["OrderRow", "PoolRow", "OrdersView", "read_orders", "DEFAULT_LIMIT"]

DEFAULT_LIMIT = 50

#: What a state says when the order has no error of its own (SGP.22 3.1.3, 5.3).
_RESULT_OF_STATE = {
    "Allocated": "ordered", "Linked": "ordered for the EID", "Confirmed": "confirmed, not released",
    "Released": "waiting for the download", "Downloaded": "Bound Profile Package sent, no "
    "installation result yet", "Installed": "installed on the eUICC",
    "Error": "failed", "Unavailable": "taken out of the pool"}


@dataclass(frozen=True)
class PoolRow:
    """How many profiles of one type (and origin) are in one state."""

    profile_type: str
    from_template: bool  # CSV rows personalized from a template at DownloadOrder
    state: str
    count: int


@dataclass(frozen=True)
class OrderRow:
    """One order as the page shows it."""

    iccid: str
    profile_type: str
    state: str  # an SGP.22 profile state
    eid: str | None
    operator: str | None
    matching_id: str | None  # masked; "" for an order found by its EID (empty matchingId)
    cc_required: bool
    cc_wrong: int  # wrong Confirmation Codes so far
    ordered: float | None
    updated: float
    result: str
    failed: bool


@dataclass(frozen=True)
class OrdersView:
    """The orders part of one rendering of the page."""

    pool: Sequence[PoolRow] = ()
    orders: Sequence[OrderRow] = ()
    total: int = 0  # orders in the store (shown: len(orders))
    problem: str | None = None  # the order store could not be read


def _row(record: Any) -> OrderRow:
    state = record.state.value
    result = bounded(record.error, 160) if record.error else _RESULT_OF_STATE.get(state, "-")
    return OrderRow(
        iccid=record.iccid, profile_type=bounded(record.profile_type) or "", state=state,
        eid=record.eid, operator=bounded(record.operator), matching_id=masked(record.matching_id),
        cc_required=record.cc_hash is not None, cc_wrong=record.cc_attempts,
        ordered=record.ordered, updated=record.updated, result=result or "-",
        failed=state == "Error" or bool(record.error))


def read_orders(store: Any, limit: int = DEFAULT_LIMIT) -> OrdersView:
    """The inventory and the newest ``limit`` orders of ``store`` (an OrderStore)."""
    try:
        inventory = store.inventory()
        orders = [_row(record) for record in store.recent_orders(limit)]
    except Exception as exc:  # noqa: BLE001 - an unreachable store must not fail the page
        return OrdersView(problem=f"the order store cannot be read: {type(exc).__name__}: "
                                  f"{bounded(str(exc), 200)}")
    pool = [PoolRow(bounded(ptype) or "", csv, state, count)
            for ptype, csv, state, count in inventory]
    total = sum(row.count for row in pool if row.state != "Available")
    return OrdersView(pool, orders, total)
