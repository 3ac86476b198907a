"""``python -m bench.abuse`` runs end to end against the real server (small and short here).

The figures themselves are the benchmark's (docs/performance.rst); this
checks that the command works: rows for the unloaded phases and each probe,
every p99 with its number of samples, the rounds a short probe is repeated
for, the server's CPU, and what the server answered.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import REPO


def test_bench_abuse_runs_and_reports_its_samples(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.abuse", "--http", "smdpp", "--probes",
         "big-heads,pipelining", "--connections", "10", "--baseline-seconds", "2",
         "--gap-seconds", "1", "--min-downloads", "1000", "--max-rounds", "2",
         "--probe-seconds", "3", "--no-pin", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode in (0, 1), run.stdout + run.stderr  # 1: a target missed (noise)
    rows = {row["probe"]: row for row in json.loads(out.read_text())}
    assert list(rows) == ["unloaded", "big-heads", "pipelining"]
    # the first phase, one before each probe and one after the last
    assert rows["unloaded"]["rounds"] == 4
    assert rows["big-heads"]["adjacent_samples"] > 0 and rows["big-heads"]["p99_vs_adjacent"]
    for row in rows.values():
        assert row["samples"] > 0 and row["legit_ok"] == row["legit_total"] == row["samples"]
        assert row["tracebacks"] == 0 and row["server_cpu_s"] > 0
    # far fewer than 1000 downloads in 3 s: both rounds run
    assert rows["big-heads"]["rounds"] == 2
    assert rows["big-heads"]["server_answered"] == {"431": 40}  # 2 rounds x (10 + 10)
    assert f"({rows['big-heads']['samples']})" in run.stdout  # the p99 names its sample count
    assert "targets (every download ok" in run.stdout
