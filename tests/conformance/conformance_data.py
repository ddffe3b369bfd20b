"""The Tailscale conformance cases in ../shared/conformance/tailscale and
../shared/conformance/tailscale-more (SSH policies, policy-test and sshTest
verdicts, nodeAttrs).

Read in place (never copied into the repository); every consumer skips with a
clear message when the folder is absent.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from policyc.compiler.nodes import Inventory, Node, User


def _find_cases(folder: str = "tailscale") -> Path | None:
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "conformance" / folder
        if candidate.is_dir():
            return candidate
    return None


CASES_DIR = _find_cases()
CASE_FILES = sorted(CASES_DIR.glob("*.json")) if CASES_DIR else []
MISSING_REASON = "../shared/conformance/tailscale not found"

MORE_CASES_DIR = _find_cases("tailscale-more")
MORE_CASE_FILES = sorted(MORE_CASES_DIR.glob("*.json")) if MORE_CASES_DIR else []
MORE_MISSING_REASON = "../shared/conformance/tailscale-more not found"


def case_inventory(case: dict[str, Any]) -> Inventory:
    """A case's nodes, and its `users` (with roles) when it lists them."""
    nodes = [
        Node(
            name=n["name"], user=n.get("user"), tags=tuple(n.get("tags") or ()),
            ips=tuple(ipaddress.ip_address(ip) for ip in n["ips"]),
            key=f"key-{n['name']}",
            routes=tuple(ipaddress.ip_network(r) for r in n.get("routes") or ()),
            exit_node=bool(n.get("exit_node")),
        )
        for n in case["nodes"]
    ]
    users = case.get("users")
    return Inventory.of(nodes, None if users is None else
                        [User(u["login"], u.get("role") or "member") for u in users])


def load_case(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text())
    return case


def case_params(expected_failures: dict[str, str],
                wanted: Callable[[dict[str, Any]], bool] = lambda _: True,
                files: list[Path] | None = None) -> list[Any]:
    """One pytest param per wanted case, id = its test_id; known failures are strict xfails.

    `files` defaults to the first folder's cases; pass MORE_CASE_FILES for the second.
    """
    params = []
    for path in CASE_FILES if files is None else files:
        case = load_case(path)
        if not wanted(case):
            continue
        test_id = case["test_id"]
        marks = []
        if test_id in expected_failures:
            marks.append(pytest.mark.xfail(reason=expected_failures[test_id], strict=True))
        params.append(pytest.param(path, id=test_id, marks=marks))
    return params


def more_case_params(category: str, expected_failures: dict[str, str]) -> list[Any]:
    """The tailscale-more cases of one category (ssh, policytest, sshtest, nodeattrs)."""
    return case_params(expected_failures, lambda case: case["category"] == category,
                       MORE_CASE_FILES)
