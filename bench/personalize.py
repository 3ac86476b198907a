"""``python -m bench.personalize``: time and peak memory of a ``smdpp-profile batch``.

Writes a CSV of ``--rows`` subscriptions (distinct Luhn-valid ICCIDs and
IMSIs, random Ki and OPc, MILENAGE, PIN1, SPN) into a temporary folder, then
runs ``smdpp-profile batch TEMPLATE --csv ... -o ...`` as a child process,
exactly as a user would, and prints its wall time, CPU time, rows per second
and peak resident memory (the child's ``ru_maxrss`` from :func:`os.wait4`).
The template defaults to the TS.48 v2 profile of ``../shared/testdata/upp``
beside the repository, else the generated test profile.
"""
from __future__ import annotations

import argparse
import csv
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from smdpp.profiles.generate import generate_default_test_profile
from smdpp.profiles.identifiers import luhn_check_digit

__all__ = ["main", "write_csv"]

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TEMPLATE = REPO.parent / "shared" / "testdata" / "upp" / "TS48V2-SAIP2-1-NOBERTLV-UNIQUE.der"
_CLI = "import sys; from smdpp.profiles.cli import main; sys.exit(main())"


def write_csv(path: Path, rows: int) -> None:
    """``rows`` subscriptions with distinct identifiers (ICCIDs 89882..., IMSIs 99970...)."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["iccid", "imsi", "ki", "opc", "algorithm", "pin1", "spn"])
        for n in range(rows):
            body = f"898821{n:012d}"
            writer.writerow([body + luhn_check_digit(body), f"99970{n:010d}",
                             secrets.token_hex(16), secrets.token_hex(16), "milenage",
                             f"{n % 10000:04d}", "Bench"])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.personalize", description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000, help="CSV rows (default 10000)")
    parser.add_argument("--template", type=Path, default=None,
                        help="template UPP (default: TS.48 v2 from ../shared, else generated)")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="write CSV and output here instead of a temporary folder")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, work: Path) -> dict[str, float]:
    """Run the batch once in ``work``; the figures as a dict."""
    template = args.template
    if template is None:
        if DEFAULT_TEMPLATE.is_file():
            template = DEFAULT_TEMPLATE
        else:
            template = work / "generated.der"
            template.write_bytes(generate_default_test_profile())
    csv_path, out_dir = work / "subscriptions.csv", work / "upp"
    write_csv(csv_path, args.rows)
    cmd = [sys.executable, "-c", _CLI, "batch", str(template), "--csv", str(csv_path),
           "-o", str(out_dir), "--no-progress"]
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    stderr = child.stderr.read().decode(errors="replace") if child.stderr else ""
    if child.returncode != 0:
        raise RuntimeError(f"smdpp-profile batch failed ({child.returncode}):\n{stderr}")
    written = list(out_dir.glob("*.der"))
    return {
        "rows": args.rows,
        "written": len(written),
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rows_per_s": args.rows / wall if wall else 0.0,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux reports KiB
        "output_mb": sum(p.stat().st_size for p in written) / 1e6,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        figures = run(args, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-personalize-") as tmp:
            figures = run(args, Path(tmp))
    print(f"{figures['written']} of {figures['rows']} profiles in {figures['wall_s']:.1f} s "
          f"wall, {figures['cpu_s']:.1f} s CPU ({figures['rows_per_s']:.0f} rows/s); "
          f"peak RSS {figures['peak_rss_mb']:.0f} MB; output {figures['output_mb']:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
