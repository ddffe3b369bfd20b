"""The CLI contract: commands, outputs and exit codes (DESIGN.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from policyc.cli import main

ROOT = Path(__file__).resolve().parents[1]
POLICY = str(ROOT / "samples" / "policy.hujson")
NODES = str(ROOT / "samples" / "nodes.json")


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.output, result.exception)
    return result.exit_code, result.output


def test_check_samples_passes() -> None:
    code, out = run("check", POLICY, "--nodes", NODES)
    assert code == 0, out
    assert "ok" in out


def test_check_samples_without_inventory_passes() -> None:
    code, out = run("check", POLICY)
    assert code == 0, out


def test_check_reports_located_error_with_code(tmp_path: Path) -> None:
    bad = tmp_path / "bad.hujson"
    bad.write_text('{\n  "groups": {"group:dev": ["a@x.com"]},\n'
                   '  "acls": [{"action": "accept", "src": ["group:devz"], "dst": ["*:*"]}],\n}\n')
    code, out = run("check", str(bad))
    assert code == 1
    assert f"{bad}:3:" in out
    assert "E104" in out
    assert "group:dev" in out  # did-you-mean


def test_check_json_format_is_machine_readable(tmp_path: Path) -> None:
    bad = tmp_path / "bad.hujson"
    bad.write_text('{"acls": [{"action": "deny", "src": ["*"], "dst": ["*:*"]}]}')
    code, out = run("check", str(bad), "--format", "json")
    assert code == 1
    items = json.loads(out)
    assert [d["code"] for d in items] == ["E115"]
    assert items[0]["line"] == 1


def test_check_syntax_error_is_located(tmp_path: Path) -> None:
    bad = tmp_path / "bad.hujson"
    bad.write_text('{"acls": [\n  {"action": "accept" "src": ["*"]},\n]}')
    code, out = run("check", str(bad))
    assert code == 1
    assert f"{bad}:2:" in out and "P001" in out
    assert "Traceback" not in out


def test_check_missing_file_is_usage_error(tmp_path: Path) -> None:
    code, out = run("check", str(tmp_path / "nope.hujson"))
    assert code == 2
    assert "P006" in out


def test_check_failing_policy_test_exits_1(tmp_path: Path) -> None:
    policy = tmp_path / "p.hujson"
    policy.write_text("""{
      "tagOwners": {"tag:web": [], "tag:db": []},
      "acls": [{"action": "accept", "src": ["tag:web"], "dst": ["tag:db:5432"]}],
      "tests": [{"src": "tag:web", "accept": ["tag:db:22"]}],
    }""")
    code, out = run("check", str(policy))
    assert code == 1
    assert "T301" in out


def test_compile_one_node_emits_netmap() -> None:
    code, out = run("compile", POLICY, "--nodes", NODES, "--node", "prod-db")
    assert code == 0, out
    netmap = json.loads(out)
    assert netmap["node"] == "prod-db"
    peers = {p["name"] for p in netmap["peers"]}
    assert "prod-web-1" in peers  # web front ends reach the database
    assert "frank-laptop" not in peers  # marketing never reaches it
    assert netmap["packet_filter"]


def test_compile_to_directory(tmp_path: Path) -> None:
    code, _ = run("compile", POLICY, "--nodes", NODES, "-o", str(tmp_path / "out"))
    assert code == 0
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(files) == 20 and "prod-db.json" in files


def test_compile_unknown_node_is_usage_error() -> None:
    code, out = run("compile", POLICY, "--nodes", NODES, "--node", "nope")
    assert code == 2
    assert "nope" in out


def test_compile_requires_nodes() -> None:
    code, _ = run("compile", POLICY)
    assert code == 2


def test_compile_bad_inventory_is_located(tmp_path: Path) -> None:
    nodes = tmp_path / "nodes.json"
    nodes.write_text('{"nodes": [{"name": "a", "ips": ["100.64.0.300"]}]}')
    code, out = run("compile", POLICY, "--nodes", str(nodes))
    assert code == 1
    assert f"{nodes}:1:" in out


@pytest.mark.parametrize(("src", "dst", "allowed"), [
    ("alice-laptop", "prod-db:22", True),
    ("frank-laptop", "prod-db:5432", False),
    ("group:qa", "tag:staging:8080", True),
    ("100.64.0.15", "prod-web-1:443", False),
])
def test_explain_exit_code_follows_verdict(src: str, dst: str, allowed: bool) -> None:
    code, out = run("explain", POLICY, "--nodes", NODES, src, dst)
    assert code == (0 if allowed else 1), out
    if allowed:
        assert "policy.hujson:" in out  # names the deciding rule with file:line


def test_nft_dry_run_prints_table() -> None:
    code, out = run("nft", POLICY, "--nodes", NODES, "--node", "prod-db")
    assert code == 0, out
    assert "table inet policyc" in out


def test_nft_json_is_nftables_json() -> None:
    code, out = run("nft", POLICY, "--nodes", NODES, "--node", "prod-db", "--json")
    assert code == 0, out
    assert "nftables" in json.loads(out)


def test_codes_lists_registry() -> None:
    code, out = run("codes")
    assert code == 0 and "E104" in out and "undefined-group" in out


def test_subprocess_exit_codes(tmp_path: Path) -> None:
    """The installed entry point behaves like the click runner."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ok = subprocess.run([sys.executable, "-m", "policyc.cli", "check", POLICY, "--nodes", NODES],
                        capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    missing = subprocess.run([sys.executable, "-m", "policyc.cli", "check", str(tmp_path / "x")],
                             capture_output=True, text=True, env=env, timeout=120)
    assert missing.returncode == 2
    assert "Traceback" not in missing.stderr
    usage = subprocess.run([sys.executable, "-m", "policyc.cli", "explain"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert usage.returncode == 2


def test_diagnostics_doc_lists_every_code() -> None:
    """docs/diagnostics.md is generated by `policyc codes --markdown`; keep it in sync."""
    _, table = run("codes", "--markdown")
    doc = (ROOT / "docs" / "diagnostics.md").read_text()
    assert table.strip() in doc, "regenerate docs/diagnostics.md with `policyc codes --markdown`"


def test_other_commands_sum_up_warnings_beyond_the_first_ten(tmp_path: Path) -> None:
    """A generated policy with many unused groups: `compile` shows ten warnings and
    the count of the rest; `check` lists every one."""
    unused = ", ".join(f'"group:unused{i:02}": ["alice@example.com"]' for i in range(12))
    policy = tmp_path / "policy.hujson"
    policy.write_text('{"groups": {' + unused + '}, "acls": [{"action": "accept", '
                      '"src": ["*"], "dst": ["*:*"]}]}')
    nodes = tmp_path / "nodes.json"
    key = "xJVpj8liGM4acekGcKI/3Xf+13b/nwrG71I18lqz+DQ="
    nodes.write_text(json.dumps({"nodes": [{"name": "a", "user": "alice@example.com",
                                            "ips": ["100.64.0.1"], "key": key}]}))
    compiled = CliRunner().invoke(main, ["compile", str(policy), "--nodes", str(nodes)])
    assert compiled.exit_code == 0, compiled.output
    assert compiled.stderr.count("warning[W202]") == 10
    assert "2 more warning(s) not shown; `policyc check` lists them all" in compiled.stderr
    assert "unused00" in compiled.stderr and "unused11" not in compiled.stderr
    checked = CliRunner().invoke(main, ["check", str(policy)])
    assert checked.output.count("warning[W202]") == 12
