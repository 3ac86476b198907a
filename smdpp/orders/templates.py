"""Pool profiles from a template and a CSV of subscriptions, personalized at order time.

Beside ready UPP files, ``smdpp-data/pool/`` may hold pairs
``NAME.template.der`` (a Profile Package to personalize) and ``NAME.csv``
(one subscription a row, the columns of ``smdpp-profile batch``: ``iccid``
and any of imsi, ki, opc, op, algorithm, pins, spn ...; see
:mod:`smdpp.profiles.batch`).  Each valid row enters the order store as an
``Available`` profile of the template's profileType, its values sealed like
a UPP; a bad row is skipped with its line and column named.  ES2+
DownloadOrder personalizes the chosen row into its UPP
(:func:`smdpp.profiles.personalize.personalize`) and keeps that instead, so
a pool of many subscriptions costs one row each until it is ordered.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from smdpp.orders.identifiers import normalise_iccid
from smdpp.orders.store import OrderStore, ProfileRecord
from smdpp.profiles.batch import CSV_ENCODING, CsvError, RowError, read_subscriptions
from smdpp.profiles.inventory import InvalidUpp, profile_from_upp
from smdpp.profiles.personalize import PersonalizationError, personalize
from smdpp.profiles.subscription import Subscription

log = logging.getLogger(__name__)

TEMPLATE_SUFFIX = ".template.der"
_BYTES = frozenset(f.name for f in fields(Subscription) if f.name in ("ki", "opc", "op"))


@dataclass(frozen=True)
class TemplateScan:
    """What one reading of the templates and CSVs of the pool folder did."""

    added: int
    known: int
    skipped: int


def encode_subscription(sub: Subscription) -> bytes:
    """The subscription's values as JSON (keys as hex), what the store seals."""
    values: dict[str, Any] = {}
    for f in fields(Subscription):
        value = getattr(sub, f.name)
        if value is not None:
            values[f.name] = value.hex() if f.name in _BYTES else value
    return json.dumps(values, sort_keys=True).encode()


def decode_subscription(data: bytes) -> Subscription:
    """Inverse of :func:`encode_subscription` (the Subscription checks its values again)."""
    values = json.loads(data)
    return Subscription(**{k: bytes.fromhex(v) if k in _BYTES else v for k, v in values.items()})


def load_templates(pool_dir: Path, store: OrderStore) -> TemplateScan:
    """Enter the rows of every ``NAME.csv`` with its ``NAME.template.der`` into ``store``."""
    added = known = skipped = 0
    if not pool_dir.is_dir():
        return TemplateScan(0, 0, 0)
    for csv_path in sorted(pool_dir.glob("*.csv")):
        template_path = csv_path.with_name(csv_path.stem + TEMPLATE_SUFFIX)
        try:
            der = template_path.read_bytes()
            profile_type = profile_from_upp(template_path.name, der).profile_name or "default"
        except OSError as exc:
            log.warning("pool: skipping %s: no template %s (%s)", csv_path, template_path.name,
                        exc.strerror or exc)
            continue
        except InvalidUpp as exc:
            log.warning("pool: skipping %s: %s is not a Profile Package: %s", csv_path,
                        template_path.name, exc)
            continue
        digest = hashlib.sha256(der).hexdigest()
        store.add_template(digest, der)
        try:
            with csv_path.open(encoding=CSV_ENCODING, newline="") as lines:
                for line, row in read_subscriptions(lines):
                    if isinstance(row, RowError):
                        log.warning("pool: %s: %s", csv_path.name, row)
                        skipped += 1
                        continue
                    assert row.iccid is not None  # a required column
                    if store.add_subscription(normalise_iccid(row.iccid), profile_type, digest,
                                              encode_subscription(row),
                                              f"{csv_path.name}:{line}"):
                        added += 1
                    else:
                        known += 1
        except (OSError, UnicodeDecodeError, CsvError) as exc:
            log.warning("pool: skipping the rest of %s: %s", csv_path, exc)
            continue
    if added or known or skipped:
        log.info("pool %s: %d new subscription(s) to personalize, %d known, %d skipped",
                 pool_dir, added, known, skipped)
    return TemplateScan(added, known, skipped)


def personalize_ordered(store: OrderStore, record: ProfileRecord) -> None:
    """Personalize an ordered profile from its template (ES2+ DownloadOrder); ValueError if
    the template and the row do not fit together."""
    pending = store.subscription(record.iccid)
    if pending is None:
        return  # a ready UPP, or personalized meanwhile
    digest, encoded = pending
    der = store.template_der(digest)
    if der is None:
        raise ValueError(f"ICCID {record.iccid}: its template {digest[:16]} is gone")
    try:
        upp = personalize(der, decode_subscription(encoded))
        iccid = profile_from_upp(record.iccid, upp).iccid
    except (PersonalizationError, InvalidUpp, ValueError) as exc:
        raise ValueError(f"ICCID {record.iccid}: cannot personalize: {exc}") from None
    if iccid != record.iccid:
        raise ValueError(f"ICCID {record.iccid}: personalized as {iccid}")
    if store.fill_upp(record, upp):
        log.info("ICCID %s personalized from template %s (%d bytes)", record.iccid,
                 digest[:16], len(upp))
