"""``python -m bench.download``: complete profile downloads against a real smdpp, measured.

For every combination of ``--curve``, ``--size`` and ``--concurrency`` (each
takes a comma-separated list) the benchmark

1. makes a fresh data folder (test PKI on the curve, profile of the size,
   ``--euiccs`` eUICC identities; see :mod:`bench.datadir`), optionally
   with ``--prefill`` finished sessions in its store;
2. starts ``./osmo-smdpp.py -H 127.0.0.1 -p 0 --data-dir DIR`` (plus
   ``--server-arg`` options, e.g. ``--workers 2``);
3. runs ``--warmup`` downloads, samples the server's CPU time, runs ``-n``
   downloads with ``--concurrency`` in flight (at most ``--max-seconds``),
   samples again;
4. stops the server and prints downloads/s, server CPU ms per download and
   peak RSS, client CPU, p50/p95/p99 of every ES9+ call and of the whole
   download, failures by reason, and the cryptography floor of a download
   on this machine, sampled all through the run (:mod:`bench.floor`), with
   the server's CPU per download as a multiple of it.

With two CPUs or more the server runs on CPU 0 and the benchmark (load
generator and floor sampler) on the others (``--pin``, the default without
``--workers``): on a shared CPU the load generator, which spends more CPU per
download than the server, would preempt the server at every exchange and
evict its caches, and the server's figure would measure that contention
rather than the server.  ``--no-pin`` lets the kernel place both.

``--url`` measures a server that is already running instead: its data
folder (``--data-dir``) provides the EUM to issue eUICCs with and the
profile, ``--server-pid`` the process to read CPU and memory from.
``--memory-checkpoints`` records the server's RSS every
``--checkpoint-every`` downloads, to show memory stays flat over a long run.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from bench import datadir, procstat
from bench.floor import FloorWatch, crypto_floor_ms
from bench.load import run_load
from bench.perf import PerfCounter
from bench.report import format_checkpoints, format_tables, summarize
from bench.profile_report import report_collapsed
from bench.server import PySpy, ServerProcess, start_server

__all__ = ["main", "parse_args", "run_one"]

CURVES = ("nist", "brainpool")
T = TypeVar("T")


def _list(kind: Callable[[str], T],
          choices: Sequence[T] | None = None) -> Callable[[str], list[T]]:
    """An argparse type: a comma-separated list of values."""
    def parse(text: str) -> list[T]:
        values = [kind(v.strip()) for v in text.split(",") if v.strip()]
        if not values:
            raise argparse.ArgumentTypeError("empty list")
        if choices is not None:
            bad = [v for v in values if v not in choices]
            if bad:
                raise argparse.ArgumentTypeError(f"{', '.join(map(str, bad))} not in "
                                                 f"{', '.join(map(str, choices))}")
        return values
    parse.__name__ = f"comma-separated {getattr(kind, '__name__', 'value')} list"  # argparse's errors
    return parse


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="python -m bench.download",
        description="Benchmark complete SGP.22 profile downloads (software eUICC, full "
                    "verification, kept-alive HTTP on loopback) against smdpp.")
    p.add_argument("--curve", type=_list(str, CURVES), default=["nist"],
                   help="nist and/or brainpool, comma-separated (default: nist)")
    p.add_argument("--size", type=_list(str, tuple(datadir.PROFILE_SIZES)), default=["12k"],
                   help="profile size(s): 12k (TS.48 v2 if present), 100k, 500k (default: 12k)")
    p.add_argument("-c", "--concurrency", type=_list(int), default=[4],
                   help="downloads in flight, comma-separated (default: 4)")
    p.add_argument("-n", "--count", type=int, default=500, help="measured downloads per run")
    p.add_argument("--warmup", type=int, default=20,
                   help="downloads before the measurement starts (default: %(default)s)")
    p.add_argument("--max-seconds", type=float, default=600.0,
                   help="stop starting downloads after this long (default: %(default)s)")
    p.add_argument("--euiccs", type=int, default=8,
                   help="eUICC identities, used in turn (default: %(default)s)")
    p.add_argument("--prefill", type=_list(int), default=[0],
                   help="finished sessions written into the store before the server starts, "
                        "comma-separated for several runs (default: 0)")
    p.add_argument("--store", metavar="URL",
                   help="pass --store URL to the server and prefill that store")
    p.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                   help="one more server option (repeat: --server-arg=--workers --server-arg=2)")
    p.add_argument("--server-profile", type=Path, metavar="FILE",
                   help="profile the server (cProfile) during the measured downloads and "
                        "write the statistics to FILE (several runs: FILE.1, FILE.2, ...); "
                        "read it with python -m bench.profile_report FILE")
    p.add_argument("--py-spy", type=Path, metavar="FILE",
                   help="sample the server with py-spy during the measured downloads (collapsed "
                        "stacks to FILE, several runs: FILE.1, ...) and print where its CPU goes")
    p.add_argument("--py-spy-rate", type=int, default=100, metavar="HZ",
                   help="py-spy samples per second (default: %(default)s; py-spy competes "
                        "with the server for CPU)")
    p.add_argument("--memory-checkpoints", action="store_true",
                   help="record the server's RSS every --checkpoint-every downloads")
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--data-dir", type=Path,
                   help="the data folder: kept after the run (must be new or empty; with "
                        "several runs one subfolder each); with --url, the running server's")
    p.add_argument("--testdata", type=Path, default=datadir.DEFAULT_TESTDATA,
                   help="folder with upp/TS48V2-... (default: ../shared/testdata)")
    p.add_argument("--url", help="measure the smdpp already running at this http:// URL")
    p.add_argument("--server-pid", type=int, help="with --url: the server process, for CPU and RSS")
    p.add_argument("--matching-id", help="with --url: the profile to download")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the records as JSON to FILE")
    p.add_argument("--instructions", action="store_true",
                   help="also count the instructions the server's main thread retires per "
                        "download, in user space and in the kernel, and its user-space cycles "
                        "(Linux perf events): instructions stay steady where CPU time drifts "
                        "with the machine, for comparing changes")
    p.add_argument("--pin", action=argparse.BooleanOptionalAction, default=None,
                   help="server on CPU 0, the benchmark on the other CPUs (default: on with "
                        "2 or more CPUs, unless --workers is among the server options or "
                        "--url is given)")
    args = p.parse_args(argv)
    if args.count < 0 or args.warmup < 0 or args.euiccs < 1 or args.checkpoint_every < 1:
        p.error("-n and --warmup must be >= 0, --euiccs and --checkpoint-every >= 1")
    if args.url:
        if args.data_dir is None:
            p.error("--url needs --data-dir, the running server's data folder")
        if len(args.curve) > 1 or len(args.size) > 1 or args.prefill != [0] \
                or args.server_profile or args.server_arg or args.store:
            p.error("--url measures one running server: no curve/size lists, --prefill, "
                    "--store, --server-arg or --server-profile")
        if args.py_spy and args.server_pid is None:
            p.error("--py-spy with --url needs --server-pid")
        if args.pin:
            p.error("--pin starts the server itself: not with --url")
    if args.pin is None:
        args.pin = (not args.url and len(_cpus()) >= 2
                    and not any(a.split("=")[0] == "--workers" for a in args.server_arg))
    elif args.pin and len(_cpus()) < 2:
        p.error("--pin needs 2 or more CPUs")
    return args


def _cpus() -> list[int]:
    """The CPUs this process may run on."""
    return sorted(os.sched_getaffinity(0))


def pin_split(cpus: Sequence[int]) -> tuple[set[int], set[int]]:
    """(server CPUs, benchmark CPUs) for ``--pin``: the first CPU and the rest."""
    if len(cpus) < 2:
        raise ValueError("pinning needs 2 or more CPUs")
    return {cpus[0]}, set(cpus[1:])


def _client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _measure(url: str, data: datadir.BenchData, args: argparse.Namespace, concurrency: int,
             pid: int | None, config: dict[str, Any],
             server: ServerProcess | None = None,
             spy_to: Path | None = None) -> dict[str, Any]:
    """Warm up, then the measured downloads between two samples of the server
    (and, for a server started with a profiler, inside its profiled window)."""
    common = dict(smdp_address=datadir.HOSTNAME, matching_id=data.matching_id,
                  concurrency=concurrency)
    if args.warmup:
        warm = run_load(url, data.identities, count=args.warmup, **common)
        if not any(o.ok for o in warm.outcomes):
            first = next((o.error for o in warm.outcomes), "no download ran")
            raise RuntimeError(f"warm-up downloads failed: {first}")
    checkpoints: list[dict[str, Any]] = []
    last = {"downloads": 0, "cpu": 0.0}
    lock = threading.Lock()
    before = procstat.sample(pid) if pid else None
    last["cpu"] = before.cpu_seconds if before else 0.0

    def on_done(done: int) -> None:
        if pid is None or done % args.checkpoint_every:
            return
        now = procstat.sample(pid)
        with lock:
            interval = done - last["downloads"]
            checkpoints.append({
                "downloads": done, "rss_mib": round(now.rss_kib / 1024, 1),
                "peak_rss_mib": round(now.hwm_kib / 1024, 1),
                "cpu_ms_per_download": round((now.cpu_seconds - last["cpu"]) * 1000 / interval, 3)})
            last.update(downloads=done, cpu=now.cpu_seconds)

    counters = _instruction_counters(pid) if args.instructions and pid else None
    counted_before = [c() for c in counters] if counters else None
    profiled = server if server is not None and server.profile_to is not None else None
    if profiled is not None:
        profiled.profile_start()
    spy = PySpy(pid, spy_to, args.py_spy_rate) if spy_to is not None and pid else None
    floor_curve = config["curve"] if config["curve"] in CURVES else "nist"
    watch = FloorWatch(floor_curve, data.profile_bytes,
                       rounds=2 if floor_curve == "brainpool" else 10)
    try:
        client_before = _client_cpu()
        load = run_load(url, data.identities, count=args.count, max_seconds=args.max_seconds,
                        on_done=on_done if args.memory_checkpoints else None, **common)
        client_cpu = _client_cpu() - client_before
        after = procstat.sample(pid) if pid else None
        counted_after = [c() for c in counters] if counters else None
    finally:
        for counter in counters or ():
            counter.close()
        floor_samples = watch.stop()
        if spy is not None:
            spy.stop()
        if profiled is not None:
            profiled.profile_stop()
    record = summarize(config, load, server_before=before, server_after=after,
                       client_cpu_seconds=client_cpu, checkpoints=sorted(
                           checkpoints, key=lambda c: c["downloads"]))
    if counted_before and counted_after and record["ok"]:
        user, kernel, cycles = (round((a - b) / record["ok"] / 1000)
                                for a, b in zip(counted_after, counted_before))
        record["server_kinstructions_per_download"] = {"user": user, "kernel": kernel}
        record["server_kcycles_per_download"] = {"user": cycles}
    # The floor twice: sampled during the run (the machine as the server saw it, drift and
    # the load of the client included) and alone on the idle machine right after it.
    # Pinned, the idle floor is measured on the server's CPU (its speed is the one that
    # counts, and a VM's CPUs can differ), the server waiting in epoll meanwhile.
    pinned = config.get("pinned")
    bench_cpus = os.sched_getaffinity(0)
    if pinned:
        os.sched_setaffinity(0, pinned["server"])
    try:
        record["crypto_floor_idle_ms"] = crypto_floor_ms(
            floor_curve, data.profile_bytes, rounds=20 if floor_curve == "brainpool" else 100)
    finally:
        os.sched_setaffinity(0, bench_cpus)
    record["crypto_floor_samples"] = floor_samples
    record["crypto_floor_ms"] = (round(statistics.median(floor_samples), 3)
                                 if len(floor_samples) >= 3 else None)  # too short a run
    if spy is not None:
        record["py_spy"] = str(spy.out)
        print(report_collapsed(spy.out, cpu_ms=record["server_cpu_ms_per_download"],
                               downloads=record["ok"]), end="\n\n")
    return record


def _instruction_counters(pid: int) -> list[Any]:
    """Counters on the server's main thread: instructions in user space and in the kernel,
    and user-space cycles (instructions per cycle show how the machine's drift hits it)."""
    return [PerfCounter(pid), PerfCounter(pid, kernel=True), PerfCounter(pid, cycles=True)]


def _open_store(server_args: list[str], data_dir: Path) -> Any:
    """The session store the server will open with ``server_args`` (its default or --store)."""
    from smdpp.cli import parse_args
    from smdpp.store import open_store
    return open_store(parse_args(["--data-dir", str(data_dir), *server_args]).store, data_dir)


def run_one(args: argparse.Namespace, data_dir: Path, *, curve: str, size: str,
            concurrency: int, prefill: int, profile_to: Path | None = None,
            spy_to: Path | None = None) -> dict[str, Any]:
    """Prepare ``data_dir``, start a server on it, measure, stop it; the run's record."""
    data = datadir.prepare(data_dir, curve=curve, size=size, euiccs=args.euiccs,
                           testdata=args.testdata)
    server_args = [*(["--store", args.store] if args.store else []), *args.server_arg]
    if prefill:
        store = _open_store(server_args, data_dir)
        try:
            datadir.prefill_sessions(store, prefill, matching_id=data.matching_id,
                                     ci_cert_der=(data_dir / "euicc" / "ci_cert.der").read_bytes())
        finally:
            store.close()
    config = {"curve": curve, "size": size, "profile": data.profile_source,
              "profile_bytes": data.profile_bytes, "concurrency": concurrency,
              "count": args.count, "warmup": args.warmup, "euiccs": args.euiccs,
              "prefill": prefill, "server_args": server_args, "cpus": os.cpu_count()}
    own_cpus = _cpus()
    server_cpus: set[int] | None = None
    if args.pin:
        server_cpus, bench_cpus = pin_split(own_cpus)
        config["pinned"] = {"server": sorted(server_cpus), "benchmark": sorted(bench_cpus)}
        os.sched_setaffinity(0, bench_cpus)  # the floor sampler started later inherits it
    try:
        server = start_server(data_dir, *server_args, profile_to=profile_to, cpus=server_cpus)
        try:
            return _measure(server.url, data, args, concurrency, server.pid, config, server,
                            spy_to)
        finally:
            code = server.stop()
            if code not in (0, None):
                print(f"warning: the server exited with {code}:\n{server.log_tail()}",
                      file=sys.stderr)
    finally:
        os.sched_setaffinity(0, own_cpus)


def _run_attached(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="smdpp-bench-euiccs-") as identity_dir:
        data = datadir.attach(args.data_dir, Path(identity_dir), euiccs=args.euiccs,
                              matching_id=args.matching_id)
        config = {"curve": "external", "size": f"{data.profile_bytes}B",
                  "profile": data.profile_source, "profile_bytes": data.profile_bytes,
                  "concurrency": args.concurrency[0], "count": args.count,
                  "warmup": args.warmup, "euiccs": args.euiccs, "prefill": 0,
                  "server_args": [], "url": args.url, "cpus": os.cpu_count()}
        return _measure(args.url, data, args, args.concurrency[0], args.server_pid, config,
                        spy_to=args.py_spy)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark matrix; print the tables; 0 if every download succeeded, 2 if a
    run could not be set up."""
    args = parse_args(argv)
    try:
        records = _run_all(args)
    except (RuntimeError, ValueError, OSError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    print(format_tables(records))
    checkpoints = format_checkpoints(records)
    if checkpoints:
        print()
        print(checkpoints)
    if args.json is not None:
        args.json.write_text(json.dumps(records, indent=2) + "\n")
    clean = all(r["failed"] == 0 and (r["ok"] > 0 or args.count == 0) for r in records)
    return 0 if clean else 1


def _run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    if args.url:
        records.append(_run_attached(args))
    else:
        runs = list(itertools.product(args.curve, args.size, args.concurrency, args.prefill))
        with tempfile.TemporaryDirectory(prefix="smdpp-bench-") as scratch:
            base = args.data_dir or Path(scratch)
            for number, (curve, size, concurrency, prefill) in enumerate(runs, 1):
                data_dir = base if args.data_dir and len(runs) == 1 else base / f"run{number}"
                profile_to, spy_to = args.server_profile, args.py_spy
                if len(runs) > 1:
                    profile_to = profile_to and profile_to.with_name(f"{profile_to.name}.{number}")
                    spy_to = spy_to and spy_to.with_name(f"{spy_to.name}.{number}")
                print(f"run {number}/{len(runs)}: {curve} {size} concurrency {concurrency}"
                      f"{f' prefill {prefill}' if prefill else ''} ...", file=sys.stderr,
                      flush=True)
                records.append(run_one(args, data_dir, curve=curve, size=size,
                                       concurrency=concurrency, prefill=prefill,
                                       profile_to=profile_to, spy_to=spy_to))
    return records


if __name__ == "__main__":
    sys.exit(main())
