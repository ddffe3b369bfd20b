"""Time what `policyc check --nodes` and a netmap update do beyond compiling.

    python3 benchmarks/bench_check.py [--sizes 1000,10000]

For each synthetic tailnet (benchmarks/tailnet_gen.py: 200 groups, 1,000
rules): validation, lint (W201/W203/W205, pairwise shadow check), and two
`tests` entries evaluated by the reference evaluator. Then conntrack
revocation's flow judge: 10,000 flows against 1,000 FilterRules. These
shapes were quadratic once; the table shows they are not.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_compile import load
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
    parser.add_argument("--sizes", default="1000,10000")
    args = parser.parse_args()
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
