"""The download benchmark (bench/): its figures, its helpers and a real tiny run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import datadir, procstat
from bench.download import main as bench_main, parse_args, pin_split
from bench.perf import PerfCounter
from bench.floor import FloorWatch, crypto_floor_ms
from bench.load import ES9_FUNCTIONS, error_reason, run_load
from bench.profile_report import parse_collapsed, report_collapsed, report_pstats
from bench.report import latency_summary, percentile
from bench.server import start_server
from smdpp.asn1 import pe
from smdpp.asn1.tlv import iter_tlvs
from smdpp.euicc.client import DownloadError
from smdpp.profiles.generate import (
    DEFAULT_ICCID,
    DEFAULT_IMSI,
    DEFAULT_KI,
    DEFAULT_OPC,
    generate_default_test_profile,
    generate_test_profile,
)
from smdpp.profiles.inventory import profile_from_upp
from smdpp.rsp.session import Session, SessionState
from smdpp.store import JournalStore

# -- figures ------------------------------------------------------------------------


def test_percentile_known_answers() -> None:
    values = [4.0, 1.0, 3.0, 2.0]  # unsorted on purpose
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(values, 95) == pytest.approx(3.85)
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_latency_summary_is_in_milliseconds() -> None:
    summary = latency_summary([0.001 * i for i in range(1, 101)])
    assert summary == {"p50": 50.5, "p95": 95.05, "p99": 99.01, "max": 100.0, "count": 100}
    assert latency_summary([]) is None


def test_error_reason_keys() -> None:
    coded = DownloadError("ES9+.AuthenticateClient", "no profile", "8.2.6", "3.8")
    assert error_reason(coded) == "ES9+.AuthenticateClient: 8.2.6/3.8"
    assert error_reason(DownloadError("ES10b.PrepareDownload", "x" * 300)) == \
        "ES10b.PrepareDownload: " + "x" * 100
    assert error_reason(ConnectionResetError("gone")) == "ConnectionResetError: gone"


# -- /proc --------------------------------------------------------------------------


def test_parse_stat_counts_fields_after_the_command_name() -> None:
    # field 2 with a space and a ')' inside; ppid 77, utime 10, stime 5 ticks
    text = "1234 (we(i) rd) S 77 1234 1234 0 -1 4194560 100 0 0 0 10 5 0 0 20 0 1 0 42\n"
    ppid, seconds = procstat.parse_stat(text)
    assert ppid == 77
    assert seconds == pytest.approx(15 / procstat.CLOCK_TICKS)


def test_sample_of_this_process() -> None:
    before = procstat.sample(os.getpid())
    deadline = time.process_time() + 0.1
    while time.process_time() < deadline:
        pass
    after = procstat.sample(os.getpid())
    assert after.cpu_seconds - before.cpu_seconds >= 0.05
    assert 0 < after.rss_kib <= after.hwm_kib
    assert after.processes >= 1


def test_process_tree_includes_children_and_a_gone_pid_fails() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in procstat.process_tree(os.getpid())
        assert procstat.sample(os.getpid()).processes >= 2
    finally:
        child.kill()
        child.wait()
    with pytest.raises(ValueError):
        procstat.sample(child.pid)


# -- larger generated profiles (generate_test_profile(fill_to=...)) ------------------------


def _generate(fill_to: int | None) -> bytes:
    return generate_test_profile(iccid=DEFAULT_ICCID, imsi=DEFAULT_IMSI, ki=DEFAULT_KI,
                                 opc=DEFAULT_OPC, fill_to=fill_to)


@pytest.mark.parametrize("size", [12 * 1024, 100 * 1024, 500 * 1024])
def test_fill_to_pads_exactly_with_generic_file_management(size: int) -> None:
    upp = _generate(size)
    assert len(upp) == size
    elements = [pe().decode("ProfileElement", tlv.raw) for tlv in iter_tlvs(upp)]
    assert elements[0][0] == "header" and elements[-1][0] == "end"
    fillers = [value for kind, value in elements if kind == "genericFileManagement"]
    fids = [cmd[1][1]["fileID"] for value in fillers for cmd in value["fileManagementCMD"]]
    assert len(fids) == len(set(fids)) >= 1
    assert all(0x2FA0 <= int.from_bytes(fid, "big") < 0x2FE0 for fid in fids)
    # identification numbers stay consecutive up to PE-End
    numbers = [value.get("gfm-header", value.get("end-header", {})).get("identification")
               for kind, value in elements if kind in ("genericFileManagement", "end")]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    # the header the SM-DP+ reads is unchanged
    assert profile_from_upp("X", upp).iccid == DEFAULT_ICCID


def test_fill_to_none_keeps_the_default_profile_and_too_small_fails() -> None:
    plain = _generate(None)
    assert plain == generate_default_test_profile()
    assert _generate(len(plain)) == plain
    with pytest.raises(ValueError):
        _generate(len(plain) - 1)
    with pytest.raises(ValueError):
        _generate(10 * 1024 * 1024)  # more than the filler files can hold


def test_prefill_writes_finished_sessions(tmp_path: Path) -> None:
    data = datadir.prepare(tmp_path / "d", curve="nist", size="100k", euiccs=2)
    assert data.profile_source == "generated" and data.profile_bytes == 100 * 1024
    assert len({identity.eid for identity in data.identities}) == 2

    class Recorder:
        def __init__(self) -> None:
            self.sessions: list[Session] = []

        def put(self, session: Session) -> None:
            self.sessions.append(session)

    store, now = Recorder(), time.time()
    datadir.prefill_sessions(store, 30, ci_cert_der=(tmp_path / "d/euicc/ci_cert.der").read_bytes(),
                             matching_id=data.matching_id, now=now)
    sessions = store.sessions
    assert len({s.transaction_id for s in sessions}) == 30
    assert all(s.state is SessionState.DONE and s.result["success"] for s in sessions)
    assert all(s.smdp_ot_key is None and s.expires > now + 24 * 3600 for s in sessions)
    assert all(s.ci_pkid == data.identities[0].ci_pkid for s in sessions)


# -- profiles of the server ----------------------------------------------------------


def test_report_of_collapsed_stacks(tmp_path: Path) -> None:
    raw = tmp_path / "spy.txt"
    raw.write_text(
        "main (a.py:1);RspEngine.authenticate_client (smdpp/rsp/engine.py:150);verify (c.py:3) 30\n"
        "main (a.py:2);RspEngine.authenticate_client (smdpp/rsp/engine.py:152);verify (c.py:9) 10\n"
        "main (a.py:1);send (d.py:4) 60\n")
    assert parse_collapsed(raw.read_text())[0] == (
        ["main (a.py)", "RspEngine.authenticate_client (smdpp/rsp/engine.py)", "verify (c.py)"], 30)
    text = report_collapsed(raw, cpu_ms=2.0)
    assert "60.00%    1.200 ms  send (d.py)" in text
    assert "40.00%    0.800 ms  verify (c.py)" in text
    assert "RspEngine.authenticate_client:  40.00%    0.800 ms" in text


def test_crypto_floor_grows_with_the_profile() -> None:
    """AES over the profile is part of the floor: 2 MB of it cost more than 1 KB (CPU, same run)."""
    small = crypto_floor_ms("nist", 1024, rounds=3, batches=3)
    large = crypto_floor_ms("nist", 2 * 1024 * 1024, rounds=3, batches=3)
    assert 0 < small < large


def test_floor_watch_samples_until_stopped() -> None:
    watch = FloorWatch("nist", 1024, interval=0.2, rounds=2)
    time.sleep(2.0)
    samples = watch.stop()
    assert len(samples) >= 3 and all(sample > 0 for sample in samples)


def test_store_benchmark_measures_every_operation_and_a_whole_download() -> None:
    from bench import store as store_bench

    figures = store_bench.run(store_bench.parse_args(["--ops", "20", "--rounds", "2",
                                                      "--prefill", "10"]))
    assert set(figures) == {"journal", "shelve", "memory"}
    for ops in figures.values():
        assert set(ops) == set(store_bench.OPS) and all(value > 0 for value in ops.values())


# -- real runs against a server -------------------------------------------------------


def test_benchmark_smoke_run(tmp_path: Path, shared_testdata: Path) -> None:
    """Three downloads with two in flight, prefilled store, cProfile window, JSON record."""
    out, prof, data_dir = tmp_path / "r.json", tmp_path / "server.prof", tmp_path / "data"
    code = bench_main(["-n", "3", "-c", "2", "--warmup", "1", "--euiccs", "2", "--prefill", "25",
                       "--data-dir", str(data_dir), "--server-profile", str(prof),
                       "--testdata", str(shared_testdata), "--json", str(out)])
    assert code == 0
    [record] = json.loads(out.read_text())
    assert record["config"]["profile_bytes"] == 12207  # the TS.48 v2 profile
    assert (record["ok"], record["failed"], record["errors"]) == (3, 0, {})
    assert record["server_cpu_ms_per_download"] > 0
    assert record["server_peak_rss_mib"] > 10
    assert record["client_cpu_ms_per_download"] > 0
    assert record["crypto_floor_idle_ms"] > 0  # the run is too short to sample it under load
    for name in (*ES9_FUNCTIONS, "download"):
        assert record["latency_ms"][name]["count"] == 3
    assert record["latency_ms"]["download"]["p50"] > record["latency_ms"]["initiateAuthentication"]["p50"]
    store = JournalStore(data_dir)  # the server's default store, prefilled before it started
    try:
        assert len(store) >= 25
    finally:
        store.close()
    assert "3 downloads" in report_pstats(prof).splitlines()[0]


def test_attached_run_and_failures_by_reason(tmp_path: Path) -> None:
    """--url against a running Brainpool server; refused downloads are counted by reason."""
    data_dir = tmp_path / "data"
    data = datadir.prepare(data_dir, curve="brainpool", size="12k", euiccs=1, testdata=None)
    assert data.profile_source == "generated" and data.profile_bytes == 12 * 1024
    server = start_server(data_dir)
    try:
        out = tmp_path / "r.json"
        assert bench_main(["--url", server.url, "--data-dir", str(data_dir), "--server-pid",
                           str(server.pid), "-n", "2", "-c", "1", "--warmup", "0", "--euiccs", "2",
                           "--memory-checkpoints", "--checkpoint-every", "1",
                           "--json", str(out)]) == 0
        [record] = json.loads(out.read_text())
        assert record["ok"] == 2 and record["server_cpu_seconds"] is not None
        assert [c["downloads"] for c in record["memory_checkpoints"]] == [1, 2]
        refused = run_load(server.url, data.identities, smdp_address=datadir.HOSTNAME,
                           matching_id="NO-SUCH-PROFILE", count=2, concurrency=2)
        assert [o.ok for o in refused.outcomes] == [False, False]
        assert {o.error for o in refused.outcomes} == {"ES9+.AuthenticateClient: 8.2.6/3.8"}
    finally:
        server.stop()


def test_pin_split_and_when_pinning_is_the_default() -> None:
    assert pin_split([0, 1]) == ({0}, {1})
    assert pin_split([2, 5, 7]) == ({2}, {5, 7})
    with pytest.raises(ValueError):
        pin_split([3])
    several = len(os.sched_getaffinity(0)) >= 2
    assert parse_args([]).pin is several
    assert parse_args(["--server-arg=--workers", "--server-arg=2"]).pin is False
    assert parse_args(["--server-arg=--workers=2"]).pin is False
    assert parse_args(["--no-pin"]).pin is False
    attached = ["--url", "http://127.0.0.1:1", "--data-dir", "d"]
    assert parse_args(attached).pin is False
    with pytest.raises(SystemExit):
        parse_args([*attached, "--pin"])


def _perf_events() -> bool:
    try:
        PerfCounter().close()
    except OSError:
        return False
    return True


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning needs 2 CPUs")
@pytest.mark.skipif(not _perf_events(), reason="no perf events on this machine")
def test_pinned_run_counts_the_servers_instructions(tmp_path: Path, shared_testdata: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """--pin puts the server on the first CPU and the benchmark on the others, and puts the
    benchmark back where it was; --instructions counts the server's main thread."""
    cpus = os.sched_getaffinity(0)
    out = tmp_path / "r.json"
    assert bench_main(["-n", "4", "-c", "2", "--warmup", "1", "--euiccs", "2", "--pin",
                       "--instructions", "--testdata", str(shared_testdata),
                       "--json", str(out)]) == 0
    assert os.sched_getaffinity(0) == cpus
    [record] = json.loads(out.read_text())
    first, *rest = sorted(cpus)
    assert record["config"]["pinned"] == {"server": [first], "benchmark": rest}
    counted = record["server_kinstructions_per_download"]
    # 3 signatures and 4 verifications alone are millions of instructions
    assert 1_000 < counted["user"] < 100_000 and counted["kernel"] >= 0
    assert record["server_kcycles_per_download"]["user"] > 100
    printed = capsys.readouterr().out
    assert f"pinned: server on CPU {first}" in printed
    assert "k in user space" in printed and "instructions per cycle" in printed


@pytest.mark.parametrize("cycles, at_least", [(False, 200_000), (True, 10_000)])
def test_counter_counts_this_threads_work(cycles: bool, at_least: int) -> None:
    """200,000 additions retire more than 200,000 instructions, and take cycles."""
    if not _perf_events():
        pytest.skip("no perf events on this machine")
    counter = PerfCounter(cycles=cycles)
    try:
        start = counter()
        sum(range(200_000))
        assert counter() - start > at_least
    finally:
        counter.close()


def test_time_limit_stops_starting_downloads() -> None:
    data_less = run_load("http://127.0.0.1:9", [object()], smdp_address="x",  # type: ignore[list-item]
                         matching_id="x", count=5, concurrency=2, max_seconds=0)
    assert data_less.outcomes == [] and data_less.stopped_by_time
