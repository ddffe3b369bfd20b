"""The `policyc` command line: parse arguments, call the library, render, exit.

Exit codes (DESIGN.md): 0 ok, 1 policy errors / failed tests / denied /
changes, 2 usage or I/O errors. Nothing here computes policy semantics.
"""

from __future__ import annotations

import ipaddress
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from policyc.compiler.nodes import Inventory
from policyc.diagnostics import render
from policyc.diagnostics.codes import CODES
from policyc.diagnostics.diagnostics import Diagnostics
from policyc.diagnostics.source import SourceFile, Span
from policyc.policy.model import Policy

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
F = TypeVar("F", bound=Callable[..., Any])
IO_CODES = frozenset({"P006"})


@dataclass
class Loaded:
    policy: Policy | None
    inventory: Inventory | None
    diags: Diagnostics


def _color(stream: Any) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


def _emit_diagnostics(diags: Diagnostics, fmt: str = "text", *, err: bool = True) -> None:
    stream = sys.stderr if err else sys.stdout
    items = Diagnostics(diags.sorted())
    if fmt == "json":
        text = render.render_json(items)
    elif fmt == "sarif":
        text = render.render_sarif(items)
    elif fmt == "github":
        text = render.render_github(items)
    else:
        text = render.render_full(items, color=_color(stream))
    if text:
        click.echo(text.rstrip("\n"), file=stream)


def _io_failure(diags: Diagnostics) -> bool:
    return any(d.code in IO_CODES for d in diags.errors)


def _fail(diags: Diagnostics, fmt: str = "text") -> NoReturn:
    _emit_diagnostics(diags, fmt)
    sys.exit(EXIT_USAGE if _io_failure(diags) else EXIT_FAIL)


def _fail_io(path: str, message: str) -> NoReturn:
    """An output file or directory that cannot be written: an I/O error (exit 2)."""
    diags = Diagnostics()
    diags.error("P006", Span(SourceFile(str(path), ""), 0, 0), message)
    _fail(diags)


def _load(policy_path: str, nodes_path: str | None) -> Loaded:
    from policyc.compiler.inventory import load_inventory_file
    from policyc.policy.load import load_policy_file

    policy, diags = load_policy_file(policy_path)
    inventory = None
    if nodes_path is not None:
        inventory, inv_diags = load_inventory_file(nodes_path)
        diags.extend(inv_diags)
    return Loaded(policy, inventory, diags)


def _load_or_exit(policy_path: str, nodes_path: str | None) -> tuple[Policy, Inventory]:
    """Load both files for commands that need them; diagnostics end the run."""
    loaded = _load(policy_path, nodes_path)
    if loaded.diags.has_errors or loaded.policy is None or loaded.inventory is None:
        _fail(loaded.diags)
    if loaded.diags.items:
        _emit_diagnostics(loaded.diags)  # warnings only
    return loaded.policy, loaded.inventory


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="policyc")
def main() -> None:
    """Compile and enforce Tailscale-compatible ACL policies."""


@main.command()
@click.argument("policy", type=click.Path(dir_okay=False))
@click.option("--nodes", "nodes_path", type=click.Path(dir_okay=False),
              help="Inventory of nodes (JSON/HuJSON); enables inventory-aware warnings.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "sarif", "github"]),
              default="text", show_default=True)
def check(policy: str, nodes_path: str | None, fmt: str) -> None:
    """Parse and validate POLICY, then run its `tests` and `sshTests`."""
    from policyc.analysis.lint import lint_policy
    from policyc.analysis.testrunner import run_policy_tests

    loaded = _load(policy, nodes_path)
    diags = loaded.diags
    report = None
    if loaded.policy is not None and not diags.has_errors:
        if loaded.inventory is not None:
            lint_policy(loaded.policy, loaded.inventory, diags)
        report = run_policy_tests(loaded.policy, loaded.inventory, diags)
    _emit_diagnostics(diags, fmt, err=False)
    if fmt == "text":
        errors, warnings = len(diags.errors), len(diags.warnings)
        tests = f", {report.summary()}" if report is not None else ""
        status = "ok" if not errors else "FAILED"
        click.echo(f"{policy}: {status}: {errors} error(s), {warnings} warning(s){tests}")
    if diags.has_errors:
        sys.exit(EXIT_USAGE if _io_failure(diags) else EXIT_FAIL)


@main.command(name="compile")
@click.argument("policy", type=click.Path(dir_okay=False))
@click.option("--nodes", "nodes_path", required=True, type=click.Path(dir_okay=False))
@click.option("--node", "node_names", multiple=True, help="Only this node (repeatable).")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False),
              help="Write one NODE.json per node into this directory.")
def compile_cmd(policy: str, nodes_path: str, node_names: tuple[str, ...],
                out_dir: str | None) -> None:
    """Compile POLICY against the inventory into per-node netmaps (JSON)."""
    from policyc.compiler.compiler import compile_policy

    model, inventory = _load_or_exit(policy, nodes_path)
    netmaps = compile_policy(model, inventory).netmaps
    names = _select_nodes(inventory, node_names)
    if out_dir is not None:
        target = Path(out_dir)
        try:
            target.mkdir(parents=True, exist_ok=True)
            for name in names:
                text = json.dumps(netmaps[name].to_json(), indent=2) + "\n"
                (target / f"{name}.json").write_text(text)
        except OSError as err:
            _fail_io(err.filename or out_dir, f"cannot write netmaps: {err.strerror or err}")
        click.echo(f"wrote {len(names)} netmap(s) to {target}", err=True)
        return
    if len(node_names) == 1:
        click.echo(json.dumps(netmaps[names[0]].to_json(), indent=2))
    else:
        click.echo(json.dumps({n: netmaps[n].to_json() for n in names}, indent=2))


def _select_nodes(inventory: Inventory, wanted: tuple[str, ...]) -> list[str]:
    if not wanted:
        return [n.name for n in inventory]
    unknown = [w for w in wanted if inventory.get(w) is None]
    if unknown:
        raise click.UsageError(
            f"unknown node {unknown[0]!r} (I404); the inventory has: "
            + ", ".join(n.name for n in inventory))
    return list(wanted)


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

    model, inventory = _load_or_exit(policy, nodes_path)
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
@click.argument("policy", type=click.Path(dir_okay=False))
@click.option("--nodes", "nodes_path", required=True, type=click.Path(dir_okay=False))
@click.option("--node", "node_name", required=True)
@click.option("--iface", default="policyc0", show_default=True, help="Mesh interface name.")
@click.option("--json", "as_json", is_flag=True, help="Print nftables JSON instead of text.")
def nft(policy: str, nodes_path: str, node_name: str, iface: str, as_json: bool) -> None:
    """Print the nftables ruleset NODE would load (dry run)."""
    from policyc.compiler.compiler import compile_policy
    from policyc.enforcer.nft import render_ruleset, render_text

    model, inventory = _load_or_exit(policy, nodes_path)
    (name,) = _select_nodes(inventory, (node_name,))
    netmap = compile_policy(model, inventory).netmaps[name]
    diags = Diagnostics()
    ruleset = render_ruleset(netmap, iface, diagnostics=diags)
    if diags.has_errors:
        _fail(diags)
    _emit_diagnostics(diags)
    click.echo(json.dumps(ruleset, indent=2) if as_json else render_text(ruleset))


def _on_a_node(command: F) -> F:
    """The arguments every command acting on one live node takes."""
    for option in reversed((
        click.argument("policy", type=click.Path(dir_okay=False)),
        click.option("--nodes", "nodes_path", required=True, type=click.Path(dir_okay=False)),
        click.option("--node", "node_name", required=True),
        click.option("--iface", required=True, help="The node's WireGuard mesh interface."),
        click.option("--netns", default=None, help="Network namespace the interface lives in."),
    )):
        command = option(command)
    return command


@main.command()
@_on_a_node
@click.option("--private-key-file", type=click.Path(dir_okay=False, exists=True),
              default=None, help="Set the interface's WireGuard private key from this file.")
@click.option("--listen-port", type=click.IntRange(1, 65535), default=None,
              help="Set the interface's WireGuard listen port.")
def enforce(policy: str, nodes_path: str, node_name: str, iface: str,
            netns: str | None, private_key_file: str | None, listen_port: int | None) -> None:
    """Apply NODE's packet filter and WireGuard peers on IFACE.

    The filter is loaded first (fail closed), then peers are set to exactly
    the netmap's, then flows the new filter no longer allows are cut.
    """
    from policyc.compiler.compiler import compile_policy
    from policyc.enforcer.node import enforce as run_enforce

    model, inventory = _load_or_exit(policy, nodes_path)
    (name,) = _select_nodes(inventory, (node_name,))
    netmap = compile_policy(model, inventory).netmaps[name]
    result = run_enforce(netmap, iface, netns=netns, private_key_file=private_key_file,
                         listen_port=listen_port)
    for line in result.messages():
        click.echo(line, err=not result.ok)
    sys.exit(EXIT_OK if result.ok else EXIT_FAIL)


@main.command()
@_on_a_node
@click.option("--repair", is_flag=True, help="Re-apply the expected table if it drifted.")
def drift(policy: str, nodes_path: str, node_name: str, iface: str, netns: str | None,
          repair: bool) -> None:
    """Compare NODE's loaded nftables table with what POLICY says it should be.

    Exit 0 when the kernel holds exactly the rendered table (or it was
    repaired), 1 when it drifted (or the repair failed).
    """
    from policyc.compiler.compiler import compile_policy
    from policyc.enforcer.nft import apply_ruleset, check_drift, render_ruleset

    model, inventory = _load_or_exit(policy, nodes_path)
    (name,) = _select_nodes(inventory, (node_name,))
    diags = Diagnostics()
    expected = render_ruleset(compile_policy(model, inventory).netmaps[name], iface,
                              diagnostics=diags)
    if diags.has_errors:
        _fail(diags)
    report = check_drift(expected, netns)
    if report.ok:
        click.echo(f"{name}: table inet policyc matches the policy")
        return
    if not report.differences:  # could not read the table at all
        _fail(Diagnostics(list(report.diagnostics)))
    _emit_diagnostics(Diagnostics(list(report.diagnostics)), err=False)
    if not repair:
        sys.exit(EXIT_FAIL)
    applied = apply_ruleset(expected, netns=netns, iface=iface)
    if not applied.ok:
        _fail(Diagnostics(list(applied.diagnostics)))
    click.echo(f"{name}: repaired ({applied.elements} elements re-applied)")


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


if __name__ == "__main__":
    main()
