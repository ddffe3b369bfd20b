"""`policyc node up|status|whois|down`: the node agent and its local views."""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from policyc.cli.app import main
from policyc.cli.common import EXIT_FAIL, EXIT_USAGE, server_url

DEFAULT_STATE = "/var/lib/policyc-node"
_EXIT_ROUTES = ("0.0.0.0/0", "::/0")


F = TypeVar("F", bound=Callable[..., Any])


def _state_option(command: F) -> F:
    return click.option("--state", "state_dir", default=DEFAULT_STATE, show_default=True,
                        type=click.Path(file_okay=False),
                        help="The agent's state directory (keys, cached netmap, socket).")(command)


@main.group()
def node() -> None:
    """Run this host as a tailnet node, and look at it."""


def _routes(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    routes = []
    for item in value.split(","):
        try:
            routes.append(str(ipaddress.ip_network(item.strip(), strict=True)))
        except ValueError as err:
            raise click.BadParameter(f"{item.strip()!r} is not a CIDR prefix ({err})",
                                     param_hint="--advertise-routes") from None
    return tuple(routes)


def _endpoint(value: str) -> str:
    host, sep, port = value.rpartition(":")
    try:
        ipaddress.ip_address(host.strip("[]"))
        ok = bool(sep) and port.isdigit() and 0 < int(port) < 65536
    except ValueError:
        ok = False
    if not ok:
        raise click.BadParameter(f"{value!r} is not IP:PORT", param_hint="--endpoint")
    return value


@node.command()
@click.option("--server", required=True, callback=server_url,
              help="Control's URL, e.g. https://control:8443.")
@click.option("--auth-key", default=None, envvar="POLICYC_AUTH_KEY",
              help="Pre-auth key (first join only; also $POLICYC_AUTH_KEY).")
@click.option("--iface", required=True, help="WireGuard interface (created if missing).")
@_state_option
@click.option("--netns", default=None, help="Network namespace the interface lives in.")
@click.option("--listen-port", type=click.IntRange(1, 65535), default=None)
@click.option("--endpoint", "endpoints", multiple=True,
              help="IP:PORT where peers reach this node (repeatable).")
@click.option("--advertise-routes", default=None, help="Subnet routes to offer: CIDR,CIDR…")
@click.option("--advertise-exit-node", is_flag=True, help="Offer 0.0.0.0/0 and ::/0.")
@click.option("--control-key", default=None,
              help="Control's signing key (base64), pinned in advance instead of at join.")
@click.option("--hostname", default=None, help="Name to ask control for (default: hostname).")
@click.option("-v", "--verbose", is_flag=True, help="Log every netmap applied.")
def up(server: str, auth_key: str | None, iface: str, state_dir: str, netns: str | None,
       listen_port: int | None, endpoints: tuple[str, ...], advertise_routes: str | None,
       advertise_exit_node: bool, control_key: str | None, hostname: str | None,
       verbose: bool) -> None:
    """Join the tailnet and keep this host's filter and peers equal to its netmap.

    Runs in the foreground until SIGTERM, which leaves the last rules in force.
    """
    from policyc.meshnode.agent import NOTICE, Agent, AgentConfig, AgentFailed
    from policyc.meshnode.iface import InterfaceError
    from policyc.meshnode.state import StateDir

    routes = _routes(advertise_routes) + (_EXIT_ROUTES if advertise_exit_node else ())
    config = AgentConfig(server=server, state=StateDir(Path(state_dir)), iface=iface,
                         auth_key=auth_key, netns=netns, listen_port=listen_port,
                         endpoints=tuple(_endpoint(e) for e in endpoints),
                         advertise_routes=routes, control_key=control_key,
                         hostname=hostname or socket.gethostname())
    logging.basicConfig(stream=sys.stderr, level=logging.INFO if verbose else NOTICE,
                        format="policyc node: %(levelname)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per long-poll is noise
    try:
        sys.exit(Agent(config).run())
    except (AgentFailed, InterfaceError) as err:
        click.echo(f"policyc node: error: {err}", err=True)
        sys.exit(EXIT_USAGE)


@node.command()
@_state_option
@click.option("--json", "as_json", is_flag=True)
def status(state_dir: str, as_json: bool) -> None:
    """Name, addresses, control reachability, netmap version and age, peers."""
    from policyc.meshnode.localapi import ask
    from policyc.meshnode.offline import offline_status
    from policyc.meshnode.state import StateDir
    from policyc.meshnode.views import render_status

    state = StateDir(Path(state_dir))
    answer = ask(state.socket, {"op": "status"}) or offline_status(state)
    click.echo(json.dumps(answer, indent=2) if as_json else render_status(answer))


@node.command()
@click.argument("address")
@_state_option
@click.option("--json", "as_json", is_flag=True)
def whois(address: str, state_dir: str, as_json: bool) -> None:
    """Which node, user and tags own mesh address IP[:PORT] (exit 1 if none)."""
    from policyc.meshnode.localapi import ask
    from policyc.meshnode.offline import offline_whois
    from policyc.meshnode.state import StateDir
    from policyc.meshnode.views import parse_address

    if parse_address(address) is None:
        raise click.BadParameter(f"{address!r} is not IP, IP:PORT or [IPv6]:PORT",
                                 param_hint="ADDRESS")
    state = StateDir(Path(state_dir))
    answer = ask(state.socket, {"op": "whois", "addr": address}) \
        or offline_whois(state, address)
    found = answer.get("whois") if answer.get("found") else None
    if as_json:
        click.echo(json.dumps(answer, indent=2))
    elif found:
        owner = ", ".join(found["tags"]) if found["tags"] else (found["user"] or "-")
        click.echo(f"{found['node']}  {owner}  {', '.join(found['addresses'])}")
    else:
        click.echo(f"{address}: no node of this tailnet has that address", err=True)
    sys.exit(0 if found else EXIT_FAIL)


@node.command()
@_state_option
def down(state_dir: str) -> None:
    """Remove the table, peers, routes and interface this agent installed."""
    from policyc.meshnode.down import node_down
    from policyc.meshnode.localapi import ask
    from policyc.meshnode.state import StateDir

    state = StateDir(Path(state_dir))
    if ask(state.socket, {"op": "status"}) is not None:
        click.echo("policyc node: error: the agent is running; stop it first", err=True)
        sys.exit(EXIT_USAGE)
    done, failed = node_down(state)
    for line in done:
        click.echo(line)
    for line in failed:
        click.echo(f"policyc node: error: {line}", err=True)
    sys.exit(EXIT_FAIL if failed else 0)
