"""The `policyc` command group; each command module registers itself on it.

Command modules are imported only when one of their commands runs (or when
`--help` lists them all): `policyc check` must not pay for httpx, the
control client, the enforcer or the language server (issue 9: start-up is
part of the 1 MB `check` budget). `COMMAND_MODULES` says which module
defines which top-level command; tests/test_cli_lazy.py checks it against
what the modules register.
"""

from __future__ import annotations

import importlib

import click

COMMAND_MODULES: dict[str, str] = {
    "apply": "apply_cmds",
    "check": "policy_cmds",
    "codes": "policy_cmds",
    "compile": "policy_cmds",
    "control": "control_cmds",
    "diff": "review_cmds",
    "drift": "enforce_cmds",
    "enforce": "enforce_cmds",
    "explain": "policy_cmds",
    "fmt": "editor_cmds",
    "graph": "review_cmds",
    "lsp": "editor_cmds",
    "nft": "enforce_cmds",
    "node": "node_cmds",
    "schema": "editor_cmds",
    "verify": "review_cmds",
}


class LazyGroup(click.Group):
    """A click group that imports a command's module the first time it is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if cmd_name not in self.commands and module is not None:
            importlib.import_module(f"policyc.cli.{module}")  # registers on `main`
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="policyc")
def main() -> None:
    """Compile and enforce Tailscale-compatible ACL policies."""
