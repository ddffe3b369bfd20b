"""Golden files with an update switch (aerleon's capture.py idea).

A mismatch or a missing golden writes `<golden>.actual` beside it and fails;
`POLICYC_UPDATE_GOLDENS=1` rewrites the goldens instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

GOLDEN_ROOT = Path(__file__).resolve().parent / "golden"


def check_golden(golden: Path, actual: str) -> None:
    stale = golden.with_name(golden.name + ".actual")
    if os.environ.get("POLICYC_UPDATE_GOLDENS") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual, encoding="utf-8")
        stale.unlink(missing_ok=True)
        return
    expected = golden.read_text(encoding="utf-8") if golden.exists() else None
    if expected != actual:
        stale.write_text(actual, encoding="utf-8")
        pytest.fail(f"{golden} differs (wrote {stale.name}); "
                    "rerun with POLICYC_UPDATE_GOLDENS=1 to accept")
    stale.unlink(missing_ok=True)
