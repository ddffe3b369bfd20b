"""`policyc fmt` and `policyc schema` through the command line."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from policyc.cli import main

ROOT = Path(__file__).resolve().parents[1]
UGLY = '{"acls":[{"action":"accept","src":["*"],"dst":["*:*"]}], // keep me\n}'
PRETTY = ('{\n  "acls": [\n    {"action": "accept", "src": ["*"], "dst": ["*:*"]},\n'
          '  ], // keep me\n}\n')


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_fmt_rewrites_in_place_and_keeps_permissions(tmp_path: Path) -> None:
    path = tmp_path / "policy.hujson"
    path.write_text(UGLY)
    path.chmod(0o640)
    code, _, err = run("fmt", str(path))
    assert code == 0 and "1 file(s) reformatted" in err
    assert path.read_text() == PRETTY
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert run("fmt", str(path))[0] == 0
    assert path.read_text() == PRETTY
    assert [p.name for p in tmp_path.iterdir()] == ["policy.hujson"]  # no temp files left


def test_fmt_check_and_diff_change_nothing(tmp_path: Path) -> None:
    ugly, pretty = tmp_path / "ugly.hujson", tmp_path / "pretty.hujson"
    ugly.write_text(UGLY)
    pretty.write_text(PRETTY)
    code, _, err = run("fmt", "--check", str(ugly), str(pretty))
    assert code == 1 and f"would reformat {ugly}" in err and str(pretty) not in err
    assert run("fmt", "--check", str(pretty))[0] == 0
    code, out, _ = run("fmt", "--diff", str(ugly))
    assert code == 1
    assert out.startswith(f"--- {ugly}\t(original)\n+++ {ugly}\t(formatted)\n")
    assert '+  ], // keep me\n' in out
    assert ugly.read_text() == UGLY


def test_fmt_stdin_to_stdout() -> None:
    code, out, _ = run("fmt", "-", stdin=UGLY)
    assert (code, out) == (0, PRETTY)
    assert run("fmt", "--check", "-", stdin=UGLY)[0] == 1
    assert run("fmt", "--check", "-", stdin=PRETTY)[0] == 0


def test_fmt_bad_input_is_a_located_diagnostic(tmp_path: Path) -> None:
    path = tmp_path / "bad.hujson"
    path.write_text('{\n  "acls": [\n}\n')
    code, _, err = run("fmt", str(path))
    assert code == 1
    assert f"{path}:3:1" in err and "P001" in err
    assert path.read_text() == '{\n  "acls": [\n}\n'
    code, _, err = run("fmt", str(tmp_path / "missing.hujson"))
    assert code == 2 and "P006" in err


def test_schema_is_json_schema_2020_12() -> None:
    code, out, _ = run("schema")
    assert code == 0
    schema = json.loads(out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "acls" in schema["properties"]


def test_installed_entry_point_runs_fmt(tmp_path: Path) -> None:
    """The real process, as an editor's format-on-save hook runs it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "policyc.cli", "fmt", "-"], input=UGLY,
                            capture_output=True, text=True, env=env, check=False)
    assert (result.returncode, result.stdout) == (0, PRETTY), result.stderr
