"""A batch of subscriptions from CSV, one personalized UPP file per row.

The CSV's first line names the columns, in any case and order (separated by
',', or by ';' or tabs as spreadsheets export them): ``iccid``
(required) and any of the other :class:`~smdpp.profiles.subscription.
Subscription` fields (``imsi, ki, opc, op, algorithm, pin1, puk1, pin2,
puk2, adm1, spn, profile_name, mnc_length, matching_id``).  An empty cell
keeps the template's value.  ``matching_id`` names the output file
``<matching_id>.der`` (the matchingId in the lab mode, SGP.22 4.1); its
default is the ICCID.

:func:`read_subscriptions` checks every row before anything is written:
values, duplicates inside the file; :func:`write_batch` also refuses rows
whose file or ICCID is already in the output folder.  A bad row is reported
with its line number and column, nothing is written for it, and the other
rows go on.  Files are written mode 0600 (they hold keys), never over an
existing file, and never half (written aside, then linked into place).
"""
from __future__ import annotations

import csv
import itertools
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from smdpp.profiles.inventory import InvalidUpp, UPP_SUFFIX, profile_from_upp
from smdpp.profiles.personalize import PersonalizationError, Template
from smdpp.profiles.subscription import FIELD_NAMES, FieldError, Subscription

__all__ = ["CSV_ENCODING", "CsvError", "RowError", "BatchResult", "read_subscriptions", "write_batch",
           "write_private", "count_rows"]

REQUIRED_COLUMNS = ("iccid",)
# Columns whose values must be unique across the batch (the output name too).
_UNIQUE = ("iccid", "imsi")
FILE_MODE = 0o600
# UTF-8, with the byte order mark spreadsheets put first skipped.
CSV_ENCODING = "utf-8-sig"


class CsvError(ValueError):
    """The CSV as a whole is unusable (no header, unknown or missing columns)."""


@dataclass(frozen=True)
class RowError:
    """Why one row was not written."""

    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.message}"


@dataclass
class BatchResult:
    """What a batch did: the files written and the rows refused."""

    written: list[Path] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def _columns(header: list[str]) -> list[str]:
    columns = [name.strip().lower() for name in header]
    seen: set[str] = set()
    for name in columns:
        if name not in FIELD_NAMES:
            raise CsvError(f"line 1: unknown column {name!r} (known: {', '.join(FIELD_NAMES)})")
        if name in seen:
            raise CsvError(f"line 1: column {name!r} appears twice")
        seen.add(name)
    for name in REQUIRED_COLUMNS:
        if name not in seen:
            raise CsvError(f"line 1: the required column {name!r} is missing")
    return columns


def read_subscriptions(lines: Iterable[str], *, compute_luhn: bool = False
                       ) -> Iterator[tuple[int, Subscription | RowError]]:
    """``(line number, Subscription or RowError)`` for each data row of a CSV.

    Raises :class:`CsvError` for a missing or bad header line.  A row whose
    ICCID, IMSI or output name an earlier row has is a RowError naming it.
    """
    lines = iter(lines)
    first = next(lines, None)
    if first is None:
        raise CsvError("the CSV is empty (no header line)")
    reader = csv.reader(itertools.chain([first], lines), delimiter=_delimiter(first))
    try:
        header = next(reader)
    except csv.Error as exc:
        raise CsvError(f"line 1: {exc}") from None
    columns = _columns(header)
    first_seen: dict[tuple[str, str], int] = {}
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, RowError(reader.line_num, None, f"not CSV: {exc}")
            continue
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue  # blank lines are not rows
        if len(cells) != len(columns):
            yield line, RowError(line, None, f"{len(cells)} cells, the header has {len(columns)}")
            continue
        try:
            sub = Subscription.from_text(dict(zip(columns, cells)), compute_luhn=compute_luhn)
        except FieldError as exc:
            yield line, RowError(line, exc.field, exc.reason)
            continue
        missing = [name for name in REQUIRED_COLUMNS if getattr(sub, name) is None]
        if missing:
            yield line, RowError(line, missing[0], "is empty; every row needs one")
            continue
        duplicate = None
        keys = [(name, getattr(sub, name)) for name in _UNIQUE if getattr(sub, name)]
        keys.append(("matching_id", output_name(sub)))
        for key in keys:
            if key in first_seen:
                duplicate = RowError(line, key[0], f"duplicate {key[1]} (first on line "
                                                   f"{first_seen[key]})")
                break
        if duplicate is not None:
            yield line, duplicate
            continue
        for key in keys:
            first_seen[key] = line
        yield line, sub


def _delimiter(header_line: str) -> str:
    """',' unless the header line has none but ';' or a tab (spreadsheet exports)."""
    if "," in header_line:
        return ","
    for candidate in (";", "\t"):
        if candidate in header_line:
            return candidate
    return ","


def output_name(sub: Subscription) -> str:
    """The file stem of a row's UPP: its matching_id, else its ICCID."""
    return sub.matching_id or sub.iccid or ""


def count_rows(path: Path) -> int:
    """Data rows in a CSV file (for a progress bar's total); bad CSV counts as lines."""
    with open(path, newline="", encoding=CSV_ENCODING, errors="replace") as handle:
        try:
            return max(0, sum(1 for _ in csv.reader(handle)) - 1)
        except csv.Error:
            return 0


def write_private(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` with mode 0600, all or nothing.

    Without ``overwrite`` an existing file is a FileExistsError and stays as
    it was: the data goes to a temporary file first, then is linked to its
    name (which fails if the name is taken).
    """
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            os.fchmod(tmp.fileno(), FILE_MODE)
            tmp.write(data)
        if overwrite:
            os.replace(tmp_name, path)
        else:
            os.link(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def _existing(out_dir: Path) -> tuple[set[str], dict[str, str]]:
    """File stems and ICCIDs (ICCID -> file) of the UPPs already in ``out_dir``."""
    names: set[str] = set()
    iccids: dict[str, str] = {}
    for path in out_dir.glob(f"*{UPP_SUFFIX}"):
        names.add(path.stem)
        try:
            iccids[profile_from_upp(path.stem, path.read_bytes()).iccid] = path.name
        except (OSError, InvalidUpp):
            continue  # not ours to judge here; the name is still taken
    return names, iccids


def write_batch(template: Template, rows: Iterable[tuple[int, Subscription | RowError]],
                out_dir: Path, *, on_row: Callable[[], None] | None = None) -> BatchResult:
    """Personalize ``template`` once per good row into ``out_dir`` (created if missing)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names, iccids = _existing(out_dir)
    result = BatchResult()
    for line, item in rows:
        if on_row is not None:
            on_row()
        if isinstance(item, RowError):
            result.errors.append(item)
            continue
        name = output_name(item)
        if not name:
            result.errors.append(RowError(line, "iccid", "no iccid or matching_id to name "
                                                         "the file"))
            continue
        if name in names:
            result.errors.append(RowError(line, "matching_id" if item.matching_id else "iccid",
                                          f"{name}{UPP_SUFFIX} already exists in {out_dir}"))
            continue
        if item.iccid in iccids:
            result.errors.append(RowError(line, "iccid", f"ICCID {item.iccid} is already in "
                                                         f"{iccids[item.iccid]}"))
            continue
        try:
            data = template.personalize(item)
            target = out_dir / f"{name}{UPP_SUFFIX}"
            write_private(target, data)
        except PersonalizationError as exc:
            column, _, message = str(exc).partition(": ")
            known = column in FIELD_NAMES
            result.errors.append(RowError(line, column if known else None,
                                          message if known else str(exc)))
            continue
        except OSError as exc:
            result.errors.append(RowError(line, None, f"cannot write {name}{UPP_SUFFIX}: {exc}"))
            continue
        names.add(name)
        if item.iccid:
            iccids[item.iccid] = target.name
        result.written.append(target)
    return result
