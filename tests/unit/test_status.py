"""smdpp.status: the one home of SGP.22 status codes (SGP.22 6.5.1.4, 5.6.x)."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from smdpp import status
from smdpp.errors import EuiccReportedError, SgpError

ROOT = Path(__file__).resolve().parents[2]
# a (subjectCode, reasonCode) pair typed as two string literals
_PAIR = re.compile(r"""["']\d+(\.\d+)+["']\s*,\s*["']\d+\.\d+["']""")
_CONSTRUCTORS = [f for name, f in vars(status).items()
                 if inspect.isfunction(f) and not name.startswith("_") and f.__module__ == status.__name__]


@pytest.mark.parametrize("build", _CONSTRUCTORS, ids=lambda f: f.__name__)
def test_every_constructor_builds_a_listed_code(build) -> None:
    error = build("why")
    assert isinstance(error, SgpError)
    assert (error.subject_code, error.reason_code) in status.CODES
    assert error.status()["statusCodeData"]["message"] == "why"
    meaning, section = status.CODES[(error.subject_code, error.reason_code)]
    assert meaning and section


def test_every_listed_code_has_a_constructor() -> None:
    built = {(f("x").subject_code, f("x").reason_code) for f in _CONSTRUCTORS}
    assert built == set(status.CODES)


def test_the_euicc_reported_error_is_typed() -> None:
    error = status.euicc_reported_error("authenticateResponseError 3")
    assert isinstance(error, EuiccReportedError) and isinstance(error, SgpError)
    assert not isinstance(status.euicc_signature_invalid("x"), EuiccReportedError)


def test_no_status_code_literal_outside_its_home() -> None:
    offenders = []
    for folder in ("smdpp", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            if path == ROOT / "smdpp" / "status.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if _PAIR.search(line) or re.search(r"""subject_code\s*==""", line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_readme_lists_every_code() -> None:
    readme = (ROOT / "README.rst").read_text()
    missing = [f"{s} / {r}" for s, r in status.CODES if f"{s} / {r}" not in readme]
    assert not missing, missing
