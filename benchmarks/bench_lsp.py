"""Language-server latency: a real `policyc lsp` process driven by pygls's client.

    python3 benchmarks/bench_lsp.py [--edits 60] [--small-kb 100] [--large-kb 1024]

Prints a table:
* diagnostics latency for a ~100 KB policy: from sending a didChange to
  receiving its publishDiagnostics, over N edits that alternately add and fix
  a typo (so every edit changes the diagnostics); p50/p90/p99/max;
* the same for the ~1 MB policy (a few edits);
* responsiveness while the 1 MB policy is being re-analysed: hover latency on
  a small open document, requested right after each 1 MB edit;
* a typing burst on the 1 MB policy (20 edits, 20 ms apart): how many analyses
  ran and how long after the last keystroke its diagnostics arrived;
* the CPU time one analysis costs (in this process, best of 3: what the server's
  worker spends when it has a core to itself), and the load average, because
  wall-clock latencies on a shared machine are mostly waiting for a core.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

from bench_parse import generate_policy
from lsprotocol import types
from pygls.lsp.client import LanguageClient

ROOT = Path(__file__).resolve().parents[1]
SMALL = '{\n  "groups": {"group:dev": ["alice@example.com"]},\n  "acls": [\n' \
        '    {"action": "accept", "src": ["group:dev"], "dst": ["*:22"]},\n  ],\n}\n'


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

    async def open(self, uri: str, text: str) -> float:
        self.versions[uri] = 1
        sent = time.perf_counter()
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="jsonc", version=1,
                                                 text=text)))
        return await self.queue(uri).get() - sent

    def change(self, uri: str, text: str) -> float:
        self.versions[uri] += 1
        sent = time.perf_counter()
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(
                uri=uri, version=self.versions[uri]),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))
        return sent

    async def edit_latency(self, uri: str, text: str, edits: int) -> list[float]:
        out = []
        for i in range(edits):
            edited = text.replace("group:", "group:x", 1) if i % 2 == 0 else text
            sent = self.change(uri, edited)
            out.append(await self.queue(uri).get() - sent)
        return out

    async def hover_while_busy(self, big: str, text: str, small: str, rounds: int,
                               ) -> list[float]:
        out = []
        for i in range(rounds):
            self.change(big, text + f"// edit {i}\n")
            await asyncio.sleep(0.05)  # the analysis is running now
            sent = time.perf_counter()
            await self.client.text_document_hover_async(types.HoverParams(
                text_document=types.TextDocumentIdentifier(uri=small),
                position=types.Position(line=1, character=16)))
            out.append(time.perf_counter() - sent)
            await self.queue(big).get()
        return out

    async def burst(self, uri: str, text: str, keystrokes: int) -> tuple[int, float]:
        queue = self.queue(uri)
        last = 0.0
        for i in range(keystrokes):
            last = self.change(uri, text + f"// typing {'x' * i}\n")
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


def analysis_cpu(text: str, runs: int = 3) -> float:
    """Best-of-N CPU seconds for what the server does per change before publishing."""
    from policyc.lsp.document import analyze, to_lsp_diagnostics

    best = float("inf")
    for _ in range(runs):
        start = time.thread_time()
        to_lsp_diagnostics(analyze("bench.hujson", text, 1, None, run_tests=False))
        best = min(best, time.thread_time() - start)
    return best


def _row(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p = statistics.quantiles(ms, n=100) if len(ms) > 1 else ms * 99
    return (f"| {name} | {len(ms)} | {statistics.median(ms):.0f} | {p[89]:.0f} | {p[98]:.0f} "
            f"| {ms[-1]:.0f} |")


async def run(edits: int, small_kb: int, large_kb: int) -> None:
    medium_text = generate_policy(small_kb * 1024)
    large_text = generate_policy(large_kb * 1024)
    bench = Bench()
    await bench.start()
    medium, large, small = "file:///bench/medium.hujson", "file:///bench/large.hujson", \
        "file:///bench/small.hujson"
    await bench.open(small, SMALL)
    first_medium = await bench.open(medium, medium_text)
    medium_edits = await bench.edit_latency(medium, medium_text, edits)
    first_large = await bench.open(large, large_text)
    large_edits = await bench.edit_latency(large, large_text, 6)
    hovers = await bench.hover_while_busy(large, large_text, small, 10)
    analyses, after_last = await bench.burst(large, large_text, 20)
    await bench.stop()
    cpu_medium, cpu_large = analysis_cpu(medium_text), analysis_cpu(large_text)
    load = os.getloadavg()[0]

    print(f"policy sizes: {len(medium_text) / 1024:.0f} KiB and {len(large_text) / 1024:.0f} KiB;"
          f" first diagnostics after open: {first_medium * 1000:.0f} ms and "
          f"{first_large * 1000:.0f} ms\n")
    print("| measurement | n | p50 ms | p90 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|")
    print(_row(f"diagnostics after a change, {len(medium_text) // 1024} KiB", medium_edits))
    print(_row(f"diagnostics after a change, {len(large_text) // 1024} KiB", large_edits))
    print(_row("hover on a small file while the 1 MiB one is analysed", hovers))
    print(f"\ntyping burst on {len(large_text) // 1024} KiB (20 edits, 20 ms apart): "
          f"{analyses} diagnostics publish(es); the last "
          f"{after_last * 1000:.0f} ms after the last edit")
    print(f"CPU per analysis (in-process, best of 3): {cpu_medium * 1000:.0f} ms at "
          f"{len(medium_text) // 1024} KiB, {cpu_large * 1000:.0f} ms at "
          f"{len(large_text) // 1024} KiB; load average {load:.1f} on {os.cpu_count()} cores")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=60)
    parser.add_argument("--small-kb", type=int, default=100)
    parser.add_argument("--large-kb", type=int, default=1024)
    args = parser.parse_args()
    asyncio.run(run(args.edits, args.small_kb, args.large_kb))


if __name__ == "__main__":
    main()
