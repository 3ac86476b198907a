"""``python -m bench.engine``: complete profile downloads through :class:`RspEngine`, in process.

No HTTP and no second process: an in-process stand-in for the ES9+ client
hands each request straight to the engine method behind it, and the LPA side
is the real one (:func:`smdpp.euicc.client.download` with a fresh
:class:`~smdpp.euicc.card.SoftEuicc` per download), so both sides verify
everything they would over the network (SGP.22 3.1.3).  The eUICC identities
(``--euiccs``) are used in turn.

Only the engine calls are timed, in process CPU time: the figures are the
server CPU per download spent inside ``initiate_authentication``,
``authenticate_client``, ``get_bound_profile_package`` and
``handle_notification`` (session store included, base64/JSON excluded).
``--profile FILE`` runs cProfile around those calls only and writes its
statistics to FILE (read it with ``python -m pstats FILE``).

``--instructions`` counts user-space CPU instructions (Linux perf events)
instead of CPU time: a figure that does not drift with the machine's speed
or with other processes, for comparing two versions of the engine.
``--cycles`` counts user-space CPU cycles instead: what the machine's speed
does to those instructions, without the kernel's share or other processes.

The engine logs at INFO as the server does, into a handler that formats
each record and throws it away (``--log off`` silences it, ``--log stderr``
shows it).
"""
from __future__ import annotations

import argparse
import base64
import cProfile
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from bench import datadir
from bench.perf import PerfCounter
from smdpp import logs
from smdpp.errors import SgpError
from smdpp.http.es9p import ADMIN_PROTOCOL, Es9pApi
from smdpp.euicc.card import SoftEuicc
from smdpp.euicc.client import download
from smdpp.euicc.es9 import Es9Reply
from smdpp.rsp.engine import RspEngine

__all__ = ["EngineClient", "main", "parse_args", "run"]

# what the LPA checks in every answer (SGP.22 6.5.1)
_HEADERS = {"content-type": "application/json;charset=UTF-8",
            "x-admin-protocol": ADMIN_PROTOCOL}


class EngineClient:
    """Looks like :class:`~smdpp.euicc.es9.Es9Client` to the LPA; calls the engine directly.

    Each engine call is measured with ``clock`` (default: process CPU
    nanoseconds) into ``counts`` (per engine method name, one entry per
    call) and, with ``profiler``, profiled.
    """

    def __init__(self, engine: RspEngine, profiler: cProfile.Profile | None = None,
                 clock: Callable[[], int] = time.process_time_ns) -> None:
        self.engine = engine
        self.profiler = profiler
        self.clock = clock
        self.recording = True
        # the ES9+ mapping the HTTP layer uses: JSON fields -> engine keyword arguments
        self.functions = Es9pApi(engine).functions
        self.counts: dict[str, list[int]] = {
            f.call.__name__: [] for f in self.functions.values()}

    def call(self, function: str, body: Mapping[str, Any]) -> Es9Reply:
        """One ES9+ function: its reply as the HTTP layer would shape it (SGP.22 6.5)."""
        method = self.functions[function].call
        method_name = method.__name__
        kwargs = {kw: base64.b64decode(body[name]) if kind == "b64" else body[name]
                  for name, kw, kind in self.functions[function].fields}
        profiler = self.profiler if self.recording else None
        error: SgpError | None = None
        if profiler is not None:
            profiler.enable()
        start = self.clock()
        try:
            result = method(**kwargs)
        except SgpError as exc:
            error, result = exc, None
        spent = self.clock() - start
        if profiler is not None:
            profiler.disable()
        if self.recording:
            self.counts[method_name].append(spent)
        if error is not None:
            answer: dict[str, Any] = {"header": {"functionExecutionStatus": error.status()}}
        elif result is None:
            return Es9Reply(204, _HEADERS, b"", None)
        else:
            answer = {"header": {"functionExecutionStatus": {"status": "Executed-Success"}}}
            for key, value in result.items():
                answer[key] = base64.b64encode(value).decode() if isinstance(value, bytes) else value
        return Es9Reply(200, _HEADERS, b"", answer)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="python -m bench.engine",
        description="Server CPU per complete profile download inside RspEngine, in process "
                    "(software eUICC, full verification on both sides, no HTTP).")
    p.add_argument("-n", "--count", type=int, default=300, help="measured downloads")
    p.add_argument("--warmup", type=int, default=20, help="downloads before the measurement")
    p.add_argument("--euiccs", type=int, default=8, help="eUICC identities, used in turn")
    p.add_argument("--curve", choices=("nist", "brainpool"), default="nist")
    p.add_argument("--size", choices=tuple(datadir.PROFILE_SIZES), default="12k")
    p.add_argument("--store", default="journal:",
                   help="session store URL as the server's --store: journal: (default, as the "
                        "server's with one process), shelve: or memory:")
    p.add_argument("--log", choices=("null", "off", "stderr"), default="null",
                   help="engine logging: INFO formatted and dropped (default), off, or to stderr")
    p.add_argument("--instructions", action="store_true",
                   help="count user-space instructions (thousands per download) instead of CPU "
                        "time: steady when the machine's speed drifts")
    p.add_argument("--cycles", action="store_true",
                   help="count user-space CPU cycles (thousands per download) instead of CPU "
                        "time: leaves out the kernel and other threads, not the machine's drift")
    p.add_argument("--profile", type=Path, metavar="FILE",
                   help="cProfile the measured engine calls only; statistics to FILE")
    p.add_argument("--data-dir", type=Path, help="a new or empty folder to keep (default: temporary)")
    p.add_argument("--testdata", type=Path, default=datadir.DEFAULT_TESTDATA)
    p.add_argument("--json", type=Path, metavar="FILE", help="write the figures as JSON to FILE")
    args = p.parse_args(argv)
    if args.instructions and args.cycles:
        p.error("--instructions and --cycles count different things: pick one")
    if args.count < 1 or args.warmup < 0 or args.euiccs < 1:
        p.error("-n and --euiccs must be >= 1, --warmup >= 0")
    return args


def _logging(mode: str) -> None:
    """The engine's logger as the server sets it up (:func:`smdpp.logs.configure`: INFO,
    the server's format and its cheaper records)."""
    if mode == "off":
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        root.setLevel(logging.WARNING)
        return
    logs.configure(stream=sys.stderr if mode == "stderr" else open(os.devnull, "w"))  # noqa: SIM115


def _build_engine(data_dir: Path, store: str) -> RspEngine:
    from smdpp import app, cli  # the engine a server started with these options would have
    return app.build_engine(cli.parse_args(["--data-dir", str(data_dir), "--store", store,
                                            "--hostname", datadir.HOSTNAME]))


def run(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    """Prepare ``data_dir``, run the downloads; the figures per download: µs of CPU
    (or thousands of instructions with ``--instructions``)."""
    data = datadir.prepare(data_dir, curve=args.curve, size=args.size, euiccs=args.euiccs,
                           testdata=args.testdata)
    _logging(args.log)
    engine = _build_engine(data_dir, args.store)
    profiler = cProfile.Profile() if args.profile else None
    clock: Callable[[], int] = (PerfCounter(cycles=args.cycles) if args.instructions or args.cycles
                                else time.process_time_ns)
    client = EngineClient(engine, profiler, clock)
    try:
        for number in range(args.warmup + args.count):
            client.recording = number >= args.warmup
            identity = data.identities[number % len(data.identities)]
            result = download(client, SoftEuicc(identity),  # type: ignore[arg-type]
                              smdp_address=datadir.HOSTNAME, matching_id=data.matching_id)
            if not result.notification_sent:
                raise RuntimeError(f"download {number}: {result.notification_error}")
    finally:
        engine.store.close()
    if profiler is not None:
        profiler.dump_stats(str(args.profile))
    # ns -> µs, or instructions -> thousands
    per_method = {name: statistics.fmean(v) / 1000 for name, v in client.counts.items() if v}
    medians = {name: statistics.median(v) / 1000 for name, v in client.counts.items() if v}
    return {"curve": args.curve, "size": args.size, "profile": data.profile_source,
            "store": args.store, "unit": _unit(args), "downloads": args.count, "euiccs": args.euiccs,
            "mean": per_method, "median": medians, "total": sum(per_method.values())}


def _unit(args: argparse.Namespace) -> str:
    return "kcycles" if args.cycles else "kinstr" if args.instructions else "µs"


def format_figures(record: Mapping[str, Any]) -> str:
    """A small table: mean and median per download for each engine method."""
    unit = record["unit"]
    lines = [f"{record['downloads']} downloads, {record['euiccs']} eUICCs, {record['curve']}, "
             f"{record['profile']}, store {record['store']}",
             f"{'engine method':<28}{'mean ' + unit:>12}{'median ' + unit:>14}"]
    for name, mean in record["mean"].items():
        lines.append(f"{name:<28}{mean:>12.0f}{record['median'][name]:>14.0f}")
    lines.append(f"{'total':<28}{record['total']:>12.0f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table; 0 if every download succeeded."""
    args = parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="smdpp-bench-engine-") as scratch:
            record = run(args, args.data_dir or Path(scratch))
    except (RuntimeError, ValueError, OSError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a DownloadError names the failed step
        print(f"benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(format_figures(record))
    if args.json is not None:
        args.json.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
