"""`policyc apply POLICY --server URL`: check, show the access diff, push.

Exit codes (DESIGN.md): 0 applied or unchanged; 1 rejected (diagnostics or
failing tests, rendered as `check` does, whether found here or by the
server, or over the server's size limit); 2 usage, authentication or network
errors; 3 conflict (the live policy changed since it was read: If-Match failed).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from policyc.cli.app import main
from policyc.cli.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, emit_diagnostics
from policyc.cli.control_client import AdminClient, AdminError, read_token
from policyc.cli.control_cmds import server_option, show_policy_diagnostics, token_option
from policyc.compiler.nodes import Inventory
from policyc.policy.model import Policy

EXIT_CONFLICT = 3
INVENTORY_FIELDS = ("name", "user", "tags", "ips", "key", "routes", "exit_node", "endpoint")


@main.command(name="apply")
@click.argument("policy", type=click.Path(dir_okay=False))
@server_option
@token_option
@click.option("--dry-run", is_flag=True, help="Check and show the diff; push nothing.")
@click.option("--if-match", "if_match",
              help="Push only if the live policy still has this ETag (default: the one read "
                   "now). Use it to make a reviewed diff the one that lands.")
def apply_cmd(policy: str, server: str, token_file: str | None, dry_run: bool,
              if_match: str | None) -> None:
    """Check POLICY, show the access it gains and loses, and push it to control."""
    try:
        text = Path(policy).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        click.echo(f"error: cannot read {policy}: {err}", err=True)
        sys.exit(EXIT_USAGE)
    try:
        token = read_token(token_file)
        if token is None:
            raise click.UsageError("no admin token: pass --token-file or set POLICYC_TOKEN")
        with AdminClient(server, token) as client:
            sys.exit(_apply(client, policy, text, dry_run, if_match))
    except AdminError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(EXIT_USAGE)


def _apply(client: AdminClient, path: str, text: str, dry_run: bool,
           if_match: str | None) -> int:
    from policyc.analysis.testrunner import run_policy_tests
    from policyc.policy.load import load_policy_text

    live = client.get_policy()
    stale = if_match is not None and if_match.strip().strip('"') not in ("*", live["etag"])
    if stale and text != live["policy"]:
        # The precondition comes before validation and the diff (as the server's 412
        # does): a reviewed change must not be pushed over another one. The live text
        # itself is the exception, as in Tailscale's gitops-pusher ("no update needed"
        # before its ETag check): a re-run of a job whose push landed has nothing to do.
        click.echo(f"conflict: --if-match {if_match} is not the live policy's ETag (live: "
                   f"version {live['version']}, etag {live['etag']}); nothing pushed", err=True)
        return EXIT_CONFLICT
    inventory = registered_inventory(client.nodes())
    new, diags = load_policy_text(text, path)
    if not diags.has_errors:
        run_policy_tests(new, inventory if len(inventory) else None, diags)
    if diags.has_errors:
        emit_diagnostics(diags)
        click.echo(f"{path}: rejected: {len(diags.errors)} error(s); nothing pushed", err=True)
        return EXIT_FAIL
    if diags.items:
        emit_diagnostics(diags)  # warnings only
    old, _ = load_policy_text(live["policy"], "live policy")
    click.echo(render_access_diff(old, new, inventory), nl=False)
    if text == live["policy"]:
        click.echo(f"unchanged: {path} is the live policy (version {live['version']})", err=True)
        if stale:
            click.echo(f"note: --if-match {if_match} is not its ETag ({live['etag']}); "
                       "nothing to push either way", err=True)
        return EXIT_OK
    if dry_run:
        click.echo(f"dry run: not pushed (live version {live['version']}, "
                   f"etag {live['etag']})", err=True)
        return EXIT_OK
    try:
        stored = client.put_policy(text, if_match or live["etag"])
    except AdminError as err:
        if err.status == 412:
            click.echo(f"conflict: {err.detail}; read it again and re-run", err=True)
            return EXIT_CONFLICT
        if err.status == 422:
            show_policy_diagnostics(err.diagnostics, path, text)
            click.echo(f"{path}: rejected by the server: nothing stored", err=True)
            return EXIT_FAIL
        if err.status == 413:
            click.echo(f"{path}: rejected by the server: {err.detail}", err=True)
            return EXIT_FAIL
        raise
    if stored["changed"]:
        click.echo(f"applied: version {stored['version']} "
                   f"({stored['netmaps_changed']} node netmap(s) changed)", err=True)
    else:
        click.echo("unchanged: the server already had this policy", err=True)
    return EXIT_OK


def registered_inventory(nodes: list[dict[str, Any]]) -> Inventory:
    """The server's registered (unexpired) nodes as an inventory, for local tests and diff."""
    from policyc.compiler.inventory import load_inventory_text

    entries = [{k: node.get(k) for k in INVENTORY_FIELDS} for node in nodes
               if not node.get("expired")]
    inventory, diags = load_inventory_text(json.dumps({"nodes": entries}), "registered nodes")
    if diags.has_errors:
        raise AdminError(0, "bad-answer", "the server's node list is not a valid inventory: "
                         + str(diags.errors[0]))
    return inventory


def render_access_diff(old: Policy, new: Policy, inventory: Inventory) -> str:
    """Access gained and lost against the live policy (`policyc diff`'s semantic diff),
    over the registered nodes, or a synthetic tailnet when none is registered yet."""
    from policyc.analysis.diff import access_diff
    from policyc.analysis.diff_render import render_text

    return render_text(access_diff(old, new, inventory if len(inventory) else None)) + "\n"
