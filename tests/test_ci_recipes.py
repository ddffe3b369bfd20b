"""The CI recipes: docs/ci.md's GitHub Actions steps and .pre-commit-hooks.yaml,
run for real (bash, git, the policyc CLI) on a repository made of the samples."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from policyc.cli import main

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
ASSERTIONS = """{
  "deny": [{"src": "group:marketing", "dst": "prod-db-host"}],
  "allow": [{"src": "group:dev", "dst": "tag:prod", "ports": "22", "proto": "tcp"}],
}"""


def workflow() -> dict[str, Any]:
    text = (ROOT / "docs" / "ci.md").read_text()
    section = text[text.index("## GitHub Actions"):]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None
    loaded: dict[str, Any] = yaml.safe_load(block.group(1))
    return loaded


def step(job: str, step_id: str) -> str:
    for entry in workflow()["jobs"][job]["steps"]:
        if entry.get("id") == step_id:
            run: str = entry["run"]
            return (run.replace("${{ github.base_ref }}", "main")
                    .replace("${{ github.event.pull_request.number }}", "7"))
    raise AssertionError(f"no step {step_id} in job {job}")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A policy repository: main holds the samples, the checkout is a PR on top of it."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(SAMPLES / "policy.hujson", repo / "policy.hujson")
    shutil.copy(SAMPLES / "nodes.json", repo / "nodes.json")
    (repo / "assertions.hujson").write_text(ASSERTIONS)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "base")
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    policy = repo / "policy.hujson"
    policy.write_text(policy.read_text().replace('"tag:staging:22,80,443,8000-8999"',
                                                 '"tag:staging:22,80,443,8000-9000"'))
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qam", "pr")
    shim = tmp_path / "bin" / "policyc"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m policyc.cli "$@"\n')
    shim.chmod(0o755)
    return repo


def run_step(repo: Path, script: str) -> subprocess.CompletedProcess[str]:
    """As GitHub runs a `run:` step: bash -eo pipefail, in the checkout."""
    env = dict(os.environ, PATH=f"{repo.parent / 'bin'}:{os.environ['PATH']}",
               PYTHONPATH=str(ROOT))
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=300)


def test_pull_request_steps_on_the_samples(repo: Path) -> None:
    done = run_step(repo, step("review", "check"))
    assert done.returncode == 0, done.stdout + done.stderr
    done = run_step(repo, step("review", "sarif"))
    assert done.returncode == 0
    sarif = json.loads((repo / "policyc.sarif").read_text())
    assert sarif["runs"][0]["tool"]["driver"]["name"] == "policyc"
    done = run_step(repo, step("review", "verify"))
    assert done.returncode == 0, done.stdout + done.stderr
    done = run_step(repo, step("review", "diff"))
    assert done.returncode == 0, done.stderr  # exit 1 (access changed) is not a failure
    comment = (repo / "access-diff.md").read_text()
    assert comment.startswith("### policyc: access changes")
    assert "| + gained | `group:qa` | `tag:staging` | `tcp,udp/9000` | 3 |" in comment


def test_failing_steps_fail_the_job(repo: Path) -> None:
    (repo / "assertions.hujson").write_text(
        '{"deny": [{"src": "group:qa", "dst": "tag:staging", "ports": "9000"}]}')
    done = run_step(repo, step("review", "verify"))
    assert done.returncode == 1 and "::error file=assertions.hujson" in done.stdout
    (repo / "policy.hujson").write_text('{"acls": [{"action": "accept", "src": ["group:x"], '
                                        '"dst": ["*:*"]}]}')
    done = run_step(repo, step("review", "check"))
    assert done.returncode == 1 and "::error file=policy.hujson,line=1" in done.stdout
    done = run_step(repo, step("review", "diff"))
    assert done.returncode != 0  # a broken policy is an error (2), not a change


def test_apply_uses_the_etag_of_the_reviewed_base(repo: Path) -> None:
    script = step("apply", "apply")
    etag_line = next(line.strip() for line in script.splitlines() if line.strip().startswith(
        "etag="))
    done = run_step(repo, etag_line + '\necho "$etag"')
    base = git(repo, "show", "HEAD^1:policy.hujson")
    assert done.stdout.strip() == hashlib.sha256(base.encode()).hexdigest()
    commands = main.list_commands(click.Context(main))
    if "apply" not in commands:  # pragma: no cover - lands with the control server
        pytest.skip("policyc apply is not part of this tree yet")
    # Nothing listens on this port: the command line is understood, the network fails (2).
    env_script = "export POLICYC_TOKEN=t POLICYC_SERVER=http://127.0.0.1:9\n" + script
    assert run_step(repo, env_script).returncode == 2


def test_pre_commit_hooks(repo: Path) -> None:
    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    check = hooks["policyc-check"]
    assert not check["pass_filenames"]
    command = f"{check['entry']} policy.hujson --nodes nodes.json"
    assert run_step(repo, command).returncode == 0
    (repo / "policy.hujson").write_text('{"acls": [}')
    assert run_step(repo, command).returncode == 1
    assert hooks["policyc-fmt"]["entry"] == "policyc fmt --check"
    if "fmt" in main.list_commands(click.Context(main)):  # lands with the language server
        formatted = run_step(repo, f"cp {SAMPLES / 'policy.hujson'} p.hujson && "
                                   "policyc fmt p.hujson >/dev/null 2>&1; "
                                   f"{hooks['policyc-fmt']['entry']} p.hujson")
        assert formatted.returncode in (0, 1)
