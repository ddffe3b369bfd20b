"""Dense synthetic tailnets: most nodes may reach most others, so every peer
list is O(nodes), like Tailscale's default allow-all or large groups reaching
large groups. Deterministic by seed.

`generate(nodes=1000, groups=200, rules=1000, seed=1)` returns the policy text
(HuJSON) and the inventory as `nodes.json` data, like `tailnet_gen.generate`.
Shape: ~2 devices per user, 40% of the nodes tagged (20 tags), 1% subnet
routers, 0.5% exit nodes; groups each hold about half of the users. Rules:
group->tag (40%), tag->tag (25%), group->group (10%), grants group->tag (15%),
autogroup:member->autogroup:self, `*`->tag:443, and one autogroup:internet rule.
With 20 tags each tag is reached by ~40 large groups, so members see every
tagged node, tagged nodes see most tagged nodes and members see most members.

    python3 benchmarks/dense_gen.py OUTDIR --nodes 1000   # writes both files
"""

from __future__ import annotations

import ipaddress
import json
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import tailnet_gen  # the repository root is on sys.path even as a script

V4_BASE = int(ipaddress.IPv4Address("100.64.0.0"))
V6_BASE = int(ipaddress.IPv6Address("fd7a:115c:a1e0::"))
PORTS = ["22", "80", "443", "5432", "8080-8090", "3306", "*"]
TAG_COUNT = 20


def _node(i: int, rng: random.Random, users: list[str], tags: list[str]) -> dict[str, Any]:
    router = i % 100 == 7
    exit_node = i % 200 == 11
    tagged = router or exit_node or rng.random() < 0.4
    node: dict[str, Any] = {
        "name": f"node-{i}",
        "user": None if tagged else rng.choice(users),
        "tags": [rng.choice(tags)] if tagged else [],
        "ips": [str(ipaddress.IPv4Address(V4_BASE + 1 + i)),
                str(ipaddress.IPv6Address(V6_BASE + 1 + i))],
        "key": f"{i:043d}=",
        "routes": [f"10.{(i // 100) % 256}.{(i // 25600) % 256}.0/24"] if router else [],
        "exit_node": exit_node,
    }
    if router:
        node["tags"] = ["tag:router"]
    if exit_node:
        node["tags"] = ["tag:exit"]
    return node


def generate(nodes: int = 1000, groups: int = 200, rules: int = 1000,
             seed: int = 1) -> tuple[str, dict[str, Any]]:
    rng = random.Random(seed)
    users = [f"user{u}@example.com" for u in range(max(1, nodes // 2))]
    tags = [f"tag:t{t}" for t in range(TAG_COUNT)]
    inventory = [_node(i, rng, users, tags) for i in range(nodes)]
    half = max(1, len(users) // 2)
    group_map = {f"group:g{g}": sorted(rng.sample(users, half)) for g in range(groups)}
    group_names = list(group_map)
    acls: list[dict[str, Any]] = []
    grants: list[dict[str, Any]] = []
    for k in range(rules):
        kind = k % 20
        port = rng.choice(PORTS)
        if kind < 8:
            acls.append({"action": "accept", "src": [rng.choice(group_names)],
                         "dst": [f"{rng.choice(tags)}:{port}"]})
        elif kind < 13:
            acls.append({"action": "accept", "src": [rng.choice(tags)],
                         "dst": [f"{rng.choice(tags)}:{port}"]})
        elif kind < 15:
            acls.append({"action": "accept", "src": [rng.choice(group_names)],
                         "dst": [f"{rng.choice(group_names)}:{port}"]})
        elif kind < 18:
            grants.append({"src": [rng.choice(group_names)], "dst": [rng.choice(tags)],
                           "ip": [f"tcp:{port}" if port != "*" else "*"]})
        elif kind == 18:
            acls.append({"action": "accept", "src": ["autogroup:member"],
                         "dst": [f"autogroup:self:{port}"]})
        else:
            acls.append({"action": "accept", "src": ["*"], "dst": [f"{rng.choice(tags)}:443"]})
    acls.append({"action": "accept", "src": ["autogroup:member"],
                 "dst": ["tag:router:*", "autogroup:internet:*"]})
    policy = {
        "groups": group_map,
        "tagOwners": {t: ["user0@example.com"] for t in [*tags, "tag:router", "tag:exit"]},
        "acls": acls,
        "grants": grants,
    }
    return json.dumps(policy, indent=1), {"nodes": inventory}


def main() -> None:
    tailnet_gen.main(generate, __doc__)


if __name__ == "__main__":
    main()
