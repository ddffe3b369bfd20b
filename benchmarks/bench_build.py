"""The shared compile stage and whole-process CLI runs, with CPU time next to wall time.

    python3 benchmarks/bench_build.py [--shape dense|today] [--sizes 1000,10000]
                                      [--whole-process] [--compile-nodes 200] [--one-node]

Each size runs in its own process (peak RSS is that process's ru_maxrss). For
every size: loading the two files (parse, build, validate; policy and inventory),
building the shared stage (`Compilation`, what `PolicyIndex.build` and
`compile_policy` run before any netmap), and one netmap (node-5, with its peer
list). `--whole-process` also runs, as child processes on the generated files,
`policyc nft --node node-5` and `policyc compile -o DIR` (all nodes, or the first
`--compile-nodes` N of them, or none with -1: at 10k dense every netmap lists ~10k
peers, ~2 MB, so all of them would be ~20 GB), reporting wall, user+sys CPU, peak RSS
and, for compile, MB written and MB per CPU second. `--one-node` times the one-node
path in-process (`node_netmap` of node-5, a member; node-7, a subnet router;
node-11, an exit node) and the nft render of each.

The machine is shared: the load average is printed; compare CPU columns.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import dense_gen, tailnet_gen


def _timed(run):  # type: ignore[no-untyped-def]
    wall, cpu = time.perf_counter(), time.process_time()
    value = run()
    return value, time.perf_counter() - wall, time.process_time() - cpu


# Runs the measured command as its own child and prints its wall time and rusage. The
# command must not be forked from this (large) benchmark process: a child's ru_maxrss
# keeps the high-water mark of the memory it started with (fork/vfork shares the parent's
# pages until exec), so the peak of `nft --node` read ~580 MiB where `/usr/bin/time`
# gives ~275.
_LAUNCHER = """
import os, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
wall = time.perf_counter() - start
print(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
      os.waitstatus_to_exitcode(status))
"""


def _child(argv: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(wall s, user+sys CPU s, peak RSS MiB) of one child process, started from a
    small launcher process (see `_LAUNCHER`)."""
    out = subprocess.run([sys.executable, "-c", _LAUNCHER, *argv], env=env, check=True,
                         stdout=subprocess.PIPE, text=True).stdout.split()
    wall, cpu, peak, code = float(out[0]), float(out[1]), float(out[2]), int(out[3])
    if code != 0:
        raise subprocess.CalledProcessError(code, argv)
    return wall, cpu, peak


def one_node_rows(policy: object, inventory: object, names: list[str]) -> None:
    """`node_netmap` (compiler/onenode.py: what enforce and compile --node run),
    `node_packet_filter` (its filter side, what nft and drift run) and the nft
    render for a member node, a subnet router and an exit node."""
    from policyc.compiler.onenode import node_netmap, node_packet_filter
    from policyc.enforcer.nft import render_ruleset

    for name in ("node-5", "node-7", "node-11"):
        if name not in names:
            continue
        netmap, wall, cpu = _timed(lambda: node_netmap(policy, inventory, name))  # type: ignore[arg-type]  # noqa: B023
        _, f_wall, f_cpu = _timed(lambda: node_packet_filter(policy, inventory, name))  # type: ignore[arg-type]  # noqa: B023
        _, r_wall, r_cpu = _timed(lambda: render_ruleset(netmap, "policyc0"))  # noqa: B023
        print(f"|   one node: `node_netmap` {name} | {wall:.2f} s wall | {cpu:.2f} s CPU "
              f"| {len(netmap.peers):,} peers, {len(netmap.packet_filter)} rules "
              f"| `node_packet_filter` {f_wall:.2f} s wall / {f_cpu:.2f} s CPU "
              f"| nft render {r_wall:.2f} s wall / {r_cpu:.2f} s CPU "
              f"| load {os.getloadavg()[0]:.1f} |", flush=True)


def run_one(shape: str, nodes: int, rules: int, whole: bool, compile_nodes: int,
            one_node: bool = False) -> None:
    from policyc.compiler.compiler import Compilation
    from policyc.compiler.inventory import load_inventory_file
    from policyc.policy.load import load_policy_file

    generate = dense_gen.generate if shape == "dense" else tailnet_gen.generate
    policy_text, data = generate(nodes, 200, rules)
    workdir = Path(tempfile.mkdtemp(prefix="bench_build_"))
    try:
        import json

        policy_path, nodes_path = workdir / "policy.hujson", workdir / "nodes.json"
        policy_path.write_text(policy_text)
        nodes_path.write_text(json.dumps(data, indent=1))

        def load() -> tuple[object, object]:
            return load_policy_file(policy_path)[0], load_inventory_file(nodes_path)[0]

        (policy, inventory), load_wall, load_cpu = _timed(load)
        names = [n.name for n in inventory]  # type: ignore[attr-defined]
        if one_node:
            one_node_rows(policy, inventory, names)
        stage, build_wall, build_cpu = _timed(lambda: Compilation(policy, inventory))  # type: ignore[arg-type]
        me = names.index("node-5")
        netmap, _, one_cpu = _timed(lambda: stage.netmap_of(me))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"| {shape} | {nodes:,} | {len(policy_text) / 1e6:.1f} MB | {load_wall:.2f} / "
              f"{load_cpu:.2f} | {build_wall:.2f} / {build_cpu:.2f} | {one_cpu * 1000:.0f} "
              f"({len(netmap.peers):,} peers) | {peak:.0f} |", flush=True)
        if not whole:
            return
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
        cli = [sys.executable, "-m", "policyc.cli"]
        wall, cpu, rss = _child([*cli, "nft", str(policy_path), "--nodes", str(nodes_path),
                                 "--node", "node-5"], env)
        print(f"|   whole process: `nft --node node-5` | {wall:.2f} s wall | {cpu:.2f} s CPU "
              f"| {rss:.0f} MiB | load {os.getloadavg()[0]:.1f} |", flush=True)
        if compile_nodes < 0:
            return
        out = workdir / "out"
        chosen = names if compile_nodes <= 0 else names[:compile_nodes]
        argv = [*cli, "compile", str(policy_path), "--nodes", str(nodes_path), "-o", str(out)]
        if len(chosen) < len(names):
            argv += [arg for name in chosen for arg in ("--node", name)]
        wall, cpu, rss = _child(argv, env)
        written = sum(f.stat().st_size for f in out.iterdir()) / 1e6
        print(f"|   whole process: `compile -o` {len(chosen):,} of {len(names):,} nodes "
              f"| {wall:.2f} s wall | {cpu:.2f} s CPU | {rss:.0f} MiB | {written:,.0f} MB "
              f"| {written / max(cpu, 1e-9):,.0f} MB per CPU s |", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", default="dense", choices=("dense", "today"))
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--whole-process", action="store_true")
    parser.add_argument("--compile-nodes", type=int, default=0,
                        help="compile -o only the first N nodes (0: all, -1: none)")
    parser.add_argument("--one-node", action="store_true",
                        help="also time node_netmap and the nft render of single nodes")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run_one(args.shape, args.one, args.rules, args.whole_process, args.compile_nodes,
                args.one_node)
        return
    print(f"load average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} "
          f"{os.getloadavg()[2]:.1f}; times are wall / CPU seconds", flush=True)
    print("| shape | nodes | policy | load s | build s | one netmap CPU ms | peak MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|", flush=True)
    for n in args.sizes.split(","):
        argv = [sys.executable, __file__, "--one", n, "--shape", args.shape,
                "--rules", str(args.rules), "--compile-nodes", str(args.compile_nodes)]
        if args.whole_process:
            argv.append("--whole-process")
        if args.one_node:
            argv.append("--one-node")
        subprocess.run(argv, check=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
