"""The Tailscale conformance cases in ../shared/conformance/tailscale.

Read in place (never copied into the repository); every consumer skips with a
clear message when the folder is absent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def _find_cases() -> Path | None:
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "conformance" / "tailscale"
        if candidate.is_dir():
            return candidate
    return None


CASES_DIR = _find_cases()
CASE_FILES = sorted(CASES_DIR.glob("*.json")) if CASES_DIR else []
MISSING_REASON = "../shared/conformance/tailscale not found"


def load_case(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text())
    return case


def case_params(expected_failures: dict[str, str],
                wanted: Callable[[dict[str, Any]], bool] = lambda _: True) -> list[Any]:
    """One pytest param per wanted case, id = its test_id; known failures are strict xfails."""
    params = []
    for path in CASE_FILES:
        case = load_case(path)
        if not wanted(case):
            continue
        test_id = case["test_id"]
        marks = []
        if test_id in expected_failures:
            marks.append(pytest.mark.xfail(reason=expected_failures[test_id], strict=True))
        params.append(pytest.param(path, id=test_id, marks=marks))
    return params
