"""Commands that render or apply one node's netmap: nft, enforce, drift."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from policyc.cli.app import main
from policyc.cli.common import (
    EXIT_FAIL,
    EXIT_OK,
    emit_diagnostics,
    fail,
    few_collections,
    load_or_exit,
    select_nodes,
)
from policyc.diagnostics.diagnostics import Diagnostics

if TYPE_CHECKING:
    from policyc.compiler.nodes import Inventory
    from policyc.compiler.onenode import NodeFilter
    from policyc.netmap import NodeNetmap
    from policyc.policy.model import Policy

F = TypeVar("F", bound=Callable[..., Any])


@main.command()
@click.argument("policy", type=click.Path(dir_okay=False))
@click.option("--nodes", "nodes_path", required=True, type=click.Path(dir_okay=False))
@click.option("--node", "node_name", required=True)
@click.option("--iface", default="policyc0", show_default=True, help="Mesh interface name.")
@click.option("--json", "as_json", is_flag=True, help="Print nftables JSON instead of text.")
@click.option("--pretty", is_flag=True, help="Indent the JSON (the default on a terminal).")
def nft(policy: str, nodes_path: str, node_name: str, iface: str, as_json: bool,
        pretty: bool) -> None:
    """Print the nftables ruleset NODE would load (dry run)."""
    from policyc.cli.output import dumps, pretty_wanted, write_line
    from policyc.enforcer.nftrender import render_ruleset  # not nft: no kernel side
    from policyc.enforcer.nfttext import render_text

    netmap = _filter(policy, nodes_path, node_name)
    diags = Diagnostics()
    ruleset = render_ruleset(netmap, iface, diagnostics=diags)
    if diags.has_errors:
        fail(diags)
    emit_diagnostics(diags)
    if as_json:
        write_line(dumps(ruleset, pretty=pretty_wanted(pretty)))
    else:
        click.echo(render_text(ruleset))


def _netmap(policy: str, nodes_path: str, node_name: str) -> NodeNetmap:
    """NODE's netmap, computing only that node (compiler/onenode.py)."""
    from policyc.compiler.onenode import node_netmap

    with few_collections():  # a one-shot run over a large, acyclic object graph
        return node_netmap(*_load(policy, nodes_path, node_name))


def _filter(policy: str, nodes_path: str, node_name: str) -> NodeFilter:
    """What rendering NODE's filter reads of its netmap: not its peers."""
    from policyc.compiler.onenode import node_packet_filter

    with few_collections():
        return node_packet_filter(*_load(policy, nodes_path, node_name))


def _load(policy: str, nodes_path: str, node_name: str) -> tuple[Policy, Inventory, str]:
    model, inventory = load_or_exit(policy, nodes_path)
    (name,) = select_nodes(inventory, (node_name,))
    return model, inventory, name


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
    from policyc.enforcer.node import enforce as run_enforce

    netmap = _netmap(policy, nodes_path, node_name)
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
    from policyc.enforcer.nft import apply_ruleset, check_drift, render_ruleset

    netmap = _filter(policy, nodes_path, node_name)
    name = netmap.node
    diags = Diagnostics()
    expected = render_ruleset(netmap, iface, diagnostics=diags)
    if diags.has_errors:
        fail(diags)
    report = check_drift(expected, netns)
    if report.ok:
        click.echo(f"{name}: table inet policyc matches the policy")
        return
    if not report.differences:  # could not read the table at all
        fail(Diagnostics(list(report.diagnostics)))
    emit_diagnostics(Diagnostics(list(report.diagnostics)), err=False)
    if not repair:
        sys.exit(EXIT_FAIL)
    applied = apply_ruleset(expected, netns=netns, iface=iface)
    if not applied.ok:
        fail(Diagnostics(list(applied.diagnostics)))
    elements = f"{applied.elements} element{'' if applied.elements == 1 else 's'}"
    click.echo(f"{name}: repaired ({elements} re-applied)")
