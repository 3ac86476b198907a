"""README.rst is for users of this repository: its first two commands are the real ones, and
every file it names is in the repository (nothing outside it, no ``../``)."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.rst").read_text()

# ``contrib/smdpp.service``, ``docs/performance.rst``, ``smdpp/status.py``, ...
_PATH = re.compile(r"``((?:contrib|docs|smdpp|bench|tests|\.ci)/[A-Za-z0-9_./-]+?)``")


def _literal_blocks(text: str) -> list[str]:
    """The indented blocks after a line ending in '::', in order."""
    blocks, lines = [], text.splitlines()
    for number, line in enumerate(lines):
        if line.rstrip().endswith("::"):
            block = []
            for following in lines[number + 1:]:
                if following.strip() and not following.startswith(" "):
                    break
                block.append(following.strip())
            blocks.append("\n".join(b for b in block if b))
    return blocks


def test_the_first_two_commands_are_install_and_start_and_the_test_suite() -> None:
    first, second = _literal_blocks(README)[:2]
    assert first == "python3 -m pip install -e . && ./osmo-smdpp.py"
    assert second == "python3 -m pip install -e '.[test]' && python3 -m pytest -q"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "-e '.[test]' && python3 -m pytest -q" in ci  # CI runs exactly that


def test_nothing_points_outside_the_repository() -> None:
    assert "../" not in README
    assert "/shared" not in README


def test_every_file_named_exists() -> None:
    named = set(_PATH.findall(README))
    assert named  # the pattern finds them
    missing = sorted(path for path in named if not (ROOT / path.rstrip("/")).exists())
    assert not missing, missing
