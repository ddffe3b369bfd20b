"""What every command shares: loading files, rendering diagnostics, exit codes.

Exit codes (DESIGN.md): 0 ok, 1 policy errors / failed tests / denied /
changes, 2 usage or I/O errors. Nothing here computes policy semantics.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

import click

from policyc.compiler.nodes import Inventory
from policyc.diagnostics import render
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.diagnostics.source import SourceFile, Span
from policyc.policy.model import Policy

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
IO_CODES = frozenset({"P006"})
# Warnings a command other than `check` prints before summing up the rest: a big
# generated policy can have hundreds (every unused group), which would bury the
# command's own output; `check` is where they are all listed.
WARNINGS_SHOWN = 10


def server_url(_ctx: click.Context | None, param: click.Parameter | None,
               value: str | None) -> str | None:
    """A click callback: `--server` must be an http(s) base URL (a bare HOST:PORT was
    retried forever by the agent and reported as "network" by admin commands)."""
    if value is None:
        return None
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest.strip("/"):
        raise click.BadParameter(f"{value!r} is not a URL like http://HOST:PORT",
                                 param=param if isinstance(param, click.Option) else None,
                                 param_hint="--server")
    return value


@dataclass
class Loaded:
    policy: Policy | None
    inventory: Inventory | None
    diags: Diagnostics


def use_color(stream: Any) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


def emit_diagnostics(diags: Diagnostics, fmt: str = "text", *, err: bool = True) -> None:
    stream = sys.stderr if err else sys.stdout
    items = Diagnostics(diags.sorted())
    if fmt == "json":
        text = render.render_json(items)
    elif fmt == "sarif":
        text = render.render_sarif(items)
    elif fmt == "github":
        text = render.render_github(items)
    else:
        text = render.render_full(items, color=use_color(stream))
    if text:
        click.echo(text.rstrip("\n"), file=stream)


def emit_warnings(diags: Diagnostics) -> None:
    """The first WARNINGS_SHOWN warnings in full, then how many more there are."""
    items = diags.sorted()
    emit_diagnostics(Diagnostics(items[:WARNINGS_SHOWN]))
    if len(items) > WARNINGS_SHOWN:
        click.echo(f"policyc: {len(items) - WARNINGS_SHOWN} more warning(s) not shown; "
                   "`policyc check` lists them all", err=True)


def io_failure(diags: Diagnostics) -> bool:
    return any(d.code in IO_CODES for d in diags.errors)


def fail(diags: Diagnostics, fmt: str = "text") -> NoReturn:
    emit_diagnostics(diags, fmt)
    sys.exit(EXIT_USAGE if io_failure(diags) else EXIT_FAIL)


def fail_io(path: str, message: str) -> NoReturn:
    """An output file or directory that cannot be written: an I/O error (exit 2)."""
    diags = Diagnostics()
    diags.error("P006", Span(SourceFile(str(path), ""), 0, 0), message)
    fail(diags)


def load_files(policy_path: str, nodes_path: str | None) -> Loaded:
    """Both files, and the inventory checked against the policy (I407) when
    the policy itself loaded cleanly (a broken `tagOwners` would only add noise)."""
    from policyc.collector import paused_collector
    from policyc.compiler.crosscheck import check_inventory_against_policy
    from policyc.compiler.inventory import load_inventory_file
    from policyc.policy.load import load_policy_file

    # Value trees and models are acyclic; even few_collections' raised thresholds
    # walk them again and again while they grow (10k dense: ~0.6 s of parsing).
    with paused_collector():
        policy, diags = load_policy_file(policy_path)
        policy_ok = policy is not None and not diags.has_errors
        inventory = None
        if nodes_path is not None:
            inventory, inv_diags = load_inventory_file(nodes_path)
            diags.extend(inv_diags)
            if inventory is not None and policy is not None and policy_ok:
                inventory = check_inventory_against_policy(policy, inventory, diags)
    return Loaded(policy, inventory, diags)


def load_or_exit(policy_path: str, nodes_path: str | None) -> tuple[Policy, Inventory]:
    """Load both files for commands that need them; diagnostics end the run."""
    loaded = load_files(policy_path, nodes_path)
    if loaded.diags.has_errors or loaded.policy is None or loaded.inventory is None:
        fail(loaded.diags)
    if loaded.diags.items:
        emit_warnings(loaded.diags)  # warnings only
    return loaded.policy, loaded.inventory


def select_nodes(inventory: Inventory, wanted: tuple[str, ...]) -> list[str]:
    if not wanted:
        return [n.name for n in inventory]
    unknown = [w for w in wanted if inventory.get(w) is None]
    if unknown:
        raise click.UsageError(
            f"unknown node {unknown[0]!r} (I404); the inventory has: "
            + ", ".join(n.name for n in inventory))
    return list(wanted)


@contextmanager
def few_collections() -> Iterator[None]:
    """Run a one-shot command with the cyclic garbage collector's thresholds raised.

    Loading a big policy builds a large object graph without cycles (value
    tree, spans, model), which reference counting frees by itself; the
    collector's default thresholds (700 allocations) still walk that graph
    again and again: about a fifth of a 1 MB `check` (docs/performance.md).
    Cycles are still collected, just rarely. For commands that end, not for
    servers.
    """
    before = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)
