"""Admin API over real HTTP: policy lifecycle, and every bad input a 4xx that changes nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from control_harness import POLICY, ControlServer

from policyc.control.limits import MAX_POLICY_BODY

WITH_TESTS = POLICY.replace('"acls"', '''"tests": [
    {"src": "alice@example.com", "accept": ["tag:web:443"], "deny": ["tag:db:5432"]},
  ],
  "acls"''')
FAILING_TESTS = POLICY.replace('"acls"', '''"tests": [
    {"src": "alice@example.com", "accept": ["tag:db:5432"]},
  ],
  "acls"''')
UNDEFINED_GROUP = POLICY.replace('"src": ["group:dev"], "dst": ["tag:web:443"]',
                                 '"src": ["group:devz"], "dst": ["tag:web:443"]')


def state_of(control: ControlServer) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with control.admin() as admin:
        return admin.get("/api/v1/policy").json(), admin.get("/api/v1/policy/history").json()


def test_policy_lifecycle_put_history_rollback(control: ControlServer) -> None:
    with control.admin() as admin:
        first = admin.get("/api/v1/policy")
        assert first.status_code == 200
        assert first.headers["etag"] == f'"{first.json()["etag"]}"'
        assert first.json()["policy"] == POLICY

        put = admin.put("/api/v1/policy", json={"policy": WITH_TESTS},
                        headers={"If-Match": first.headers["etag"]})
        assert put.status_code == 200, put.text
        assert put.json()["changed"] is True and put.json()["version"] == 2
        assert admin.get("/api/v1/policy").json()["policy"] == WITH_TESTS

        same = admin.put("/api/v1/policy", json={"policy": WITH_TESTS},
                         headers={"If-Match": put.headers["etag"]})
        assert same.json() == {**put.json(), "changed": False, "netmaps_changed": 0}

        versions = admin.get("/api/v1/policy/history").json()["versions"]
        assert [v["version"] for v in versions] == [2, 1]
        assert admin.get("/api/v1/policy/versions/1").json()["policy"] == POLICY

        back = admin.post("/api/v1/policy/rollback", json={"version": 1})
        assert back.status_code == 200 and back.json()["version"] == 3
        live = admin.get("/api/v1/policy").json()
        assert live["policy"] == POLICY and live["note"] == "rollback to version 1"


def test_the_first_policy_defaults_to_allow_all(make_control: Any) -> None:
    control = make_control(policy=None)
    live, _ = state_of(control)
    assert '"dst": ["*:*"]' in live["policy"]


@pytest.mark.parametrize(("text", "headers", "status", "code"), [
    (WITH_TESTS, {}, 428, "precondition-required"),
    (WITH_TESTS, {"If-Match": '"0000"'}, 412, "stale-etag"),
    (UNDEFINED_GROUP, {"If-Match": "*"}, 422, "invalid-policy"),
    (FAILING_TESTS, {"If-Match": "*"}, 422, "invalid-policy"),
    ("{ not json", {"If-Match": "*"}, 422, "invalid-policy"),
])
def test_a_refused_put_changes_nothing(shared_control: ControlServer, text: str,
                                       headers: dict[str, str], status: int, code: str) -> None:
    control = shared_control
    before = state_of(control)
    with control.admin() as admin:
        answer = admin.put("/api/v1/policy", json={"policy": text}, headers=headers)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == code
    assert state_of(control) == before


def test_rejected_policy_diagnostics_carry_codes_and_spans(shared_control: ControlServer) -> None:
    control = shared_control
    with control.admin() as admin:
        bad = admin.put("/api/v1/policy", json={"policy": UNDEFINED_GROUP},
                        headers={"If-Match": "*"}).json()
        failing = admin.put("/api/v1/policy", json={"policy": FAILING_TESTS},
                            headers={"If-Match": "*"}).json()
    [undefined] = [d for d in bad["diagnostics"] if d["severity"] == "error"]
    assert undefined["code"] == "E104" and undefined["file"] == "policy.hujson"
    assert UNDEFINED_GROUP[undefined["offset"]:undefined["end_offset"]] == '"group:devz"'
    assert undefined["line"] == UNDEFINED_GROUP[:undefined["offset"]].count("\n") + 1
    assert any(d["severity"] == "error" for d in failing["diagnostics"])


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer pct-wrong", "Basic abc",
                                           "pct-no-scheme"])
@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/api/v1/policy", None),
    ("PUT", "/api/v1/policy", {"policy": "{}"}),
    ("GET", "/api/v1/policy/history", None),
    ("POST", "/api/v1/policy/rollback", {"version": 1}),
    ("POST", "/api/v1/authkeys", {"user": "alice@example.com"}),
    ("GET", "/api/v1/nodes", None),
    ("DELETE", "/api/v1/nodes/x", None),
])
def test_admin_routes_need_the_token(shared_control: ControlServer, authorization: str | None,
                                     method: str, path: str, body: Any) -> None:
    control = shared_control
    before = state_of(control)
    headers = {"If-Match": "*"}
    if authorization is not None:
        headers["Authorization"] = authorization
    answer = httpx.request(method, control.url + path, json=body, headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized"
    assert state_of(control) == before


def test_oversized_bodies_are_refused(shared_control: ControlServer) -> None:
    control = shared_control
    before = state_of(control)
    huge = "{" + " " * MAX_POLICY_BODY + "}"
    with control.admin() as admin:
        declared = admin.put("/api/v1/policy", json={"policy": huge}, headers={"If-Match": "*"})

        def chunks() -> Any:  # no Content-Length: the server must count
            yield b'{"policy": "'
            for _ in range(MAX_POLICY_BODY // 65536 + 2):
                yield b" " * 65536
            yield b'"}'

        streamed = admin.put("/api/v1/policy", content=chunks(),
                             headers={"If-Match": "*", "Content-Type": "application/json"})
    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert state_of(control) == before


@pytest.mark.parametrize(("method", "path", "body"), [
    ("PUT", "/api/v1/policy", {"text": "{}"}),
    ("PUT", "/api/v1/policy", [1, 2]),
    ("POST", "/api/v1/policy/rollback", {"version": "one"}),
    ("POST", "/api/v1/policy/rollback", {"version": 99}),
    ("GET", "/api/v1/policy/versions/0", None),
    ("POST", "/api/v1/authkeys", {"user": "alice@example.com", "expires_in": -5}),
    ("POST", "/api/v1/authkeys", {"user": "not a login"}),
    ("POST", "/api/v1/authkeys", {"tags": ["web"]}),
    ("POST", "/api/v1/authkeys", {}),
    ("POST", "/api/v1/nodes/nobody/routes", {"routes": ["10.0.0.0/8"]}),
    ("DELETE", "/api/v1/nodes/nobody", None),
    ("DELETE", "/api/v1/nodes/..%2Fetc", None),
])
def test_malformed_admin_requests_are_4xx(shared_control: ControlServer, method: str, path: str,
                                         body: Any) -> None:
    control = shared_control
    before = state_of(control)
    with control.admin() as admin:
        answer = admin.request(method, path, json=body, headers={"If-Match": "*"})
    assert 400 <= answer.status_code < 500, answer.text
    assert "error" in answer.json() or "detail" in answer.json()
    assert state_of(control) == before
