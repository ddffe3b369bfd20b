"""Synthetic tailnets for benchmarks: deterministic by seed.

`generate(nodes=1000, groups=200, rules=1000, seed=1)` returns the policy text
(HuJSON) and the inventory as `nodes.json` data. Shape: ~3 nodes per user,
a third of the nodes tagged (50 tags), 1% subnet routers, 0.5% exit nodes,
hosts for the routed subnets, groups of ~10 users, and a rule mix of
group->tag, tag->tag, user->host, group->autogroup:self, *->subnet, and
grants (about one in ten).

    python3 benchmarks/tailnet_gen.py OUTDIR --nodes 1000   # writes both files
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

V4_BASE = int(ipaddress.IPv4Address("100.64.0.0"))
V6_BASE = int(ipaddress.IPv6Address("fd7a:115c:a1e0::"))
PORTS = ["22", "80", "443", "5432", "8080-8090", "3306", "*"]


def _node(i: int, rng: random.Random, users: list[str], tags: list[str]) -> dict[str, Any]:
    tagged = rng.random() < 0.33
    router = i % 100 == 7
    exit_node = i % 200 == 11
    node: dict[str, Any] = {
        "name": f"node-{i}",
        "user": None if tagged or router or exit_node else rng.choice(users),
        "tags": [rng.choice(tags)] if tagged else (["tag:router"] if router else []),
        "ips": [str(ipaddress.IPv4Address(V4_BASE + 1 + i)),
                str(ipaddress.IPv6Address(V6_BASE + 1 + i))],
        "key": f"{i:043d}=",
        "routes": [f"10.{(i // 100) % 256}.{(i // 25600) % 256}.0/24"] if router else [],
        "exit_node": exit_node,
    }
    if exit_node:
        node["tags"] = ["tag:exit"]
    return node


def generate(nodes: int = 1000, groups: int = 200, rules: int = 1000,
             seed: int = 1) -> tuple[str, dict[str, Any]]:
    rng = random.Random(seed)
    users = [f"user{u}@example.com" for u in range(max(1, nodes // 3))]
    tags = [f"tag:t{t}" for t in range(50)]
    inventory = [_node(i, rng, users, tags) for i in range(nodes)]
    group_map = {f"group:g{g}": sorted(rng.sample(users, min(10, len(users))))
                 for g in range(groups)}
    routes = sorted({r for n in inventory for r in n["routes"]})
    hosts = {f"net{k}": r for k, r in enumerate(routes)}
    acls, grants = [], []
    group_names = list(group_map)
    for k in range(rules):
        kind = k % 10
        port = rng.choice(PORTS)
        if kind in (0, 1, 2, 3):
            acls.append({"action": "accept", "src": [rng.choice(group_names)],
                         "dst": [f"{rng.choice(tags)}:{port}"]})
        elif kind in (4, 5):
            acls.append({"action": "accept", "src": [rng.choice(tags)],
                         "dst": [f"{rng.choice(tags)}:{port}", f"{rng.choice(tags)}:22"]})
        elif kind == 6 and hosts:
            acls.append({"action": "accept", "src": [rng.choice(users)],
                         "dst": [f"{rng.choice(list(hosts))}:{port}"]})
        elif kind == 7:
            acls.append({"action": "accept", "src": [rng.choice(group_names)],
                         "dst": [f"autogroup:self:{port}"]})
        elif kind == 8 and hosts and k % 100 == 8:
            acls.append({"action": "accept", "src": ["*"],
                         "dst": [f"{rng.choice(list(hosts))}:443"]})
        else:
            grants.append({"src": [rng.choice(group_names)], "dst": [rng.choice(tags)],
                           "ip": [f"tcp:{port}" if port != "*" else "*"]})
    acls.append({"action": "accept", "src": ["group:g0"], "dst": ["autogroup:internet:*"]})
    policy = {
        "groups": group_map,
        "tagOwners": {t: ["user0@example.com"] for t in [*tags, "tag:router", "tag:exit"]},
        "hosts": hosts,
        "acls": acls,
        "grants": grants,
    }
    return json.dumps(policy, indent=1), {"nodes": inventory}


Generator = Callable[[int, int, int, int], tuple[str, dict[str, Any]]]


def main(make: Generator | None = None, doc: str | None = __doc__) -> None:
    """Write OUTDIR/policy.hujson and OUTDIR/nodes.json (also dense_gen's CLI)."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    policy, inventory = (make or generate)(args.nodes, args.groups, args.rules, args.seed)
    args.outdir.mkdir(parents=True, exist_ok=True)
    (args.outdir / "policy.hujson").write_text(policy)
    (args.outdir / "nodes.json").write_text(json.dumps(inventory, indent=1))


if __name__ == "__main__":
    main()
