"""Time `policyc graph` (the access map and its page) on synthetic tailnets.

    python3 benchmarks/bench_graph.py [--sizes 1000,10000] [--shapes dense,allow-all,today]

Shapes: "dense" is benchmarks/dense_gen.py's 1,000-rule policy (most nodes may reach
most others), "allow-all" the same inventory and groups under one `*` -> `*:*` rule,
"today" benchmarks/tailnet_gen.py's 1,000-rule policy. Times are wall-clock and CPU
seconds of `access_map` (boxes, classes, cells) and of `to_json` + `render_page`,
after the files are parsed; the page's size in bytes; the rows (sources with equal
cells share one), the cells and the rules. `policyc graph` itself adds the parse.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import dense_gen, tailnet_gen
from benchmarks.bench_compile import _node
from policyc.analysis.graph import AccessMap, access_map
from policyc.analysis.graph_page import render_page
from policyc.compiler.nodes import Inventory
from policyc.policy.load import load_policy_text
from policyc.policy.model import Policy


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds, result): CPU is what a shared machine's load does not
    inflate."""
    start, cpu_start = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - start, time.process_time() - cpu_start, result


def _inputs(shape: str, nodes: int) -> tuple[Policy, Inventory]:
    make = tailnet_gen.generate if shape == "today" else dense_gen.generate
    text, data = make(nodes, 200, 1000, seed=1)
    if shape == "allow-all":
        doc = json.loads(text)
        text = json.dumps({"groups": dict(list(doc["groups"].items())[:20]),
                           "tagOwners": doc["tagOwners"],
                           "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]})
    policy, diags = load_policy_text(text, f"{shape}.hujson")
    if policy is None or diags.has_errors:
        raise SystemExit("\n".join(str(d) for d in diags.errors))
    return policy, Inventory.of([_node(n) for n in data["nodes"]])


def row(shape: str, nodes: int) -> str:
    policy, inventory = _inputs(shape, nodes)
    map_wall, map_cpu, found = timed(lambda: access_map(policy, inventory))
    result: AccessMap = found
    page_wall, page_cpu, page = timed(lambda: render_page(result.to_json()))
    sources = sum(len(r) for r in result.rows)
    return (f"| {nodes:>6} | {shape} | {map_wall:>6.2f} / {map_cpu:>6.2f} | "
            f"{page_wall:>5.2f} / {page_cpu:>5.2f} | {len(page.encode()):>10,} | "
            f"{len(result.rows)} ({sources} sources) x {len(result.columns)} | "
            f"{len(result.cells):,} | {len(result.rules)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--shapes", default="dense,allow-all,today")
    args = parser.parse_args()
    print("| nodes | shape | map wall / CPU s | page wall / CPU s | page bytes | rows x columns "
          "| cells | rules |")
    print("|---|---|---|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        for shape in args.shapes.split(","):
            print(row(shape, size), flush=True)


if __name__ == "__main__":
    main()
