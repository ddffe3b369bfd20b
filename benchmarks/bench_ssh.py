"""Compile the SSH policy of every node of synthetic tailnets and print a table.

    python3 benchmarks/bench_ssh.py [--sizes 1000,10000]

The tailnets of `bench_compile.py` with four SSH rules of the common shapes:
members to their own devices (check), two groups to a tag, every member to a
tag as their localpart, every tagged node to a tag. Columns: nodes, seconds to
resolve the rules (once per policy and inventory), seconds for every node's
`ssh_policy`, and the principals summed over all nodes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_compile import load
from policyc.compiler.resolve import Resolver
from policyc.compiler.sshpolicy import SshCompiler
from policyc.policy.load import load_policy_text


def run(nodes: int) -> str:
    policy, inventory = load(nodes, 200, 1000)
    tags = sorted({t for node in inventory for t in node.tags})[:3]
    groups = sorted(policy.groups)[:2]
    ssh = [
        {"action": "check", "src": ["autogroup:member"], "dst": ["autogroup:self"],
         "users": ["autogroup:nonroot", "root"]},
        {"action": "accept", "src": groups, "dst": [tags[0]], "users": ["root", "ubuntu"]},
        {"action": "accept", "src": ["autogroup:member"], "dst": [tags[1]],
         "users": ["localpart:*@example.com"]},
        {"action": "accept", "src": ["autogroup:tagged"], "dst": [tags[2]], "users": ["root"]},
    ]
    text = json.dumps({
        "tagOwners": {t: ["a@example.com"] for t in tags},
        "groups": {g: [m.login for m in policy.groups[g].members] for g in groups},
        "ssh": ssh})
    ssh_only, diags = load_policy_text(text, "ssh.hujson")
    if diags.has_errors:
        raise SystemExit("\n".join(str(d) for d in diags.errors))
    policy = dataclasses.replace(policy, ssh=ssh_only.ssh)
    start = time.perf_counter()
    compiler = SshCompiler(policy, Resolver(policy, inventory))
    resolved = time.perf_counter()
    principals = sum(len(rule["principals"]) for i in range(len(inventory.nodes))
                     for rule in compiler.for_node(i)["rules"])
    done = time.perf_counter()
    return (f"| {nodes:>6} | {resolved - start:>7.2f} | {done - resolved:>8.2f} | "
            f"{principals:>10} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000")
    args = parser.parse_args()
    print("|  nodes | resolve | per-node | principals |")
    print("|-------:|--------:|---------:|-----------:|")
    for n in args.sizes.split(","):
        print(run(int(n)), flush=True)


if __name__ == "__main__":
    main()
