"""``smdpp-profile``: personalize profile templates, one by one or from CSV, and show them.

    smdpp-profile personalize TEMPLATE.der -o OUT.der --iccid ICCID [--imsi IMSI] [--ki HEX]
                  [--opc HEX | --op HEX] [--algorithm milenage|tuak|xor] [--pin1 ...] ...
    smdpp-profile batch TEMPLATE.der --csv FILE -o DIR
    smdpp-profile show FILE.der [--json] [--show-secrets]

Exit status 0 on success, 1 when a file cannot be used or a batch row was
refused, 2 for usage errors.  Output UPPs are mode 0600: they hold keys.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from smdpp.profiles.batch import (
    CSV_ENCODING,
    CsvError,
    count_rows,
    read_subscriptions,
    write_batch,
    write_private,
)
from smdpp.profiles.elements import InvalidPackage
from smdpp.profiles.personalize import PersonalizationError, Template
from smdpp.profiles.show import format_summary, summarize
from smdpp.profiles.subscription import ALGORITHMS, FieldError, Subscription

__all__ = ["main"]

# Batches larger than this get a progress bar on stderr.
PROGRESS_ROWS = 300
# Options of `personalize` that are Subscription fields, in help order.
_VALUE_OPTIONS = (
    ("imsi", "IMSI", "IMSI, 6-15 digits: EF.IMSI, EF.ACC and the ISIM's IMPI/IMPU"),
    ("mnc_length", "2|3", "digits of the MNC in the IMSI: EF.AD (default: the template's)"),
    ("ki", "HEX", "subscriber key K (16 bytes; TUAK 16 or 32) in every AKA parameter"),
    ("opc", "HEX", "OPc (MILENAGE, 16 bytes) or TOPc (TUAK, 32 bytes)"),
    ("op", "HEX", "OP (16 bytes): the OPc is computed from it and the Ki (TS 35.206)"),
    ("algorithm", "NAME", f"AKA algorithm: {'|'.join(ALGORITHMS)} (default: the template's)"),
    ("pin1", "DIGITS", "PIN1 (4-8 digits)"),
    ("puk1", "DIGITS", "PUK1 (8 digits)"),
    ("pin2", "DIGITS", "PIN2, every application's local PIN (4-8 digits)"),
    ("puk2", "DIGITS", "PUK2 (8 digits)"),
    ("adm1", "KEY", "ADM1 (4-8 digits, or 16 hex digits)"),
    ("spn", "NAME", "service provider name in EF.SPN (up to 16 characters)"),
    ("profile_name", "NAME", "ProfileHeader profileType (the profile name the LPA shows)"),
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smdpp-profile",
        description="Personalize SAIP profile templates (UPP) with your own subscriptions.")
    commands = parser.add_subparsers(dest="command", required=True)

    one = commands.add_parser("personalize", help="write one personalized UPP",
                              description="Write TEMPLATE with the given values to OUT; "
                                          "everything not given stays as in TEMPLATE.")
    one.add_argument("template", type=Path, metavar="TEMPLATE.der")
    one.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.der")
    one.add_argument("--iccid", required=True,
                     help="ICCID, 19 or 20 digits ending in the Luhn check digit")
    one.add_argument("--compute-luhn", action="store_true",
                     help="--iccid is given without its check digit (18 or 19 digits): append it")
    opc_or_op = one.add_mutually_exclusive_group()  # usage shows [--opc HEX | --op HEX]
    for name, metavar, text in _VALUE_OPTIONS:
        target = opc_or_op if name in ("opc", "op") else one
        target.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar=metavar, help=text)

    many = commands.add_parser("batch", help="one personalized UPP per CSV row",
                               description="Personalize TEMPLATE once per row of the CSV into "
                                           "DIR/<matching_id or iccid>.der.")
    many.add_argument("template", type=Path, metavar="TEMPLATE.der")
    many.add_argument("--csv", type=Path, required=True, metavar="FILE",
                      help="CSV with a header line: iccid (required), imsi, ki, opc or op, "
                           "algorithm, pin1, puk1, pin2, puk2, adm1, spn, profile_name, "
                           "mnc_length, matching_id")
    many.add_argument("-o", "--output", type=Path, required=True, metavar="DIR")
    many.add_argument("--compute-luhn", action="store_true",
                      help="the iccid column holds the digits without the Luhn check digit")
    many.add_argument("--no-progress", action="store_true", help="no progress bar")

    show = commands.add_parser("show", help="what a UPP holds",
                               description="Elements, ICCID, IMSI, SPN, applications, AKA "
                                           "algorithm; keys and PINs masked.")
    show.add_argument("file", type=Path, metavar="FILE.der")
    show.add_argument("--json", action="store_true", help="JSON for scripts")
    show.add_argument("--show-secrets", action="store_true", help="print keys and PINs")
    return parser


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _template(path: Path) -> Template:
    """The parsed template; OSError / PersonalizationError go to the caller."""
    try:
        return Template(path.read_bytes())
    except PersonalizationError as exc:
        raise PersonalizationError(f"{path}: {exc}") from None


def _personalize(args: argparse.Namespace) -> int:
    values: dict[str, Any] = {name: getattr(args, name) for name, _m, _t in _VALUE_OPTIONS}
    values["iccid"] = args.iccid
    try:
        sub = Subscription.from_text(values, compute_luhn=args.compute_luhn)
    except FieldError as exc:
        option = exc.field.replace("_", "-")
        return _error(f"--{option}: {exc.reason}")
    if not args.output.parent.is_dir():
        return _error(f"{args.output}: the folder {args.output.parent} does not exist")
    try:
        data = _template(args.template).personalize(sub)
        write_private(args.output, data, overwrite=True)
    except (PersonalizationError, OSError) as exc:
        return _error(str(exc))
    print(f"wrote {args.output}: ICCID {sub.iccid}" + (f", IMSI {sub.imsi}" if sub.imsi else ""))
    return 0


def _batch(args: argparse.Namespace) -> int:
    try:
        template = _template(args.template)
        total = count_rows(args.csv)
        handle = open(args.csv, newline="", encoding=CSV_ENCODING)
    except (PersonalizationError, OSError) as exc:
        return _error(str(exc))
    bar = None
    if total > PROGRESS_ROWS and not args.no_progress:
        from tqdm import tqdm  # only batches that show a bar need it loaded
        bar = tqdm(total=total, unit="row", file=sys.stderr)
    try:
        with handle:
            rows = read_subscriptions(handle, compute_luhn=args.compute_luhn)
            result = write_batch(template, rows, args.output,
                                 on_row=bar.update if bar is not None else None)
    except CsvError as exc:
        return _error(f"{args.csv}: {exc}")
    except UnicodeDecodeError:
        return _error(f"{args.csv}: not UTF-8 text")
    except OSError as exc:
        return _error(str(exc))
    finally:
        if bar is not None:
            bar.close()
    for row_error in result.errors:
        print(f"{args.csv}: {row_error}", file=sys.stderr)
    rows_seen = len(result.written) + len(result.errors)
    print(f"wrote {len(result.written)} of {rows_seen} profiles to {args.output}"
          + (f"; {len(result.errors)} rows refused" if result.errors else ""))
    return 1 if result.errors else 0


def _show(args: argparse.Namespace) -> int:
    try:
        summary = summarize(args.file.read_bytes(), show_secrets=args.show_secrets)
    except InvalidPackage as exc:
        return _error(f"{args.file}: {exc}")
    except OSError as exc:
        return _error(str(exc))
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``smdpp-profile``; returns the exit status."""
    args = _parser().parse_args(argv)
    handlers = {"personalize": _personalize, "batch": _batch, "show": _show}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
