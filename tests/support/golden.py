"""Golden files: compared byte for byte. `make goldens` rewrites them (NITROMETER_REGEN_GOLDEN=1),
and every check that rewrote its file fails, so a run that regenerates never passes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REGEN_VARIABLE = "NITROMETER_REGEN_GOLDEN"


def regenerating() -> bool:
    return os.environ.get(REGEN_VARIABLE) == "1"


def check_golden(path: Path, text: str) -> None:
    """text must equal the file at path; when regenerating, it becomes the file and the
    check fails, asking for a review of the diff."""
    if regenerating():
        path.parent.mkdir(parents=True, exist_ok=True)
        changed = not path.exists() or path.read_text() != text
        path.write_text(text)
        pytest.fail(f"{path} {'rewritten' if changed else 'unchanged'}: review `git diff`, "
                    "then run the tests without " + REGEN_VARIABLE, pytrace=False)
    assert text == path.read_text(), f"{path} differs: review, then `make goldens`"
