"""``python -m bench.profile_report FILE``: where a profiled server spends its time.

Two kinds of profile of the server's measured downloads are read:

- a py-spy ``--format raw`` file (collapsed stacks, ``frame;frame;... count``),
  written by ``python -m bench.download --py-spy FILE``: sampling, so the
  shares are faithful; with ``--cpu-ms`` (the benchmark's server CPU per
  download) they are turned into milliseconds per download;
- a cProfile dump, written by ``--server-profile FILE``: exact call counts,
  but the profiler slows Python code down far more than C code (the
  ``cryptography`` calls), so compare such dumps with each other only.  Its
  wall-clock timer counts the wait for the next request in epoll, which the
  report leaves out.

Either way the report gives the top functions by own and by cumulative
time, and for each ES9+ function of :class:`smdpp.rsp.engine.RspEngine` its
share and its most expensive direct callees.  A download is one
handleNotification call (cProfile) or the ``-n`` of the run (py-spy:
``--downloads``).
"""
from __future__ import annotations

import argparse
import pstats
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Sequence

__all__ = ["main", "report", "report_pstats", "report_collapsed", "parse_collapsed"]

ENGINE_FUNCTIONS = ("initiate_authentication", "authenticate_client",
                    "get_bound_profile_package", "handle_notification")
_ENGINE_FILE = "smdpp/rsp/engine.py"
_IDLE = "<method 'poll' of 'select.epoll' objects>"
_LINE = re.compile(r":\d+\)$")

Key = tuple[str, int, str]


# -- py-spy collapsed stacks ------------------------------------------------------


def parse_collapsed(text: str) -> list[tuple[list[str], int]]:
    """(frames outermost first, samples) per line of a collapsed-stack file.

    A frame is ``function (file:line)``; the line number is dropped so that
    samples at different lines of one function add up.
    """
    stacks = []
    for line in text.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_LINE.sub(")", frame) for frame in stack.split(";")]
        stacks.append((frames, int(count)))
    return stacks


def report_collapsed(path: Path, *, top: int = 20, callees: int = 10,
                     cpu_ms: float | None = None, downloads: int | None = None) -> str:
    """The report of a py-spy raw file (see the module docstring)."""
    stacks = parse_collapsed(path.read_text())
    total = sum(count for _, count in stacks)
    if not total:
        return f"{path}: no samples"
    own: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    below: dict[str, Counter[str]] = {f: Counter() for f in ENGINE_FUNCTIONS}
    engine_total: Counter[str] = Counter()
    for frames, count in stacks:
        own[frames[-1]] += count
        for frame in set(frames):
            cumulative[frame] += count
        for depth, frame in enumerate(frames):
            name = frame.split(" (")[0]
            method = name.removeprefix("RspEngine.")
            if method in below and name != method:
                engine_total[method] += count
                if depth + 1 < len(frames):
                    below[method][frames[depth + 1]] += count
                break

    def amount(samples: int) -> str:
        share = f"{100 * samples / total:6.2f}%"
        if cpu_ms is None:
            return share
        return f"{share} {cpu_ms * samples / total:8.3f} ms"

    unit = "share of busy samples" + (", ms of server CPU per download" if cpu_ms else "")
    lines = [f"{path}: {total} busy samples" + (f", {downloads} downloads" if downloads else "")
             + (f", {cpu_ms} ms server CPU per download" if cpu_ms else "")]
    # frames in (nearly) every sample are the reactor's outer loop: no information
    inner = Counter({frame: n for frame, n in cumulative.items() if n < 0.99 * total})
    for title, counter in (("own time", own), ("cumulative time, outer reactor frames left out",
                                                inner)):
        lines += ["", f"top {top} by {title} ({unit})"]
        lines += [f"  {amount(n)}  {frame}" for frame, n in counter.most_common(top)]
    for method in ENGINE_FUNCTIONS:
        if not engine_total[method]:
            continue
        lines += ["", f"RspEngine.{method}: {amount(engine_total[method])}; top callees:"]
        lines += [f"  {amount(n)}  {frame}" for frame, n in below[method].most_common(callees)]
    return "\n".join(lines)


# -- cProfile dumps -----------------------------------------------------------------


def _name(key: Key) -> str:
    path, line, function = key
    if path == "~":  # a built-in
        return function
    for marker in ("/smdpp/", "/site-packages/", "/lib/python"):
        if marker in path:
            path = path[path.index(marker) + len(marker):]
            break
    return f"{path}:{line}({function})"


def _engine_key(table: dict, function: str) -> Key | None:
    for key in table:
        if key[2] == function and key[0].endswith(_ENGINE_FILE):
            return key
    return None


def report_pstats(path: Path, *, top: int = 20, callees: int = 10) -> str:
    """The report of a cProfile dump (see the module docstring)."""
    stats = pstats.Stats(str(path))
    table = stats.stats  # type: ignore[attr-defined]  # key -> (cc, nc, tottime, cumtime, callers)
    notify = _engine_key(table, "handle_notification")
    downloads = table[notify][1] if notify is not None else 0
    per = 1000 / downloads if downloads else 1000.0
    unit = "ms per download" if downloads else "ms in total (no download found)"
    idle = sum(v[2] for k, v in table.items() if _name(k) == _IDLE)
    busy = stats.total_tt - idle  # type: ignore[attr-defined]
    lines = [f"{path}: {downloads} downloads, {busy * per:.2f} {unit} of profiled time "
             f"(without {idle * per:.2f} waiting in epoll)"]

    def ranking(title: str, column: int) -> None:
        lines.extend(["", f"top {top} by {title} ({unit}, calls per download)"])
        ranked = sorted(((k, v) for k, v in table.items() if _name(k) != _IDLE),
                        key=lambda item: item[1][column], reverse=True)[:top]
        for key, (cc, nc, tt, ct, _) in ranked:
            calls = nc / downloads if downloads else nc
            lines.append(f"  {(tt if column == 2 else ct) * per:9.3f}  {calls:8.1f}  {_name(key)}")

    ranking("own time", 2)
    ranking("cumulative time (the reactor's frames include the epoll wait)", 3)
    stats.calc_callees()
    all_callees = stats.all_callees  # type: ignore[attr-defined]  # key -> {callee: (cc, nc, tt, ct)}
    for function in ENGINE_FUNCTIONS:
        key = _engine_key(table, function)
        if key is None:
            continue
        _, nc, tt, ct, _ = table[key]
        lines.extend(["", f"RspEngine.{function}: {nc} calls, {ct * 1000 / nc:.3f} ms per call "
                          f"(own {tt * 1000 / nc:.3f}); top callees, ms per call:"])
        ranked = sorted(all_callees.get(key, {}).items(), key=lambda item: item[1][3],
                        reverse=True)[:callees]
        for callee, (_, cnc, _, cct) in ranked:
            lines.append(f"  {cct * 1000 / nc:9.3f}  x{cnc / nc:<5.1f} {_name(callee)}")
    return "\n".join(lines)


def report(path: Path, *, top: int = 20, callees: int = 10, cpu_ms: float | None = None,
           downloads: int | None = None) -> str:
    """The report of ``path``, a cProfile dump or a py-spy raw file."""
    try:
        return report_pstats(path, top=top, callees=callees)
    except (ValueError, EOFError, TypeError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
    return report_collapsed(path, top=top, callees=callees, cpu_ms=cpu_ms, downloads=downloads)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the report of one or more profiles."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile_report",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("files", type=Path, nargs="+", help="cProfile dump(s) or py-spy raw file(s)")
    parser.add_argument("--top", type=int, default=20, help="functions per ranking")
    parser.add_argument("--callees", type=int, default=10, help="callees per ES9+ function")
    parser.add_argument("--cpu-ms", type=float,
                        help="py-spy: the server CPU ms per download the benchmark measured")
    parser.add_argument("--downloads", type=int, help="py-spy: downloads in the profile")
    args = parser.parse_args(argv)
    for number, path in enumerate(args.files):
        if number:
            print()
        print(report(path, top=args.top, callees=args.callees, cpu_ms=args.cpu_ms,
                     downloads=args.downloads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
