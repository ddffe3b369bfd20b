"""Commands on policy files: check, compile, explain, codes."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from policyc.cli.app import main
from policyc.cli.common import (
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    emit_diagnostics,
    fail,
    fail_io,
    few_collections,
    io_failure,
    load_files,
    load_or_exit,
    select_nodes,
)
from policyc.compiler.names import contained_path
from policyc.compiler.nodes import Inventory
from policyc.diagnostics.codes import CODES
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.diagnostics.source import NO_SPAN

if TYPE_CHECKING:
    from collections.abc import Iterator

    from policyc.netmap import NodeNetmap
    from policyc.policy.model import Policy


@main.command()
@click.argument("policy", type=click.Path(dir_okay=False))
@click.option("--nodes", "nodes_path", type=click.Path(dir_okay=False),
              help="Inventory of nodes (JSON/HuJSON); enables inventory-aware warnings.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "sarif", "github"]),
              default="text", show_default=True)
def check(policy: str, nodes_path: str | None, fmt: str) -> None:
    """Parse and validate POLICY, then run its `tests` and `sshTests`."""
    from policyc.analysis.check import check_loaded_policy

    with few_collections():
        loaded = load_files(policy, nodes_path)
        diags = loaded.diags
        report = None
        if loaded.policy is not None:
            report = check_loaded_policy(loaded.policy, loaded.inventory, diags)
    emit_diagnostics(diags, fmt, err=False)
    if fmt == "text":
        errors, warnings = len(diags.errors), len(diags.warnings)
        tests = f", {report.summary()}" if report is not None else ""
        status = "ok" if not errors else "FAILED"
        click.echo(f"{policy}: {status}: {errors} error(s), {warnings} warning(s){tests}")
    if diags.has_errors:
        sys.exit(EXIT_USAGE if io_failure(diags) else EXIT_FAIL)


@main.command(name="compile")
@click.argument("policy", type=click.Path(dir_okay=False))
@click.option("--nodes", "nodes_path", required=True, type=click.Path(dir_okay=False))
@click.option("--node", "node_names", multiple=True, help="Only this node (repeatable).")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False),
              help="Write one NODE.json per node into this directory.")
@click.option("--pretty", is_flag=True,
              help="Indented JSON (the default on a terminal; compact otherwise).")
def compile_cmd(policy: str, nodes_path: str, node_names: tuple[str, ...],
                out_dir: str | None, pretty: bool) -> None:
    """Compile POLICY against the inventory into per-node netmaps (JSON).

    Netmaps are made and written one node at a time, so memory stays the size
    of the compiled policy, not of every peer list.
    """
    from policyc.cli.output import netmap_bytes, pretty_wanted, write_line, write_netmap_object

    with few_collections():  # a one-shot run over a large, acyclic object graph
        model, inventory = load_or_exit(policy, nodes_path)
        names = select_nodes(inventory, node_names)
        netmaps = _netmaps(model, inventory, names)
    if out_dir is not None:
        target = Path(out_dir)
        try:
            target.mkdir(parents=True, exist_ok=True)
            paths = _output_paths(target, inventory, names)
            _write_files(netmaps, names, paths, pretty)
        except OSError as err:
            fail_io(err.filename or out_dir, f"cannot write netmaps: {err.strerror or err}")
        click.echo(f"wrote {len(names)} netmap(s) to {target}", err=True)
        return
    indent = pretty_wanted(pretty)
    if len(node_names) == 1:
        write_line(netmap_bytes(next(netmaps)[1], pretty=indent))
    else:
        write_netmap_object(netmaps, pretty=indent)


def _netmaps(model: Policy, inventory: Inventory, names: list[str]
             ) -> Iterator[tuple[str, NodeNetmap]]:
    """(name, netmap) one at a time: one node alone is compiled without the rest of
    the tailnet (compiler/onenode.py); more go through the index, which shares the
    stage between them."""
    if len(names) == 1:
        from policyc.compiler.onenode import node_netmap

        return iter([(names[0], node_netmap(model, inventory, names[0]))])
    from policyc.compiler.index import PolicyIndex

    return PolicyIndex.build(model, inventory).netmaps(names)


def _write_files(items: Iterator[tuple[str, NodeNetmap]], names: list[str],
                 paths: dict[str, Path], pretty: bool) -> None:
    """Stream netmaps to their files; a progress bar only when stderr is a terminal."""
    from policyc.cli.output import write_netmap_files

    if not sys.stderr.isatty():
        write_netmap_files(items, paths, pretty=pretty)
        return
    with click.progressbar(items, length=len(names), label="netmaps",
                           file=sys.stderr) as bar:
        write_netmap_files(bar, paths, pretty=pretty)


def _output_paths(target: Path, inventory: Inventory, names: list[str]) -> dict[str, Path]:
    """NAME.json inside `target` for every node, checked before anything is
    written: names are validated on load (I408), and this holds whatever the
    name, so a name or a planted symlink can never send a netmap elsewhere."""
    paths, diags = {}, Diagnostics()
    for name in names:
        path = contained_path(target, f"{name}.json")
        if path is None:
            node = inventory.get(name)
            diags.error("I412", node.where if node is not None else NO_SPAN,
                        f'node "{name}": {name}.json would not be a file directly in '
                        f"{target}; nothing was written")
        else:
            paths[name] = path
    if diags.has_errors:
        fail(diags)
    return paths


@main.command()
@click.argument("policy", type=click.Path(dir_okay=False))
@click.argument("src")
@click.argument("dst")
@click.option("--nodes", "nodes_path", required=True, type=click.Path(dir_okay=False))
@click.option("--proto", default=None, help="Protocol name or number (default: tcp/udp/icmp).")
def explain(policy: str, src: str, dst: str, nodes_path: str, proto: str | None) -> None:
    """Say whether SRC may reach DST[:PORT], and which rules decide."""
    from policyc.analysis.explain import ExplainError, render_explanation
    from policyc.analysis.explain import explain as run_explain

    model, inventory = load_or_exit(policy, nodes_path)
    dst_text, port = _split_port(dst)
    try:
        result = run_explain(model, inventory, src, dst_text, port, proto)
    except ExplainError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(render_explanation(result))
    sys.exit(EXIT_OK if result.allowed else EXIT_FAIL)


def _split_port(dst: str) -> tuple[str, int | None]:
    """`host:22` -> ("host", 22). A bare IPv6 address has no port; use `[v6]:22`."""
    if dst.startswith("[") and "]:" in dst:
        head, _, tail = dst[1:].partition("]:")
        return head, int(tail) if tail.isdigit() else None
    try:
        ipaddress.ip_address(dst)
        return dst, None
    except ValueError:
        pass
    head, sep, tail = dst.rpartition(":")
    if sep and tail.isdigit():
        return head, int(tail)
    return dst, None


@main.command()
@click.option("--markdown", is_flag=True, help="Emit the table as Markdown.")
def codes(markdown: bool) -> None:
    """List every diagnostic code."""
    if markdown:
        click.echo("| code | name | meaning |\n|---|---|---|")
    for code, info in CODES.items():
        if markdown:
            click.echo(f"| `{code}` | `{info.name}` | {info.summary} |")
        else:
            click.echo(f"{code}  {info.name:<24} {info.summary}")
