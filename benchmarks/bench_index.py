"""The compiled-policy index at scale: build, one netmap, node events. Prints a table.

    python3 benchmarks/bench_index.py [--shape dense|today|SHAPE] [--sizes 1000,10000]
                                      [--events 200] [--lookups 50]

SHAPE is one of `dense_shapes.py`'s (allowall, selfmember, grants, v6hosts, ssh).

Each size runs in its own process (peak RSS is ru_maxrss of that process).
Columns: build seconds wall and CPU (policy parsing excluded), one netmap
p50/p99 in ms (random nodes, materialised with their peer lists), node events
p50/p99 in ms wall (a mix of join, leave and retag), their p50/p99 CPU ms, and
peak RSS. An event's time is `apply` plus reading the exact set of changed
netmaps (`Changes.names`) and every changed node's peer delta (peers added,
removed, changed), grouped by delta (`Changes.deltas`: after a join ~9,200 nodes
share one); one record per node (`Changes.changed`), made on demand from the
same delta, is timed after it and printed with the kinds; materialising the
changed netmaps themselves (peer lists, filters: the one-netmap column, per
node) is not in it. `changed` is the mean number of netmaps an event changed. A second
line gives CPU p50/p99 per event kind; the load average is printed with each
row (others share the machine), and the first event's CPU ms (it makes what
events share: the atom matcher, chunked texts). `--events 0` skips events.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import dense_gen, dense_shapes, tailnet_gen
from policyc.compiler.index import NodeAdded, NodeEvent, NodeRemoved, NodeUpdated, PolicyIndex
from policyc.compiler.nodes import Inventory, Node
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.diagnostics.source import SourceFile
from policyc.grammar.hujson import parse
from policyc.policy.build import build_policy
from policyc.policy.model import Policy

V4_BASE = int(ipaddress.IPv4Address("100.64.0.0"))
V6_BASE = int(ipaddress.IPv6Address("fd7a:115c:a1e0::"))


def load(shape: str, nodes: int, rules: int) -> tuple[Policy, Inventory]:
    generate = {"dense": dense_gen.generate, "today": tailnet_gen.generate,
                **dense_shapes.SHAPES}[shape]
    text, data = generate(nodes, 200, rules)
    diags = Diagnostics()
    source = SourceFile("bench.hujson", text)
    policy = build_policy(parse(source, diags), source, diags)
    if policy is None or diags.has_errors:
        raise SystemExit("\n".join(str(d) for d in diags.errors))
    made = [Node(n["name"], n["user"], tuple(n["tags"]),
                 tuple(ipaddress.ip_address(a) for a in n["ips"]), n["key"],
                 tuple(ipaddress.ip_network(r) for r in n["routes"]), n["exit_node"])
            for n in data["nodes"]]
    return policy, Inventory.of(made)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


def event_for(index: PolicyIndex, k: int, rng: random.Random, size: int) -> NodeEvent:
    names = index.names()
    kind = k % 3
    if kind == 0:  # join: a new laptop of an existing user
        n = size + 10 + k
        user = next(node.user for name in names if (node := index.node(name)) and node.user)
        return NodeAdded(Node(f"joined-{k}", user, (), (
            ipaddress.ip_address(V4_BASE + 1 + n), ipaddress.ip_address(V6_BASE + 1 + n)),
            f"{n:043d}="))
    if kind == 1:
        return NodeRemoved(rng.choice(names))
    current = index.node(rng.choice(names))
    assert current is not None
    tags = ("tag:t3",) if current.tags != ("tag:t3",) else ("tag:t4",)
    return NodeUpdated(replace(current, tags=tags))


def run(shape: str, nodes: int, rules: int, events: int, lookups: int) -> str:
    policy, inventory = load(shape, nodes, rules)
    start, cpu = time.perf_counter(), time.process_time()
    index = PolicyIndex.build(policy, inventory)
    build = time.perf_counter() - start
    build_cpu = time.process_time() - cpu
    rng = random.Random(7)
    names = index.names()
    lookup_ms = []
    for name in rng.sample(names, min(lookups, len(names))):
        start = time.perf_counter()
        index.netmap(name)
        lookup_ms.append((time.perf_counter() - start) * 1000)
    event_ms: list[float] = []
    event_cpu: list[float] = []
    by_kind: dict[str, list[float]] = {}
    changed: list[int] = []
    record_cpu: list[float] = []
    for k in range(events):
        event = event_for(index, k, rng, nodes)
        start, cpu = time.perf_counter(), time.process_time()
        changes = index.apply(event)
        names = changes.names  # the exact changed set (the control server reads it)
        deltas = changes.deltas  # and the changed nodes' peer deltas, grouped by delta
        wall = (time.perf_counter() - start) * 1000
        spent = (time.process_time() - cpu) * 1000
        cpu = time.process_time()
        records = changes.changed  # one record per changed node, made on demand
        record_cpu.append((time.process_time() - cpu) * 1000)
        assert len(records) == len(names) == sum(len(d.nodes) for d in deltas)
        event_ms.append(wall)
        event_cpu.append(spent)
        by_kind.setdefault(type(event).__name__, []).append(spent)
        changed.append(len(names))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    l50, l99 = percentiles(lookup_ms)
    if event_ms:
        e50, e99 = percentiles(event_ms)
        c50, c99 = percentiles(event_cpu)
        ev = (f"{e50:>9.1f} | {e99:>9.1f} | {c50:>7.1f} / {c99:.1f} | "
              f"{statistics.mean(changed):>7.0f}")
        kinds = "; ".join(f"{kind} n={len(ms)} p50 {percentiles(ms)[0]:.1f} p99 "
                          f"{percentiles(ms)[1]:.1f}" for kind, ms in sorted(by_kind.items()))
        r50, r99 = percentiles(record_cpu)
        t50, t99 = percentiles([a + b for a, b in zip(event_cpu, record_cpu, strict=True)])
        kinds += (f"; per-node records after it p50 {r50:.1f} p99 {r99:.1f}"
                  f" (event + records p50 {t50:.1f} p99 {t99:.1f}); first event after the"
                  f" build {event_cpu[0]:.1f}")
    else:
        ev = f"{'-':>9} | {'-':>9} | {'-':>7} | {'-':>7}"
        kinds = "-"
    loadavg = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"| {shape:>5} | {nodes:>6} | {rules:>5} | {build:>7.2f} / {build_cpu:.2f} | "
            f"{l50:>8.1f} | {l99:>8.1f} | {len(event_ms):>6} | {ev} | {peak:>8.0f} | {loadavg} |"
            f"\n    per kind (CPU ms): {kinds}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", default="dense",
                        choices=("dense", "today", *dense_shapes.SHAPES))
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--lookups", type=int, default=50)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--no-header", action="store_true")
    args = parser.parse_args()
    if args.one:
        print(run(args.shape, args.one, args.rules, args.events, args.lookups), flush=True)
        return
    if not args.no_header:
        print("| shape |  nodes | rules | build s wall / CPU | netmap p50 ms | p99 ms | events |"
              " event p50 ms | p99 ms | CPU p50 / p99 ms | changed | peak MiB | load |",
              flush=True)
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|", flush=True)
    for n in args.sizes.split(","):
        subprocess.run([sys.executable, __file__, "--one", n, "--shape", args.shape,
                        "--rules", str(args.rules), "--events", str(args.events),
                        "--lookups", str(args.lookups)], check=True)


if __name__ == "__main__":
    main()
