"""Benchmark: the node agent on five real nodes (control + wireguard-go + nftables).

Builds the tailnet of tests/e2e/test_node_agent.py (a control server in a hub
namespace, five `policyc node up` agents in their own namespaces, joined with auth
keys) and measures:

* apply -> enforced: from `policyc apply` returning to the new filter enforced on
  every node whose netmap changed (the latest agent's `last_apply.at`, the moment
  its apply finished: filter, peers, revocation, addresses, routes), over
  --pushes pushes alternating two policies that change every node's filter. The
  CLI process exits some hundreds of ms after control acknowledged the push, so
  this is often negative (enforced before it exited); the same is measured from
  the acknowledgement of a PUT to the admin API, made in-process;
* join -> peers hold the key: from a sixth node's registration answer
  (`joined_at`) to the last of its peers enforcing a netmap that holds its key,
  over --joins joins (each new node is removed again afterwards);
* the agents' idle RSS and CPU over --idle seconds (no pushes; long-polls open).

Needs root. Everything it makes is torn down at the end. Prints tables.

    sudo python3 benchmarks/bench_node.py [--pushes 20] [--joins 5] [--idle 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import agents  # noqa: E402
import harness  # noqa: E402

POLICIES = ROOT / "tests" / "e2e" / "agent_policies"
OWNERS: dict[str, agents.Owner] = {
    "alice": "alice@example.com", "olga": "olga@example.com",
    "web": ("tag:web",), "db": ("tag:db",), "ci": ("tag:ci",),
}
# ops may reach everything (base) / only the service ports (narrow): every node's
# filter admits olga differently, so every push changes every netmap but olga's own
# view of herself.
OPS_NARROW = (POLICIES / "base.hujson").read_text().replace(
    '"dst": ["*:*"]', '"dst": ["*:22,80,443,5432,8080"]')


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def wait_applied(net: agents.AgentTailnet, wanted: dict[str, int],
                 timeout: float = 60.0) -> dict[str, tuple[float, float]]:
    """Per agent: (when it finished applying a version >= wanted, how long that apply
    took), both from the agent's own `last_apply`."""
    done: dict[str, tuple[float, float]] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(wanted) and time.monotonic() < deadline:
        for name, version in wanted.items():
            if name in done:
                continue
            applied = net.agents[name].quick_status().get("last_apply") or {}
            if (applied.get("version") or 0) >= version and applied.get("ok"):
                done[name] = (float(applied["at"]), float(applied["seconds"]))
        time.sleep(0.01)
    missing = set(wanted) - set(done)
    if missing:
        raise RuntimeError(f"not applied within {timeout} s: {sorted(missing)}")
    return done


SPLITS: dict[str, list[float]] = {"start": [], "apply": []}


def bench_pushes(net: agents.AgentTailnet, pushes: int, scratch: Path,
                 through_cli: bool, first: int = 0) -> list[float]:
    """`through_cli`: `policyc apply` (a process: measured from its exit); else one
    PUT of the admin API (measured from the acknowledgement arriving). `first`: the
    index of the first variant, so a series starts with the one that is not live."""
    variants = [scratch / "narrow.hujson", POLICIES / "base.hujson"]
    variants[0].write_text(OPS_NARROW)
    latencies: list[float] = []
    for index in range(pushes):
        before = net.control.netmap_versions()
        variant = variants[(first + index) % 2]
        if through_cli:
            net.control.apply(variant)
        else:
            net.control.api("PUT", "/api/v1/policy", {"policy": variant.read_text()},
                            headers={"If-Match": "*"})
        returned = time.time()
        after = net.control.netmap_versions()
        changed = {n: v for n, v in after.items() if v > before.get(n, 0) and n in net.agents}
        if not changed:
            raise RuntimeError("a push changed no netmap")
        applied = wait_applied(net, changed)
        latencies.append(max(at for at, _ in applied.values()) - returned)
        if not through_cli:  # where the time goes: reaching the nodes vs applying
            SPLITS["start"].append(max(at - took for at, took in applied.values()) - returned)
            SPLITS["apply"].extend(took for _, took in applied.values())
        print(f"  push {index + 1:>2}: {len(changed)} node(s), "
              f"{latencies[-1] * 1000:7.1f} ms", file=sys.stderr)
    return latencies


def bench_joins(net: agents.AgentTailnet, joins: int) -> list[float]:
    latencies: list[float] = []
    for index in range(joins):
        name = f"extra{index}"
        agent = net.join(name, "olga@example.com")  # ops: every node is its peer
        net.wait_joined([name])
        joined_at = float(agent.quick_status()["joined_at"])
        key = agent.quick_status()["public_key"]
        peers = [n for n in OWNERS]
        done: dict[str, float] = {}
        deadline = time.monotonic() + 60.0
        while len(done) < len(peers) and time.monotonic() < deadline:
            for peer in peers:
                status = net.agents[peer].quick_status()
                if peer not in done and any(p["key"] == key for p in status.get("peers", ())):
                    done[peer] = float(status["last_apply"]["at"])
            time.sleep(0.01)
        if len(done) < len(peers):
            raise RuntimeError(f"{name}'s key did not reach {set(peers) - set(done)}")
        latencies.append(max(done.values()) - joined_at)
        print(f"  join {index + 1}: {latencies[-1] * 1000:7.1f} ms", file=sys.stderr)
        net.control.api("DELETE", f"/api/v1/nodes/{name}")
        net.agents.pop(name).stop()
    return latencies


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def bench_idle(net: agents.AgentTailnet, seconds: float) -> tuple[list[float], list[float]]:
    pids = [a.process.pid for a in net.agents.values() if a.process is not None]
    start = {pid: cpu_seconds(pid) for pid in pids}
    time.sleep(seconds)
    cpu = [(cpu_seconds(pid) - start[pid]) / seconds * 100 for pid in pids]
    return [rss_mib(pid) for pid in pids], cpu


def row(name: str, values: list[float], unit: str = "ms", scale: float = 1000) -> str:
    return (f"| {name:<40} | {len(values):>3} | {statistics.median(values) * scale:>8.1f} | "
            f"{percentile(values, 99) * scale:>8.1f} | {max(values) * scale:>8.1f} | {unit} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pushes", type=int, default=20)
    parser.add_argument("--joins", type=int, default=5)
    parser.add_argument("--idle", type=float, default=30.0)
    args = parser.parse_args()
    reason = harness.requirements_missing()
    if reason is not None:
        print(f"bench_node: {reason}; skipped")
        return 0
    with tempfile.TemporaryDirectory() as scratch, \
            agents.AgentTailnet.build(OWNERS, POLICIES / "base.hujson") as net:
        pushes = bench_pushes(net, args.pushes, Path(scratch), through_cli=True)
        puts = bench_pushes(net, args.pushes, Path(scratch), through_cli=False,
                            first=args.pushes)
        joins = bench_joins(net, args.joins)
        rss, cpu = bench_idle(net, args.idle)
    print(f"node agent benchmark: {len(OWNERS)} nodes (wireguard-go, nftables), "
          f"control on the hub namespace")
    print(f"| {'measure':<40} | {'n':>3} | {'p50':>8} | {'p99':>8} | {'max':>8} | unit |")
    print(f"|{'-' * 42}|{'-' * 4}:|{'-' * 9}:|{'-' * 9}:|{'-' * 9}:|------|")
    print(row("`policyc apply` exited -> enforced, all", pushes))
    print(row("PUT acknowledged -> enforced on all nodes", puts))
    print(row("  of which: PUT ack -> last node starts", SPLITS["start"]))
    print(row("  of which: one node's apply (each node)", SPLITS["apply"]))
    print(row("join -> every peer holds the key", joins))
    print(row(f"agent RSS, idle {args.idle:.0f} s", rss, "MiB", 1))
    print(row(f"agent CPU, idle {args.idle:.0f} s", cpu, "%", 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
