"""Time `policyc check`: as a whole process on big policies, and its parts on big tailnets.

    python3 benchmarks/bench_check.py [--policy-sizes 100,1024] [--sizes 1000,10000]

First table (issue 9: `check` of a 1 MB policy >= 20x faster than json5):
`python3 -m policyc.cli check POLICY` as a whole process, on the policies
benchmarks/bench_parse.py generates (groups, tagOwners, hosts, acls and
`tests`, about one test per 940 bytes), best of N runs: wall time and CPU
time (user+sys of the child), against `json5.loads` of the same text in this
process (CPU), and the ratio json5 CPU / check CPU. The process runs with a
warm bytecode cache (PYTHONPYCACHEPREFIX in a temporary directory, filled by
one unmeasured run), as an installed policyc has; "cold" is one run that
compiles every policyc module first (PYTHONDONTWRITEBYTECODE=1, as this
machine's environment sets). Then the same check in-process, by stage.

Second table, for each synthetic tailnet (benchmarks/tailnet_gen.py: 200
groups, 1,000 rules): validation, lint (W201/W203/W205, pairwise shadow
check), and two `tests` entries evaluated by the reference evaluator. Then
conntrack revocation's flow judge: 10,000 flows against 1,000 FilterRules.
These shapes were quadratic once; the table shows they are not.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import json5

from benchmarks.bench_compile import load
from benchmarks.bench_parse import generate_policy
from policyc.analysis.lint import lint_policy
from policyc.analysis.testrunner import run_policy_tests
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.enforcer.conntrack import Flow, FlowJudge
from policyc.enforcer.nftrender import MESH_MARK
from policyc.enforcer.nftsets import parse_filter
from policyc.netmap import FilterRule, NetPortRange, PortRange
from policyc.policy.load import load_policy_text
from policyc.policy.validate import validate_policy


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


ROOT = Path(__file__).resolve().parent.parent


def run_check(path: Path, env: dict[str, str]) -> tuple[float, float]:
    """One `policyc check` process: (wall s, CPU s of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "policyc.cli", "check", str(path)], env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def stages(text: str) -> str:
    """The same check in this process, by stage (CPU s), with the CLI's collector settings."""
    from policyc.analysis.check import check_loaded_policy
    from policyc.cli.common import few_collections
    from policyc.collector import paused_collector
    from policyc.diagnostics.source import SourceFile
    from policyc.grammar.hujson import parse
    from policyc.policy.build import build_policy
    from policyc.policy.validate import validate_policy

    source, diags = SourceFile("bench.hujson", text), Diagnostics()
    with few_collections():  # the collector settings `policyc check` runs with
        marks = [time.process_time()]
        with paused_collector():  # cli/common.py load_files
            tree = parse(source, diags)
            marks.append(time.process_time())
            policy = build_policy(tree, source, diags)
            validate_policy(policy, diags)
        marks.append(time.process_time())
        check_loaded_policy(policy, None, diags)
        marks.append(time.process_time())
    parse_s, build_s, tests_s = (b - a for a, b in itertools.pairwise(marks))
    return f"parse {parse_s:.2f} s, build+validate {build_s:.2f} s, tests {tests_s:.2f} s"


def process_rows(kib_sizes: list[int], repeat: int) -> None:
    print("| policy | tests | check wall s | check CPU s | cold CPU s | json5.loads CPU s "
          "| json5 / check (CPU) | in-process stages (CPU) |")
    print("|-------:|------:|-------------:|------------:|-----------:|------------------:"
          "|--------------------:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        warm = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        warm |= {"PYTHONPATH": str(ROOT), "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pyc")}
        cold = {**warm, "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONPYCACHEPREFIX": str(Path(tmp) / "empty")}
        for kib in kib_sizes:
            text = generate_policy(kib * 1024)
            path = Path(tmp) / f"policy-{kib}k.hujson"
            path.write_text(text)
            run_check(path, warm)  # fills the bytecode cache
            runs = [run_check(path, warm) for _ in range(repeat)]
            wall = min(r[0] for r in runs)
            cpu = min(r[1] for r in runs)
            cold_cpu = run_check(path, cold)[1]
            start = time.process_time()
            json5.loads(text)
            t_json5 = time.process_time() - start
            tests = text.count('"accept": [')
            print(f"| {len(text) / 1024:>4.0f} KiB | {tests:>5} "
                  f"| {wall:>12.2f} | {cpu:>11.2f} | {cold_cpu:>10.2f} | {t_json5:>17.2f} "
                  f"| {t_json5 / cpu:>18.1f}x | {stages(text)} |", flush=True)


def check_row(nodes: int) -> str:
    policy, inventory = load(nodes, 200, 1000)
    tests = """{"tests": [{"src": "group:g0", "accept": ["tag:t0:22"], "deny": ["tag:t1:23"]}]}"""
    test_model, _ = load_policy_text(tests)
    with_tests = dataclasses.replace(policy, tests=test_model.tests)
    validate = timed(lambda: validate_policy(policy, Diagnostics()))
    lint_diags = Diagnostics()
    lint = timed(lambda: lint_policy(policy, inventory, lint_diags))
    run = timed(lambda: run_policy_tests(with_tests, inventory, Diagnostics()))
    return (f"| {nodes:>6} | {validate:>10.3f} | {lint:>7.2f} | {len(lint_diags):>8} "
            f"| {run:>10.2f} |")


def judge_row(rules: int, flows: int) -> str:
    rnd = random.Random(1)
    filter_rules = [
        FilterRule(tuple(f"100.64.{rnd.randint(0, 40)}.{rnd.randint(0, 255)}" for _ in range(5)),
                   tuple(NetPortRange("100.64.0.1", PortRange(p, p))
                         for p in rnd.sample(range(1, 65535), 5)), (6, 17))
        for _ in range(rules)]
    conntrack = []
    for k in range(flows):
        if k % 2:  # half the flows are ones some rule allows
            rule = rnd.choice(filter_rules)
            src, port = rnd.choice(rule.src_ips), rnd.choice(rule.dst_ports).ports.first
        else:
            src = f"100.64.{rnd.randint(0, 40)}.{rnd.randint(0, 255)}"
            port = rnd.randint(1, 65535)
        conntrack.append(Flow(4, src, "100.64.0.1", 6, 1000, port, MESH_MARK))
    start = time.perf_counter()
    judge = FlowJudge(parse_filter(filter_rules))
    allowed = sum(judge.allows(f) for f in conntrack)
    seconds = time.perf_counter() - start
    return f"| {rules:>6} | {flows:>7} | {seconds:>8.2f} | {allowed:>7} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--policy-sizes", default="100,1024",
                        help="policy sizes in KiB for the whole-process table ('' to skip)")
    parser.add_argument("--repeat", type=int, default=3, help="best of N check processes")
    parser.add_argument("--sizes", default="1000,10000",
                        help="tailnet sizes for the second table ('' to skip)")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f}")
    if args.policy_sizes:
        process_rows([int(k) for k in args.policy_sizes.split(",")], args.repeat)
        print()
    if not args.sizes:
        return
    print("| nodes  | validate s | lint s  | warnings | 2 tests s  |")
    print("|-------:|-----------:|--------:|---------:|-----------:|")
    for nodes in (int(n) for n in args.sizes.split(",")):
        print(check_row(nodes), flush=True)
    print()
    print("| rules  | flows   | judge s  | allowed |")
    print("|-------:|--------:|---------:|--------:|")
    print(judge_row(1000, 10000))


if __name__ == "__main__":
    main()
