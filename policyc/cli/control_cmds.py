"""`policyc control ...`: create and serve a control state, and its admin commands.

Scriptable: a key or token is printed alone on stdout, everything else goes
to stderr. Exit codes: 0 ok; 1 refused by the server (bad input, unknown
node, invalid policy); 2 usage, authentication or network errors.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click

from policyc.cli.app import main
from policyc.cli.common import EXIT_FAIL, EXIT_USAGE, server_url
from policyc.cli.control_client import AdminClient, AdminError, read_token

server_option = click.option("--server", required=True, envvar="POLICYC_SERVER",
                             callback=server_url,
                             help="Control URL, e.g. https://control.example.com "
                                  "(env POLICYC_SERVER).")
token_option = click.option("--token-file", type=click.Path(dir_okay=False),
                            help="File holding the admin token (default: env POLICYC_TOKEN).")


def admin_fail(err: AdminError) -> NoReturn:
    click.echo(f"error: {err}", err=True)
    for item in err.diagnostics:
        click.echo(f"  {item.get('file')}:{item.get('line')}:{item.get('column')}: "
                   f"{item.get('severity')}[{item.get('code')}]: {item.get('message')}", err=True)
    refused = err.status >= 400 and err.status != 401  # 401: authentication, a usage error
    sys.exit(EXIT_FAIL if refused else EXIT_USAGE)


@contextmanager
def admin_client(server: str, token_file: str | None) -> Iterator[AdminClient]:
    try:
        token = read_token(token_file)
        if token is None:
            raise click.UsageError("no admin token: pass --token-file or set POLICYC_TOKEN")
        with AdminClient(server, token) as client:
            yield client
    except AdminError as err:
        admin_fail(err)


@main.group()
def control() -> None:
    """Coordination server: state, serving, and admin commands."""


@control.command(name="init")
@click.option("--state", "state_dir", required=True, type=click.Path(file_okay=False),
              help="State directory to create (0700).")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False),
              help="First policy (default: Tailscale's allow-all default).")
def control_init(state_dir: str, policy_path: str | None) -> None:
    """Create DIR with the database, control's keys and an admin token (printed)."""
    from policyc.control.errors import ControlError
    from policyc.control.serve import init_state
    from policyc.control.statedir import ADMIN_TOKEN, StateError

    text = None
    if policy_path is not None:
        try:
            text = Path(policy_path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            click.echo(f"error: cannot read {policy_path}: {err}", err=True)
            sys.exit(EXIT_USAGE)
    try:
        token, keys = init_state(Path(state_dir), text)
    except StateError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(EXIT_USAGE)
    except ControlError as err:
        if not err.diagnostics:  # e.g. over the size limit: nothing was parsed
            click.echo(f"error: {policy_path or 'policy'}: {err.detail}", err=True)
        show_policy_diagnostics(err.diagnostics or [], policy_path or "policy", text or "")
        sys.exit(EXIT_FAIL)
    click.echo(token)
    click.echo(f"admin token written to {Path(state_dir) / ADMIN_TOKEN}", err=True)
    click.echo(f"signing key (nodes pin it): {keys.signing_public}", err=True)
    click.echo(f"box key: {keys.box_public}", err=True)


def show_policy_diagnostics(items: list[dict[str, Any]], path: str, text: str) -> None:
    """Render server diagnostics (JSON with offsets) with carets, as `check` does."""
    from policyc.cli.common import emit_diagnostics
    from policyc.diagnostics.diagnostics import Diagnostic, Diagnostics, Severity
    from policyc.diagnostics.source import SourceFile, Span

    source = SourceFile(path, text)
    diags = Diagnostics()
    for item in items:
        start = int(item.get("offset", 0))
        end = int(item.get("end_offset", start))
        if not 0 <= start <= end <= len(text):
            start = end = 0
        diags.items.append(Diagnostic(
            code=str(item.get("code")), severity=Severity(item.get("severity", "error")),
            message=str(item.get("message")), span=Span(source, start, end),
            notes=tuple(item.get("notes") or ()), suggestion=item.get("suggestion")))
    emit_diagnostics(diags)


@control.command(name="serve")
@click.option("--state", "state_dir", required=True, type=click.Path(file_okay=False))
@click.option("--listen", default="127.0.0.1:8080", show_default=True,
              help="HOST:PORT (port 0: any free port; the URL is printed on stderr).")
@click.option("--node-expiry", default="180d", show_default=True,
              help="How long a node key stays valid after it registers (e.g. 90d, 12h).")
@click.option("--poll-timeout", default=60.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds a long-poll waits before answering 'no change'.")
def control_serve(state_dir: str, listen: str, node_expiry: str, poll_timeout: float) -> None:
    """Serve the state until SIGTERM/SIGINT; long-polls are drained, exit 0."""
    from policyc.control.app import Settings
    from policyc.control.errors import ControlError
    from policyc.control.registry import parse_duration
    from policyc.control.serve import serve
    from policyc.control.statedir import StateError

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise click.UsageError(f"--listen must be HOST:PORT, not {listen!r}")
    try:
        expiry = parse_duration(node_expiry)
    except ControlError as err:
        raise click.UsageError(f"--node-expiry: {err.detail}") from None
    try:
        serve(Path(state_dir), host.strip("[]"), int(port),
              Settings(node_expiry=expiry, poll_timeout=poll_timeout))
    except StateError as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(EXIT_USAGE)


@control.group()
def authkey() -> None:
    """Pre-auth keys nodes register with."""


@authkey.command(name="create")
@server_option
@token_option
@click.option("--user", help="The login the node will belong to.")
@click.option("--tag", "tags", multiple=True, help="A tag the node will carry (repeatable).")
@click.option("--reusable", is_flag=True, help="Usable by many nodes (default: single use).")
@click.option("--expires", help="Validity, e.g. 1h or 90d (default: never).")
def authkey_create(server: str, token_file: str | None, user: str | None,
                   tags: tuple[str, ...], reusable: bool, expires: str | None) -> None:
    """Print a new pre-auth key (alone on stdout)."""
    from policyc.control.errors import ControlError
    from policyc.control.registry import parse_duration

    if (user is None) == (not tags):
        raise click.UsageError("give either --user or --tag (one or more)")
    try:
        expires_in = None if expires is None else parse_duration(expires)
    except ControlError as err:
        raise click.UsageError(f"--expires: {err.detail}") from None
    with admin_client(server, token_file) as client:
        made = client.create_auth_key(user, list(tags), reusable, expires_in)
    click.echo(made["key"])


@control.group()
def nodes() -> None:
    """Registered nodes."""


@nodes.command(name="list")
@server_option
@token_option
@click.option("--json", "as_json", is_flag=True, help="The inventory JSON ({\"nodes\": [...]}).")
def nodes_list(server: str, token_file: str | None, as_json: bool) -> None:
    """List nodes (name, addresses, owner, routes, netmap version)."""
    with admin_client(server, token_file) as client:
        found = client.nodes()
    if as_json:
        click.echo(json.dumps({"nodes": found}, indent=2))
        return
    for node in found:
        owner = ",".join(node["tags"]) or node["user"] or "-"
        routes = ",".join(node["approved_routes"]) or "-"
        pending = set(node["advertised_routes"]) - set(node["approved_routes"])
        state = " expired" if node["expired"] else ""
        if node.get("invalid_tags"):  # dropped from tagOwners: kept, granting nothing
            state += f" invalid-tags={','.join(node['invalid_tags'])}"
        click.echo(f"{node['name']}\t{' '.join(node['ips'])}\t{owner}\troutes={routes}"
                   + (f" (advertised: {','.join(sorted(pending))})" if pending else "")
                   + f"\tnetmap=v{node['netmap_version']}{state}")


@nodes.command(name="rm")
@server_option
@token_option
@click.argument("name")
def nodes_rm(server: str, token_file: str | None, name: str) -> None:
    """Remove NAME: its key leaves every peer's netmap."""
    with admin_client(server, token_file) as client:
        client.remove_node(name)
    click.echo(f"removed {name}", err=True)


@nodes.command(name="approve-routes")
@server_option
@token_option
@click.argument("name")
@click.argument("cidrs", nargs=-1)
def nodes_approve_routes(server: str, token_file: str | None, name: str,
                         cidrs: tuple[str, ...]) -> None:
    """Approve exactly CIDRS of the routes NAME advertises (none: revoke all)."""
    with admin_client(server, token_file) as client:
        node = client.approve_routes(name, list(cidrs))
    click.echo(f"{name}: approved {', '.join(node['approved_routes']) or 'no routes'}", err=True)


@control.group(name="policy")
def policy_group() -> None:
    """The live policy, its history, rollback."""


@policy_group.command(name="get")
@server_option
@token_option
def policy_get(server: str, token_file: str | None) -> None:
    """Print the live policy text (its version and ETag go to stderr)."""
    with admin_client(server, token_file) as client:
        live = client.get_policy()
    click.echo(live["policy"], nl=False)
    click.echo(f"version {live['version']}, etag {live['etag']}", err=True)


@policy_group.command(name="history")
@server_option
@token_option
def policy_history(server: str, token_file: str | None) -> None:
    """Every stored version, newest first."""
    from datetime import UTC, datetime

    with admin_client(server, token_file) as client:
        versions = client.history()
    for entry in versions:
        when = datetime.fromtimestamp(entry["created_at"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        click.echo(f"{entry['version']}\t{when}\t{entry['etag'][:16]}\t{entry['note']}")


@policy_group.command(name="rollback")
@server_option
@token_option
@click.argument("version", type=click.IntRange(1))
def policy_rollback(server: str, token_file: str | None, version: int) -> None:
    """Make VERSION live again (stored as a new version; its tests run again)."""
    with admin_client(server, token_file) as client:
        stored = client.rollback(version)
    if stored["changed"]:
        click.echo(f"version {stored['version']} is live "
                   f"({stored['netmaps_changed']} netmap(s) changed)", err=True)
    else:
        click.echo(f"version {version} is already the live policy", err=True)


# `control authkey list|revoke`, `control token`, `control audit` live in their own
# module; importing it (once `control` and `authkey` exist) registers them, so the
# lazy top-level `control` command brings them along.
from policyc.cli import control_admin_cmds as _admin_cmds  # noqa: E402, F401
