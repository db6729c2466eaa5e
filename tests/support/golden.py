"""Golden files: compared byte for byte; NITROMETER_REGEN_GOLDEN=1 rewrites them instead."""

from __future__ import annotations

import os
from pathlib import Path

REGEN_VARIABLE = "NITROMETER_REGEN_GOLDEN"


def regenerating() -> bool:
    return os.environ.get(REGEN_VARIABLE) == "1"


def check_golden(path: Path, text: str) -> None:
    """text must equal the file at path; when regenerating, it becomes the file."""
    if regenerating():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{path} differs: review, then {REGEN_VARIABLE}=1"
