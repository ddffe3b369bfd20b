"""Throughput under the policyc filter vs. a linear chain (iperf3, needs root).

    sudo python3 benchmarks/bench_throughput.py [--prefixes 10000] [--ranges 1000]
        [--linear-rules 10000] [--seconds 3] [--repeat 3]

Two network namespaces (tests/e2e/harness.py) joined over a veth bridge and
over wireguard-go. iperf3 runs client -> server on each path with, on the
server's receiving interface:

  none            no table at all
  policyc         the policyc ruleset for one rule with PREFIXES source
                  prefixes x RANGES port ranges (FilterRules built here,
                  rendered by policyc.enforcer.nft); the client's address
                  is the last prefix and port 5201 lies in the last range.
                  The default is the full 10,000 x 1,000: the source map holds
                  the 10,000 prefixes and one class set the 1,000 ranges
  linear          the control: one nft rule per (prefix, port range), capped
                  at LINEAR_RULES (default 10,000; the full product would be
                  10,000,000 rules), with the iperf flow matching only the
                  LAST rule, so every evaluated packet walks the whole chain

Each filter runs twice: "stateful" as deployed (`ct state established
accept` first, so only a flow's first packet is looked up) and "per-packet"
with that rule removed, so every packet pays the lookup; the per-packet rows
show the cost of the lookup itself.
"""

from __future__ import annotations

import argparse
import copy
import ipaddress
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

import harness

from policyc.compiler.nodes import Inventory, Node
from policyc.enforcer import nft
from policyc.enforcer.wireguard import apply_peers
from policyc.netmap import FilterRule, NetPortRange, NodeNetmap, Peer, PortRange

IPERF_PORT = 5201
# Source prefixes are generated inside ranges reserved for these tests and
# never sent to: mesh sources from 100.65.0.0/16, underlay from 198.19.0.0/16.
SOURCE_BASES = {"wireguard": "100.65.0.0", "veth": "198.19.0.0"}


def source_prefixes(count: int, base: str, client_ip: str) -> list[str]:
    """`count` disjoint, non-adjacent /31s, then the client's /32 last."""
    start = int(ipaddress.ip_address(base))
    prefixes = [f"{ipaddress.ip_address(start + 4 * i)}/31" for i in range(count - 1)]
    return [*prefixes, f"{client_ip}/32"]


def port_ranges(count: int) -> list[PortRange]:
    """`count` disjoint 10-port ranges from 1000 up; the one holding 5201 moved last."""
    ranges = [PortRange(1000 + 50 * i, 1009 + 50 * i) for i in range(count)]
    hit = [r for r in ranges if r.first <= IPERF_PORT <= r.last]
    if not hit:
        ranges[-1] = PortRange(IPERF_PORT, IPERF_PORT + 9)
        hit = [ranges[-1]]
    return [r for r in ranges if r not in hit] + hit


def policyc_ruleset(prefixes: list[str], ranges: list[PortRange], dst: str,
                    iface: str) -> dict[str, Any]:
    rule = FilterRule(tuple(prefixes), tuple(NetPortRange(dst, r) for r in ranges), (6,))
    return nft.render_ruleset(NodeNetmap("server", (dst,), (), (rule,)), iface)


def stateless(ruleset: dict[str, Any]) -> dict[str, Any]:
    """The ruleset without mesh_in's `ct state established accept` rule."""
    out = copy.deepcopy(ruleset)
    for index, command in enumerate(out["nftables"]):
        rule = command.get("add", {}).get("rule")
        if rule and rule["chain"] == "mesh_in":
            del out["nftables"][index]  # the first mesh_in rule is the established accept
            break
    return out


def linear_ruleset(prefixes: list[str], ranges: list[PortRange], iface: str, cap: int,
                   stateful: bool) -> str:
    """nft text: one rule per (prefix, range), capped, the matching pair last."""
    pairs = [(p, r) for p in prefixes[:-1] for r in ranges][: cap - 1]
    pairs.append((prefixes[-1], ranges[-1]))
    lines = ["table inet pcbench {", "chain input {",
             "type filter hook input priority 0; policy accept;",
             f'iifname "{iface}" jump lin', "}", "chain lin {"]
    if stateful:
        lines.append("ct state established,related accept")
    family = "ip6" if ":" in prefixes[-1] else "ip"
    lines += [f"{family} saddr {p} tcp dport {r.first}-{r.last} accept" for p, r in pairs]
    lines += ["counter drop", "}", "}"]
    return "\n".join(lines) + "\n"


def clear_tables(node: harness.MeshNode) -> None:
    node.run(["nft", "flush", "ruleset"], check=True)


def iperf(client: harness.MeshNode, dst: str, seconds: int, repeat: int = 1) -> float:
    """Median Mbit/s received by the server over `repeat` runs; 0 when blocked."""
    return statistics.median(_iperf_once(client, dst, seconds) for _ in range(repeat))


def _iperf_once(client: harness.MeshNode, dst: str, seconds: int) -> float:
    proc = client.run(["iperf3", "-c", dst, "-t", str(seconds), "-J", "--connect-timeout",
                       "3000"], timeout=seconds + 20)
    try:
        report = json.loads(proc.stdout)
        return float(report["end"]["sum_received"]["bits_per_second"]) / 1e6
    except (ValueError, KeyError):
        return 0.0


def build_pair() -> harness.Mesh:
    nodes = [Node(name, "bench@example.com", (),
                  (ipaddress.ip_address(f"100.64.0.{n}"),
                   ipaddress.ip_address(f"fd7a:115c:a1e0::{n}")))
             for n, name in ((1, "client"), (2, "server"))]
    mesh = harness.Mesh.build(Inventory.of(nodes))
    for me, other in (("client", "server"), ("server", "client")):
        peer = mesh[other]
        netmap = NodeNetmap(me, mesh[me].addresses, (Peer(
            other, peer.public_key, peer.addresses,
            (f"{peer.ipv4}/32", f"{peer.ipv6}/128"), peer.endpoint),), ())
        result = apply_peers(netmap, mesh[me].iface, netns=mesh[me].netns)
        if not result.ok:
            raise SystemExit(f"wireguard setup failed: {result.diagnostics}")
    return mesh


def measure(args: argparse.Namespace) -> list[tuple[str, str, str, float, str]]:
    rows: list[tuple[str, str, str, float, str]] = []
    with build_pair() as mesh:
        client, server = mesh["client"], mesh["server"]
        iperf_server = server.popen(["iperf3", "-s"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            for path, iface, src, dst in (("veth", "eth0", client.underlay, server.underlay),
                                          ("wireguard", server.iface, client.ipv4,
                                           server.ipv4)):
                rows += measure_path(args, client, server, path, iface, src, dst)
        finally:
            harness._kill(iperf_server)
    return rows


def measure_path(args: argparse.Namespace, client: harness.MeshNode,
                 server: harness.MeshNode, path: str, iface: str, src: str,
                 dst: str) -> list[tuple[str, str, str, float, str]]:
    prefixes = source_prefixes(args.prefixes, SOURCE_BASES[path], src)
    ranges = port_ranges(args.ranges)
    started = time.perf_counter()
    ruleset = policyc_ruleset(prefixes, ranges, dst, iface)
    render_s = time.perf_counter() - started
    rows = []
    clear_tables(server)
    rows.append((path, "none", "-", iperf(client, dst, args.seconds, args.repeat), ""))
    for mode, rs in (("stateful", ruleset), ("per-packet", stateless(ruleset))):
        clear_tables(server)
        applied = nft.apply_ruleset(rs, netns=server.netns, iface=iface)
        note = (f"{applied.elements} elements (map + sets), render {render_s:.1f}s, "
                f"load {applied.seconds:.1f}s" if applied.ok else
                f"LOAD FAILED: {[d.code for d in applied.diagnostics]}")
        rows.append((path, "policyc", mode, iperf(client, dst, args.seconds, args.repeat), note))
    for mode in ("stateful", "per-packet"):
        clear_tables(server)
        text = linear_ruleset(prefixes, ranges, iface, args.linear_rules, mode == "stateful")
        started = time.perf_counter()
        loaded = server.run(["nft", "-f", "-"], input=text, timeout=600)
        note = (f"{min(args.linear_rules, args.prefixes * args.ranges)} rules, "
                f"load {time.perf_counter() - started:.1f}s" if loaded.returncode == 0
                else f"LOAD FAILED: {loaded.stderr.strip()[:80]}")
        rows.append((path, "linear", mode, iperf(client, dst, args.seconds, args.repeat), note))
    clear_tables(server)
    return rows


def print_table(rows: list[tuple[str, str, str, float, str]]) -> None:
    baseline = {path: mbit for path, kind, _, mbit, _ in rows if kind == "none"}
    print("| path | filter | mode | Mbit/s | % of no filter | notes |")
    print("|---|---|---|---:|---:|---|")
    for path, kind, mode, mbit, note in rows:
        share = 100 * mbit / baseline[path] if baseline.get(path) else 0.0
        print(f"| {path} | {kind} | {mode} | {mbit:.0f} | {share:.0f}% | {note} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prefixes", type=int, default=10000)
    parser.add_argument("--ranges", type=int, default=1000)
    parser.add_argument("--linear-rules", type=int, default=10000)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3, help="iperf runs per row (median)")
    args = parser.parse_args()
    reason = harness.requirements_missing()
    if reason is not None:
        raise SystemExit(f"cannot run: {reason}")
    harness.sweep_leftovers()
    print(f"policy: {args.prefixes} source prefixes x {args.ranges} port ranges; "
          f"linear chain capped at {args.linear_rules} rules (of "
          f"{args.prefixes * args.ranges}); iperf3 -t {args.seconds}, "
          f"median of {args.repeat}; load average {os.getloadavg()[0]:.1f}")
    print_table(measure(args))


if __name__ == "__main__":
    main()
