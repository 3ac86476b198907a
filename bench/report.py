"""Figures of a benchmark run: percentiles, the result record, the text tables.

A run's record (:func:`summarize`) is a plain dict, written as is by
``--json``.  Times are milliseconds; ``server_cpu_ms_per_download`` is the
server's CPU (user + system, all its processes) between the samples taken
just before and just after the measured downloads, divided by the successful
downloads; ``client_cpu_ms_per_download`` is the same for the benchmark
process itself, kept apart because the client runs on the same machine.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Mapping, Sequence

from bench.load import ES9_FUNCTIONS, LoadResult
from bench.procstat import ProcessSample

__all__ = ["PERCENTILES", "percentile", "latency_summary", "summarize", "format_tables",
           "format_checkpoints"]

PERCENTILES = (50, 95, 99)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between the closest ranks.

    The definition of numpy's default: position ``q/100 * (n-1)`` in the
    sorted values.  ValueError for no values.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError("q must be between 0 and 100")
    ordered = sorted(values)
    position = q / 100 * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_summary(seconds: Sequence[float]) -> dict[str, float] | None:
    """p50/p95/p99 and max in milliseconds, None without values."""
    if not seconds:
        return None
    summary = {f"p{q}": round(percentile(seconds, q) * 1000, 2) for q in PERCENTILES}
    summary["max"] = round(max(seconds) * 1000, 2)
    summary["count"] = len(seconds)
    return summary


def _per_download(total: float | None, downloads: int) -> float | None:
    if total is None or downloads == 0:
        return None
    return round(total * 1000 / downloads, 3)


def summarize(config: dict[str, Any], load: LoadResult, *,
              server_before: ProcessSample | None, server_after: ProcessSample | None,
              client_cpu_seconds: float,
              checkpoints: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    """The record of one run (see the module docstring)."""
    ok = [o for o in load.outcomes if o.ok]
    calls: dict[str, list[float]] = {name: [] for name in ES9_FUNCTIONS}
    for outcome in ok:
        for function, seconds in outcome.calls:
            calls.setdefault(function, []).append(seconds)
    server_cpu = None
    if server_before is not None and server_after is not None:
        server_cpu = server_after.cpu_seconds - server_before.cpu_seconds
    return {
        "config": config,
        "downloads": len(load.outcomes),
        "ok": len(ok),
        "failed": len(load.outcomes) - len(ok),
        "stopped_by_time": load.stopped_by_time,
        "wall_seconds": round(load.wall_seconds, 3),
        "downloads_per_second": round(len(ok) / load.wall_seconds, 2) if load.wall_seconds else 0.0,
        "server_cpu_seconds": None if server_cpu is None else round(server_cpu, 3),
        "server_cpu_ms_per_download": _per_download(server_cpu, len(ok)),
        "server_processes": None if server_after is None else server_after.processes,
        "server_peak_rss_mib": None if server_after is None else round(server_after.hwm_kib / 1024, 1),
        "server_rss_mib": None if server_after is None else round(server_after.rss_kib / 1024, 1),
        "client_cpu_ms_per_download": _per_download(client_cpu_seconds, len(ok)),
        "latency_ms": {
            **{name: latency_summary(values) for name, values in calls.items()},
            "download": latency_summary([o.seconds for o in ok]),
        },
        "errors": dict(Counter(o.error for o in load.outcomes if not o.ok).most_common()),
        "memory_checkpoints": list(checkpoints),
    }


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                       for i, (h, w) in enumerate(zip(header, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


def _ratio(value: float | None, floor: float | None) -> float | None:
    return None if value is None or not floor else value / floor


def _label(config: dict[str, Any]) -> str:
    label = f"{config['curve']} {config['size']} c={config['concurrency']}"
    if config.get("prefill"):
        label += f" prefill={config['prefill']}"
    if config.get("server_args"):
        label += f" [{' '.join(config['server_args'])}]"
    return label


def _pinning(config: Mapping[str, Any]) -> str:
    """How the run placed server and benchmark on the CPUs (``--pin``)."""
    pinned = config.get("pinned")
    if not pinned:
        return ", not pinned"
    return (f", pinned: server on CPU {','.join(map(str, pinned['server']))}, benchmark on "
            f"CPU {','.join(map(str, pinned['benchmark']))}")


def _counted(record: Mapping[str, Any]) -> str:
    """A run's instruction (and cycle) counts per download, as one line."""
    instructions = record["server_kinstructions_per_download"]
    line = (f"{_label(record['config'])}: {instructions['user']} k in user space, "
            f"{instructions['kernel']} k in the kernel")
    cycles = (record.get("server_kcycles_per_download") or {}).get("user")
    if cycles:
        line += (f"; {cycles} k user-space cycles "
                 f"({instructions['user'] / cycles:.2f} instructions per cycle)")
    return line


def format_tables(records: Sequence[dict[str, Any]]) -> str:
    """The summary table (one row per run), the latency table and the errors."""
    summary = _table(
        ["run", "ok", "fail", "dl/s", "srv CPU ms/dl", "floor ms load/idle",
         "x floor load/idle", "srv peak RSS MiB", "cli CPU ms/dl", "dl p50 ms", "dl p95 ms",
         "dl p99 ms"],
        [[_label(r["config"]), str(r["ok"]), str(r["failed"]), _fmt(r["downloads_per_second"]),
          _fmt(r["server_cpu_ms_per_download"], 2),
          f"{_fmt(r.get('crypto_floor_ms'), 2)}/{_fmt(r.get('crypto_floor_idle_ms'), 2)}",
          f"{_fmt(_ratio(r['server_cpu_ms_per_download'], r.get('crypto_floor_ms')), 1)}/"
          f"{_fmt(_ratio(r['server_cpu_ms_per_download'], r.get('crypto_floor_idle_ms')), 1)}",
          _fmt(r["server_peak_rss_mib"]),
          _fmt(r["client_cpu_ms_per_download"], 2),
          *(_fmt((r["latency_ms"]["download"] or {}).get(f"p{q}")) for q in PERCENTILES)]
         for r in records])
    latency_rows = []
    for r in records:
        for name in (*ES9_FUNCTIONS, "download"):
            lat = r["latency_ms"].get(name)
            if lat:
                latency_rows.append([f"{_label(r['config'])} {name}",
                                     *(_fmt(lat[f"p{q}"], 2) for q in PERCENTILES),
                                     _fmt(lat["max"], 2)])
    runs = [f"{_label(r['config'])}: profile {r['config']['profile']}, "
            f"{r['config']['profile_bytes']} bytes; {r['downloads']} downloads after "
            f"{r['config']['warmup']} warm-up, {r['config']['euiccs']} eUICC identities, "
            f"{r['wall_seconds']:.1f} s{' (stopped by --max-seconds)' if r['stopped_by_time'] else ''}; "
            f"server: {r['server_processes'] or '?'} process(es), {r['config']['cpus']} CPUs"
            f"{_pinning(r['config'])}"
            for r in records]
    parts = ["\n".join(runs), summary]
    counted = [_counted(r) for r in records if r.get("server_kinstructions_per_download")]
    if counted:
        parts.append("server instructions per download (main thread)\n" + "\n".join(counted))
    if latency_rows:
        parts.append(_table(["latency (ms)", "p50", "p95", "p99", "max"], latency_rows))
    errors = [f"{_label(r['config'])}: {count} x {reason}"
              for r in records for reason, count in r["errors"].items()]
    parts.append("errors: " + ("none" if not errors else "\n  " + "\n  ".join(errors)))
    return "\n\n".join(parts)


def format_checkpoints(records: Sequence[dict[str, Any]]) -> str:
    """Server memory every N downloads, for the runs that recorded it."""
    rows = [[_label(r["config"]), str(c["downloads"]), _fmt(c["rss_mib"]),
             _fmt(c["peak_rss_mib"]), _fmt(c["cpu_ms_per_download"], 2)]
            for r in records for c in r["memory_checkpoints"]]
    if not rows:
        return ""
    return _table(["run", "downloads", "srv RSS MiB", "srv peak MiB", "srv CPU ms/dl (interval)"],
                  rows)
