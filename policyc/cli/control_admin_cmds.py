"""`policyc control authkey list|revoke`, `control token rotate`, `control audit`.

The admin commands beyond the first set (control_cmds.py): listing and
revoking pre-auth keys, rotating the admin token, reading the audit log.
Same conventions: a token alone on stdout, tables on stdout, exit 1 for a
server refusal and 2 for usage, authentication or network errors.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from policyc.cli.common import EXIT_USAGE, server_url
from policyc.cli.control_cmds import admin_client, authkey, control, server_option, token_option


def when(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@authkey.command(name="list")
@server_option
@token_option
@click.option("--json", "as_json", is_flag=True, help="The API's JSON ({\"keys\": [...]}).")
def authkey_list(server: str, token_file: str | None, as_json: bool) -> None:
    """Every pre-auth key (id, prefix, owner, state); never the key itself."""
    with admin_client(server, token_file) as client:
        keys = client.auth_keys()
    if as_json:
        click.echo(json.dumps({"keys": keys}, indent=2))
        return
    for key in keys:
        owner = ",".join(key["tags"]) or key["user"] or "-"
        reusable = "reusable" if key["reusable"] else "single-use"
        click.echo(f"{key['id']}\t{key['prefix']}…\t{owner}\t{reusable}\tuses={key['uses']}"
                   f"\texpires={when(key['expires_at'])}\t{key['state']}")


@authkey.command(name="revoke")
@server_option
@token_option
@click.argument("key_id", metavar="ID", type=click.IntRange(1))
def authkey_revoke(server: str, token_file: str | None, key_id: int) -> None:
    """Refuse key ID from now on (nodes that registered with it stay)."""
    with admin_client(server, token_file) as client:
        key = client.revoke_auth_key(key_id)
    click.echo(f"key {key['id']} ({key['prefix']}…) is revoked", err=True)


@control.group()
def token() -> None:
    """The admin token."""


@token.command(name="rotate")
@click.option("--server", envvar="POLICYC_SERVER", callback=server_url,
              help="Control URL (env POLICYC_SERVER): rotate through the running server.")
@token_option
@click.option("--state", "state_dir", type=click.Path(file_okay=False),
              help="Rotate offline in this state directory (the server must be stopped: "
                   "a running one keeps the old token until it restarts).")
def token_rotate(server: str | None, token_file: str | None, state_dir: str | None) -> None:
    """Print a new admin token (alone on stdout); the current one stops working.

    Either through the server (it also writes DIR/admin.token), or with --state on
    the state directory itself, for when the token is lost.
    """
    if (server is None) == (state_dir is None):
        raise click.UsageError("give either --server URL or --state DIR")
    if state_dir is not None:
        from policyc.control.serve import rotate_token_offline
        from policyc.control.statedir import StateError

        try:
            new = rotate_token_offline(Path(state_dir))
        except StateError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(EXIT_USAGE)
        click.echo(new)
        return
    assert server is not None
    with admin_client(server, token_file) as client:
        new = client.rotate_token()
    click.echo(new)


@control.command(name="audit")
@server_option
@token_option
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.option("--before", type=click.IntRange(1), help="Only entries older than this id.")
@click.option("--json", "as_json", is_flag=True, help="The API's JSON ({\"entries\": [...]}).")
def audit(server: str, token_file: str | None, limit: int, before: int | None,
          as_json: bool) -> None:
    """Who changed the policy, keys and nodes, and when (newest first)."""
    with admin_client(server, token_file) as client:
        entries = client.audit(limit, before)
    if as_json:
        click.echo(json.dumps({"entries": entries}, indent=2))
        return
    for entry in entries:
        detail = json.dumps(entry["detail"], sort_keys=True) if entry["detail"] else ""
        click.echo(f"{entry['id']}\t{when(entry['at'])}\t{entry['actor']}\t{entry['action']}"
                   f"\t{entry['target']}\t{detail}".rstrip())
