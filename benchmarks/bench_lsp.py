"""Language-server latency: a real `policyc lsp` process driven by pygls's client.

    python3 benchmarks/bench_lsp.py [--edits 60] [--sizes 10,100,1024]

Prints a table:
* diagnostics latency for policies of about 10 KiB, 100 KiB and 1 MiB: from
  sending a didChange (an incremental change, as editors send them) to
  receiving its publishDiagnostics, over N edits that alternately add and fix a
  typo inside an ACL rule in the middle of the file (so every edit changes the
  diagnostics); p50/p90/p99/max, and the server process's CPU time per edit
  (user+sys from /proc, so other processes' load does not count);
* responsiveness while the 1 MiB policy is being re-analysed whole (an edit
  outside any rule): hover latency on a small open document;
* a typing burst of such edits on the 1 MiB policy (20 edits, 20 ms apart): how
  many analyses ran and how long after the last keystroke its diagnostics arrived;
* the CPU time of one full and one incremental analysis in this process (best
  of 3), and the load average, because wall-clock latencies on a shared machine
  are mostly waiting for a core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import sys
import time
from pathlib import Path

from bench_parse import generate_policy
from lsprotocol import types
from pygls.lsp.client import LanguageClient

ROOT = Path(__file__).resolve().parents[1]
SMALL = '{\n  "groups": {"group:dev": ["alice@example.com"]},\n  "acls": [\n' \
        '    {"action": "accept", "src": ["group:dev"], "dst": ["*:22"]},\n  ],\n}\n'


def typo_at(text: str) -> int:
    """Where the edits type: inside a group name of an ACL rule mid-file."""
    return text.index('"src": ["group:', len(text) // 2) + len('"src": ["group:')


class Bench:
    def __init__(self) -> None:
        self.client = LanguageClient("policyc-bench", "1")
        self.published: dict[str, asyncio.Queue[float]] = {}
        self.versions: dict[str, int] = {}

        @self.client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def _published(params: types.PublishDiagnosticsParams) -> None:
            self.queue(params.uri).put_nowait(time.perf_counter())

    def queue(self, uri: str) -> asyncio.Queue[float]:
        return self.published.setdefault(uri, asyncio.Queue())

    async def start(self) -> None:
        os.environ["PYTHONPATH"] = str(ROOT)
        await self.client.start_io(sys.executable, "-m", "policyc.cli", "lsp")
        await self.client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities()))
        self.client.initialized(types.InitializedParams())

    def server_cpu(self) -> float:
        """User+system CPU seconds the server process has used so far."""
        server = self.client._server  # the subprocess pygls started
        assert server is not None
        fields = Path(f"/proc/{server.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def open(self, uri: str, text: str) -> float:
        self.versions[uri] = 1
        sent = time.perf_counter()
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="jsonc", version=1,
                                                 text=text)))
        return await self.queue(uri).get() - sent

    def change(self, uri: str, text: str, at: int, old_length: int, new_text: str) -> float:
        """Replace `old_length` characters at `at` of `text` (ASCII) by `new_text`."""
        self.versions[uri] += 1
        line = text.count("\n", 0, at)
        column = at - (text.rfind("\n", 0, at) + 1)
        start = types.Position(line=line, character=column)
        end = types.Position(line=line, character=column + old_length)
        sent = time.perf_counter()
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(
                uri=uri, version=self.versions[uri]),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=start, end=end), text=new_text)]))
        return sent

    async def edit_latency(self, uri: str, text: str, edits: int) -> tuple[list[float], float]:
        """Latencies of `edits` typo/fix edits, and the server's CPU seconds per edit."""
        at = typo_at(text)
        out = []
        # The whole analysis with the policy tests that follows the open once the
        # document is quiet: let it finish first, so it is not counted in an edit.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.queue(uri).get(), 10)
        while not self.queue(uri).empty():
            self.queue(uri).get_nowait()
        cpu = self.server_cpu()
        for i in range(edits):
            if i % 2 == 0:
                sent = self.change(uri, text, at, 0, "x")
            else:
                sent = self.change(uri, text[:at] + "x" + text[at:], at, 1, "")
            out.append(await self.queue(uri).get() - sent)
        cpu = (self.server_cpu() - cpu) / edits
        if edits % 2:
            self.change(uri, text[:at] + "x" + text[at:], at, 1, "")
            await self.queue(uri).get()
        return out, cpu

    async def hover_while_busy(self, big: str, text: str, small: str, rounds: int,
                               ) -> tuple[list[float], str]:
        out = []
        for i in range(rounds):
            # A comment after the last section: outside every rule, so analysed whole.
            self.change(big, text, len(text), 0, f"// edit {i}\n")
            text += f"// edit {i}\n"
            await asyncio.sleep(0.05)  # the analysis is running now
            sent = time.perf_counter()
            await self.client.text_document_hover_async(types.HoverParams(
                text_document=types.TextDocumentIdentifier(uri=small),
                position=types.Position(line=1, character=16)))
            out.append(time.perf_counter() - sent)
            await self.queue(big).get()
        return out, text

    async def burst(self, uri: str, text: str, keystrokes: int) -> tuple[int, float]:
        queue = self.queue(uri)
        last = 0.0
        for _ in range(keystrokes):
            last = self.change(uri, text, len(text) - 1, 0, "x")
            text = text[:-1] + "x" + text[-1:]
            await asyncio.sleep(0.02)
        arrived = await queue.get()
        await asyncio.sleep(0.5)
        extra = queue.qsize()
        while not queue.empty():
            arrived = queue.get_nowait()
        return 1 + extra, arrived - last

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()


def analysis_cpu(text: str, runs: int = 3) -> tuple[float, float]:
    """Best-of-N CPU seconds of a full analysis and of an incremental one (a typo
    typed inside a rule), as the server's worker spends them with a core to itself."""
    from policyc.lsp.document import to_lsp_diagnostics
    from policyc.lsp.incremental import Engine

    at = typo_at(text)
    full = incremental = float("inf")
    for _ in range(runs):
        engine = Engine("bench.hujson")
        start = time.thread_time()
        to_lsp_diagnostics(engine.full(text, 1, None, run_tests=False))
        full = min(full, time.thread_time() - start)
        for version, edited in enumerate((text[:at] + "x" + text[at:], text), start=2):
            start = time.thread_time()
            to_lsp_diagnostics(engine.update(edited, version, None))
            incremental = min(incremental, time.thread_time() - start)
        assert engine.incremental_runs == 2
    return full, incremental


def _row(name: str, samples: list[float], cpu: float) -> str:
    ms = sorted(s * 1000 for s in samples)

    def rank(p: float) -> float:  # nearest-rank percentile
        return ms[max(0, math.ceil(p / 100 * len(ms)) - 1)]
    return (f"| {name} | {len(ms)} | {rank(50):.0f} | {rank(90):.0f} | {rank(99):.0f} "
            f"| {ms[-1]:.0f} | {cpu * 1000:.1f} |")


async def run(edits: int, sizes: list[int]) -> None:
    texts = {kb: generate_policy(kb * 1024) for kb in sizes}
    load_before = os.getloadavg()
    bench = Bench()
    await bench.start()
    small = "file:///bench/small.hujson"
    await bench.open(small, SMALL)
    rows, opened = [], []
    for kb, text in texts.items():
        uri = f"file:///bench/policy-{kb}.hujson"
        opened.append(f"{len(text) / 1024:.0f} KiB {await bench.open(uri, text) * 1000:.0f} ms")
        count = edits if len(text) < 512 * 1024 else max(10, edits // 3)
        latencies, cpu = await bench.edit_latency(uri, text, count)
        rows.append(_row(f"diagnostics after a change, {len(text) // 1024} KiB", latencies,
                         cpu))
    largest = max(texts)
    big = f"file:///bench/policy-{largest}.hujson"
    hovers, text = await bench.hover_while_busy(big, texts[largest], small, 10)
    analyses, after_last = await bench.burst(big, text, 20)
    await bench.stop()
    cpu = {kb: analysis_cpu(text) for kb, text in texts.items()}
    load_after = os.getloadavg()

    print(f"first diagnostics after open: {', '.join(opened)}\n")
    print("| measurement | n | p50 ms | p90 ms | p99 ms | max ms | server CPU ms/edit |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(_row(f"hover on a small file while the {largest // 1024 or 1} MiB one is analysed "
               "whole", hovers, 0.0))
    print(f"\ntyping burst on {len(text) // 1024} KiB outside any rule (20 edits, 20 ms apart): "
          f"{analyses} diagnostics publish(es); the last {after_last * 1000:.0f} ms after the "
          "last edit")
    print("CPU per analysis in-process (best of 3), full / incremental: " + ", ".join(
        f"{len(texts[kb]) // 1024} KiB {full * 1000:.1f} / {inc * 1000:.1f} ms"
        for kb, (full, inc) in cpu.items()))
    print(f"load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after, on "
          f"{os.cpu_count()} cores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=60)
    parser.add_argument("--sizes", default="10,100,1024", help="policy sizes in KiB")
    args = parser.parse_args()
    asyncio.run(run(args.edits, [int(kb) for kb in args.sizes.split(",")]))


if __name__ == "__main__":
    main()
