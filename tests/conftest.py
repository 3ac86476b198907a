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
