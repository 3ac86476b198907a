"""bench.engine (in-process downloads through RspEngine) and the engine behaviour it relies on."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import pytest

from bench import datadir
from bench.engine import EngineClient, _build_engine, main
from smdpp.euicc.card import SoftEuicc
from smdpp.euicc.client import DownloadError, download
from smdpp.euicc.es9 import Es9Reply


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> datadir.BenchData:
    return datadir.prepare(tmp_path_factory.mktemp("bench-engine") / "data", curve="nist",
                           size="12k", euiccs=2, testdata=None)


def test_benchmark_runs_complete_downloads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "figures.json"
    assert main(["-n", "3", "--warmup", "1", "--euiccs", "2", "--store", "memory:", "--log", "off",
                 "--testdata", str(tmp_path / "none"), "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["downloads"] == 3 and record["unit"] == "µs"
    assert set(record["mean"]) == {"initiate_authentication", "authenticate_client",
                                   "get_bound_profile_package", "handle_notification"}
    assert all(v > 0 for v in record["mean"].values())
    assert "get_bound_profile_package" in capsys.readouterr().out


def test_engine_client_counts_each_engine_call(prepared: datadir.BenchData) -> None:
    engine = _build_engine(prepared.data_dir, "memory:")
    ticks = iter(range(0, 10**6, 7))
    client = EngineClient(engine, clock=lambda: next(ticks))
    download(client, SoftEuicc(prepared.identities[0]),  # type: ignore[arg-type]
             smdp_address=datadir.HOSTNAME, matching_id=prepared.matching_id)
    assert {m: len(v) for m, v in client.counts.items()} == {
        "initiate_authentication": 1, "authenticate_client": 1, "get_bound_profile_package": 1,
        "handle_notification": 1, "cancel_session": 0}
    assert all(v == [7] for v in client.counts.values() if v)
    assert engine.caches.kept_euicc_keys() == 0  # the session ended: its key is not kept


class _SwapKeyClient(EngineClient):
    """Before getBoundProfilePackage, puts another eUICC's public key into the stored session."""

    def __init__(self, engine: Any, other_key_der: bytes) -> None:
        super().__init__(engine)
        self.other_key_der = other_key_der

    def call(self, function: str, body: Mapping[str, Any]) -> Es9Reply:
        if function == "getBoundProfilePackage":
            session = self.engine.store.get(body["transactionId"])
            session.euicc_public_key = self.other_key_der
            self.engine.store.put(session)
        return super().call(function, body)


def test_kept_euicc_key_is_used_only_while_it_is_the_sessions_key(
        prepared: datadir.BenchData) -> None:
    engine = _build_engine(prepared.data_dir, "memory:")
    other = engine.certs.verify_euicc(prepared.identities[1].eum_cert_der,
                                      prepared.identities[1].euicc_cert_der, None)
    client = _SwapKeyClient(engine, other.public_key_der)
    with pytest.raises(DownloadError) as exc:
        download(client, SoftEuicc(prepared.identities[0]),  # type: ignore[arg-type]
                 smdp_address=datadir.HOSTNAME, matching_id=prepared.matching_id)
    assert (exc.value.subject_code, exc.value.reason_code) == ("8.1", "6.1")  # euiccSignature2


def test_cycles_counts_thousands_of_cycles_and_not_with_instructions(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench.perf import PerfCounter
    try:
        PerfCounter(cycles=True).close()
    except OSError:
        pytest.skip("no perf events on this machine")
    out = tmp_path / "figures.json"
    assert main(["-n", "2", "--warmup", "1", "--euiccs", "2", "--log", "off", "--cycles",
                 "--testdata", str(tmp_path / "none"), "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["unit"] == "kcycles" and record["store"] == "journal:"  # the server's default
    assert record["total"] > 1000  # 3 signatures and 4 verifications: millions of cycles
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["--cycles", "--instructions"])
    assert "pick one" in capsys.readouterr().err
