"""`policyc enforce` as an operator runs it: a subprocess against real interfaces."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import harness
import pytest
from sample_tailnets import SAMPLES, load_inventory

from policyc.compiler.nodes import Inventory

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(harness.requirements_missing() is not None,
                       reason=str(harness.requirements_missing())),
]

NAMES = ("alice-laptop", "prod-db", "frank-laptop")
ROOT = SAMPLES.parent  # run this checkout's policyc, whatever is installed


def inventory_json(inventory: Inventory) -> str:
    return json.dumps({"nodes": [
        {"name": n.name, "user": n.user, "tags": list(n.tags), "ips": [str(ip) for ip in n.ips],
         "key": n.key, "routes": [str(r) for r in n.routes], "exit_node": n.exit_node,
         "endpoint": n.endpoint}
        for n in inventory
    ]})


@pytest.fixture(scope="module")
def mesh() -> Iterator[harness.Mesh]:
    with harness.Mesh.build(load_inventory(), NAMES) as built:
        yield built


def policyc(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run this checkout's policyc (after `prefix`, e.g. a privilege drop)."""
    return subprocess.run([*prefix, sys.executable, "-m", "policyc.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def table(node: harness.MeshNode) -> str:
    return node.run(["nft", "list", "table", "inet", "policyc"]).stdout


@pytest.fixture
def db_args(mesh: harness.Mesh, tmp_path: Path) -> tuple[str, ...]:
    """POLICY --nodes F --node prod-db --netns NS for the mesh's real keys (no --iface)."""
    nodes = tmp_path / "nodes.json"
    nodes.write_text(inventory_json(mesh.inventory))
    return (str(SAMPLES / "policy.hujson"), "--nodes", str(nodes), "--node", "prod-db",
            "--netns", mesh["prod-db"].netns)


def test_enforce_loads_filter_and_exactly_the_visible_peers(
        mesh: harness.Mesh, db_args: tuple[str, ...]) -> None:
    db = mesh["prod-db"]
    done = policyc("enforce", *db_args, "--iface", db.iface)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "table inet policyc" in table(db)
    # Developers reach the database, marketing never does: only alice's key is there.
    assert db.wg_peers() == {mesh["alice-laptop"].public_key}


def test_enforce_on_a_missing_interface_fails_and_keeps_the_ruleset(
        mesh: harness.Mesh, db_args: tuple[str, ...]) -> None:
    db = mesh["prod-db"]
    before = table(db)
    done = policyc("enforce", *db_args, "--iface", "pcnope0")
    assert done.returncode == 1
    assert "N503" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert table(db) == before


def test_enforce_without_net_admin_is_refused_and_keeps_the_ruleset(
        mesh: harness.Mesh, db_args: tuple[str, ...]) -> None:
    """Root without CAP_NET_ADMIN (as in a locked-down container) gets N504."""
    db = mesh["prod-db"]
    before = table(db)
    done = policyc("enforce", *db_args, "--iface", db.iface,
                   prefix=("setpriv", "--bounding-set=-net_admin"))
    assert done.returncode == 1
    assert "N504" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert table(db) == before


def test_drift_is_reported_and_repaired(mesh: harness.Mesh, db_args: tuple[str, ...]) -> None:
    db = mesh["prod-db"]
    common = (*db_args, "--iface", db.iface)
    assert policyc("enforce", *common).returncode == 0
    assert policyc("drift", *common).returncode == 0
    # Someone opens a port by hand, inside our table.
    db.run(["nft", "insert", "rule", "inet", "policyc", "mesh_in", "tcp", "dport", "9999",
            "accept"], check=True)
    drifted = policyc("drift", *common)
    assert drifted.returncode == 1, drifted.stdout + drifted.stderr
    assert "N502" in drifted.stdout
    assert "9999" in drifted.stdout  # names what changed
    repaired = policyc("drift", *common, "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "9999" not in table(db)
    assert policyc("drift", *common).returncode == 0
