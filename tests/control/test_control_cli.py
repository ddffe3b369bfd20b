"""The CLI contract of `policyc control ...` and `policyc apply`, against a real server."""

from __future__ import annotations

import socket
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from control_harness import POLICY, ControlServer
from test_control_policy_api import FAILING_TESTS, UNDEFINED_GROUP, WITH_TESTS

from policyc.cli import main

GAINED = POLICY.replace('"dst": ["tag:web:443"]', '"dst": ["tag:web:443", "tag:web:80"]')


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.output, result.exception)
    return result


def admin_args(control: ControlServer, tmp_path: Path) -> list[str]:
    token = tmp_path / "token"
    token.write_text(control.token + "\n")
    return ["--server", control.url, "--token-file", str(token)]


def live(control: ControlServer) -> dict[str, Any]:
    with control.admin() as admin:
        return dict(admin.get("/api/v1/policy").json())


def write(tmp_path: Path, text: str, name: str = "policy.hujson") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_init_prints_the_token_alone_and_keeps_secrets_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    result = cli("control", "init", "--state", str(state))
    assert result.exit_code == 0
    assert result.stdout == (state / "admin.token").read_text()
    assert result.stdout.count("\n") == 1
    assert (state / "signing.pub").read_text().strip() in result.stderr
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for secret in ("admin.token", "signing.key", "box.key", "control.db"):
        assert stat.S_IMODE((state / secret).stat().st_mode) == 0o600, secret
    again = cli("control", "init", "--state", str(state))
    assert again.exit_code == 2
    assert (state / "admin.token").read_text() == result.stdout  # untouched


def test_init_refuses_an_invalid_policy_and_creates_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    bad = cli("control", "init", "--state", str(state), "--policy",
              write(tmp_path, UNDEFINED_GROUP))
    assert bad.exit_code == 1 and "E104" in bad.stderr
    assert not state.exists()
    missing = cli("control", "init", "--state", str(state), "--policy", str(tmp_path / "none"))
    assert missing.exit_code == 2 and not state.exists()


def test_serve_on_an_address_it_cannot_listen_on_is_exit_2_with_the_reason(
        tmp_path: Path) -> None:
    state = str(tmp_path / "control")
    assert cli("control", "init", "--state", state).exit_code == 0
    with socket.create_server(("127.0.0.1", 0)) as taken:  # uvicorn exited 3 on this
        port = taken.getsockname()[1]
        result = cli("control", "serve", "--state", state, "--listen", f"127.0.0.1:{port}")
    assert result.exit_code == 2 and f"cannot listen on 127.0.0.1:{port}" in result.output


def test_apply_shows_the_diff_and_pushes(control: ControlServer, tmp_path: Path) -> None:
    args = admin_args(control, tmp_path)
    path = write(tmp_path, GAINED)
    dry = cli("apply", path, *args, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "1 gained, 0 lost" in dry.stdout and "/80" in dry.stdout
    assert live(control)["policy"] == POLICY
    pushed = cli("apply", path, *args)
    assert pushed.exit_code == 0, pushed.output
    assert live(control)["policy"] == GAINED
    again = cli("apply", path, *args)
    assert again.exit_code == 0 and "unchanged" in again.stderr
    back = cli("apply", write(tmp_path, POLICY, "old.hujson"), *args)
    assert back.exit_code == 0 and "0 gained, 1 lost" in back.stdout


def test_apply_over_one_registered_node_says_node(control: ControlServer,
                                                 tmp_path: Path) -> None:
    with control.admin() as admin:
        key = admin.post("/api/v1/authkeys", json={"user": "alice@example.com"}).json()["key"]
    control.node("laptop").register(key)
    result = cli("apply", write(tmp_path, GAINED), *admin_args(control, tmp_path), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "(inventory of 1 node)" in result.stdout, result.stdout


@pytest.mark.parametrize(("text", "code"), [(UNDEFINED_GROUP, "E104"), (FAILING_TESTS, "")])
def test_apply_rejects_like_check(control: ControlServer, tmp_path: Path, text: str,
                                  code: str) -> None:
    path = write(tmp_path, text)
    result = cli("apply", path, *admin_args(control, tmp_path))
    assert result.exit_code == 1
    assert f"{path}:" in result.stderr and code in result.stderr
    assert live(control)["policy"] == POLICY


def test_apply_conflict_is_exit_3(control: ControlServer, tmp_path: Path) -> None:
    stale = live(control)["etag"]
    args = admin_args(control, tmp_path)
    assert cli("apply", write(tmp_path, WITH_TESTS, "a.hujson"), *args).exit_code == 0
    result = cli("apply", write(tmp_path, GAINED, "b.hujson"), *args, "--if-match", stale)
    assert result.exit_code == 3 and "conflict" in result.stderr
    assert live(control)["policy"] == WITH_TESTS


@pytest.mark.parametrize("text", [GAINED, UNDEFINED_GROUP], ids=["a-change", "an-invalid-policy"])
@pytest.mark.parametrize("dry_run", [False, True], ids=["push", "dry-run"])
def test_apply_checks_if_match_before_anything_else(control: ControlServer, tmp_path: Path,
                                                    text: str, dry_run: bool) -> None:
    before = live(control)
    args = [write(tmp_path, text), *admin_args(control, tmp_path), "--if-match", "0" * 64]
    result = cli("apply", *args, *(["--dry-run"] if dry_run else []))
    assert result.exit_code == 3, result.output
    assert f"conflict: --if-match {'0' * 64} is not the live policy's ETag" in result.stderr
    assert f"etag {before['etag']}" in result.stderr and "unchanged" not in result.stderr
    assert live(control) == before


@pytest.mark.parametrize("dry_run", [False, True], ids=["push", "dry-run"])
def test_apply_of_the_live_text_is_unchanged_whatever_the_etag(control: ControlServer,
                                                               tmp_path: Path,
                                                               dry_run: bool) -> None:
    # A re-run of a job whose push landed (gitops-pusher: "no update needed" comes before
    # its ETag check): nothing to push, exit 0, and the stale ETag is said.
    before = live(control)
    args = [write(tmp_path, POLICY), *admin_args(control, tmp_path), *(["--dry-run"] * dry_run)]
    stale = cli("apply", *args, "--if-match", "0" * 64)
    assert stale.exit_code == 0 and "unchanged" in stale.stderr, stale.output
    assert f"--if-match {'0' * 64} is not its ETag ({before['etag']})" in stale.stderr
    for etag in (f'"{before["etag"]}"', "*"):  # the right one, quoted as a header has it
        same = cli("apply", *args, "--if-match", etag)
        assert same.exit_code == 0 and "unchanged" in same.stderr, same.output
        assert "not its ETag" not in same.stderr
    assert live(control) == before


def test_apply_usage_auth_and_network_errors_are_exit_2(control: ControlServer,
                                                        tmp_path: Path) -> None:
    path = write(tmp_path, GAINED)
    wrong = tmp_path / "wrong"
    wrong.write_text("pct-wrong\n")
    assert cli("apply", path, "--server", control.url, "--token-file", str(wrong)).exit_code == 2
    assert cli("apply", path, "--server", control.url, env={"POLICYC_TOKEN": ""}).exit_code == 2
    assert cli("apply", path, "--server", "http://127.0.0.1:9",
               env={"POLICYC_TOKEN": control.token}).exit_code == 2
    assert cli("apply", str(tmp_path / "missing"), "--server", control.url,
               env={"POLICYC_TOKEN": control.token}).exit_code == 2
    assert live(control)["policy"] == POLICY
    ok = cli("apply", path, "--server", control.url, env={"POLICYC_TOKEN": control.token})
    assert ok.exit_code == 0


def test_admin_commands(control: ControlServer, tmp_path: Path) -> None:
    args = admin_args(control, tmp_path)
    made = cli("control", "authkey", "create", *args, "--tag", "tag:router", "--reusable")
    assert made.exit_code == 0 and made.stdout.startswith("pk-") and made.stdout.count("\n") == 1
    router = control.node("router")
    router.register(made.stdout.strip(), routes=("10.20.0.0/16",))
    assert cli("control", "authkey", "create", *args, "--tag", "tag:nope").exit_code == 1
    assert cli("control", "authkey", "create", *args).exit_code == 2
    assert cli("control", "authkey", "create", *args, "--user", "a@b", "--expires",
               "soon").exit_code == 2

    listed = cli("control", "nodes", "list", *args)
    assert listed.exit_code == 0 and "router" in listed.stdout and "advertised" in listed.stdout
    approved = cli("control", "nodes", "approve-routes", *args, "router", "10.20.0.0/16")
    assert approved.exit_code == 0
    assert "10.20.0.0/16" in cli("control", "nodes", "list", *args, "--json").stdout
    assert cli("control", "nodes", "approve-routes", *args, "router", "10.9.0.0/16").exit_code == 1
    assert cli("control", "nodes", "rm", *args, "nobody").exit_code == 1
    assert cli("control", "nodes", "rm", *args, "router").exit_code == 0
    assert "router" not in cli("control", "nodes", "list", *args).stdout

    got = cli("control", "policy", "get", *args)
    assert got.exit_code == 0 and got.stdout == POLICY
    assert cli("apply", write(tmp_path, GAINED), *args).exit_code == 0
    history = cli("control", "policy", "history", *args)
    assert [line.split("\t")[0] for line in history.stdout.splitlines()] == ["2", "1"]
    rolled = cli("control", "policy", "rollback", *args, "1")
    assert rolled.exit_code == 0 and live(control)["policy"] == POLICY
    assert cli("control", "policy", "rollback", *args, "99").exit_code == 1
