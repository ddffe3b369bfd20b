"""Benchmark: render + apply a large nftables ruleset, then a one-rule change.

Workload (the S x P case from the issue, at full size): one FilterRule with
10,000 disjoint source prefixes allowed to 1,000 disjoint tcp port ranges on
one node, plus a second rule (one admin source to tcp/22 and udp/53). The
one-rule change shifts the big rule's 1,000 ranges by a port. Needs root;
runs in a network namespace it creates and deletes. Prints a table.

    python3 benchmarks/bench_nft.py [--repeat N] [--prefixes 10000] [--ranges 1000]
        [--classes 100 1000]

It also loads N rules that each have their own sources (N source classes),
the layout's expensive shape before small classes went direct:

    --classes N ...       one source /31 to one port per rule: direct elements
    --wide-classes N ...  20 sources to one port per rule (a class chain of
                          plain rules) and 3 sources to 10 ports per rule (a
                          class chain with a named set): the shapes that still
                          cost a chain, and a set, per class
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
from typing import Any, TypeVar

from policyc.enforcer.nft import apply_ruleset, check_drift, render_ruleset
from policyc.enforcer.nftapply import element_count, layout_counts
from policyc.netmap import FilterRule, NetPortRange, NodeNetmap, PortRange

NODE = "100.64.0.10"
IFACE = "wg0"
T = TypeVar("T")


def workload(prefixes: int, ranges: int, port_shift: int = 0) -> NodeNetmap:
    base = int(ipaddress.IPv4Address("100.65.0.0"))
    # Disjoint, non-adjacent /31s, so no two sources merge into one prefix.
    sources = tuple(f"{ipaddress.IPv4Address(base + 4 * i)}/31" for i in range(prefixes))
    ports = tuple(NetPortRange(NODE, PortRange(1000 + 20 * i + port_shift,
                                               1009 + 20 * i + port_shift))
                  for i in range(ranges))
    big = FilterRule(sources, ports, (6,))
    admin = FilterRule(("100.64.0.20",), (NetPortRange(NODE, PortRange(22, 22)),
                                          NetPortRange(NODE, PortRange(53, 53))), (6, 17))
    return NodeNetmap("bench", (NODE,), (), (big, admin))


def many_classes(count: int, sources: int = 1, ports: int = 1) -> NodeNetmap:
    """`count` rules, each `sources` distinct source /31s to `ports` distinct
    tcp ports: `count` classes.

    With one source and one port, the shape where a class chain per class
    costs the most and the S x P product costs nothing.
    """
    base = int(ipaddress.IPv4Address("100.65.0.0"))
    return NodeNetmap("bench", (NODE,), (), tuple(
        FilterRule(tuple(f"{ipaddress.IPv4Address(base + 4 * (i * sources + j))}/31"
                         for j in range(sources)),
                   tuple(NetPortRange(NODE, PortRange(1000 + 2 * (i * ports + k),
                                                      1000 + 2 * (i * ports + k)))
                         for k in range(ports)), (6,))
        for i in range(count)))


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--prefixes", type=int, default=10_000)
    parser.add_argument("--ranges", type=int, default=1_000)
    parser.add_argument("--classes", type=int, nargs="*", default=[100, 1_000],
                        help="also render + apply N single-source rules (N classes)")
    parser.add_argument("--wide-classes", type=int, nargs="*", default=[],
                        help="also N rules of 20 sources x 1 port and of 3 sources x 10 ports")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_nft: needs root (network namespace + nftables); skipped")
        return 0
    netns = f"pc-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        shapes = [(f"{n} single-source rules", many_classes(n)) for n in args.classes]
        for n in args.wide_classes:
            shapes += [(f"{n} rules of 20 srcs x 1 port", many_classes(n, 20, 1)),
                       (f"{n} rules of 3 srcs x 10 ports", many_classes(n, 3, 10))]
        return run(netns, args.repeat, args.prefixes, args.ranges, shapes)
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)


def layout(ruleset: dict[str, Any]) -> str:
    """Element counts per set/map, largest first, then the object totals."""
    sizes = sorted(((len(body.get("elem", ())), body["name"]) for c in ruleset["nftables"]
                    for kind, body in c.get("add", {}).items() if kind in ("set", "map")),
                   reverse=True)
    totals = ", ".join(f"{count} {kind}" for kind, count in layout_counts(ruleset).items())
    return ", ".join(f"{name} {count}" for count, name in sizes if count) + f"; {totals}"


def run(netns: str, repeat: int, prefixes: int, ranges: int,
        classes: list[tuple[str, NodeNetmap]]) -> int:
    size = f"{prefixes // 1000}k srcs x {ranges // 1000 or ranges}{'k' if ranges >= 1000 else ''}"
    rows: dict[str, list[float]] = {k: [] for k in (
        f"render ({size} port ranges)", "apply + verify, no table yet",
        "render one-rule change", "apply + verify, one-rule change (whole table)",
        "check_drift (read back + compare)")}
    names = list(rows)
    for label, _netmap in classes:
        rows[f"render, {label}"] = []
        rows[f"apply + verify, {label}"] = []
    first: dict[str, Any] = {}
    shapes: dict[str, str] = {}
    for index in range(repeat):
        subprocess.run(["ip", "netns", "exec", netns, "nft", "delete", "table", "inet",
                        "policyc"], check=False, capture_output=True)
        seconds, first = timed(functools.partial(render_ruleset,
                                                 workload(prefixes, ranges), IFACE))
        rows[names[0]].append(seconds)
        result = apply_ruleset(first, netns=netns)
        assert result.ok and result.verified, [str(d) for d in result.diagnostics]
        rows[names[1]].append(result.seconds)
        shifted = workload(prefixes, ranges, 1 + index % 3)
        seconds, changed = timed(functools.partial(render_ruleset, shifted, IFACE))
        rows[names[2]].append(seconds)
        result = apply_ruleset(changed, netns=netns)
        assert result.ok and result.verified, [str(d) for d in result.diagnostics]
        rows[names[3]].append(result.seconds)
        seconds, report = timed(functools.partial(check_drift, changed, netns))
        assert report.ok
        rows[names[4]].append(seconds)
        for label, netmap in classes:
            seconds, ruleset = timed(functools.partial(render_ruleset, netmap, IFACE))
            rows[f"render, {label}"].append(seconds)
            shapes[label] = ", ".join(f"{n} {kind}"
                                      for kind, n in layout_counts(ruleset).items())
            result = apply_ruleset(ruleset, netns=netns)
            assert result.ok and result.verified, [str(d) for d in result.diagnostics]
            rows[f"apply + verify, {label}"].append(result.seconds)
    print(f"nftables apply benchmark: {prefixes} source prefixes x {ranges} port ranges "
          f"-> {element_count(first)} elements ({layout(first)}); {repeat} runs, "
          f"python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.1f}")
    print(f"| {'step':<52} | {'median ms':>9} | {'min ms':>8} |")
    print(f"|{'-' * 54}|{'-' * 10}:|{'-' * 9}:|")
    for name, values in rows.items():
        print(f"| {name:<52} | {statistics.median(values) * 1000:>9.1f} | "
              f"{min(values) * 1000:>8.1f} |")
    for label, shape in shapes.items():
        print(f"{label}: {shape}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
