"""Compile every netmap of synthetic tailnets and print a table.

    python3 benchmarks/bench_compile.py [--sizes 1000,10000] [--profile]

Columns: nodes, rules, compile seconds (parse/build excluded), peak RSS of
the process (each size runs in its own process; ru_maxrss), and output size:
FilterRules, DstPorts+CapGrant entries and peer entries summed over all nodes.
"""

from __future__ import annotations

import argparse
import cProfile
import ipaddress
import pstats
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.tailnet_gen import generate
from policyc.compiler.compiler import CompiledPolicy, compile_policy
from policyc.compiler.nodes import Inventory, Node
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.diagnostics.source import SourceFile
from policyc.grammar.hujson import parse
from policyc.policy.build import build_policy
from policyc.policy.model import Policy


def load(nodes: int, groups: int, rules: int) -> tuple[Policy, Inventory]:
    text, data = generate(nodes, groups, rules)
    diags = Diagnostics()
    source = SourceFile("bench.hujson", text)
    policy = build_policy(parse(source, diags), source, diags)
    if diags.has_errors:
        raise SystemExit("\n".join(str(d) for d in diags.errors))
    return policy, Inventory.of([_node(n) for n in data["nodes"]])


def _node(n: dict[str, Any]) -> Node:
    return Node(n["name"], n["user"], tuple(n["tags"]),
                tuple(ipaddress.ip_address(a) for a in n["ips"]), n["key"],
                tuple(ipaddress.ip_network(r) for r in n["routes"]), n["exit_node"])


def sizes(compiled: CompiledPolicy) -> tuple[int, int, int]:
    maps = compiled.netmaps.values()
    rules = sum(len(m.packet_filter) for m in maps)
    entries = sum(len(r.dst_ports) + len(r.cap_grant) for m in maps for r in m.packet_filter)
    peers = sum(len(m.peers) for m in maps)
    return rules, entries, peers


def run(nodes: int, groups: int, rules: int, profile: bool) -> str:
    policy, inventory = load(nodes, groups, rules)
    start = time.perf_counter()
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    compiled = compile_policy(policy, inventory)
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    r, e, p = sizes(compiled)
    mib = peak / 2**20
    return f"| {nodes:>6} | {rules:>5} | {seconds:>7.2f} | {mib:>8.0f} | {r:>9} | {e:>9} | {p:>9} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(run(args.one, args.groups, args.rules, args.profile), flush=True)
        return
    print("|  nodes | rules | seconds | peak MiB |  filters  |  entries  |   peers   |",
          flush=True)
    print("|-------:|------:|--------:|---------:|----------:|----------:|----------:|")
    for n in args.sizes.split(","):
        command = [sys.executable, __file__, "--one", n, "--groups", str(args.groups),
                   "--rules", str(args.rules)] + (["--profile"] if args.profile else [])
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
