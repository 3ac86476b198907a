"""``python -m bench.abuse``: hostile clients against a running smdpp while real downloads go on.

For each front end (``--http smdpp,klein``) the benchmark makes a fresh data
folder, starts ``./osmo-smdpp.py`` on 127.0.0.1 with its default limits (plus
``--server-arg`` options), measures complete downloads alone (the unloaded
phase, ``--baseline-seconds``, and again ``--gap-seconds`` before each probe
and after the last: all pooled for the unloaded p99; as the machine's load
drifts, each probe is also compared with the two unloaded phases around it),
then runs each probe while the same steady
stream of legitimate downloads (:func:`bench.load.run_load`,
``--concurrency`` in flight) goes on.  A p99 of a few hundred samples is
nearly their maximum, so a probe is run in rounds (its connections opened
again each round) until ``--min-downloads`` downloads ran during it, at most
``--max-rounds``; each p99 is printed with the number of samples it comes
from.  The probes:

``slow-head``
    ``--connections`` connections send a request line, then one header byte
    a second;
``slow-body``
    a whole head announcing ``--body-bytes``, then one body byte a second;
``idle``
    ``--connections`` connections that send nothing;
``one-client-flood``
    ``--connections`` connections from a single address (the per-client cap);
``big-heads``
    a 65,000-byte header line, and 90 headers of 700 bytes, each in one write;
``pipelining``
    connections that each send 500 requests at once, reading the answers;
``garbage``
    4 KiB of random bytes, an HTTP/0.9 line, ``Transfer-Encoding: gzip, chunked``;
``tls-stall`` (``--tls``)
    a ClientHello begun and never finished (and with ``--tls`` only this
    probe and ``idle`` run: the others would be TLS garbage).

Hostile connections come from 127.0.0.2 and up (the whole 127/8 is
loopback), spread so that each address stays under the per-client cap except
in ``one-client-flood``; the downloads come from 127.0.0.1.  Once its
connections are open a probe lasts the deadline it meets plus 5 s, at most
``--probe-seconds``.  The hostile connections are driven by a child process
(:mod:`bench.swarm`), so that they take no interpreter time from the
downloads; with two CPUs or more the server runs on the first one and the
benchmark on the others (``--pin``).  One row per
probe: what the server answered, when it closed the connections, downloads
ok/total, their p50/p99 against the unloaded p99, the server's CPU
seconds during the probe and the part of them that was the attack's (the
CPU beyond what that many downloads cost in the unloaded phases around
it), the server's RSS before
and after (1 s after the probe, or, when it grew by more than 5 MiB, after
the server's periodic heap trim, :data:`~smdpp.http.guard.TRIM_INTERVAL` + 2 s),
and tracebacks in its log.  ``--profile DIR`` runs the server under cProfile
(:mod:`bench.profiled_server`) and writes one profile per probe.  Loopback
only; everything is bounded in count and time: with the defaults about 9
minutes for both front ends, 5 with ``--tls``.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from bench import datadir, procstat
from bench.load import LoadResult, run_load
from bench.report import percentile
from bench.server import ServerProcess, start_server
from bench.swarm import Plan, Swarm, sources
from smdpp.http.guard import TRIM_INTERVAL

__all__ = ["main", "parse_args"]

HEAD = (b"POST /gsma/rsp2/es9plus/initiateAuthentication HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nX-Admin-Protocol: gsma/rsp/v2.2.0\r\n")
LIMITS_LINE = re.compile(r"limits: head ([\d.]+) s, body ([\d.]+) s \(at least ([\d.]+) bytes/s\), "
                         r"idle ([\d.]+) s, TLS handshake ([\d.]+) s; (\d+) connections per "
                         r"process, (\d+) per client")


@dataclass(frozen=True)
class ServerLimits:
    """The limits the server logged at start."""

    head: float
    body: float
    body_rate: float
    idle: float
    tls: float
    per_process: int
    per_client: int


@dataclass(frozen=True)
class Probe:
    """One kind of abuse: ``attack(swarm, limits, args, hold)`` opens the connections and
    drives them for ``hold`` seconds more, ``hold(limits, args)`` (the server's deadline
    the probe meets, plus 5 s)."""

    name: str
    what: str
    attack: Callable[[Swarm, ServerLimits, argparse.Namespace, float], None]
    hold: Callable[[ServerLimits, argparse.Namespace], float]  # after the connections are open
    over: str = "plain"  # run against a plain HTTP server, a --tls one, or "both"


def _spread(args: argparse.Namespace, limits: ServerLimits) -> list[str]:
    """Enough source addresses that none passes the per-client cap."""
    return sources(max(1, -(-args.connections // max(1, limits.per_client - 8))))


def _slow_head(swarm: Swarm, limits: ServerLimits, args: argparse.Namespace, hold: float) -> None:
    swarm.open(args.connections, _spread(args, limits),
               Plan(first=b"POST /gsma/rsp2/es9plus/initiateAuthentication HTTP/1.1\r\n"))
    swarm.run(hold, Plan(trickle=b"X-Slow: " + b"a" * 200, interval=1.0))


def _slow_body(swarm: Swarm, limits: ServerLimits, args: argparse.Namespace, hold: float) -> None:
    head = HEAD + b"Content-Length: %d\r\n\r\n" % args.body_bytes
    swarm.open(args.connections, _spread(args, limits), Plan(first=head))
    swarm.run(hold, Plan(trickle=b"{" * args.body_bytes, interval=1.0))


def _idle(swarm: Swarm, limits: ServerLimits, args: argparse.Namespace, hold: float) -> None:
    swarm.open(args.connections, _spread(args, limits), Plan())
    swarm.run(hold, Plan())


def _one_client(swarm: Swarm, limits: ServerLimits, args: argparse.Namespace, hold: float) -> None:
    swarm.open(args.connections, sources(1, first=200), Plan())
    swarm.run(hold, Plan())


def _big_heads(swarm: Swarm, limits: ServerLimits, args: argparse.Namespace, hold: float) -> None:
    count = min(100, args.connections)
    swarm.open(count, sources(1, first=201),
               Plan(first=HEAD + b"X-Long: " + b"a" * 65_000 + b"\r\nContent-Length: 0\r\n\r\n"))
    swarm.open(count, sources(1, first=202), Plan(first=HEAD + b"".join(
        b"X-%d: %s\r\n" % (i, b"b" * 700) for i in range(90)) + b"Content-Length: 0\r\n\r\n"))
    swarm.run(hold, Plan())


def _pipelining(swarm: Swarm, limits: ServerLimits, args: argparse.Namespace, hold: float) -> None:
    body = b'{"transactionId":"00"}'
    request = HEAD + b"Content-Length: %d\r\n\r\n" % len(body) + body
    swarm.open(min(20, args.connections), sources(1, first=203), Plan(first=request * 500))
    swarm.run(hold, Plan())


def _garbage(swarm: Swarm, limits: ServerLimits, args: argparse.Namespace, hold: float) -> None:
    count = min(200, args.connections)
    for n, first in enumerate((os.urandom(4096), b"GET /\r\n",
                               HEAD + b"Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")):
        swarm.open(count, sources(1, first=204 + n), Plan(first=first))
    swarm.run(hold, Plan())


def _tls_stall(swarm: Swarm, limits: ServerLimits, args: argparse.Namespace, hold: float) -> None:
    # a TLS record header announcing a 512-byte ClientHello, and its first bytes
    swarm.open(args.connections, _spread(args, limits),
               Plan(first=b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"))
    swarm.run(hold, Plan(trickle=os.urandom(400), interval=1.0))


PROBES = (
    Probe("slow-head", "request line, then 1 header byte/s", _slow_head,
          lambda lim, a: lim.head + 5),
    Probe("slow-body", "head, then 1 body byte/s", _slow_body,
          lambda lim, a: min(lim.body, 10 + a.body_bytes / lim.body_rate) + 5),
    Probe("idle", "connect, send nothing", _idle,
          lambda lim, a: (lim.tls if a.tls else lim.idle) + 5, over="both"),
    Probe("one-client-flood", "all from one address", _one_client, lambda lim, a: 5.0),
    Probe("big-heads", "65,000-byte line / 90x700-byte headers", _big_heads, lambda lim, a: 5.0),
    Probe("pipelining", "20 connections x 500 requests", _pipelining, lambda lim, a: 10.0),
    Probe("garbage", "random 4 KiB / HTTP/0.9 / TE gzip", _garbage,
          lambda lim, a: lim.head + 5),  # random bytes without a line end wait for the head's
    Probe("tls-stall", "ClientHello begun, 1 byte/s", _tls_stall, lambda lim, a: lim.tls + 5,
          over="tls"),
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.abuse", description=__doc__.split("\n")[0])
    p.add_argument("--http", default="smdpp,klein",
                   help="front end(s), comma-separated: smdpp, klein (default: both)")
    p.add_argument("--tls", action="store_true", help="serve --tls: the tls-stall and idle probes")
    p.add_argument("--connections", type=int, default=1000,
                   help="hostile connections per probe (default: %(default)s)")
    p.add_argument("--body-bytes", type=int, default=4096,
                   help="announced body of slow-body (default: %(default)s)")
    p.add_argument("--probe-seconds", type=float, default=70.0,
                   help="the longest one round of a probe lasts (default: %(default)s)")
    p.add_argument("--baseline-seconds", type=float, default=30.0,
                   help="unloaded downloads first, for their p99 (default: %(default)s)")
    p.add_argument("--gap-seconds", type=float, default=5.0,
                   help="unloaded downloads again before each probe, pooled with the first "
                        "for the unloaded p99 (default: %(default)s)")
    p.add_argument("--min-downloads", type=int, default=1000,
                   help="a probe is repeated (a new round of its connections) until this many "
                        "downloads ran during it, at most --max-rounds (default: %(default)s)")
    p.add_argument("--max-rounds", type=int, default=4,
                   help="rounds of one probe at most (default: %(default)s)")
    p.add_argument("--profile", type=Path, metavar="DIR",
                   help="run the server under cProfile and write one profile per probe "
                        "(FRONT-PROBE.prof, the rounds only) into DIR")
    p.add_argument("-c", "--concurrency", type=int, default=2,
                   help="legitimate downloads in flight (default: %(default)s)")
    p.add_argument("--probes", default=",".join(pr.name for pr in PROBES),
                   help="which probes, comma-separated (default: all that apply)")
    p.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                   help="one more server option (repeat)")
    p.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                   help="the server on the first CPU, the benchmark on the others (default: "
                        "on, with 2 CPUs or more)")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the rows as JSON to FILE")
    args = p.parse_args(argv)
    fronts = [f.strip() for f in args.http.split(",") if f.strip()]
    if not fronts or any(f not in ("smdpp", "klein") for f in fronts):
        p.error("--http takes smdpp and/or klein")
    args.fronts = fronts
    known = {pr.name for pr in PROBES}
    args.probe_names = [n.strip() for n in args.probes.split(",") if n.strip()]
    if not args.probe_names or any(n not in known for n in args.probe_names):
        p.error(f"--probes takes {', '.join(sorted(known))}")
    if (not 1 <= args.connections <= 5000 or not 1 <= args.probe_seconds <= 120
            or not 1 <= args.max_rounds <= 10 or not 0 <= args.gap_seconds <= 60
            or not 1 <= args.baseline_seconds <= 300):
        p.error("--connections 1..5000, --probe-seconds 1..120, --max-rounds 1..10, "
                "--gap-seconds 0..60, --baseline-seconds 1..300 (the benchmark stays bounded)")
    return args


def _latencies(load: LoadResult) -> list[float]:
    return [o.seconds for o in load.outcomes if o.ok]


def _server_limits(server: ServerProcess) -> ServerLimits:
    match = LIMITS_LINE.search(server.log_path.read_text(errors="replace"))
    if match is None:
        raise RuntimeError("the server logged no 'limits:' line: is this smdpp with issue 17?")
    g = match.groups()
    return ServerLimits(*(float(v) for v in g[:5]), int(g[5]), int(g[6]))


def _log_since(server: ServerProcess, offset: int) -> str:
    with open(server.log_path, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def _closing(times: list[float]) -> str:
    if not times:
        return "-"
    return f"{times[0]:.1f}/{statistics.median(times):.1f}/{times[-1]:.1f}"


def _attack(address: tuple[str, int], probe: Probe, limits: ServerLimits,
            args: argparse.Namespace, hold: float) -> tuple[Counter[str], int, list[float]]:
    """Run ``probe`` in a child process: its thousand connections then cost the
    legitimate downloads of this process no interpreter time (one GIL each)."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)

    def child() -> None:
        swarm = Swarm(address)
        try:
            probe.attack(swarm, limits, args, hold)
            send.send((swarm.outcomes(), swarm.answered(), swarm.close_times()))
        finally:
            swarm.close()

    process = context.Process(target=child, daemon=True)
    process.start()
    try:
        if not receive.poll(hold + 120):
            raise RuntimeError(f"probe {probe.name} gave no result")
        return receive.recv()
    finally:
        process.join(10)
        if process.is_alive():
            process.kill()


@dataclass
class _Phase:
    """What one phase measured: the downloads, and the server's CPU seconds meanwhile."""

    load: LoadResult
    cpu: float


def _measured(server: ServerProcess, run: Callable[[], LoadResult]) -> _Phase:
    before = procstat.sample(server.pid).cpu_seconds
    load = run()
    return _Phase(load, procstat.sample(server.pid).cpu_seconds - before)


def run_front(front: str, args: argparse.Namespace, base: Path) -> list[dict[str, Any]]:
    """Every probe against one freshly started server; one row each.

    The unloaded reference pools the first unloaded phase and the short one
    before every probe, so that it has many samples and follows the machine's
    load over the run; each probe runs rounds of its connections until
    ``--min-downloads`` downloads ran during it (at most ``--max-rounds``):
    a p99 of a few hundred samples is nearly their maximum.
    """
    data = datadir.prepare(base / front, curve="nist", size="12k", euiccs=4)
    extra = ["--http", front, *(["--tls"] if args.tls else []), *args.server_arg]
    cpus = sorted(os.sched_getaffinity(0))
    pinned = args.pin and len(cpus) >= 2
    profile_to = None if args.profile is None else args.profile / f"{front}.prof"
    if profile_to is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    server = start_server(data.data_dir, *extra, cpus={cpus[0]} if pinned else None,
                          profile_to=profile_to)
    if pinned:  # the server on one CPU, the downloads and the attacker on the others
        os.sched_setaffinity(0, set(cpus[1:]))
    try:
        limits = _server_limits(server)
        client: dict[str, Any] = {}
        if args.tls:
            client = {"ca_file": str(data.data_dir / "certs" / "CertificateIssuer"
                                     / "CERT_CI_ECDSA_NIST.pem"),
                      "tls_server_name": datadir.HOSTNAME}
        common = dict(smdp_address=datadir.HOSTNAME, matching_id=data.matching_id,
                      concurrency=args.concurrency, client_options=client)

        def unloaded(seconds: float) -> _Phase:
            return _measured(server, lambda: run_load(
                server.url, data.identities, count=10**6, max_seconds=seconds, **common))

        run_load(server.url, data.identities, count=4, **common)  # warm-up
        reference = [unloaded(args.baseline_seconds)]
        rows: list[dict[str, Any]] = []
        host, port = server.url.split("://", 1)[1].rsplit(":", 1)
        for probe in PROBES:
            if probe.name not in args.probe_names or probe.over not in (
                    "both", "tls" if args.tls else "plain"):
                continue
            if args.gap_seconds:
                reference.append(unloaded(args.gap_seconds))
            hold = min(args.probe_seconds, probe.hold(limits, args))
            offset = server.log_path.stat().st_size
            before = procstat.sample(server.pid).rss_kib
            if profile_to is not None:
                server.profile_start()
            rounds = []
            while not rounds or (sum(len(_latencies(r[0].load)) for r in rounds)
                                 < args.min_downloads and len(rounds) < args.max_rounds):
                rounds.append(_probe_round(server, (host, int(port)), probe, limits, args, hold,
                                           lambda: run_load(server.url, data.identities,
                                                            count=10**6, max_seconds=hold,
                                                            **common)))
            if profile_to is not None:
                server.profile_stop()
                profile_to.replace(args.profile / f"{front}-{probe.name}.prof")
            time.sleep(1.0)  # the server sees the closes
            after = procstat.sample(server.pid).rss_kib
            if after - before > 5 * 1024:  # its heap grew: sample again once it has been trimmed
                time.sleep(TRIM_INTERVAL + 2)
                after = procstat.sample(server.pid).rss_kib
            tracebacks = _log_since(server, offset).count("Traceback")
            load = LoadResult([o for r in rounds for o in r[0].load.outcomes])
            outcomes: Counter[str] = sum((r[1] for r in rounds), Counter())
            rows.append(_row(front, probe.name, probe.what, outcomes, sum(r[2] for r in rounds),
                             sorted(t for r in rounds for t in r[3]), load,
                             _Phase(load, sum(r[0].cpu for r in rounds)), reference, before,
                             after, tracebacks, len(rounds)))
            rows[-1]["attack_cpu_s"] = _attack_cpu(rows[-1], reference[-1:])
            print(_format([rows[-1]], header=len(rows) == 1), flush=True)
        if args.gap_seconds and rows:
            reference.append(unloaded(args.gap_seconds))  # after the last probe
            # the machine's load drifts over a run: each probe also against the unloaded
            # phases just before and just after it
            for n, row in enumerate(rows):
                near = [t for ph in reference[n + 1:n + 3] for t in _latencies(ph.load)]
                row["adjacent_unloaded_p99_ms"] = (round(percentile(near, 99) * 1000, 1)
                                                   if near else None)
                row["adjacent_samples"] = len(near)
                row["p99_vs_adjacent"] = _ratio(row["p99_ms"], row["adjacent_unloaded_p99_ms"])
                row["attack_cpu_s"] = _attack_cpu(row, reference[n + 1:n + 3])
        pooled = _Phase(LoadResult([o for ph in reference for o in ph.load.outcomes]),
                        sum(ph.cpu for ph in reference))
        rows.insert(0, _row(front, "unloaded", f"{len(reference)} phases pooled", Counter(), 0,
                            [], pooled.load, pooled, reference, None, None, 0, len(reference)))
        for row in rows[1:]:  # against every unloaded sample of the run, as in the table
            row["p99_vs_unloaded"] = _ratio(row["p99_ms"], rows[0]["p99_ms"])
        return rows
    finally:
        server.stop()
        os.sched_setaffinity(0, set(cpus))


def _probe_round(server: ServerProcess, address: tuple[str, int], probe: Probe,
                 limits: ServerLimits, args: argparse.Namespace, hold: float,
                 legit: Callable[[], LoadResult]
                 ) -> tuple[_Phase, Counter[str], int, list[float]]:
    """One round of ``probe``: its connections while downloads go on for ``hold`` seconds."""
    phases: list[_Phase] = []
    thread = threading.Thread(target=lambda: phases.append(_measured(server, legit)))
    thread.start()
    try:
        outcomes, answered, closes = _attack(address, probe, limits, args, hold)
    finally:
        thread.join()
    return phases[0], outcomes, answered, closes


def _attack_cpu(row: dict[str, Any], unloaded: list[_Phase]) -> float:
    """The server's CPU seconds during a probe beyond what its downloads cost: those
    downloads at the CPU per download of the ``unloaded`` phases (the ones around it)."""
    per_download = (sum(ph.cpu for ph in unloaded)
                    / max(1, sum(len(ph.load.outcomes) for ph in unloaded)))
    return round(max(0.0, row["server_cpu_s"] - per_download * row["legit_total"]), 2)


def _ratio(p99_ms: float | None, base_ms: float | None) -> float | None:
    return round(p99_ms / base_ms, 2) if p99_ms and base_ms else None


def _row(front: str, probe: str, what: str, outcomes: Counter[str], answered: int,
         closes: list[float], load: LoadResult, phase: _Phase, reference: list[_Phase],
         before: int | None, after: int | None, tracebacks: int,
         rounds: int) -> dict[str, Any]:
    seconds = _latencies(load)
    p99 = percentile(seconds, 99) if seconds else None
    base = [t for ph in reference for t in _latencies(ph.load)]
    base_p99 = percentile(base, 99) if base else None
    return {
        "front": front, "probe": probe, "what": what, "rounds": rounds,
        "server_answered": dict(outcomes.most_common()), "status_lines": answered,
        "closed_after_s": _closing(closes),
        "legit_ok": sum(1 for o in load.outcomes if o.ok), "legit_total": len(load.outcomes),
        "samples": len(seconds),
        "p50_ms": round(percentile(seconds, 50) * 1000, 1) if seconds else None,
        "p99_ms": round(p99 * 1000, 1) if p99 is not None else None,
        "p99_vs_unloaded": _ratio(p99, base_p99),
        "server_cpu_s": round(phase.cpu, 2),
        "cpu_ms_per_download": round(1000 * phase.cpu / max(1, len(load.outcomes)), 2),
        "attack_cpu_s": None,  # set by _attack_cpu
        "rss_before_mib": None if before is None else round(before / 1024, 1),
        "rss_after_mib": None if after is None else round(after / 1024, 1),
        "tracebacks": tracebacks,
        "errors": dict(Counter(o.error for o in load.outcomes if not o.ok).most_common(3)),
    }


def _answered(row: dict[str, Any]) -> str:
    parts = [f"{count} {label}" for label, count in row["server_answered"].items()]
    if row["probe"] == "pipelining":
        parts.append(f"{row['status_lines']} answers")
    return ", ".join(parts) or "-"


def _format(rows: list[dict[str, Any]], header: bool = True) -> str:
    columns = ("front", "probe", "rounds", "server answered", "closed after s (min/med/max)",
               "legit ok", "p50 ms", "p99 ms (of n)", "p99/unloaded",
               "p99/adjacent unloaded (of n)", "server CPU s (attack)",
               "RSS MiB before>after", "tracebacks")
    lines = [" | ".join(columns)] if header else []
    for r in rows:
        rss = "-" if r["rss_before_mib"] is None else f"{r['rss_before_mib']}>{r['rss_after_mib']}"
        cpu = (f"{r['server_cpu_s']} ({r['cpu_ms_per_download']} ms/download)"
               if r["probe"] == "unloaded" else f"{r['server_cpu_s']} ({r['attack_cpu_s']})")
        lines.append(" | ".join(str(v) for v in (
            r["front"], r["probe"], r["rounds"], _answered(r), r["closed_after_s"],
            f"{r['legit_ok']}/{r['legit_total']}", r["p50_ms"], f"{r['p99_ms']} ({r['samples']})",
            r["p99_vs_unloaded"] if r["p99_vs_unloaded"] is not None else "-",
            f"{r['p99_vs_adjacent']} ({r['adjacent_samples']})" if r.get("p99_vs_adjacent")
            else "-", cpu, rss,
            r["tracebacks"])))
    return "\n".join(lines)


def _verdict(rows: list[dict[str, Any]]) -> list[str]:
    """The targets of issue 17, each row checked."""
    failed = []
    for r in rows:
        name = f"{r['front']}/{r['probe']}"
        if r["legit_ok"] != r["legit_total"] or r["legit_total"] == 0:
            failed.append(f"{name}: {r['legit_total'] - r['legit_ok']} download(s) failed "
                          f"{r['errors']}")
        if r["p99_vs_unloaded"] is not None and r["p99_vs_unloaded"] > 2:
            failed.append(f"{name}: p99 {r['p99_vs_unloaded']}x the unloaded p99")
        if r["rss_before_mib"] is not None and r["rss_after_mib"] - r["rss_before_mib"] > 30:
            failed.append(f"{name}: RSS +{r['rss_after_mib'] - r['rss_before_mib']:.1f} MiB")
        if r["tracebacks"]:
            failed.append(f"{name}: {r['tracebacks']} traceback(s) in the log")
    return failed


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="smdpp-abuse-") as base:
        for front in args.fronts:
            rows += run_front(front, args, Path(base))
    print("\n" + _format(rows))
    failed = _verdict(rows)
    print("\ntargets (every download ok, p99 <= 2x unloaded, RSS +30 MiB at most, no "
          "traceback): " + ("all met" if not failed else "NOT met:\n  " + "\n  ".join(failed)))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
