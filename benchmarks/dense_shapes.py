"""Other dense tailnet shapes than `dense_gen.py`'s: the product meets tailnets we
have not seen, where most nodes see most others in other ways. Deterministic by seed.

Each shape is `generate(nodes, groups, rules, seed) -> (policy text, nodes.json data)`,
like `dense_gen.generate`; `SHAPES` names them. Every shape has the tags `tag:t0..`
(so `bench_index.py`'s retags work), users with devices, and the address plan of
`dense_gen` (100.64.0.0/10 and fd7a:115c:a1e0::/48 by node number).

- `allowall`: Tailscale's default policy: `*` -> `*:*` and the default SSH
  `check` of autogroup:member -> autogroup:self as autogroup:nonroot or root.
- `selfmember`: ~4 devices per user, nodes with 1-3 tags; rules from
  autogroup:member, autogroup:tagged, groups and users to autogroup:self,
  autogroup:member, tags and users.
- `grants`: grants only: `ip` to tags and members, 5% subnet routers (2-4 routes,
  every route served by two routers), `via` tags to route subsets, 2% exit nodes
  with autogroup:internet via them, `app` capabilities, autoApprovers.
- `v6hosts`: a third of the nodes IPv6-only; 400 `hosts` (v4/v6 addresses and
  CIDRs) and 80 `ipsets` (add/remove) as sources and destinations beside groups.
- `ssh`: ACLs reaching most nodes on 22 and a few ports, plus `rules` SSH rules
  (check with checkPeriod, autogroup:nonroot, users, tags, autogroup:self; one
  in 50 with `localpart:*@example.com`, which gives each destination one rule per
  source user: with it in 40% of the rules a 1k event took minutes, see
  docs/performance.md).

    python3 benchmarks/dense_shapes.py OUTDIR --shape grants --nodes 1000
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

V4_BASE = int(ipaddress.IPv4Address("100.64.0.0"))
V6_BASE = int(ipaddress.IPv6Address("fd7a:115c:a1e0::"))
PORTS = ["22", "80", "443", "5432", "8080-8090", "3306", "*"]
TAG_COUNT = 20
Data = tuple[str, dict[str, Any]]


def _ips(i: int, v6_only: bool = False) -> list[str]:
    v6 = str(ipaddress.IPv6Address(V6_BASE + 1 + i))
    return [v6] if v6_only else [str(ipaddress.IPv4Address(V4_BASE + 1 + i)), v6]


def _users(nodes: int, per_user: int) -> list[str]:
    return [f"user{u}@example.com" for u in range(max(1, nodes // per_user))]


def _tags() -> list[str]:
    return [f"tag:t{t}" for t in range(TAG_COUNT)]


def _owners(tags: list[str]) -> dict[str, list[str]]:
    return {t: ["user0@example.com"] for t in tags}


def _groups(rng: random.Random, users: list[str], groups: int,
            share: float) -> dict[str, list[str]]:
    size = max(1, int(len(users) * share))
    return {f"group:g{g}": sorted(rng.sample(users, size)) for g in range(groups)}


def _device(i: int, user: str | None, tags: list[str], **extra: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"name": f"node-{i}", "user": user, "tags": tags,
                            "ips": extra.pop("ips", _ips(i)), "key": f"{i:043d}=",
                            "routes": extra.pop("routes", []),
                            "exit_node": extra.pop("exit_node", False)}
    return node


def _plain_inventory(rng: random.Random, nodes: int, users: list[str],
                     tags: list[str], tagged_share: float) -> list[dict[str, Any]]:
    """Users' devices in order (user k owns a run of devices) and tagged servers."""
    out = []
    for i in range(nodes):
        if rng.random() < tagged_share:
            out.append(_device(i, None, [rng.choice(tags)]))
        else:
            out.append(_device(i, users[(i * len(users)) // nodes], []))
    return out


def allowall(nodes: int = 1000, groups: int = 20, rules: int = 0, seed: int = 1) -> Data:
    rng = random.Random(seed)
    users, tags = _users(nodes, 2), _tags()
    inventory = _plain_inventory(rng, nodes, users, tags, 0.3)
    policy = {
        "groups": _groups(rng, users, groups, 0.1),
        "tagOwners": _owners(tags),
        "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
        "ssh": [{"action": "check", "src": ["autogroup:member"], "dst": ["autogroup:self"],
                 "users": ["autogroup:nonroot", "root"]}],
    }
    return json.dumps(policy, indent=1), {"nodes": inventory}


def selfmember(nodes: int = 1000, groups: int = 200, rules: int = 1000, seed: int = 1) -> Data:
    rng = random.Random(seed)
    users, tags = _users(nodes, 4), _tags()
    inventory = []
    for i in range(nodes):
        if rng.random() < 0.25:
            inventory.append(_device(i, None, sorted(rng.sample(tags, rng.randint(1, 3)))))
        else:
            inventory.append(_device(i, rng.choice(users), []))
    group_map = _groups(rng, users, groups, 0.3)
    names = list(group_map)
    srcs: list[Callable[[], str]] = [
        lambda: "autogroup:member", lambda: "autogroup:tagged", lambda: rng.choice(names),
        lambda: rng.choice(users), lambda: rng.choice(tags)]
    dsts: list[Callable[[], str]] = [
        lambda: "autogroup:self", lambda: "autogroup:member", lambda: rng.choice(tags),
        lambda: "autogroup:tagged", lambda: rng.choice(users), lambda: rng.choice(names)]
    acls = []
    for k in range(rules):
        src = srcs[k % len(srcs)]()
        dst = dsts[(k // len(srcs)) % len(dsts)]()
        if dst == "autogroup:self" and (src.startswith("tag:") or src == "autogroup:tagged"):
            dst = rng.choice(tags)  # a tagged device has no self
        acls.append({"action": "accept", "src": [src], "dst": [f"{dst}:{rng.choice(PORTS)}"]})
    policy = {"groups": group_map, "tagOwners": _owners(tags), "acls": acls,
              "ssh": [{"action": "accept", "src": ["autogroup:member"],
                       "dst": ["autogroup:self"], "users": ["autogroup:nonroot"]}]}
    return json.dumps(policy, indent=1), {"nodes": inventory}


def _route(r: int) -> str:
    return f"10.{(r // 256) % 256}.{r % 256}.0/24"


def grants(nodes: int = 1000, groups: int = 200, rules: int = 1000, seed: int = 1) -> Data:
    rng = random.Random(seed)
    users, tags = _users(nodes, 2), _tags()
    vias = [f"tag:via{v}" for v in range(10)]
    route_count = max(2, nodes // 10)
    inventory = []
    for i in range(nodes):
        if i % 20 == 3:  # a subnet router: routes served by two routers each
            k = i // 20
            routes = sorted({_route((k * 3 + j) % route_count) for j in range(rng.randint(2, 4))})
            inventory.append(_device(i, None, ["tag:router", vias[k % len(vias)]],
                                     routes=routes))
        elif i % 50 == 7:
            inventory.append(_device(i, None, ["tag:exit"], exit_node=True))
        elif rng.random() < 0.3:
            inventory.append(_device(i, None, [rng.choice(tags)]))
        else:
            inventory.append(_device(i, rng.choice(users), []))
    group_map = _groups(rng, users, groups, 0.4)
    names = list(group_map)
    out: list[dict[str, Any]] = []
    for k in range(rules):
        kind = k % 10
        ip = [rng.choice(["tcp:443", "tcp:22", "udp:53", "*", "tcp:8000-8999", "icmp:*"])]
        if kind < 3:
            out.append({"src": [rng.choice(names)], "dst": [rng.choice(tags)], "ip": ip})
        elif kind < 5:
            out.append({"src": [rng.choice(tags)], "dst": [rng.choice(tags), "autogroup:member"],
                        "ip": ip})
        elif kind < 7:
            out.append({"src": [rng.choice(names)], "dst": [_route(rng.randrange(route_count))],
                        "ip": ip, "via": [rng.choice(vias)]})
        elif kind == 7:
            out.append({"src": ["autogroup:member"], "dst": [_route(rng.randrange(route_count))],
                        "ip": ip})
        elif kind == 8:
            out.append({"src": [rng.choice(names)], "dst": ["autogroup:internet"], "ip": ["*"],
                        "via": ["tag:exit"]})
        else:
            out.append({"src": [rng.choice(names)], "dst": [rng.choice(tags)], "ip": ip,
                        "app": {"example.com/cap/web": [{"role": f"r{k % 7}"}]}})
    out.append({"src": ["autogroup:member"], "dst": ["autogroup:self"], "ip": ["*"]})
    out.append({"src": ["*"], "dst": ["tag:router"], "ip": ["icmp:*"]})
    # A team named only by via grants (no other rule keeps its set).
    team = min(len(users), max(6, len(users) // 20))
    group_map["group:netops"] = sorted(rng.sample(users, team))
    out.append({"src": ["group:netops"], "dst": ["10.0.0.0/8"], "ip": ["tcp:22", "icmp:*"],
                "via": [vias[0], vias[1]]})
    all_tags = [*tags, *vias, "tag:router", "tag:exit"]
    policy = {"groups": group_map, "tagOwners": _owners(all_tags), "grants": out,
              "autoApprovers": {"routes": {"10.0.0.0/8": ["tag:router"]},
                                "exitNode": ["tag:exit"]}}
    return json.dumps(policy, indent=1), {"nodes": inventory}


def _host_value(rng: random.Random, h: int) -> str:
    kind = h % 4
    if kind == 0:
        return str(ipaddress.IPv4Address(int(ipaddress.IPv4Address("192.168.0.0")) + h * 7))
    if kind == 1:
        return f"172.{16 + h % 16}.{h % 256}.0/24"
    if kind == 2:
        return f"fd00:{h:x}::/64"
    return str(ipaddress.IPv6Address(V6_BASE + 1 + rng.randrange(1 << 16)))


def v6hosts(nodes: int = 1000, groups: int = 200, rules: int = 1000, seed: int = 1) -> Data:
    rng = random.Random(seed)
    users, tags = _users(nodes, 3), _tags()
    inventory = []
    for i in range(nodes):
        v6_only = i % 3 == 1
        if rng.random() < 0.35:
            inventory.append(_device(i, None, [rng.choice(tags)], ips=_ips(i, v6_only)))
        else:
            inventory.append(_device(i, rng.choice(users), [], ips=_ips(i, v6_only)))
    hosts = {f"h{h}": _host_value(rng, h) for h in range(400)}
    hosts.update({f"n{i}": _ips(i)[-1] for i in range(0, nodes, max(1, nodes // 100))})
    host_names = list(hosts)
    ipsets = {}
    for s in range(80):
        entries = [rng.choice(host_names) for _ in range(rng.randint(2, 6))]
        entries.append(f"fd7a:115c:a1e0::{s:x}00/120")
        entries.append("100.64.0.0/12" if s % 2 else "fd7a:115c:a1e0::/64")
        ops = [f"add {e}" if k % 2 else e for k, e in enumerate(entries)]
        ops.append(f"remove {rng.choice(host_names)}")
        ipsets[f"ipset:s{s}"] = ops
    set_names = list(ipsets)
    group_map = _groups(rng, users, groups, 0.4)
    names = list(group_map)
    picks: list[Callable[[], str]] = [
        lambda: rng.choice(names), lambda: rng.choice(tags), lambda: rng.choice(host_names),
        lambda: rng.choice(set_names), lambda: "autogroup:member"]
    acls = []
    for k in range(rules):
        src = picks[k % len(picks)]()
        dst = picks[(k // len(picks) + 1) % len(picks)]()
        if dst == "autogroup:member" and k % 2:
            dst = rng.choice(tags)
        acls.append({"action": "accept", "src": [src], "dst": [f"{dst}:{rng.choice(PORTS)}"]})
    policy = {"groups": group_map, "tagOwners": _owners(tags), "hosts": hosts,
              "ipsets": ipsets, "acls": acls}
    return json.dumps(policy, indent=1), {"nodes": inventory}


def ssh(nodes: int = 1000, groups: int = 200, rules: int = 1000, seed: int = 1) -> Data:
    rng = random.Random(seed)
    users, tags = _users(nodes, 2), _tags()
    inventory = _plain_inventory(rng, nodes, users, tags, 0.4)
    group_map = _groups(rng, users, groups, 0.5)
    names = list(group_map)
    acls: list[dict[str, Any]] = [
        {"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]},
        {"action": "accept", "src": ["autogroup:member", "autogroup:tagged"],
         "dst": ["autogroup:tagged:22,443"]},
        {"action": "accept", "src": [rng.choice(names)], "dst": ["autogroup:member:22"]},
    ]
    logins = ["root", "ubuntu", "deploy", "autogroup:nonroot", "postgres"]
    rules_out = []
    for k in range(rules):
        kind = k % 6
        users_of = sorted(set(rng.sample(logins, rng.randint(1, 3))))
        if k % 50 == 1:  # a few rules map each source user to its own login
            users_of.append("localpart:*@example.com")
        rule: dict[str, Any] = {"action": "check" if k % 3 == 0 else "accept",
                                "users": users_of}
        if rule["action"] == "check":
            rule["checkPeriod"] = rng.choice(["12h", "1h", "always", "168h"])
        if kind == 0:
            rule.update(src=[rng.choice(names)], dst=[rng.choice(tags)])
        elif kind == 1:
            rule.update(src=["autogroup:member"], dst=["autogroup:self"])
        elif kind == 2:
            rule.update(src=[rng.choice(tags)], dst=[rng.choice(tags), "autogroup:tagged"])
        elif kind == 3:
            rule.update(src=[rng.choice(names), rng.choice(names)], dst=["autogroup:member"])
        elif kind == 4:
            user = rng.choice(users)
            rule.update(src=[user], dst=[user])
        else:
            rule.update(src=["autogroup:member"], dst=[rng.choice(tags)],
                        acceptEnv=["GIT_*", "LANG"])
        rules_out.append(rule)
    policy = {"groups": group_map, "tagOwners": _owners(tags), "acls": acls, "ssh": rules_out}
    return json.dumps(policy, indent=1), {"nodes": inventory}


Generator = Callable[[int, int, int, int], Data]
SHAPES: dict[str, Generator] = {
    "allowall": allowall, "selfmember": selfmember, "grants": grants,
    "v6hosts": v6hosts, "ssh": ssh,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--shape", choices=sorted(SHAPES), required=True)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    policy, inventory = SHAPES[args.shape](args.nodes, args.groups, args.rules, args.seed)
    args.outdir.mkdir(parents=True, exist_ok=True)
    (args.outdir / "policy.hujson").write_text(policy)
    (args.outdir / "nodes.json").write_text(json.dumps(inventory, indent=1))


if __name__ == "__main__":
    main()
