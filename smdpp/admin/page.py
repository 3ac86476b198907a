"""The status page: server-rendered HTML, no JavaScript, fresh at each reload.

:func:`render` turns a :class:`StatusData` snapshot into one HTML document:
the recent sessions with each ES9+ step (SGP.22 3.1.3), its time and outcome
(SGP.22 6.5.1.4 subjectCode/reasonCode and message on failure), EID,
matchingId and ICCID; the profiles with their activation codes (SGP.22 4.1)
and QR codes; with orders (ES2+, SGP.22 5.3) the pool's profiles by state
and the recent orders (:mod:`smdpp.admin.orders`: matchingIds masked, no
Confirmation Code); the certificates with their expiry (a warning 30 days
ahead); the CRLs in use.  Every value is HTML-escaped: EIDs, matchingIds and
messages come from the network.
"""
from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Sequence

from smdpp.admin.orders import OrdersView
from smdpp.admin.recent import SessionView

__all__ = ["StatusData", "CertificateRow", "ProfileRow", "CrlRow", "render", "WARN_DAYS"]

WARN_DAYS = 30  # certificates expiring within this many days are marked


@dataclass(frozen=True)
class ProfileRow:
    """A servable profile and its activation code."""

    matching_id: str
    iccid: str
    name: str
    profile_class: str
    activation_code: str  # 'LPA:1$...'
    qr_data_uri: str | None


@dataclass(frozen=True)
class CertificateRow:
    """A certificate in use and its validity."""

    role: str
    subject: str
    not_after: datetime
    days_left: float


@dataclass(frozen=True)
class CrlRow:
    """A CRL in use (SGP.22 4.5.2.1)."""

    path: str
    issuer: str
    this_update: datetime
    next_update: datetime | None
    number: int | None
    revoked: int


@dataclass
class StatusData:
    """Everything one rendering of the page shows."""

    hostname: str
    version: str
    es9_url: str
    pid: int
    started: float
    workers: int = 1
    sessions: Sequence[SessionView] = ()
    profiles: Sequence[ProfileRow] = ()
    certificates: Sequence[CertificateRow] = ()
    crls: Sequence[CrlRow] = ()
    notes: list[str] = field(default_factory=list)
    orders: OrdersView | None = None  # with --es2-port: the pool and the recent orders


def _e(value: Any) -> str:
    return html.escape("-" if value is None or value == "" else str(value), quote=True)


def _time(moment: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(moment)) + f".{int(moment * 1000) % 1000:03d}"


def _date(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin-top: .4em; }
th, td { border: 1px solid #bbb; padding: .25em .5em; text-align: left; vertical-align: top; }
th { background: #eee; } td.num { text-align: right; }
.ok { color: #176317; } .fail { color: #a31515; font-weight: bold; } .warn { background: #fff3c4; }
.expired { background: #f8d0d0; } code { font-size: .95em; }
.steps td { border: none; padding: 0 .6em 0 0; white-space: nowrap; }
.steps td.msg { white-space: normal; min-width: 18em; } td.tid { max-width: 9em; word-break: break-all; }
p.note { color: #555; }
"""


def _table(table_id: str, headers: Sequence[str], rows: list[str]) -> list[str]:
    """A table: its header row from ``headers``, then the ``rows`` (already HTML)."""
    head = "".join(f"<th>{_e(header)}</th>" for header in headers)
    return [f'<table id="{table_id}"><tr>{head}</tr>', *rows, "</table>"]


def _sessions(data: StatusData) -> list[str]:
    out = ['<h2 id="sessions">Recent sessions</h2>']
    if not data.sessions:
        out.append('<p class="note">No ES9+ call yet.</p>')
        return out
    rows = []
    for view in data.sessions:
        failed = view.outcome.startswith(("failed", "installation failed"))
        outcome_class = "fail" if failed else "ok" if view.outcome == "installed" else ""
        steps = ['<table class="steps">']
        for step in view.steps:
            result = ('<span class="ok">ok</span>' if step.code == "ok" else
                      f'<span class="fail">{_e(step.code)}</span> {_e(step.message)}')
            steps.append(f"<tr><td>{_e(_time(step.started)[11:])}</td><td>{_e(step.function)}</td>"
                         f'<td class="num">{step.duration * 1000:.1f} ms</td>'
                         f'<td class="msg">{result}</td></tr>')
        steps.append("</table>")
        rows.append(f'<tr class="session"><td class="tid"><code>{_e(view.transaction_id)}</code></td>'
                    f"<td>{_e(_time(view.started))}</td><td><code>{_e(view.eid)}</code></td>"
                    f"<td>{_e(view.matching_id)}</td><td><code>{_e(view.iccid)}</code></td>"
                    f'<td class="{outcome_class}">{_e(view.outcome)}</td><td>{"".join(steps)}</td></tr>')
    return out + _table("session-table", ("transactionId", "started", "EID", "matchingId", "ICCID",
                                          "outcome", "steps"), rows)


def _profiles(data: StatusData) -> list[str]:
    out = ['<h2 id="profiles">Profiles</h2>']
    if not data.profiles:
        out.append('<p class="note">No profile in upp/.</p>')
        return out
    rows = []
    for row in data.profiles:
        qr = (f'<img alt="QR code of {_e(row.activation_code)}" src="{row.qr_data_uri}">'
              if row.qr_data_uri else "-")
        rows.append(f"<tr><td>{_e(row.matching_id)}</td><td><code>{_e(row.iccid)}</code></td>"
                    f"<td>{_e(row.name)}</td><td>{_e(row.profile_class)}</td>"
                    f"<td><code>{_e(row.activation_code)}</code></td><td>{qr}</td></tr>")
    return out + _table("profile-table", ("matchingId", "ICCID", "name", "class",
                                          "activation code", "QR code"), rows)


#: SGP.22 profile states in their order (smdpp/orders/states.py), for the inventory's columns
_STATES = ("Available", "Allocated", "Linked", "Confirmed", "Released", "Downloaded",
           "Installed", "Error", "Unavailable")


def _orders(view: OrdersView) -> list[str]:
    out = ['<h2 id="orders">Orders (ES2+)</h2>']
    if view.problem is not None:
        return out + [f'<p class="fail">{_e(view.problem)}</p>']
    groups: dict[tuple[str, bool], dict[str, int]] = {}
    for row in view.pool:
        groups.setdefault((row.profile_type, row.from_template), {})[row.state] = row.count
    if not groups:
        out.append('<p class="note">No profile in pool/.</p>')
    else:
        states = [state for state in _STATES if any(state in g for g in groups.values())]
        rows = [f"<tr><td>{_e(ptype)}</td><td>{'CSV + template' if csv else 'UPP files'}</td>"
                + "".join(f'<td class="num">{counts.get(state, 0)}</td>' for state in states)
                + f'<td class="num">{sum(counts.values())}</td></tr>'
                for (ptype, csv), counts in sorted(groups.items())]
        out += _table("pool-table", ("profileType", "from", *states, "total"), rows)
    if not view.orders:
        out.append('<p class="note">No order yet (smdpp-order create ...).</p>')
        return out
    if view.total > len(view.orders):
        out.append(f'<p class="note">The {len(view.orders)} orders changed last of '
                   f'{view.total}; smdpp-order list shows them all.</p>')
    rows = []
    for order in view.orders:
        cc = ("required" + (f" ({order.cc_wrong} wrong)" if order.cc_wrong else "")
              if order.cc_required else "no")
        matching_id = "(by EID)" if order.matching_id == "" else order.matching_id
        rows.append(f'<tr class="order"><td><code>{_e(order.iccid)}</code></td>'
                    f"<td>{_e(order.state)}</td><td>{_e(order.profile_type)}</td>"
                    f"<td><code>{_e(order.eid)}</code></td><td>{_e(order.operator)}</td>"
                    f"<td><code>{_e(matching_id)}</code></td><td>{_e(cc)}</td>"
                    f"<td>{_e(_time(order.ordered) if order.ordered else None)}</td>"
                    f"<td>{_e(_time(order.updated))}</td>"
                    f'<td class="{"fail" if order.failed else ""}">{_e(order.result)}</td></tr>')
    return out + _table("order-table", ("ICCID", "state", "profileType", "EID", "operator",
                                        "matchingId", "Confirmation Code", "ordered",
                                        "last change", "last result"), rows)


def _certificates(data: StatusData) -> list[str]:
    rows = []
    for row in data.certificates:
        css = "expired" if row.days_left < 0 else "warn" if row.days_left < WARN_DAYS else ""
        note = " (expired)" if row.days_left < 0 else (
            f" (expires within {WARN_DAYS} days)" if row.days_left < WARN_DAYS else "")
        rows.append(f'<tr class="{css}"><td>{_e(row.role)}</td><td>{_e(row.subject)}</td>'
                    f"<td>{_e(_date(row.not_after))}</td>"
                    f'<td class="num">{row.days_left:.0f}{_e(note) if note else ""}</td></tr>')
    return ['<h2 id="certificates">Certificates</h2>'] + _table(
        "certificate-table", ("role", "subject", "valid until", "days left"), rows)


def _crls(data: StatusData) -> list[str]:
    out = ['<h2 id="crls">CRLs in use</h2>']
    if not data.crls:
        out.append('<p class="note">None (CRLs go into crl/ in the data folder; kill -HUP reads '
                   'them again).</p>')
        return out
    rows = [f"<tr><td>{_e(row.path)}</td><td>{_e(row.issuer)}</td>"
            f"<td>{_e(_date(row.this_update))}</td>"
            f"<td>{_e(_date(row.next_update) if row.next_update else None)}</td>"
            f'<td class="num">{_e(row.number)}</td><td class="num">{row.revoked}</td></tr>'
            for row in data.crls]
    return out + _table("crl-table", ("file", "issuer", "thisUpdate", "nextUpdate", "cRLNumber",
                                      "revoked"), rows)


def render(data: StatusData) -> str:
    """The whole page."""
    uptime = int(time.time() - data.started)
    head = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>smdpp status: {_e(data.hostname)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>smdpp {_e(data.version)}: SM-DP+ {_e(data.hostname)}</h1>",
        f"<p>ES9+ on <code>{_e(data.es9_url)}</code>; process {data.pid}"
        f"{f' (one of {data.workers} workers)' if data.workers > 1 else ''}, up "
        f"{uptime // 3600} h {uptime // 60 % 60} min; page made {_e(_time(time.time()))}. "
        "Reload the page to refresh it.</p>",
    ]
    notes = [f'<p class="note">{_e(note)}</p>' for note in data.notes]
    orders = _orders(data.orders) if data.orders is not None else []
    body = (_sessions(data) + _profiles(data) + orders + _certificates(data) + _crls(data))
    return "\n".join(head + notes + body + ["</body></html>", ""])
