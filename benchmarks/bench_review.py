"""Time `policyc diff` and `policyc verify` on synthetic tailnets.

    python3 benchmarks/bench_review.py [--sizes 1000,10000]

For each size, the base policy is benchmarks/tailnet_gen.py's 1,000-rule
policy (200 groups) over its inventory. Two diffs:
  * "edit": a reviewed change of the same policy: 25 rules get another port,
    10 are deleted, 15 come from another policy (about 5% of the rules);
  * "rewrite": a second, unrelated 1,000-rule policy (another seed) over the
    same inventory, so nearly every rule differs.
and verify of six assertions (two of each kind) on the base policy. Times
are wall-clock and CPU seconds for the library calls, after the files are
parsed (parsing is benchmarks/bench_parse.py's business): a diff is
`access_diff` plus `render_text` (what `policyc diff` prints by default); the
JSON report of the rewrite, which writes out every address of every change,
is shown on its own, as is `policy_access` (the boxes of one policy), which
diff builds twice.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_compile import _node
from benchmarks.tailnet_gen import generate
from policyc.analysis.access import policy_access
from policyc.analysis.assertions import load_assertions
from policyc.analysis.diff import AccessDiff, access_diff, render_json, render_text
from policyc.analysis.verify import verify
from policyc.compiler.nodes import Inventory
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.diagnostics.source import SourceFile
from policyc.policy.load import load_policy_text
from policyc.policy.model import Policy

ASSERTIONS = """{
  "deny": [{"src": "group:g1", "dst": "tag:t3", "ports": "*"},
           {"src": "tag:t5", "dst": "autogroup:internet", "ports": "*"}],
  "allow": [{"src": "group:g0", "dst": "tag:t0", "ports": "22", "proto": "tcp"},
            {"src": "tag:t2", "dst": "tag:t9", "ports": "443", "proto": "tcp"}],
  "isolated": ["tag:t7", "tag:exit"],
}"""


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """Wall-clock seconds (and the result); `cpu` below keeps the CPU seconds, which a
    shared machine's load does not inflate."""
    start, cpu_start = time.perf_counter(), time.process_time()
    result = fn()
    CPU.append(time.process_time() - cpu_start)
    return time.perf_counter() - start, result


CPU: list[float] = []


def _policy(text: str, name: str) -> Policy:
    policy, diags = load_policy_text(text, name)
    if diags.has_errors:
        raise SystemExit("\n".join(str(d) for d in diags.errors))
    return policy


def edited(text: str, other: str, seed: int = 7) -> str:
    """About 5% of the rules changed: new ports, deletions, rules from another policy."""
    doc: dict[str, Any] = json.loads(text)
    foreign: dict[str, Any] = json.loads(other)
    rnd = random.Random(seed)
    acls: list[dict[str, Any]] = doc["acls"]
    for rule in rnd.sample(acls, 25):
        rule["dst"] = [d.rsplit(":", 1)[0] + ":" + rnd.choice(["23", "8443", "9000-9100"])
                       for d in rule["dst"]]
    for index in sorted(rnd.sample(range(len(acls)), 10), reverse=True):
        del acls[index]
    acls.extend(rnd.sample(foreign["acls"], 15))
    return json.dumps(doc, indent=1)


def _diff_text(old: Policy, new: Policy, inventory: Inventory) -> tuple[AccessDiff, str]:
    diff = access_diff(old, new, inventory)
    return diff, render_text(diff)


def row(nodes: int) -> list[str]:
    base_text, data = generate(nodes, 200, 1000, seed=1)
    other_text, _ = generate(nodes, 200, 1000, seed=2)  # same names; another rule mix
    inventory = Inventory.of([_node(n) for n in data["nodes"]])
    base = _policy(base_text, "base.hujson")
    edit = _policy(edited(base_text, other_text), "edit.hujson")
    rewrite = _policy(other_text, "rewrite.hujson")
    boxes_time, access = timed(lambda: policy_access(base, inventory))
    boxes_cpu = CPU[-1]
    out = []
    diff: AccessDiff | None = None
    for label, new in (("edit", edit), ("rewrite", rewrite)):
        took, (diff, text) = timed(lambda new=new: _diff_text(base, new, inventory))  # type: ignore[misc]
        gained, lost = len(diff.gained), len(diff.lost)  # type: ignore[union-attr]
        out.append(f"| {nodes:>6} | diff ({label}) | {took:>7.2f} | {CPU[-1]:>7.2f} | "
                   f"{gained} gained, {lost} lost; {len(text) // 1024} KiB of text |")
    took, report_json = timed(lambda: render_json(diff))  # type: ignore[arg-type]
    out.append(f"| {nodes:>6} | JSON report of the rewrite | {took:>7.2f} | {CPU[-1]:>7.2f} | "
               f"{len(report_json) // 1048576} MiB |")  # type: ignore[arg-type]
    diags = Diagnostics()
    assertions = load_assertions(SourceFile("assert.hujson", ASSERTIONS), base, diags)
    took, report = timed(lambda: verify(base, inventory, assertions, diags))
    out.append(f"| {nodes:>6} | verify (6 assertions) | {took:>7.2f} | {CPU[-1]:>7.2f} | "
               f"{report.summary()} |")  # type: ignore[attr-defined]
    boxes = len(access.boxes)  # type: ignore[attr-defined]
    out.append(f"| {nodes:>6} | boxes of one policy | {boxes_time:>7.2f} | {boxes_cpu:>7.2f} | "
               f"{boxes} boxes |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000")
    args = parser.parse_args()
    print("| nodes | what (1,000-rule policies) | wall s | CPU s | result |")
    print("|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        for line in row(size):
            print(line, flush=True)


if __name__ == "__main__":
    main()
