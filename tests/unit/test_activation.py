"""Activation codes (SGP.22 4.1) and their QR codes, read back by a real QR decoder (zbar)."""
from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest

from smdpp.activation import ActivationCode, parse_activation_code, qr_png, qr_terminal


@pytest.mark.parametrize("code, text", [
    (ActivationCode("testsmdpplus1.example.com", "SMDPP-TEST-1"),
     "1$testsmdpplus1.example.com$SMDPP-TEST-1"),
    (ActivationCode("smdp.example:8443", "ABC-1", None, True), "1$smdp.example:8443$ABC-1$$1"),
    (ActivationCode("smdp.example", "ABC", "2.999.10", False), "1$smdp.example$ABC$2.999.10"),
    (ActivationCode("smdp.example", "ABC", "2.999.10", True), "1$smdp.example$ABC$2.999.10$1"),
])
def test_text_and_round_trip(code: ActivationCode, text: str) -> None:
    assert code.text() == text
    assert code.uri() == "LPA:" + text
    assert parse_activation_code(code.uri()) == code


@pytest.mark.parametrize("code", [
    ActivationCode("smdp.example", "A$B"),
    ActivationCode("smdp.example", ""),
    ActivationCode("smdp.example", "x" * 256),
    ActivationCode("smdp$example", "ABC"),
    ActivationCode("", "ABC"),
    ActivationCode("smdp.example", "ABC", "not-an-oid"),
])
def test_refuses_fields_an_lpa_cannot_read(code: ActivationCode) -> None:
    with pytest.raises(ValueError):
        code.text()


@pytest.mark.parametrize("bad", ["2$a$b", "1$a", "1$$b", "1$a$b$c$d$e", "1$a$b$$2"])
def test_parse_refuses(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_activation_code(bad)


def test_qr_png_decodes_to_the_code(tmp_path: Path) -> None:
    zbarimg = shutil.which("zbarimg")
    if zbarimg is None:
        pytest.skip("zbarimg (Debian zbar-tools) is not installed; .ci/run installs it")
    code = ActivationCode("testsmdpplus1.example.com", "SMDPP-TEST-1", None, True)
    png = qr_png(code, tmp_path / "ac.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = subprocess.run([zbarimg, "--quiet", "--raw", str(png)], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    assert out.strip() == "LPA:1$testsmdpplus1.example.com$SMDPP-TEST-1$$1"


def test_qr_terminal_draws_a_square() -> None:
    out = io.StringIO()
    qr_terminal(ActivationCode("a.example", "X"), out)
    rows = [r for r in out.getvalue().splitlines() if r.strip()]
    # a version-2 code (25 modules) with a border of 2: 29 columns, ceil(29/2) rows
    assert len(rows) >= 10 and all(len(r) == len(rows[0]) for r in rows)
