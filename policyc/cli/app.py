"""The `policyc` command group; each command module registers itself on it."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="policyc")
def main() -> None:
    """Compile and enforce Tailscale-compatible ACL policies."""
