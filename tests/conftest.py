"""Shared fixtures: where the read-only reference data beside the repository lives."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_TESTDATA = REPO.parent / "shared" / "testdata"


@pytest.fixture(scope="session")
def shared_testdata() -> Path:
    """``../shared/testdata`` beside the repository; the test is skipped without it."""
    if not SHARED_TESTDATA.is_dir():
        pytest.skip("../shared/testdata is absent")
    return SHARED_TESTDATA


@pytest.fixture(scope="session")
def pysim_layout(shared_testdata: Path, tmp_path_factory: pytest.TempPathFactory):
    """A folder holding an ``smdpp-data`` shaped like pySim's (see :mod:`tests.pysim_layout`).

    Shared by the tests of a run: a test that changes it works on
    ``layout.copy_to(tmp_path)``.
    """
    from tests.pysim_layout import build_pysim_layout

    return build_pysim_layout(tmp_path_factory.mktemp("pysim"), shared_testdata)
