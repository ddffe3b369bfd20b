"""Benchmark: render + apply a large nftables ruleset, then a one-rule change.

Workload: 10,000 distinct source prefixes allowed to tcp/22 and one source
allowed to 1,000 disjoint port ranges, on one node. Needs root; runs in a
network namespace it creates and deletes. Prints a table.

    python3 benchmarks/bench_nft.py [--repeat N]
"""

from __future__ import annotations

import argparse
import functools
import ipaddress
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from policyc.enforcer.nft import apply_ruleset, check_drift, render_ruleset
from policyc.enforcer.nftapply import element_count
from policyc.policy.filtertypes import FilterRule, NetPortRange, NodeNetmap, PortRange

NODE = "100.64.0.10"
IFACE = "wg0"
T = TypeVar("T")


def workload(port_shift: int = 0) -> NodeNetmap:
    base = int(ipaddress.IPv4Address("100.65.0.0"))
    # Every other /32, so no two sources merge into one prefix.
    sources = tuple(str(ipaddress.IPv4Address(base + 2 * i)) for i in range(10_000))
    ssh = FilterRule(sources, (NetPortRange(NODE, PortRange(22, 22)),), (6,))
    ranges = tuple(NetPortRange(NODE, PortRange(1000 + 10 * i + port_shift,
                                                1004 + 10 * i + port_shift))
                   for i in range(1_000))
    app = FilterRule(("100.64.0.20",), ranges, (6,))
    return NodeNetmap("bench", (NODE,), (), (ssh, app))


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_nft: needs root (network namespace + nftables); skipped")
        return 0
    netns = f"pc-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        return run(netns, args.repeat)
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)


def run(netns: str, repeat: int) -> int:
    rows: dict[str, list[float]] = {k: [] for k in (
        "render (10k srcs + 1k port ranges)", "apply + verify, no table yet",
        "render one-rule change", "apply + verify, one-rule change (whole table)",
        "check_drift (read back + compare)")}
    elements = 0
    for index in range(repeat):
        subprocess.run(["ip", "netns", "exec", netns, "nft", "delete", "table", "inet",
                        "policyc"], check=False, capture_output=True)
        seconds, first = timed(lambda: render_ruleset(workload(), IFACE))
        rows["render (10k srcs + 1k port ranges)"].append(seconds)
        elements = element_count(first)
        result = apply_ruleset(first, netns=netns)
        assert result.ok, [str(d) for d in result.diagnostics]
        rows["apply + verify, no table yet"].append(result.seconds)
        shifted = workload(1 + index % 3)
        seconds, changed = timed(functools.partial(render_ruleset, shifted, IFACE))
        rows["render one-rule change"].append(seconds)
        result = apply_ruleset(changed, netns=netns)
        assert result.ok, [str(d) for d in result.diagnostics]
        rows["apply + verify, one-rule change (whole table)"].append(result.seconds)
        seconds, report = timed(functools.partial(check_drift, changed, netns))
        assert report.ok
        rows["check_drift (read back + compare)"].append(seconds)
    print(f"nftables apply benchmark: {elements} set elements, {repeat} runs, "
          f"python {sys.version.split()[0]}")
    print(f"| {'step':<48} | {'median ms':>9} | {'min ms':>8} |")
    print(f"|{'-' * 50}|{'-' * 11}|{'-' * 10}|")
    for name, values in rows.items():
        print(f"| {name:<48} | {statistics.median(values) * 1000:>9.1f} | "
              f"{min(values) * 1000:>8.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
