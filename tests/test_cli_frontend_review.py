"""Front-end review regressions for the CLI: no traceback, DESIGN.md exit codes."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from policyc.cli import main

ROOT = Path(__file__).resolve().parents[1]
POLICY = str(ROOT / "samples" / "policy.hujson")
NODES = str(ROOT / "samples" / "nodes.json")


def run(*args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(main, list(args))
    unexpected = None if isinstance(result.exception, SystemExit) else result.exception
    return result.exit_code, result.output, unexpected


def test_compile_output_that_is_not_a_directory_is_an_io_error() -> None:
    code, out, exc = run("compile", POLICY, "--nodes", NODES, "-o", "/dev/null")
    assert exc is None, exc
    assert code == 2
    assert "P006" in out


def test_compile_output_under_a_missing_parent_that_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, out, exc = run("compile", POLICY, "--nodes", NODES, "-o", str(blocker / "sub"))
    assert exc is None, exc
    assert code == 2
    assert "P006" in out
