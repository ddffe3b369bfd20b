"""How big a policy control takes: over real HTTP, `policyc apply` of a policy of
megabytes works (it was capped at 500,000 characters), and a policy or a body over
the limits is a 413 naming the limit that changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from control_harness import POLICY, ControlServer
from test_control_cli import admin_args, cli, live, write
from test_control_policy_api import state_of

from policyc.control.limits import MAX_POLICY_BODY, MAX_POLICY_BYTES, policy_too_large

USERS = [f"user{n:04d}@example.com" for n in range(1000)]


def groups_policy(groups: int) -> str:
    """POLICY plus `groups` groups of 1,000 logins each (~24 KB a group)."""
    members = json.dumps(USERS)
    extra = "".join(f'\n    "group:g{g}": {members},' for g in range(groups))
    return POLICY.replace('"groups": {', '"groups": {' + extra, 1)


def test_a_policy_of_megabytes_applies(control: ControlServer, tmp_path: Path) -> None:
    text = groups_policy(120)
    assert len(text) > 2_500_000  # five times the old 500,000-character cap
    result = cli("apply", write(tmp_path, text), *admin_args(control, tmp_path))
    assert result.exit_code == 0, result.output
    assert "applied: version 2" in result.stderr
    assert live(control)["policy"] == text


def test_a_policy_over_the_limit_is_413_and_changes_nothing(control: ControlServer,
                                                           tmp_path: Path) -> None:
    before = state_of(control)
    # One byte over, in a leading comment (a long trailing one is slow to parse locally).
    text = "/*" + "x" * (MAX_POLICY_BYTES - len(POLICY) - 3) + "*/" + POLICY
    assert len(text.encode()) == MAX_POLICY_BYTES + 1
    with control.admin() as admin:
        answer = admin.put("/api/v1/policy", json={"policy": text}, headers={"If-Match": "*"})
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"] == "too-large"
    assert f"{MAX_POLICY_BYTES + 1} bytes" in answer.json()["detail"]
    assert f"the limit is {MAX_POLICY_BYTES} bytes (32 MiB)" in answer.json()["detail"]
    result = cli("apply", write(tmp_path, text), *admin_args(control, tmp_path))
    assert result.exit_code == 1, result.output
    assert "rejected by the server" in result.stderr and "32 MiB" in result.stderr
    assert state_of(control) == before


@pytest.mark.parametrize(("route", "limit"), [
    ("/api/v1/policy", MAX_POLICY_BODY), ("/api/v1/authkeys", 8 * 1024 * 1024)])
def test_a_body_over_its_route_limit_is_413_naming_the_limit(
        shared_control: ControlServer, route: str, limit: int) -> None:
    before = state_of(shared_control)
    body = b'{"policy": "' + b" " * limit + b'"}'
    with shared_control.admin() as admin:
        method = "PUT" if route == "/api/v1/policy" else "POST"
        answer = admin.request(method, route, content=body, headers={
            "If-Match": "*", "Content-Type": "application/json"})
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"] == "too-large"
    assert f"request body over {limit} bytes, the limit for {method} {route}" \
        in answer.json()["detail"]
    assert state_of(shared_control) == before


@pytest.mark.parametrize("tail", [
    "x" * (MAX_POLICY_BYTES + 1),  # over the policy limit
    "\x01" * (MAX_POLICY_BODY // 6 + 1),  # under it, but its JSON is over the PUT's body
], ids=["over-the-policy-limit", "json-over-the-body-limit"])
def test_init_refuses_what_the_api_would_refuse(tmp_path: Path, tail: str) -> None:
    state = tmp_path / "state"
    result = cli("control", "init", "--state", str(state),
                 "--policy", write(tmp_path, "/*" + tail + "*/" + POLICY))
    assert result.exit_code == 1, result.output
    assert "error:" in result.stderr and str(MAX_POLICY_BYTES if tail[0] == "x"
                                             else MAX_POLICY_BODY) in result.stderr
    assert not state.exists()


@pytest.mark.parametrize("unit", ['"\n', "\\\t", "é", "😀", "\x01"],
                         ids=["quote-newline", "backslash-tab", "latin", "astral", "control"])
def test_the_largest_policy_init_takes_fits_the_put_body(unit: str) -> None:
    """The arithmetic the limits rest on, at the boundary: init takes `unit` * n
    and refuses one more, and that text as httpx sends it fits the PUT's body."""
    encoded = len(json.dumps(unit, ensure_ascii=False).encode()) - 2
    n = min(MAX_POLICY_BYTES // len(unit.encode()), (MAX_POLICY_BODY - 13) // encoded)
    assert policy_too_large(unit * n) is None
    assert policy_too_large(unit * (n + 1)) is not None
    assert len(httpx.Request("PUT", "http://x/", json={"policy": unit * n}).content) \
        <= MAX_POLICY_BODY
