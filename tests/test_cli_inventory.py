"""The CLI's side of inventory validation: the policy cross-check on load, and
`compile -o DIR` never writing outside DIR (names checked on load, paths
checked again before anything is written)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from policyc.cli import main

ROOT = Path(__file__).resolve().parents[1]
POLICY = str(ROOT / "samples" / "policy.hujson")
SAMPLE_NODES = json.loads((ROOT / "samples" / "nodes.json").read_text())["nodes"]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.output, result.exception)
    return result.exit_code, result.output


def write_nodes(path: Path, nodes: list[dict[str, Any]]) -> str:
    path.write_text(json.dumps({"nodes": nodes}, indent=1))
    return str(path)


def test_traversing_name_is_refused_on_load_and_nothing_is_written(tmp_path: Path) -> None:
    evil = {**SAMPLE_NODES[0], "name": "../escape"}
    nodes = write_nodes(tmp_path / "nodes.json", [evil, *SAMPLE_NODES[1:]])
    out = tmp_path / "out"
    code, output = run("compile", POLICY, "--nodes", nodes, "-o", str(out))
    assert code == 1 and "error[I408]" in output and 'did you mean "escape"' in output
    assert not out.exists() and not (tmp_path / "escape.json").exists()


def test_planted_symlink_in_the_output_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere.json"
    (out / "prod-db.json").symlink_to(elsewhere)
    nodes = write_nodes(tmp_path / "nodes.json", SAMPLE_NODES)
    code, output = run("compile", POLICY, "--nodes", nodes, "-o", str(out))
    assert code == 1 and "error[I412]" in output
    assert f"{nodes}:" in output  # located at the node's name in the inventory
    assert not elsewhere.exists()
    assert sorted(p.name for p in out.iterdir()) == ["prod-db.json"]  # nothing written


def test_undefined_tag_warns_and_the_node_compiles_without_it(tmp_path: Path) -> None:
    tagged = [dict(n) for n in SAMPLE_NODES]
    web = next(n for n in tagged if "tag:web" in n["tags"])
    web["tags"] = [*web["tags"], "tag:wbe"]
    nodes = write_nodes(tmp_path / "nodes.json", tagged)
    code, output = run("check", POLICY, "--nodes", nodes)
    assert code == 0, output
    assert "warning[I407]" in output and 'did you mean "tag:web"' in output
    code, output = run("compile", POLICY, "--nodes", nodes, "--node", web["name"])
    assert code == 0 and "warning[I407]" in output


def test_inventory_errors_fail_every_loading_command(tmp_path: Path) -> None:
    ownerless = {**SAMPLE_NODES[0], "user": None, "tags": []}
    nodes = write_nodes(tmp_path / "nodes.json", [ownerless, *SAMPLE_NODES[1:]])
    for command in (["check", POLICY], ["compile", POLICY],
                    ["explain", POLICY, "alice-laptop", "prod-db:22"]):
        code, output = run(*command, "--nodes", nodes)
        assert code == 1 and "error[I406]" in output, command
