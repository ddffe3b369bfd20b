"""The user-facing commands on other dense shapes (`dense_shapes.py`), whole processes.

    python3 benchmarks/bench_shapes.py [--shapes allowall,grants] [--sizes 1000,10000]
                                       [--rules 1000] [--workdir /tmp/dense-shapes]

For each shape and size it writes the tailnet into WORKDIR/SHAPE-SIZE (reused if
there) and runs, each as its own `python3 -m policyc.cli` process: `check --nodes`,
`compile --node N` (one member device, output discarded), `nft --node N`, the same
for a tagged node (a subnet router where the shape has them), and `compile -o DIR`
with 10 `--node`s. Columns: wall s, CPU s (user + sys of the child), peak RSS MiB
(the child's ru_maxrss), exit status and output bytes; the load average is printed
per row (others share the machine). Which code runs is PYTHONPATH's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import dense_shapes  # the repository root is on sys.path even as a script


def timed(argv: list[str]) -> tuple[float, float, float, int, int]:
    """(wall s, CPU s, peak MiB, exit status, stdout bytes) of one child process."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        size = out.seek(0, os.SEEK_END)
    return (wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
            os.waitstatus_to_exitcode(status), size)


def tailnet(shape: str, nodes: int, rules: int, workdir: Path) -> Path:
    where = workdir / f"{shape}-{nodes}-{rules}"
    if not (where / "nodes.json").exists():
        policy, inventory = dense_shapes.SHAPES[shape](nodes, 200, rules, 1)
        where.mkdir(parents=True, exist_ok=True)
        (where / "policy.hujson").write_text(policy)
        (where / "nodes.json").write_text(json.dumps(inventory))
    return where


def chosen(where: Path) -> tuple[str, str, list[str]]:
    """A member device, a tagged device (a router if any), and ten nodes for `-o`."""
    nodes = json.loads((where / "nodes.json").read_text())["nodes"]
    member = next(n["name"] for n in nodes if not n["tags"])
    tagged = next((n["name"] for n in nodes if n["routes"]),
                  next(n["name"] for n in nodes if n["tags"]))
    step = max(1, len(nodes) // 10)
    return member, tagged, [n["name"] for n in nodes[::step][:10]]


def commands(where: Path, out: Path) -> list[tuple[str, list[str]]]:
    policy, inv = str(where / "policy.hujson"), str(where / "nodes.json")
    member, tagged, ten = chosen(where)
    cli = [sys.executable, "-m", "policyc.cli"]
    return [
        ("check --nodes", [*cli, "check", policy, "--nodes", inv]),
        (f"compile --node {member}", [*cli, "compile", policy, "--nodes", inv, "--node", member]),
        (f"nft --node {member}", [*cli, "nft", policy, "--nodes", inv, "--node", member]),
        (f"compile --node {tagged}", [*cli, "compile", policy, "--nodes", inv, "--node", tagged]),
        (f"nft --node {tagged}", [*cli, "nft", policy, "--nodes", inv, "--node", tagged]),
        ("compile -o (10 nodes)", [*cli, "compile", policy, "--nodes", inv, "-o", str(out),
                                   *(a for name in ten for a in ("--node", name))]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default=",".join(dense_shapes.SHAPES))
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--only", default="", help="run only commands starting with this")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/dense-shapes"))
    args = parser.parse_args()
    print("| shape | nodes | command | wall s | CPU s | peak MiB | exit | output | load |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---|", flush=True)
    for shape in args.shapes.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            where = tailnet(shape, size, args.rules, args.workdir)
            out = where / "out"
            for label, argv in commands(where, out):
                if not label.startswith(args.only):
                    continue
                shutil.rmtree(out, ignore_errors=True)
                wall, cpu, peak, code, size_out = timed(argv)
                if label.startswith("compile -o"):
                    size_out = sum(f.stat().st_size for f in out.glob("*"))
                load = " ".join(f"{x:.1f}" for x in os.getloadavg())
                print(f"| {shape} | {size} | `{label}` | {wall:.2f} | {cpu:.2f} | {peak:.0f} |"
                      f" {code} | {size_out / 1e6:.1f} MB | {load} |", flush=True)
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
