"""The sample tailnet as the namespace mesh tests build it: nodes, loaders, meshes.

Shared by conftest's fixtures and the test modules (which import it by name:
importing `conftest` would find whichever directory's conftest was loaded first).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import harness

from policyc.compiler.compiler import compile_policy
from policyc.compiler.inventory import load_inventory_file
from policyc.compiler.nodes import Inventory
from policyc.netmap import NodeNetmap
from policyc.policy.load import load_policy_file
from policyc.policy.model import Policy

SAMPLES = Path(__file__).resolve().parents[2] / "samples"

# One node per role the policy distinguishes: dev, sre, qa, marketing, a prod web
# server, the prod database, staging, and the subnet router (its own address only:
# the routed office LAN is tested in test_subnet_router.py).
MESH_NODES = ("alice-laptop", "carol-laptop", "dave-laptop", "frank-laptop",
              "prod-web-1", "prod-db", "staging-api", "office-router")


def load_policy(path: Path = SAMPLES / "policy.hujson") -> Policy:
    policy, diags = load_policy_file(str(path))
    assert policy is not None and not diags.has_errors, [str(d) for d in diags.errors]
    return policy


def load_inventory(path: Path = SAMPLES / "nodes.json") -> Inventory:
    inventory, diags = load_inventory_file(str(path))
    assert inventory is not None and not diags.has_errors, [str(d) for d in diags]
    return inventory


def compile_netmaps(policy: Policy, inventory: Inventory) -> dict[str, NodeNetmap]:
    return dict(compile_policy(policy, inventory).netmaps)


@dataclass
class Tailnet:
    """A built and enforced sample mesh, plus what it was compiled from."""

    mesh: harness.Mesh
    policy: Policy
    netmaps: dict[str, NodeNetmap]

    def enforce(self, name: str, netmap: NodeNetmap | None = None) -> None:
        self.mesh.enforce_node(name, netmap or self.netmaps[name])


# The office LAN behind the sample's subnet router (hosts as in the policy's `hosts`),
# and a small mesh around it: one member per role plus a tagged server, which is no
# member and gets no route to the LAN.
OFFICE_ROUTER = "office-router"
OFFICE_LAN = "198.19.20.0/24"
OFFICE_HOSTS = {"printer": "198.19.20.15", "office-nas": "198.19.20.20"}
OFFICE_NODES = ("alice-laptop", "dave-laptop", "frank-laptop", "carol-laptop", "prod-web-1",
                OFFICE_ROUTER)


@dataclass
class Office(Tailnet):
    """The sample tailnet's office: a mesh plus the LAN behind office-router."""

    lan: harness.LanHosts
