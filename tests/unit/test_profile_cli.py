"""``smdpp-profile`` (smdpp.profiles.cli, batch, show) on real files."""
from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from smdpp.profiles.batch import CsvError, read_subscriptions
from smdpp.profiles.cli import main
from smdpp.profiles.show import installed_identifiers, summarize
from smdpp.profiles.subscription import Subscription

TEMPLATE = "TS48V2-SAIP2-1-NOBERTLV-UNIQUE.der"
KI = "000102030405060708090a0b0c0d0e0f"
OPC = "cd63cb71954a9f4e48a5994e37a02baf"  # TS 35.208 test set 1: OPc of K and OP
TS35208_1_K = "465b5ce8b199b49faa5f0a2ee238a6bc"


@pytest.fixture
def ts48(shared_testdata: Path) -> Path:
    return shared_testdata / "upp" / TEMPLATE


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_personalize_command(ts48: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "mine.der"
    assert main(["personalize", str(ts48), "-o", str(out), "--iccid", "898821100000000001",
                 "--compute-luhn", "--imsi", "999700000000017", "--ki", TS35208_1_K, "--op",
                 "cdc202d5123e20f62b6d676ac72cb318", "--algorithm", "milenage",
                 "--pin1", "1234", "--spn", "Open5GS", "--profile-name", "Lab"]) == 0
    assert "ICCID 8988211000000000011" in capsys.readouterr().out
    assert mode(out) == 0o600
    assert installed_identifiers(out.read_bytes()) == ("8988211000000000011", "999700000000017")
    summary = summarize(out.read_bytes(), show_secrets=True)
    assert summary["spn"] == "Open5GS" and summary["profileType"] == "Lab"
    assert [a["algorithm"] for a in summary["aka"]] == ["milenage", "milenage"]
    assert summary["aka"][0]["opc"] == OPC  # the OPc of TS 35.208 test set 1
    assert {"keyReference": "01", "value": "1234", "id": 2} in summary["pins"]


@pytest.mark.parametrize("args, message", [
    (["--imsi", "0010101234567890"], "--imsi: must be 6 to 15 decimal digits"),
    (["--ki", "00" * 15], "--ki: must be 16 bytes (32 hex digits), got 15"),
    (["--iccid", "8988211000000000012"], "--iccid: the last digit is not the Luhn check digit"),
    (["--mnc-length", "4"], "--mnc-length: must be 2 or 3"),
])
def test_personalize_bad_values(ts48: Path, tmp_path: Path, capsys, args: list[str],
                                message: str) -> None:
    base = ["personalize", str(ts48), "-o", str(tmp_path / "x.der"), "--iccid",
            "8988211000000000011"]
    assert main(base + args) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.der").exists()


def test_opc_and_op_exclude_each_other(ts48: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["personalize", str(ts48), "-o", str(tmp_path / "x.der"), "--iccid",
              "8988211000000000011", "--ki", KI, "--opc", OPC, "--op", OPC])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_personalize_refuses_a_file_that_is_not_a_package(tmp_path: Path, capsys) -> None:
    bogus = tmp_path / "bogus.der"
    bogus.write_bytes(b"\x30\x03\x02\x01\x05")
    assert main(["personalize", str(bogus), "-o", str(tmp_path / "x.der"),
                 "--iccid", "8988211000000000011"]) == 1
    err = capsys.readouterr().err
    assert "bogus.der: not a Profile Package" in err and "Traceback" not in err
    assert main(["show", str(bogus)]) == 1
    assert main(["show", str(tmp_path / "missing.der")]) == 1


def test_personalize_template_without_usim(ts48: Path, tmp_path: Path, capsys) -> None:
    from smdpp.profiles.elements import parse_package

    no_usim = tmp_path / "no-usim.der"
    no_usim.write_bytes(b"".join(e.raw for e in parse_package(ts48.read_bytes())
                                 if e.kind != "usim"))
    assert main(["personalize", str(no_usim), "-o", str(tmp_path / "x.der"),
                 "--iccid", "8988211000000000011", "--imsi", "001010000000001"]) == 1
    assert "imsi: the template has no USIM (PE usim)" in capsys.readouterr().err


def test_batch_with_a_bad_row_in_the_middle(ts48: Path, tmp_path: Path, capsys) -> None:
    csv_file = tmp_path / "subs.csv"
    csv_file.write_text(
        "ICCID,Imsi,KI,opc,algorithm,matching_id\n"
        f"8988211000000000011,999700000000011,{KI},{OPC},milenage,SUB-1\n"
        f"8988211000000000029,9997000000000290,{KI},{OPC},milenage,SUB-2\n"  # 16 digits
        f"8988211000000000037,999700000000037,{KI[:-2]},{OPC},milenage,SUB-3\n"  # 15-byte Ki
        f"8988211000000000011,999700000000045,{KI},{OPC},milenage,SUB-4\n"  # duplicate ICCID
        f"8988211000000000052,999700000000052,{KI},{OPC},milenage,\n")
    out_dir = tmp_path / "upp"
    assert main(["batch", str(ts48), "--csv", str(csv_file), "-o", str(out_dir)]) == 1
    captured = capsys.readouterr()
    assert "wrote 2 of 5 profiles" in captured.out
    assert "line 3, column imsi: must be 6 to 15 decimal digits" in captured.err
    assert "line 4, column ki: must be 16 bytes (32 hex digits), got 15" in captured.err
    assert "line 5, column iccid: duplicate 8988211000000000011 (first on line 2)" in captured.err
    written = sorted(p.name for p in out_dir.iterdir())
    assert written == ["8988211000000000052.der", "SUB-1.der"]
    assert all(mode(p) == 0o600 for p in out_dir.iterdir())
    assert installed_identifiers((out_dir / "SUB-1.der").read_bytes()) == \
        ("8988211000000000011", "999700000000011")

    # A second run: every row is now taken in DIR (by name or by ICCID).
    capsys.readouterr()
    csv_file.write_text("iccid,matching_id\n8988211000000000052,OTHER\n"
                        "8988211000000000060,SUB-1\n")
    assert main(["batch", str(ts48), "--csv", str(csv_file), "-o", str(out_dir)]) == 1
    err = capsys.readouterr().err
    assert "line 2, column iccid: ICCID 8988211000000000052 is already in " \
           "8988211000000000052.der" in err
    assert "line 3, column matching_id: SUB-1.der already exists" in err
    assert (out_dir / "SUB-1.der").read_bytes() != b""


def test_csv_header_errors() -> None:
    with pytest.raises(CsvError, match="required column 'iccid'"):
        list(read_subscriptions(["imsi\n", "001010000000001\n"]))
    with pytest.raises(CsvError, match="unknown column 'colour'"):
        list(read_subscriptions(["iccid,colour\n"]))
    with pytest.raises(CsvError, match="empty"):
        list(read_subscriptions([]))
    rows = list(read_subscriptions(["iccid,imsi\n", "8988211000000000011\n", "\n",
                                    "8988211000000000029,001010000000002\n"]))
    assert str(rows[0][1]) == "line 2: 1 cells, the header has 2"
    assert rows[1] == (4, Subscription(iccid="8988211000000000029", imsi="001010000000002"))
    rows = list(read_subscriptions(["iccid,imsi\n", ",001010000000001\n"]))
    assert str(rows[0][1]) == "line 2, column iccid: is empty; every row needs one"


def test_show_masks_secrets_unless_asked(ts48: Path, capsys) -> None:
    assert main(["show", str(ts48)]) == 0
    text = capsys.readouterr().out
    assert "ICCID          8949449999999990007" in text
    assert "IMSI           001010123456063" in text
    assert "SPN            GSMA_TEST" in text
    assert "xor Ki **** OPc ****" in text and "000102030405" not in text
    assert "0 header" in text and "end id 29" in text
    assert main(["show", str(ts48), "--json", "--show-secrets"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["aka"][0]["ki"] == KI
    assert {"keyReference": "0A", "value": "55555555", "id": 2} in summary["pins"]
    assert [a["type"] for a in summary["applications"]] == ["USIM", "CSIM", "ISIM"]


def test_console_script_is_installed(ts48: Path) -> None:
    """The ``smdpp-profile`` entry point as pip installs it (pyproject [project.scripts])."""
    script = Path(sys.executable).with_name("smdpp-profile")
    if not script.exists():
        pytest.skip("smdpp-profile is not installed beside this Python (pip install -e .)")
    run = subprocess.run([str(script), "show", str(ts48)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "8949449999999990007" in run.stdout


def test_batch_benchmark_smoke_run(tmp_path: Path, capsys) -> None:
    """bench.personalize writes its CSV, runs the real batch command and reports figures."""
    from bench import personalize as bench_personalize

    assert bench_personalize.main(["--rows", "3", "--keep", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("3 of 3 profiles in ") and "peak RSS" in out
    assert len(list((tmp_path / "upp").glob("*.der"))) == 3


def test_csv_from_a_spreadsheet_semicolons_and_bom(ts48: Path, tmp_path: Path, capsys) -> None:
    csv_file = tmp_path / "export.csv"
    csv_file.write_bytes("\ufeffICCID;IMSI;SPN\r\n8988211000000000011;999700000000011;Lab\r\n"
                         .encode("utf-8"))
    out_dir = tmp_path / "upp"
    assert main(["batch", str(ts48), "--csv", str(csv_file), "-o", str(out_dir)]) == 0
    assert "wrote 1 of 1 profiles" in capsys.readouterr().out
    summary = summarize((out_dir / "8988211000000000011.der").read_bytes())
    assert (summary["imsi"], summary["spn"]) == ("999700000000011", "Lab")


def test_personalize_into_a_missing_folder(ts48: Path, tmp_path: Path, capsys) -> None:
    assert main(["personalize", str(ts48), "-o", str(tmp_path / "no" / "x.der"),
                 "--iccid", "8988211000000000011"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_large_batch_shows_a_progress_bar(tmp_path: Path, capsys) -> None:
    from bench.personalize import write_csv
    from smdpp.profiles.cli import PROGRESS_ROWS
    from smdpp.profiles.generate import generate_default_test_profile

    small = tmp_path / "generated.der"  # the small generated profile keeps this quick
    small.write_bytes(generate_default_test_profile())
    rows = PROGRESS_ROWS + 1
    write_csv(tmp_path / "many.csv", rows)
    assert main(["batch", str(small), "--csv", str(tmp_path / "many.csv"),
                 "-o", str(tmp_path / "upp")]) == 0
    captured = capsys.readouterr()
    assert f"{rows}/{rows}" in captured.err  # tqdm's counter on stderr
    assert f"wrote {rows} of {rows} profiles" in captured.out
    write_csv(tmp_path / "few.csv", 3)
    assert main(["batch", str(small), "--csv", str(tmp_path / "few.csv"),
                 "-o", str(tmp_path / "upp2")]) == 0
    assert capsys.readouterr().err == ""
