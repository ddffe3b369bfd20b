"""Machine output: orjson's compact encoding carries exactly the wire JSON, and
`--pretty` gives the indented form json.dumps(indent=2) would."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from policyc.cli import main
from policyc.cli.output import netmap_bytes
from policyc.compiler import compile_policy, load_inventory_file
from policyc.policy.load import load_policy_file

ROOT = Path(__file__).resolve().parents[1]
POLICY = str(ROOT / "samples" / "policy.hujson")
NODES = str(ROOT / "samples" / "nodes.json")


def compiled_json() -> dict[str, object]:
    policy, _ = load_policy_file(POLICY)
    inventory, _ = load_inventory_file(NODES)
    assert policy is not None and inventory is not None
    return {n: m.to_json() for n, m in compile_policy(policy, inventory).netmaps.items()}


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_fast_encoding_is_the_wire_json() -> None:
    policy, _ = load_policy_file(POLICY)
    inventory, _ = load_inventory_file(NODES)
    assert policy is not None and inventory is not None
    for netmap in compile_policy(policy, inventory).netmaps.values():
        assert json.loads(netmap_bytes(netmap, pretty=False)) == netmap.to_json()
        text = netmap_bytes(netmap, pretty=True).decode()
        assert text == json.dumps(netmap.to_json(), indent=2)


def test_compile_prints_compact_json_when_piped() -> None:
    code, out = run("compile", POLICY, "--nodes", NODES)
    assert code == 0
    assert out.count("\n") == 1  # one line: compact
    assert json.loads(out) == compiled_json()


def test_compile_pretty_is_indented_like_json_dumps() -> None:
    code, out = run("compile", POLICY, "--nodes", NODES, "--pretty")
    assert code == 0
    assert out == json.dumps(compiled_json(), indent=2) + "\n"
    code, one = run("compile", POLICY, "--nodes", NODES, "--node", "prod-db", "--pretty")
    assert one == json.dumps(compiled_json()["prod-db"], indent=2) + "\n"


def test_compile_to_directory_writes_each_netmap(tmp_path: Path) -> None:
    code, out = run("compile", POLICY, "--nodes", NODES, "-o", str(tmp_path))
    assert code == 0
    assert "netmaps" not in out.split("wrote")[0]  # no progress bar when not a terminal
    expected = compiled_json()
    written = {p.stem: json.loads(p.read_text()) for p in tmp_path.iterdir()}
    assert written == expected


def test_nft_json_compact_and_pretty_agree() -> None:
    code, compact = run("nft", POLICY, "--nodes", NODES, "--node", "prod-db", "--json")
    assert code == 0 and compact.count("\n") == 1
    code, pretty = run("nft", POLICY, "--nodes", NODES, "--node", "prod-db", "--json",
                       "--pretty")
    assert json.loads(compact) == json.loads(pretty)
    assert pretty == json.dumps(json.loads(compact), indent=2) + "\n"
