"""Personalized TS.48 profiles download end to end, and smdpp-lpa reports their ICCID and IMSI.

The README's two commands: ``smdpp-profile batch`` writes one UPP per CSV
row into ``upp/``, the server (no change) serves each under its file name,
and ``smdpp-lpa download`` installs it into the software eUICC.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from smdpp.profiles.elements import parse_package
from smdpp.profiles.show import installed_identifiers

from .conftest import RunningServer
from .flow import ADDRESS

PROFILE = [sys.executable, "-c", "import sys; from smdpp.profiles.cli import main; sys.exit(main())"]
LPA = [sys.executable, "-c", "import sys; from smdpp.euicc.cli import main; sys.exit(main())"]
TS48 = ["TS48V2-SAIP2-1-NOBERTLV-UNIQUE", "TS48V4-SAIP2-3-BERTLV-UNIQUE",
        "TS48V5-SAIP2-1A-NOBERTLV-UNIQUE"]
# One subscription per template: ICCID (Luhn-valid), IMSI, matchingId.
ROWS = [("8988211000000000011", "999700000000011", "LAB-1"),
        ("8988211000000000029", "999700000000029", "LAB-2"),
        ("8988211000000000037", "999700000000037", "LAB-3")]
KI = "465b5ce8b199b49faa5f0a2ee238a6bc"
OP = "cdc202d5123e20f62b6d676ac72cb318"


def test_personalized_ts48_profiles_download_and_report_iccid_and_imsi(
        server_factory, shared_testdata: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "smdpp-data"
    upp_dir = data_dir / "upp"
    for name, (iccid, imsi, matching_id) in zip(TS48, ROWS):
        csv_file = tmp_path / f"{matching_id}.csv"
        csv_file.write_text("iccid,imsi,ki,op,algorithm,matching_id\n"
                            f"{iccid},{imsi},{KI},{OP},milenage,{matching_id}\n")
        run = subprocess.run(PROFILE + ["batch", str(shared_testdata / "upp" / f"{name}.der"),
                                        "--csv", str(csv_file), "-o", str(upp_dir)],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "wrote 1 of 1 profiles" in run.stdout

    server: RunningServer = server_factory(data_dir)
    for name, (iccid, imsi, matching_id) in zip(TS48, ROWS):
        saved = tmp_path / f"{matching_id}-installed.der"
        run = subprocess.run(LPA + ["download", "--smdp", server.url, "--address", ADDRESS,
                                    "--matching-id", matching_id,
                                    "--identity", str(data_dir / "euicc"),
                                    "--save-upp", str(saved)],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        assert f"installed profile package: ICCID {iccid}, IMSI {imsi}" in run.stdout
        served = (upp_dir / f"{matching_id}.der").read_bytes()
        assert saved.read_bytes() == served
        assert installed_identifiers(served) == (iccid, imsi)
        # Beyond the personalized elements, the served package is the template's.
        template = parse_package((shared_testdata / "upp" / f"{name}.der").read_bytes())
        changed = [old.kind for old, new in zip(template, parse_package(served))
                   if old.raw != new.raw]
        assert set(changed) == {"header", "mf", "usim", "isim", "akaParameter"}, name
    assert server.log().count("ProfileInstallationResult success") == len(ROWS)
