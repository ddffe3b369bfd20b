"""Where `compile -o DIR` spends its time per netmap, against the disk's own speed.

    python3 benchmarks/bench_output.py [--shape dense|today] [--nodes 10000]
                                       [--write 200] [--dd-mb 2048] [--dir /tmp]

In one process: generate the tailnet (seed 1, 200 groups, 1,000 rules), load it,
build the index, then stream the first `--write` netmaps into a fresh folder under
`--dir` the way `compile -o` does, timing each phase per netmap (CPU and wall):
making the netmap (`PolicyIndex.netmaps`: peer list and filter), encoding it with
fragments (`NetmapEncoder.chunks`), writing it (`write_chunks`). The same netmaps
are also encoded the previous way (`orjson.dumps` of the whole document), for the
before/after. Then the disk's raw sequential write speed with `dd` (to a file next
to the output, with and without `conv=fdatasync`), which bounds any writer, and an
extrapolation to every node of the tailnet. Outputs and the dd file are deleted.

Never write every netmap of a 10k dense tailnet: that is ~61 GB. The machine is
shared: the load average is printed; compare CPU columns.
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

from benchmarks import dense_gen, tailnet_gen


class Clock:
    """CPU and wall seconds accumulated per phase."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self.wall: dict[str, float] = {}
        self._at = (0.0, 0.0)

    def start(self) -> None:
        self._at = (time.process_time(), time.perf_counter())

    def lap(self, phase: str) -> None:
        cpu, wall = time.process_time(), time.perf_counter()
        self.cpu[phase] = self.cpu.get(phase, 0.0) + cpu - self._at[0]
        self.wall[phase] = self.wall.get(phase, 0.0) + wall - self._at[1]
        self._at = (cpu, wall)


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def dd_speed(folder: Path, megabytes: int, sync: bool) -> float:
    """MB/s of `dd` writing zeros to a file in `folder` (deleted afterwards)."""
    target = folder / "bench_output_dd.bin"
    argv = ["dd", "if=/dev/zero", f"of={target}", "bs=8M", f"count={megabytes // 8}"]
    try:
        start = time.perf_counter()
        subprocess.run([*argv, *(["conv=fdatasync"] if sync else [])], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return megabytes * 1.048576 / (time.perf_counter() - start)
    finally:
        target.unlink(missing_ok=True)


def stream(index, names: list[str], out: Path, clock: Clock) -> tuple[int, list[object]]:  # type: ignore[no-untyped-def]
    """`compile -o`'s loop with a lap per phase; (bytes, a few netmaps kept)."""
    from policyc.cli.netmap_json import NetmapEncoder
    from policyc.cli.output import write_chunks

    encoder, written, sample = NetmapEncoder(pretty=False), 0, []
    items = index.netmaps(names)
    clock.start()
    for name, netmap in items:
        # The first one also computes every node's peer set (once per run).
        clock.lap("netmap" if written else "first")
        chunks = encoder.chunks(netmap)
        chunks.append(b"\n")
        clock.lap("encode")
        write_chunks(out / f"{name}.json", chunks)
        clock.lap("write")
        written += sum(map(len, chunks))
        if len(sample) < 20:
            sample.append(netmap)
        clock.start()  # the generator's own time between netmaps counts as "netmap"
    return written, sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shape", default="dense", choices=("dense", "today"))
    parser.add_argument("--nodes", type=int, default=10000)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--write", type=int, default=200, help="netmaps to write")
    parser.add_argument("--dd-mb", type=int, default=2048, help="0: skip the dd bound")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where to write")
    args = parser.parse_args()

    from policyc.cli.common import few_collections, load_or_exit
    from policyc.cli.output import netmap_bytes
    from policyc.compiler.index import PolicyIndex

    print(f"load average {load_average()}", flush=True)
    generate = dense_gen.generate if args.shape == "dense" else tailnet_gen.generate
    policy_text, data = generate(args.nodes, 200, args.rules)
    work = Path(tempfile.mkdtemp(prefix="bench_output_", dir=args.dir))
    try:
        policy_path, nodes_path, out = work / "policy.hujson", work / "nodes.json", work / "out"
        policy_path.write_text(policy_text)
        nodes_path.write_text(json.dumps(data, indent=1))
        out.mkdir()
        clock = Clock()
        clock.start()
        with few_collections():  # as `compile` does
            model, inventory = load_or_exit(str(policy_path), str(nodes_path))
            clock.lap("load")
            index = PolicyIndex.build(model, inventory)
            clock.lap("build")
        names = index.names()[:args.write]
        written, sample = stream(index, names, out, clock)
        shutil.rmtree(out)
        n = len(names)
        old = time.process_time()
        old_bytes = sum(len(netmap_bytes(m, pretty=False)) + 1 for m in sample)  # type: ignore[arg-type]
        old_ms = (time.process_time() - old) / len(sample) * 1000
        report(args, n, written, clock, old_ms, old_bytes / len(sample), len(index))
        if args.dd_mb:
            sync = dd_speed(Path(args.dir), args.dd_mb, sync=True)
            cached = dd_speed(Path(args.dir), args.dd_mb, sync=False)
            each = written / n / 1e6
            print(f"dd {args.dd_mb} MiB to {args.dir}: {sync:.0f} MB/s with fdatasync, "
                  f"{cached:.0f} MB/s into the page cache; all {len(index):,} netmaps "
                  f"({each * len(index) / 1e3:,.1f} GB) need >= {each * len(index) / sync:,.0f} s "
                  f"at the synced rate", flush=True)
        print(f"load average at the end {load_average()}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(args: argparse.Namespace, n: int, written: int, clock: Clock, old_ms: float,
           old_each: float, total: int) -> None:
    mb = written / 1e6
    print(f"| {args.shape} | {total:,} | load {clock.cpu['load']:.2f} / "
          f"{clock.wall['load']:.2f} s | build {clock.cpu['build']:.2f} / "
          f"{clock.wall['build']:.2f} s | {n:,} netmaps, {mb:,.0f} MB ({mb / n:.2f} MB each) |",
          flush=True)
    print("| phase | CPU ms per netmap | wall ms per netmap | MB per CPU s |")
    print("|---|---:|---:|---:|")
    for phase in ("netmap", "encode", "write"):
        cpu, wall = clock.cpu.get(phase, 0.0), clock.wall.get(phase, 0.0)
        count = max(n - 1, 1) if phase == "netmap" else n
        print(f"| {phase} | {cpu / count * 1000:.2f} | {wall / count * 1000:.2f} | "
              f"{mb / max(cpu, 1e-9):,.0f} |")
    counts = {"netmap": max(n - 1, 1), "encode": n, "write": n}
    each_cpu = sum(clock.cpu.get(p, 0.0) / k for p, k in counts.items())  # one netmap
    each_wall = sum(clock.wall.get(p, 0.0) / k for p, k in counts.items())
    per_cpu = each_cpu * n
    print(f"| all three | {each_cpu * 1000:.2f} | {each_wall * 1000:.2f} | "
          f"{mb / max(per_cpu, 1e-9):,.0f} |")
    print(f"| encode before (orjson of the whole document, first 20) | {old_ms:.2f} | | "
          f"{old_each / 1e6 / max(old_ms / 1000, 1e-9):,.0f} |")
    fixed = clock.cpu["load"] + clock.cpu["build"] + clock.cpu["first"]
    print(f"first netmap (with every node's peer set) {clock.cpu['first']:.2f} s CPU; "
          f"extrapolated to all {total:,} netmaps: {fixed:.1f} s CPU load+build+first + "
          f"{per_cpu / n * total:,.0f} s CPU output = {fixed + per_cpu / n * total:,.0f} s CPU, "
          f"{written / n * total / 1e9:,.1f} GB", flush=True)


if __name__ == "__main__":
    main()
